# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: guests_placement_input
short_description: What the placement filter needs of each normalised VM
version_added: 0.1.0
author:
  - virtops.libvirt developers (@virtops)
description:
  - Returns what P(virtops.libvirt.placement#filter) needs of each VM of the input, which is C(name),
    C(vcpus), C(memory) and C(anti_affinity); C(hypervisor) and C(arch) when set; C(pool) and
    C(disk_size) (when not V(null)) when the VM has disks. In O(check_mode) the pool is left out when no
    hypervisor of O(capacity) has it active yet (this run would make it), so placement weighs memory,
    vCPUs and anti-affinity only.
options:
  _input:
    description: The VMs, as P(virtops.libvirt.guests_normalize#filter) returns them (without those declared absent).
    type: list
    elements: dict
    required: true
  capacity:
    description: The capacity table of P(virtops.libvirt.placement#filter), as P(virtops.libvirt.guests_capacity#filter) returns it.
    type: dict
    required: true
  check_mode:
    description: Whether the play runs in check mode (C(ansible_check_mode)).
    type: bool
    default: false
notes:
  - Pure Python on the controller; it does not connect to any hypervisor.
seealso:
  - plugin: virtops.libvirt.placement
    plugin_type: filter
  - plugin: virtops.libvirt.guests_normalize
    plugin_type: filter
  - plugin: virtops.libvirt.guests_capacity
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Place the VMs over the hypervisors of the play
  ansible.builtin.set_fact:
    placed: "{{ guests | virtops.libvirt.guests_normalize
                | virtops.libvirt.guests_placement_input(capacity, check_mode=ansible_check_mode)
                | virtops.libvirt.placement(capacity) }}"
  vars:
    capacity: "{{ ansible_play_hosts | virtops.libvirt.guests_capacity(hostvars) }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: The input of P(virtops.libvirt.placement#filter), one item per VM in the same order.
  type: list
  elements: dict
"""

from ansible_collections.virtops.libvirt.plugins.plugin_utils._guests import placement_input


def guests_placement_input(guests, capacity, check_mode=False):
    """``guests | virtops.libvirt.guests_placement_input(capacity, check_mode=ansible_check_mode)``"""
    return placement_input(guests, capacity, check_mode=bool(check_mode))


class FilterModule(object):
    def filters(self):
        return {"guests_placement_input": guests_placement_input}
