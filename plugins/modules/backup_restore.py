#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup_restore
short_description: Restore a point of a backup repository into a VM
version_added: 0.2.0
description:
  - Makes a VM from a point written by M(virtops.libvirt.backup), chosen by name (O(point)) or as the newest point
    at or before a time (O(before)); the newest point without either.
  - Before anything is written, every file of the point's chain (the point and the points it builds on, down to a
    full point) is checked against its manifest (size and SHA-256) and as a qcow2 image whose only backing file is
    the same disk of an older point of that chain. A corrupted or missing file fails the task
    (RV(ignore:error_kind=corrupted)) with the file named, and nothing is made.
  - Each disk is flattened by C(qemu-img convert) into one image, reading the chain as the manifests describe it
    (explicit formats, no backing path of an image header is followed), and becomes a new volume
    C(<name>-<target>.qcow2) (or C(.img) when raw) of O(pool), as with M(virtops.libvirt.vm_import).
  - The definition is the one saved with the point. Restored under another O(name), the VM gets a new UUID, new MAC
    addresses and fresh NVRAM. Restored under its own name it keeps its UUID and MACs; an existing VM of that name is
    replaced only with O(force=true) (it and the volumes only it used are removed once the new disks are verified).
  - An existing VM of the name O(name) is left alone without O(force) (V(changed=false)), so running the task twice
    restores once. A failure removes what the run made.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.backup
options:
  vm:
    description: The VM whose point is restored (its directory in the repository).
    type: str
    required: true
  point:
    description: Name of the point. Mutually exclusive with O(before).
    type: str
  before:
    description:
      - The newest point made at or before this UTC time (V(2026-12-07T18:00:00Z), V(2026-12-07 18:00) or a date).
    type: str
  name:
    description: Name of the restored VM. Default is O(vm) (a restore in place, which needs O(force) when the VM exists).
    type: str
  pool:
    description: The storage pool of the new volumes.
    type: str
    default: default
  disk_format:
    description: Format of the new volumes. Default is qcow2 in file-based pools, raw in block pools.
    type: str
    choices: [qcow2, raw]
  state:
    description: V(present) defines the VM, V(running) also starts it.
    type: str
    choices: [present, running]
    default: present
  force:
    description: Replace an existing VM of the name O(name) (and the volumes only it used).
    type: bool
    default: false
  tmp_dir:
    description: Directory for the flattened disks before they are uploaded. Default is the system's temporary directory.
    type: path
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Chooses the point and reads its manifests and definition; the disks are verified only by a real run.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
notes:
  - NVRAM saved with a point is not written back yet; a restored UEFI VM starts with fresh variables.
seealso:
  - module: virtops.libvirt.backup
  - module: virtops.libvirt.backup_info
  - module: virtops.libvirt.vm_import
"""

EXAMPLES = r"""
- name: Last Tuesday's state of web1 as a new VM
  virtops.libvirt.backup_restore:
    repository: /srv/backup
    vm: web1
    before: "2026-12-01T23:59:59Z"
    name: web1-restored
    state: running

- name: Put db1 back to a named point, in place
  virtops.libvirt.backup_restore:
    repository: /srv/backup
    vm: db1
    point: before-upgrade
    force: true
"""

RETURN = r"""
point:
  description: The point restored (null when the VM existed and nothing was done).
  returned: success
  type: dict
  contains:
    name:
      description: Its name.
      type: str
    created:
      description: When it was made (UTC).
      type: str
    mode:
      description: V(full) or V(incremental).
      type: str
    chain:
      description: The points read, the full point first.
      type: list
      elements: str
    vm:
      description: The VM it was taken of.
      type: str
    uuid:
      description: That VM's UUID.
      type: str
vm:
  description: The restored VM as M(virtops.libvirt.vm_info) describes it (predicted in check mode).
  returned: success
  type: dict
replaced:
  description: Whether an existing VM was replaced.
  returned: success
  type: bool
disks:
  description: The new volumes (C(target), C(pool), C(volume), C(path), C(format), C(source_format), C(capacity)).
  returned: success
  type: list
  elements: dict
source:
  description: The point's directory (C(path), C(type) V(backup), C(name)).
  returned: success
  type: dict
actions:
  description: What was done (or would be done in check mode), in order.
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._backup.restore_kind import BACKUP_RESTORE

ARGUMENT_SPEC = BACKUP_RESTORE.argument_spec


def main():
    BACKUP_RESTORE.run(AnsibleModule(**BACKUP_RESTORE.module_kwargs()))


if __name__ == "__main__":
    main()
