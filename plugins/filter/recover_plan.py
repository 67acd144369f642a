# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: recover_plan
short_description: Choose the surviving hypervisor for every VM of a failed one
version_added: 0.2.0
author:
  - virtops.libvirt developers (@virtops)
description:
  - Returns one item per VM to recover, sorted by name, each with C(name), C(hypervisor), C(state) (V(running)
    or V(stopped), as the VM was when it was kept) and C(action), which is V(define and start), V(define),
    V(start) (a survivor has it but it does not run) or V(none) (a survivor already runs it).
  - The VMs are placed by P(virtops.libvirt.placement#filter) with the same rules and limits as the
    C(virtops.libvirt.guests) role. A VM a survivor already has stays there. The others need the pool of their
    first writable disk active on the survivor (the shared storage their disk is on), memory, vCPUs, their
    architecture and their anti-affinity groups.
  - A survivor with a different VM (another UUID) of the same name is an error.
options:
  _input:
    description: The RV(virtops.libvirt.vm_recover#module:kept) list of M(virtops.libvirt.vm_recover).
    type: list
    elements: dict
    required: true
  hosts:
    description: The registered result of M(virtops.libvirt.host_info) looped over the surviving hypervisors (C(item) is the name).
    type: dict
    required: true
  vms:
    description: The registered result of M(virtops.libvirt.vm_info) looped over the same hypervisors.
    type: dict
    required: true
  include_stopped:
    description: Also define the VMs that were stopped when they were kept (they stay stopped).
    type: bool
    default: true
  exclude:
    description: Names of VMs not to recover.
    type: list
    elements: str
    default: []
  max_vcpu_ratio:
    description: Most vCPUs per host CPU.
    type: float
    default: 4.0
  max_memory_ratio:
    description: Most VM memory per byte of host memory.
    type: float
    default: 1.0
  reserve_memory_mib:
    description: Memory left to each hypervisor, MiB.
    type: int
    default: 512
notes:
  - Pure Python on the controller; it does not connect to any hypervisor.
seealso:
  - plugin: virtops.libvirt.placement
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Where the VMs of kvm2 go
  ansible.builtin.set_fact:
    plan: "{{ kept.kept | virtops.libvirt.recover_plan(hosts=survivor_hosts, vms=survivor_vms) }}"
"""

RETURN = r"""
_value:
  description: One item per VM, sorted by name, with C(name), C(hypervisor), C(state) and C(action).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._recover.plan import recover_plan as _recover_plan

display = Display()


def recover_plan(kept, hosts, vms, include_stopped=True, exclude=None, max_vcpu_ratio=4.0, max_memory_ratio=1.0,
                 reserve_memory_mib=512):
    """``kept | virtops.libvirt.recover_plan(hosts=..., vms=...)``"""
    try:
        out, notes = _recover_plan(kept, hosts, vms, include_stopped=bool(include_stopped), exclude=list(exclude or []),
                                   max_vcpu_ratio=float(max_vcpu_ratio), max_memory_ratio=float(max_memory_ratio),
                                   reserve_memory_mib=int(reserve_memory_mib))
    except VirtopsError as exc:
        raise AnsibleFilterError(exc.msg)
    for note in notes:
        display.warning("recover_plan: %s" % note)
    return out


class FilterModule(object):
    def filters(self):
        return {"recover_plan": recover_plan}
