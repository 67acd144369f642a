#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup
short_description: Back up a VM into a backup repository, full or incremental, with retention
version_added: 0.2.0
description:
  - Writes a point in time of one VM (every writable disk, its definition and its NVRAM) into a backup
    repository, a directory on the hypervisor (a mounted NFS or CIFS share reaches remote storage),
    as C(<repository>/<vm>/<point>/) with one C(<target>.qcow2) per disk, C(domain.xml), C(nvram.fd) when the VM
    has NVRAM, and C(manifest.json).
  - The manifest (JSON) holds the point's name and time, its mode (V(full) or V(incremental)), its parent
    point, the libvirt checkpoint it made, the compression, the VM's name and UUID, and per file its size and
    SHA-256. The catalog (M(virtops.libvirt.backup_info)) is read from the manifests; nothing else records
    the points.
  - The repository and the VM's directory in it are created when missing (mode 0700; 0711 while a running VM's
    job writes into it). For a running VM, QEMU writes the files itself, so O(repository) must be the same path for
    QEMU as for the module, and QEMU's user must be able to search it and the VM's directory.
  - A point is written in a hidden temporary directory C(.<point>.virtops-tmp-<pid>) beside the points and
    renamed when complete. On any failure (a full repository included) that directory is removed, a running
    backup job is aborted and the checkpoint this run made is deleted; a leftover temporary directory of a
    killed run is removed by the next run.
  - A running VM is read by libvirt's backup job in push mode, at the instant the job starts, while the
    guest keeps running. Each point gets a checkpoint (a persistent dirty bitmap per disk, named
    C(virtops-backup-<point>-<tag>), the tag made of the repository's path, so that points of the same name in
    two repositories never share a checkpoint); an incremental point copies only the clusters written since the
    checkpoint of the newest point, into a qcow2 file whose header names the parent point's file as backing file.
    After a point is complete, the checkpoints of older points of the same repository are deleted; only the
    newest one is kept (per repository).
  - A stopped VM is read by C(qemu-img convert) (only allocated data) and always gets a full point without
    checkpoint, since nothing records what changed on its disks.
  - Checkpoints and the collection's snapshots (verified with libvirt 9.0 and QEMU 7.2). Snapshots can be
    taken while checkpoints exist, but QEMU refuses to revert a running VM to an internal snapshot while its
    disks carry dirty bitmaps (C(Device has active dirty bitmaps), and the VM is stopped), and libvirt
    refuses internal snapshots of a stopped VM with checkpoints and to delete checkpoints of a stopped VM.
    Back up before such snapshot work, or start from a full point after it.
  - Checkpoints and migration. libvirt keeps checkpoints on the host where they were made. After a migration
    (or when the checkpoint of the newest point is gone for any other reason) the next point with
    O(mode=auto) is a full one, and O(mode=incremental) fails and says why.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.backup
options:
  vm:
    description: Name of the VM to back up.
    type: str
    required: true
  point:
    description:
      - Name of the point. When a point of that name exists already, nothing is written (V(changed=false)).
      - Default is the time in UTC, such as V(20261207T180102Z), so every run makes a new point.
      - Letters, digits, dots, underscores, colons, plus and minus signs, at most 100 characters.
    type: str
  mode:
    description:
      - V(full) copies every allocated cluster. V(incremental) copies what changed since the newest point and
        fails when that is not possible (the VM is stopped, a disk is not qcow2, there is no point yet, the
        checkpoint of the newest point is gone, the disks changed, the newest point is damaged).
      - V(auto) is incremental when it is possible and O(full_every) and O(full_max_age_days) allow it, full
        otherwise; RV(point.reason) says why.
    type: str
    choices: [auto, full, incremental]
    default: auto
  full_every:
    description: With O(mode=auto), a full point when the newest chain already has this many points (its full point included).
    type: int
  full_max_age_days:
    description: With O(mode=auto), a full point when the newest full point is at least this many days old.
    type: int
  compression:
    description:
      - V(none), or compressed qcow2 clusters with V(zstd) (qcow2 C(compression_type=zstd)) or V(gzip) (deflate
        clusters, qcow2 C(compression_type=zlib)). The files stay qcow2 images that C(qemu-img) reads directly.
      - For a running VM libvirt writes the files uncompressed; they are then rewritten compressed (one more pass
        over the data of the point).
    type: str
    choices: [none, zstd, gzip]
    default: none
  quiesce:
    description:
      - For a running VM, freeze the guest file systems through the guest agent for the instant the backup job
        starts. Fails, with nothing left behind, when the VM has no responding agent. Ignored (with a warning)
        for a stopped VM.
    type: bool
    default: false
  retention:
    description:
      - Which points to keep; the others are removed after the new point is written (with O(state=pruned),
        without writing one). A point a kept point needs (its chain down to its full point) is always kept, and
        so is the newest point. Days, weeks (ISO) and months are in UTC.
    type: dict
    suboptions:
      keep_last:
        description: Keep the newest N points.
        type: int
      keep_daily:
        description: Keep the newest point of each of the newest N days that have points.
        type: int
      keep_weekly:
        description: Keep the newest point of each of the newest N weeks that have points.
        type: int
      keep_monthly:
        description: Keep the newest point of each of the newest N months that have points.
        type: int
  state:
    description: V(present) writes a point (and applies O(retention)); V(pruned) only applies O(retention).
    type: str
    choices: [present, pruned]
    default: present
  timeout:
    description: Seconds to wait for a running VM's backup job before it is aborted. Default is no limit.
    type: int
  progress_file:
    description:
      - Write the progress to this JSON file while the point is written (as M(virtops.libvirt.export) does), for a
        poller of an C(async) task.
    type: path
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Reports the point's name, its mode and parent, the steps and the points retention would remove.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
  async:
    description: Supports being used with the C(async) keyword.
    support: full
