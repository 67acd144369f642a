# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: guests_report
short_description: What became of the VMs of one hypervisor, from the results of its apply task
version_added: 0.1.0
author:
  - virtops.libvirt developers (@virtops)
description:
  - Returns one row per C(vm) item of O(resources) that ran in the registered M(virtops.libvirt.apply)
    task (the input). Items that failed or were not attempted have none.
  - First the VMs made or kept, with the VM's state (V(absent) when it has none, V(to be created) when
    check mode predicts a VM that does not exist yet), whether it changed, whether a reboot is pending
    and its address from O(addresses). Then the VMs removed (C(state=absent)) with the state V(removed).
options:
  _input:
    description: The registered result of the M(virtops.libvirt.apply) task (its C(results)).
    type: dict
    required: true
  hypervisor:
    description: Name of the hypervisor, written into each row.
    type: str
    required: true
  resources:
    description: The O(virtops.libvirt.apply#module:resources) of that task, which name each item's VM.
    type: list
    elements: dict
    required: true
  addresses:
    description: The registered result of M(virtops.libvirt.vm_info) with addresses (its C(vms)), if any.
    type: dict
notes:
  - Pure Python on the controller; it does not connect to any hypervisor.
seealso:
  - plugin: virtops.libvirt.guests_resources
    plugin_type: filter
  - plugin: virtops.libvirt.guests_summary
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Keep what became of the VMs here
  ansible.builtin.set_fact:
    report: "{{ applied | virtops.libvirt.guests_report(inventory_hostname, resources=resources, addresses=addresses) }}"
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

from ansible.errors import AnsibleFilterError

from ansible_collections.virtops.libvirt.plugins.plugin_utils._guests import report


def guests_report(applied, hypervisor, resources, addresses=None):
    """``applied | virtops.libvirt.guests_report(inventory_hostname, resources=..., addresses=...)``"""
    if not isinstance(resources, list):
        raise AnsibleFilterError("guests_report: resources must be the list of the apply task's resources")
    return report(applied, hypervisor, resources, addresses=addresses)


class FilterModule(object):
    def filters(self):
        return {"guests_report": guests_report}
