# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: guests_capacity
short_description: The capacity table of the placement filter, from what each hypervisor registered
version_added: 0.1.0
author:
  - virtops.libvirt developers (@virtops)
description:
  - Returns, for each hypervisor of the input, its C(host) (the RV(virtops.libvirt.host_info#module:host)
    result of M(virtops.libvirt.host_info)) and C(vms) (the RV(virtops.libvirt.vm_info#module:vms) result of
    M(virtops.libvirt.vm_info)), from the results it registered as O(host_info_var) and O(vm_info_var),
    and C(devices) (the PCI devices M(virtops.libvirt.host_device_info) lists) from O(device_info_var) where
    the hypervisor registered that result.
options:
  _input:
    description: Names of the hypervisors (inventory hosts).
    type: list
    elements: str
    required: true
  hostvars:
    description: The variables of the hosts (C(hostvars)).
    type: raw
    required: true
  host_info_var:
    description: Name of the variable with the result of M(virtops.libvirt.host_info).
    type: str
    default: host_info
  vm_info_var:
    description: Name of the variable with the result of M(virtops.libvirt.vm_info) (every VM, so no filters).
    type: str
    default: vm_info
  device_info_var:
    description:
      - Name of the variable with the result of M(virtops.libvirt.host_device_info), for guests that
        require devices (C(requires) of P(virtops.libvirt.placement#filter)). A hypervisor without it, or
        where that task was skipped, has no C(devices).
    type: str
notes:
  - Pure Python on the controller; it does not connect to any hypervisor.
seealso:
  - plugin: virtops.libvirt.placement
    plugin_type: filter
"""

EXAMPLES = r"""
- name: What each hypervisor has
  virtops.libvirt.host_info:
    uri: "{{ libvirt_uri }}"
  register: host_info

- name: Its VMs
  virtops.libvirt.vm_info:
    uri: "{{ libvirt_uri }}"
    addresses: false
  register: vm_info

- name: Where two new VMs go
  ansible.builtin.debug:
    msg: "{{ [{'name': 'web1'}, {'name': 'web2'}] | virtops.libvirt.placement(ansible_play_hosts | virtops.libvirt.guests_capacity(hostvars)) }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: Hypervisor name to a dictionary with C(host) and C(vms).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.virtops.libvirt.plugins.plugin_utils._guests import capacity


def guests_capacity(hosts, hostvars, host_info_var="host_info", vm_info_var="vm_info", device_info_var=None):
    """``hosts | virtops.libvirt.guests_capacity(hostvars, host_info_var=..., vm_info_var=..., device_info_var=...)``"""
    try:
        return capacity(hosts, hostvars, host_info_var, vm_info_var, device_info_var)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("guests_capacity: a hypervisor has no registered %s or %s result (missing: %s)"
                                 % (host_info_var, vm_info_var, exc))


class FilterModule(object):
    def filters(self):
        return {"guests_capacity": guests_capacity}
