# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: guests_problems
short_description: What is wrong with the declared VMs of a cluster, before anything is read or changed
version_added: 0.1.0
author:
  - virtops.libvirt developers (@virtops)
description:
  - Returns one message per problem, an empty list when there is none.
  - A VM name declared more than once.
  - A VM pinned (C(hypervisor)) to a host that is not one of O(cluster_hosts).
  - Hosts of O(cluster_hosts) that are not in O(play_hosts) (failed, unreachable or left out by C(--limit)),
    in one message.
options:
  _input:
    description: The VMs, as P(virtops.libvirt.guests_normalize#filter) returns them (C(name), C(hypervisor)).
    type: list
    elements: dict
    required: true
  cluster_hosts:
    description: The hypervisors of the cluster.
    type: list
    elements: str
    required: true
  play_hosts:
    description: The hosts of the play that answered (C(ansible_play_hosts)).
    type: list
    elements: str
    required: true
notes:
  - Pure Python on the controller; it does not connect to any hypervisor.
seealso:
  - plugin: virtops.libvirt.guests_normalize
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Stop on bad declarations
  ansible.builtin.assert:
    that: _problems | length == 0
    fail_msg: "{{ _problems | join('; ') }}"
  vars:
    _problems: "{{ guests | virtops.libvirt.guests_normalize | virtops.libvirt.guests_problems(groups['kvm'], ansible_play_hosts) }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: Messages, one per problem.
  type: list
  elements: str
  sample: ["VM web1 is declared 2 times", "VM db1 is pinned to kvm9, which is not a hypervisor of the cluster (kvm1, kvm2)"]
"""

from ansible_collections.virtops.libvirt.plugins.plugin_utils._guests import problems


def guests_problems(guests, cluster_hosts, play_hosts):
    """``guests | virtops.libvirt.guests_problems(cluster_hosts, ansible_play_hosts)``"""
    return problems(guests, list(cluster_hosts), list(play_hosts))


class FilterModule(object):
    def filters(self):
        return {"guests_problems": guests_problems}