requirements:
  - qemu-img on the managed node
  - libvirt with the backup API (libvirt 7.2 or later, QEMU 6.0 or later) for running VMs
notes:
  - The module reads and writes files on the hypervisor, so it runs there (with a remote O(uri), delegate the
    task to that host).
  - Network disks (Ceph RBD, iSCSI, NBD) cannot be backed up. Read-only and shareable disks are left out.
  - Incremental points need qcow2 version 3 disks (C(compat=1.1)), which can hold persistent bitmaps. A running
    VM with a raw or a qcow2 version 2 (C(compat=0.10)) disk gets full points without checkpoint; O(mode=incremental)
    fails and says which disk. C(qemu-img amend -o compat=1.1) upgrades a stopped VM's image.
seealso:
  - module: virtops.libvirt.backup_info
  - module: virtops.libvirt.backup_restore
  - module: virtops.libvirt.export
"""

EXAMPLES = r"""
- name: Nightly point of a running VM, a full one every 7 points, keep a week of days and 4 weeks
  virtops.libvirt.backup:
    vm: web1
    repository: /srv/backup
    quiesce: true
    full_every: 7
    retention:
      keep_daily: 7
      keep_weekly: 4

- name: A named point (a second run does nothing)
  virtops.libvirt.backup:
    vm: db1
    repository: /srv/backup
    point: before-upgrade
    mode: full
    compression: zstd

- name: Only apply retention
  virtops.libvirt.backup:
    vm: web1
    repository: /srv/backup
    state: pruned
    retention:
      keep_last: 3
"""

RETURN = r"""
point:
  description: The point this run wrote (or found, or would write in check mode); null with O(state=pruned).
  returned: success
  type: dict
  contains:
    name:
      description: Name of the point.
      type: str
      sample: 20261207T180102Z
    directory:
      description: Its directory.
      type: str
      sample: /srv/backup/web1/20261207T180102Z
    created:
      description: When it was completed (UTC); null in check mode.
      type: str
    mode:
      description: V(full) or V(incremental).
      type: str
    parent:
      description: The point an incremental point builds on.
      type: str
    checkpoint:
      description: The libvirt checkpoint made with it (null for a stopped VM).
      type: str
    size:
      description: Bytes of its files.
      type: int
    files:
      description: Its files (C(name), C(kind), C(target), C(size), C(sha256)).
      type: list
      elements: dict
    consistency:
      description: How the point in time was taken.
      type: str
      sample: backup job (crash-consistent)
    reason:
      description: Why this mode (when the point was written or would be).
      type: str
      sample: incremental on 20261206T180102Z
repository:
  description: The repository.
  returned: success
  type: str
points:
  description: The VM's points after the run (oldest first).
  returned: success
  type: list
  elements: str
removed:
  description: The points retention removed (or would remove in check mode).
  returned: success
  type: list
  elements: str
kept:
  description: With O(retention), each kept point and why (C(last), C(daily 2026-12-07), C(needed by p3)...).
  returned: success
  type: list
  elements: dict
removed_checkpoints:
  description: Checkpoints of older points deleted after the new point was complete.
  returned: when some were deleted
  type: list
  elements: str
progress_file:
  description: The O(progress_file), if any.
  returned: success
  type: str
duration:
  description: Seconds this task took.
  returned: success
  type: float
actions:
  description: What was done (or would be done in check mode), in order.
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._backup.kind import BACKUP

ARGUMENT_SPEC = BACKUP.argument_spec


def main():
    BACKUP.run(AnsibleModule(**BACKUP.module_kwargs()))


if __name__ == "__main__":
    main()
