# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: guests_blocked
short_description: The VMs whose pool, network or base image a hypervisor does not have yet
version_added: 0.1.0
author:
  - virtops.libvirt developers (@virtops)
description:
  - Returns the names of the VMs of the input that need a pool that is not in O(pools) (a pool of
    C(_disks), of C(_cloud_init), or C(_image_pool) with an C(image)), a network of C(_interfaces)
    that is not in O(networks), or a base image that is pending.
  - A base image is pending when it is one of O(images) and uploading it (O(images_result)) changed
    something or was skipped.
  - In check mode such VMs cannot be looked at with M(virtops.libvirt.vm) yet, because an earlier
    task of the same run would make what they need.
options:
  _input:
    description: The VMs placed on the hypervisor, as P(virtops.libvirt.guests_normalize#filter) returns them.
    type: list
    elements: dict
    required: true
  pools:
    description: Names of the pools active on the hypervisor.
    type: list
    elements: str
    required: true
  networks:
    description: Names of the networks of the hypervisor.
    type: list
    elements: str
    required: true
  images:
    description: The base images meant for the hypervisor (items with C(name)).
    type: list
    elements: dict
    default: []
  images_result:
    description: The registered result of the loop that uploads O(images) with M(virtops.libvirt.volume).
    type: dict
notes:
  - Pure Python on the controller; it does not connect to any hypervisor.
seealso:
  - plugin: virtops.libvirt.guests_normalize
    plugin_type: filter
"""

EXAMPLES = r"""
- name: The VMs check mode cannot ask about yet
  ansible.builtin.debug:
    msg: "{{ vms_here | virtops.libvirt.guests_blocked(pools=['default'], networks=['default'], images=images, images_result=uploaded) }}"
"""

RETURN = r"""
_value:
  description: Names of the blocked VMs, in the order of the input.
  type: list
  elements: str
"""

from ansible_collections.virtops.libvirt.plugins.plugin_utils._guests import blocked


def guests_blocked(guests, pools, networks, images=None, images_result=None):
    """``guests | virtops.libvirt.guests_blocked(pools, networks, images=..., images_result=...)``"""
    return blocked(guests, list(pools), list(networks), images=images or [], images_result=images_result)


class FilterModule(object):
    def filters(self):
        return {"guests_blocked": guests_blocked}
