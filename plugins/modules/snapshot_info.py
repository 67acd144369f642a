#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: snapshot_info
short_description: List the snapshots of a libvirt VM, as a list and as a tree
version_added: 0.1.0
description:
  - Returns the snapshots of VM O(vm), oldest first, with the current one, creation time, the VM's
    state when each was taken, whether memory is included, and its disks.
  - RV(tree) gives the same snapshots as parent/children trees.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.info_module
options:
  vm:
    description: Name of the VM. The module fails (C(error_kind=not_found)) when there is no such VM.
    type: str
    required: true
  name:
    description:
      - Only this snapshot in RV(snapshots) (RV(tree) and RV(count) still cover all of them).
      - The module fails (C(error_kind=not_found)) when the VM has no snapshot of this name.
    type: str
seealso:
  - module: virtops.libvirt.snapshot
"""

EXAMPLES = r"""
- name: Snapshots of web1
  virtops.libvirt.snapshot_info:
    vm: web1
  register: snaps

- name: Names, oldest first, and the current one
  ansible.builtin.debug:
    msg: "{{ snaps.snapshots | map(attribute='name') | list }} (current: {{ snaps.current }})"

- name: Memory snapshots only
  ansible.builtin.debug:
    msg: "{{ snaps.snapshots | selectattr('memory') | map(attribute='name') | list }}"
"""

RETURN = r"""
vm:
  description: Name of the VM.
  returned: success
  type: str
vm_state:
  description: Run state of the VM now (V(running), V(paused), V(stopped), ...).
  returned: success
  type: str
current:
  description: Name of libvirt's current snapshot of the VM, or null.
  returned: success
  type: str
count:
  description: Number of snapshots of the VM.
  returned: success
  type: int
snapshots:
  description: The snapshots, oldest first (only O(name) when given).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Name.
      type: str
    description:
      description: Description (empty when none).
      type: str
    state:
      description: libvirt's state of the VM when the snapshot was taken (V(running), V(shutoff), V(disk-snapshot), ...).
      type: str
    vm_state:
      description: The run state a revert restores, in M(virtops.libvirt.vm)'s words.
      type: str
    parent:
      description: Name of the parent snapshot, or null.
      type: str
    children:
      description: Names of the child snapshots.
      type: list
      elements: str
    current:
      description: Whether it is the current snapshot.
      type: bool
    created:
      description: Creation time, seconds since the epoch.
      type: int
    creation_time:
      description: Creation time, ISO 8601 in UTC.
      type: str
      sample: "2026-11-23T10:00:00Z"
    memory:
      description: Whether the memory state is included.
      type: bool
    external:
      description: Whether it is an external snapshot (overlay files).
      type: bool
    disk_only:
      description: Whether it holds the disks alone (external, no memory).
      type: bool
    disks:
      description: Per disk C(name) (target), C(snapshot) (V(internal), V(external), V(no)) and C(file) (the overlay of an external snapshot).
      type: list
      elements: dict
      sample: [{"name": "vda", "snapshot": "internal", "file": null}]
tree:
  description: Every snapshot as a forest of C(name), C(current) and C(children) (the same structure, nested).
  returned: success
  type: list
  elements: dict
  sample: [{"name": "base", "current": false, "children": [{"name": "after-install", "current": true, "children": []}]}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import run_module
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot.view import gather_snapshot_info


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            vm=dict(type="str", required=True),
            name=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    run_module(module, gather_snapshot_info)


if __name__ == "__main__":
    main()
