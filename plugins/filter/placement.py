# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: placement
short_description: Choose a hypervisor for every declared VM, from host_info and vm_info data
version_added: 0.1.0
author:
  - virtops.libvirt developers (@virtops)
description:
  - Returns the list of guests with C(hypervisor) set on each, on the controller, from data that
    M(virtops.libvirt.host_info) and M(virtops.libvirt.vm_info) gathered on each hypervisor.
  - A guest that already exists on a hypervisor stays there, so placing again gives the same
    answer. A guest that exists on one hypervisor but is pinned to another is an error (moving it is a
    migration). A guest defined on several hypervisors stays where it is active.
  - A pinned guest (C(hypervisor) given) that does not exist yet goes to that hypervisor, after the
    checks below; a pin that breaks a limit is an error.
  - The other guests are placed largest memory first (then vCPUs, disk size, name). Each goes on the
    hypervisor that fits it and has the most memory left afterwards. Ties go to the lower vCPU
    ratio, then the most free space in the guest's pool, then the hypervisor name. The same
    input always gives the same result.
  - A hypervisor fits a guest when all of these hold.
  - The guest's C(arch), if given, is the host's CPU architecture or one the host can run
    (C(guest_arches)); hosts of that architecture come first.
  - The memory of every VM defined on the host plus the guests placed there stays within its total
    memory times O(max_memory_ratio) less O(reserve_memory_mib). With O(max_memory_ratio) of 1
    or less, the new guests must also fit in the memory the host has available now
    (C(memory.available)) less O(reserve_memory_mib), unless C(memory.available) is 0 (the driver could not tell).
  - The vCPUs of every VM defined on the host plus the guests placed there stay within its CPU count
    times O(max_vcpu_ratio).
  - A guest with C(disk_size) needs its C(pool) (else V(default)) active on the host, with that much
    free space left after the guests placed before it; a guest with only C(pool) needs that pool active.
  - No VM of any of the guest's C(anti_affinity) groups is on the host. Existing VMs count. A VM
    that is not among the guests belongs to the groups listed in its metadata key C(anti_affinity)
    (see O(virtops.libvirt.vm#module:metadata)), so that VMs created by other plays are kept apart too.
  - A guest with C(requires) needs that many free PCI devices of its class on the host (from the
    host's C(devices) in O(capacity)), less those the guests placed before it took.
  - When a guest fits nowhere, the filter fails with a table of every hypervisor, what it has used
    and left, and why the guest does not fit there.
options:
  _input:
    description:
      - The guests, each a dictionary. Other keys than these are returned unchanged.
      - C(name) (required) is the VM name.
      - C(vcpus) defaults to 1 and C(memory) (MiB, or a string with a unit such as V(2GiB)) to 1024, as in M(virtops.libvirt.vm).
      - C(disk_size) is the size of the disk the guest will get, in bytes or with a unit (V(20G)).
      - C(pool) is the storage pool of that disk.
      - C(hypervisor) pins the guest to that hypervisor.
      - C(anti_affinity) is a group name or a list of them; two guests of a group are never placed on one host.
      - C(arch) is the CPU architecture the guest needs.
      - C(requires) is a dictionary of devices the guest needs, C(pci_class) (V(gpu), or a
        C(class_name) of M(virtops.libvirt.host_device_info) such as V(accelerator) or V(network))
        and C(count) (default 1). The hypervisors then need C(devices) in O(capacity).
    type: list
    elements: dict
    required: true
  capacity:
    description:
      - One entry per hypervisor, keyed by its name (the name C(hypervisor) values use), each a
        dictionary with C(host), the RV(virtops.libvirt.host_info#module:host) result of
        M(virtops.libvirt.host_info), and C(vms), the RV(virtops.libvirt.vm_info#module:vms) result of
        M(virtops.libvirt.vm_info) for the same hypervisor (with every VM, so no filters).
      - The whole registered results are accepted too.
      - C(devices), the result of M(virtops.libvirt.host_device_info) for the hypervisor (or its
        C(pci_devices)), is needed when a guest has C(requires); its free devices count.
    type: dict
    required: true
  max_vcpu_ratio:
    description: Most vCPUs per host CPU (vCPU overcommit) on any hypervisor.
    type: float
    default: 4.0
  max_memory_ratio:
    description: Most VM memory per byte of host memory (memory overcommit); 1 is none.
    type: float
    default: 1.0
  reserve_memory_mib:
    description: Memory left to the hypervisor itself, in MiB.
    type: int
    default: 512
notes:
  - A warning is shown for existing VMs that already break anti-affinity; they are not moved.
  - Pure Python on the controller; it does not connect to any hypervisor.
seealso:
  - module: virtops.libvirt.host_info
  - module: virtops.libvirt.vm_info
  - plugin: virtops.libvirt.libvirt
    plugin_type: inventory
"""

EXAMPLES = r"""
- name: What the hypervisors have
  virtops.libvirt.host_info:
    uri: "{{ hostvars[item].libvirt_uri }}"
  loop: "{{ groups['hypervisors'] }}"
  register: hosts

- name: The VMs they have
  virtops.libvirt.vm_info:
    uri: "{{ hostvars[item].libvirt_uri }}"
    addresses: false
  loop: "{{ groups['hypervisors'] }}"
  register: vms

- name: Capacity, keyed by hypervisor name
  ansible.builtin.set_fact:
    capacity: "{{ capacity | default({}) | combine({item.0: {'host': item.1.host, 'vms': item.2.vms}}) }}"
  loop: "{{ groups['hypervisors'] | zip(hosts.results, vms.results) | list }}"

- name: Three web servers on three different hypervisors, the database pinned to kvm1
  ansible.builtin.set_fact:
    placed: "{{ guests | virtops.libvirt.placement(capacity, max_vcpu_ratio=2.0) }}"
  vars:
    guests:
      - {name: web1, vcpus: 2, memory: 2048, anti_affinity: web}
      - {name: web2, vcpus: 2, memory: 2048, anti_affinity: web}
      - {name: web3, vcpus: 2, memory: 2048, anti_affinity: web}
      - {name: db1, vcpus: 4, memory: 8192, disk_size: 100G, pool: fast, hypervisor: kvm1}

- name: Where each one goes
  ansible.builtin.debug:
    msg: "{{ placed | items2dict(key_name='name', value_name='hypervisor') }}"
"""

RETURN = r"""
_value:
  description: The guests, in the same order, each with C(hypervisor) set to the name of the hypervisor it goes to.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._cluster.placement import place

display = Display()


def placement(guests, capacity, max_vcpu_ratio=4.0, max_memory_ratio=1.0, reserve_memory_mib=512):
    """``guests | virtops.libvirt.placement(capacity, ...)``: the guests with ``hypervisor`` set."""
    try:
        placed, notes = place(guests, capacity, max_vcpu_ratio=max_vcpu_ratio, max_memory_ratio=max_memory_ratio,
                              reserve_memory_mib=reserve_memory_mib)
    except VirtopsError as exc:
        raise AnsibleFilterError(exc.msg)
    for note in notes:
        display.warning("placement: %s" % note)
    return placed


class FilterModule(object):
    def filters(self):
        return {"placement": placement}
