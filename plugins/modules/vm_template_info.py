#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vm_template_info
short_description: List the VM templates of a hypervisor
version_added: 0.2.0
description:
  - Lists the templates made by M(virtops.libvirt.vm_template) in one pool, or in every active pool whose
    directory the managed node sees, with their base volumes and the VMs that use them (linked clones).
  - The task must run on the hypervisor, with a local O(uri), because templates are files in the pools' directories.
  - A file named like a definition that is not one is skipped with a warning.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.info_module
options:
  pool:
    description: Only the templates of this pool (it must exist and be active). Unset means every active directory pool.
    type: str
  name:
    description: Only this template. An unknown name gives an empty list.
    type: str
seealso:
  - module: virtops.libvirt.vm_template
"""

EXAMPLES = r"""
- name: Every template
  virtops.libvirt.vm_template_info:
  register: found

- name: Templates no VM uses
  ansible.builtin.debug:
    msg: "{{ found.templates | rejectattr('used_by') | map(attribute='name') | list }}"
"""

RETURN = r"""
templates:
  description: The templates, by pool, then name.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Name of the template.
      type: str
      sample: debian12
    pool:
      description: Pool that keeps it.
      type: str
    path:
      description: Path of its definition file.
      type: str
    source_vm:
      description: The VM it was made from.
      type: str
    sealed:
      description: V(agent) when it was sealed by M(virtops.libvirt.vm_template), V(none) otherwise.
      type: str
    created:
      description: When it was made (UTC, ISO 8601).
      type: str
    disks:
      description: Its base volumes (target, volume, path, format, capacity).
      type: list
      elements: dict
    memory:
      description: Memory of its definition, in MiB.
      type: int
    vcpus:
      description: vCPUs of its definition.
      type: int
    machine:
      description: Machine type of its definition.
      type: str
    interfaces:
      description: Number of network interfaces of its definition.
      type: int
    used_by:
      description: Names of the VMs that use its base volumes (directly or through overlays).
      type: list
      elements: str
      sample: [web1]
    dependants:
      description: Volumes (C(pool/volume)) whose backing chain leads to its base volumes.
      type: list
      elements: str
      sample: [default/web1-vda.qcow2]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import run_module
from ansible_collections.virtops.libvirt.plugins.module_utils._template.info import gather_template_info


def main():
    module = AnsibleModule(argument_spec=dict(COMMON_ARGS, pool=dict(type="str"), name=dict(type="str")),
                           supports_check_mode=True)
    run_module(module, gather_template_info)


if __name__ == "__main__":
    main()
