#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup_info
short_description: The catalog of a backup repository, and its verification
version_added: 0.2.0
description:
  - Lists the VMs of a backup repository written by M(virtops.libvirt.backup) and their points (full or
    incremental, time, size, parent, the chain down to the full point), read from the points' manifests.
  - With O(verify=true), every file of every point is read and compared with the size and SHA-256 its manifest
    records, and every chain is checked (a missing parent, a damaged point in the chain, other disks). Each point
    reports RV(vms[].points[].verified) and its RV(vms[].points[].problems).
  - Reads files only; needs no libvirt connection (O(uri) is accepted, so that the action group's module defaults
    apply, and not used).
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.backup
options:
  vm:
    description: Only this VM's points. Default is every VM of the repository.
    type: str
  verify:
    description: Read every file and check checksums and chains (reads the whole repository).
    type: bool
    default: false
  fail_on_problems:
    description: With O(verify=true), fail (RV(ignore:error_kind=corrupted)) when a point has problems.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
seealso:
  - module: virtops.libvirt.backup
  - module: virtops.libvirt.backup_restore
"""

EXAMPLES = r"""
- name: What is in the repository
  virtops.libvirt.backup_info:
    repository: /srv/backup
  register: catalog

- name: Check every point of web1 and fail on damage
  virtops.libvirt.backup_info:
    repository: /srv/backup
    vm: web1
    verify: true
    fail_on_problems: true
"""

RETURN = r"""
repository:
  description: The repository.
  returned: success
  type: str
verified:
  description: Whether the points were verified.
  returned: success
  type: bool
problems:
  description: How many problems verification found (0 without O(verify)).
  returned: success
  type: int
vms:
  description: The VMs of the repository.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The VM's name (its directory).
      type: str
    uuids:
      description: The UUIDs its points were taken of (more than one when a VM of that name was recreated).
      type: list
      elements: str
    newest:
      description: The newest point.
      type: str
    size:
      description: Bytes of all its points.
      type: int
    broken:
      description: Directories without a readable manifest (not points).
      type: list
      elements: str
    points:
      description: Its points, oldest first.
      type: list
      elements: dict
      contains:
        name:
          description: The point's name.
          type: str
        directory:
          description: Its directory.
          type: str
        created:
          description: When it was completed (UTC).
          type: str
        mode:
          description: V(full) or V(incremental).
          type: str
        parent:
          description: The point it builds on (incremental points).
          type: str
        chain:
          description: The points a restore of it reads, its full point first; null when the chain is broken.
          type: list
          elements: str
        checkpoint:
          description: The libvirt checkpoint made with it.
          type: str
        compression:
          description: V(none), V(zstd) or V(gzip).
          type: str
        consistency:
          description: How the point in time was taken.
          type: str
        size:
          description: Bytes of its own files.
          type: int
        disks:
          description: Its disks (C(target), C(virtual_size), C(size)).
          type: list
          elements: dict
        nvram:
          description: Whether it holds the VM's NVRAM.
          type: bool
        uuid:
          description: The UUID of the VM it was taken of.
          type: str
        verified:
          description: With O(verify), true when the point and its whole chain are intact.
          type: bool
        problems:
          description: What is wrong with it or its chain (with O(verify); without it, only a broken chain).
          type: list
          elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._backup.info import gather_backup_info
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            repository=dict(type="path", required=True),
            vm=dict(type="str"),
            verify=dict(type="bool", default=False),
            fail_on_problems=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    run_module(module, gather_backup_info, requires=(), connect=False)


if __name__ == "__main__":
    main()
