# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: guests_vm_args
short_description: The arguments of the vm module for a VM normalised by guests_normalize
version_added: 0.1.0
author:
  - virtops.libvirt developers (@virtops)
description:
  - Returns the keys of the input that are options of M(virtops.libvirt.vm), read from the module's own
    argument spec, so a new option of the module needs no change here. Other keys are left out.
  - The options C(disks), C(interfaces), C(metadata) and C(cloud_init) take the values that
    P(virtops.libvirt.guests_normalize#filter) worked out (C(_disks), C(_interfaces), C(_metadata),
    C(_cloud_init)); C(cloud_init) is left out when C(_cloud_init) is V(null).
  - A key whose value is V(null) is passed as V(null), which the module takes as not given.
options:
  _input:
    description: One VM, an item of what P(virtops.libvirt.guests_normalize#filter) returns.
    type: dict
    required: true
notes:
  - Pure Python on the controller; it does not connect to any hypervisor.
seealso:
  - plugin: virtops.libvirt.guests_normalize
    plugin_type: filter
  - module: virtops.libvirt.vm
"""

EXAMPLES = r"""
- name: Make each VM as declared (the role passes the arguments through module_defaults; see its tasks)
  virtops.libvirt.vm:
    uri: qemu:///system
  module_defaults:
    virtops.libvirt.vm: "{{ item | virtops.libvirt.guests_vm_args }}"
  loop: "{{ guests | virtops.libvirt.guests_normalize(pool='vms') }}"
  loop_control:
    label: "{{ item.name }}"
"""

RETURN = r"""
_value:
  description: Arguments of M(virtops.libvirt.vm).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.virtops.libvirt.plugins.modules.vm import ARGUMENT_SPEC
from ansible_collections.virtops.libvirt.plugins.plugin_utils._guests import vm_args


def guests_vm_args(guest):
    """``guest | virtops.libvirt.guests_vm_args``"""
    if not isinstance(guest, dict):
        raise AnsibleFilterError("guests_vm_args: the input must be a dictionary (one item of guests_normalize)")
    return vm_args(guest, ARGUMENT_SPEC)


class FilterModule(object):
    def filters(self):
        return {"guests_vm_args": guests_vm_args}
