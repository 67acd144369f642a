# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: guests_report
short_description: What became of the VMs of one hypervisor, from the results of the vm module
version_added: 0.1.0
author:
  - virtops.libvirt developers (@virtops)
description:
  - Returns one row per VM. First the VMs of the input, the registered result of a loop of
    M(virtops.libvirt.vm) over VM names (those it ran for), with the VM's state (V(absent) when it has
    none), whether it changed, whether a reboot is pending and its address from O(addresses).
  - Then the O(blocked) VMs, with the state V(to be created); then the VMs of O(removed) (the
    registered result of a loop that removed VMs) with the state V(removed).
options:
  _input:
    description: The registered result of the loop of M(virtops.libvirt.vm) (its C(results)).
    type: dict
    required: true
  hypervisor:
    description: Name of the hypervisor, written into each row.
    type: str
    required: true
  addresses:
    description: The registered result of M(virtops.libvirt.vm_info) with addresses (its C(vms)), if any.
    type: dict
  blocked:
    description: Names of the VMs check mode could not ask about yet (P(virtops.libvirt.guests_blocked#filter)).
    type: list
    elements: str
    default: []
  removed:
    description: The registered result of the loop of M(virtops.libvirt.vm) that removed VMs.
    type: dict
notes:
  - Pure Python on the controller; it does not connect to any hypervisor.
seealso:
  - plugin: virtops.libvirt.guests_summary
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Keep what became of the VMs here
  ansible.builtin.set_fact:
    report: "{{ vm_results | virtops.libvirt.guests_report(inventory_hostname, addresses=addresses, removed=removed) }}"
"""

RETURN = r"""
_value:
  description: One row per VM.
  type: list
  elements: dict
  contains:
    name:
      description: VM name.
      type: str
    hypervisor:
      description: The O(hypervisor).
      type: str
    state:
      description: State of the VM, V(absent), V(to be created) or V(removed).
      type: str
    changed:
      description: Whether the VM changed.
      type: bool
    reboot_required:
      description: Whether a change waits for a reboot.
      type: bool
    ip:
      description: Its address, or V(null).
      type: str
"""

from ansible_collections.virtops.libvirt.plugins.plugin_utils._guests import report


def guests_report(vm_results, hypervisor, addresses=None, blocked=None, removed=None):
    """``vm_results | virtops.libvirt.guests_report(inventory_hostname, addresses=..., blocked=..., removed=...)``"""
    return report(vm_results, hypervisor, addresses=addresses, blocked_names=blocked or [], removed=removed)


class FilterModule(object):
    def filters(self):
        return {"guests_report": guests_report}
