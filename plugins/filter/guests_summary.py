# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: guests_summary
short_description: A table of VMs, hypervisors, states and addresses, one line per VM
version_added: 0.1.0
author:
  - virtops.libvirt developers (@virtops)
description:
  - Returns a header line and one line per row, sorted by VM name (without regard to case), in columns
    VM, hypervisor, state (with V( (reboot pending)) when a reboot is pending) and address (V(-) when none).
options:
  _input:
    description: Rows as P(virtops.libvirt.guests_report#filter) returns them, of any number of hypervisors.
    type: list
    elements: dict
    required: true
notes:
  - Pure Python on the controller; it does not connect to any hypervisor.
seealso:
  - plugin: virtops.libvirt.guests_report
    plugin_type: filter
"""

EXAMPLES = r"""
- name: One line per VM of the cluster
  ansible.builtin.debug:
    msg: "{{ ansible_play_hosts | map('extract', hostvars, 'report') | flatten | virtops.libvirt.guests_summary }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: The lines of the table.
  type: list
  elements: str
  sample: ["VM                       hypervisor       state          address", "web1                     kvm1             running        192.0.2.10"]
"""

from ansible_collections.virtops.libvirt.plugins.plugin_utils._guests import summary


def guests_summary(rows):
    """``rows | virtops.libvirt.guests_summary``"""
    return summary(rows)


class FilterModule(object):
    def filters(self):
        return {"guests_summary": guests_summary}
