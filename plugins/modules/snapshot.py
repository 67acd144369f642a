#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: snapshot
short_description: Create, revert to and delete snapshots of libvirt VMs, and prune old ones
version_added: 0.1.0
description:
  - Creates snapshot O(name) of VM O(vm) (O(state=present)), reverts the VM to it (O(state=reverted)),
    or deletes it (O(state=absent)).
  - Snapshots are internal by default. They are kept inside the VM's qcow2 disks, and every writable
    disk must be qcow2 (read-only disks and CD-ROMs are left out). An internal snapshot of a running or
    paused VM includes its memory, so a revert resumes the guest where it was. An internal snapshot of a
    stopped VM holds the disks alone.
  - With O(disk_only=true) the snapshot is external. Every writable disk gets a new qcow2 overlay file
    next to it, named C(<vm>-<target>.<snapshot>.qcow2), and the file it had is frozen as the
    snapshot's state. This works for raw disks too, and O(quiesce=true) freezes the guest's file
    systems through its agent while it is taken. Deleting an external snapshot merges its overlay back
    into the file below, so nothing is lost, and the module refuses when that file is also the backing
    file of other volumes (linked clones).
  - libvirt (9.0) merges an external snapshot that has child snapshots only while the VM runs. Of a
    stopped VM the module refuses to delete such a snapshot (start the VM first, or give
    O(children=true)), and O(keep_last)/O(max_age) keep it with a warning. External snapshots without
    children are deleted in any state.
  - Idempotent by name. An existing snapshot is left as it is, except for its O(description).
  - O(keep_last) and O(max_age) prune older snapshots of the VM in the same task, oldest first. With
    both, a snapshot is kept when either rule keeps it. The current snapshot is never pruned unless
    O(prune_current=true). Check mode lists in RV(deleted) what would go.
  - All input is checked before anything changes. A memory snapshot of a stopped VM, an internal
    snapshot of a VM with a raw disk (the message names the disk) and a revert to an unknown snapshot
    each fail with a message, and nothing is changed.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.resource_module
options:
  vm:
    description: Name of the VM.
    type: str
    required: true
  name:
    description:
      - Name of the snapshot, made of letters, digits and the characters C(._+@:-). It is used in overlay file names.
      - Required, except with O(state=present) when the task only prunes (O(keep_last) or O(max_age)).
    type: str
  state:
    description:
      - V(present) creates the snapshot unless it exists.
      - V(reverted) reverts the VM to it. This reports a change unless the VM is already at that
        snapshot in the requested run state. The VM is at the snapshot when this module last reverted it
        there and libvirt's current snapshot is still that one. Changes the guest made since that
        revert do not count.
      - V(absent) deletes it (with O(children=true) its descendants too); a missing snapshot is no change,
        and neither is a snapshot of a VM that does not exist.
    type: str
    choices: [present, reverted, absent]
    default: present
  description:
    description: Description of the snapshot. Changing it on an existing snapshot updates it in place.
    type: str
  memory:
    description:
      - Whether the snapshot includes the memory of the running VM (internal snapshots only).
      - Default is V(true) for a running or paused VM and V(false) for a stopped one. V(true) on a stopped VM
        fails; V(false) on a running VM needs O(disk_only=true).
    type: bool
  disk_only:
    description:
      - Make an external snapshot of the disks alone (qcow2 overlay files), see the description.
      - Not set means V(false) for a new snapshot; for an existing one, a value that does not match it
        gives a warning (a snapshot is never remade).
    type: bool
  quiesce:
    description:
      - Freeze the guest's file systems through the QEMU guest agent while the snapshot is taken, so
        the disks are consistent. Needs O(disk_only=true), a running VM and a responding agent.
    type: bool
    default: false
  revert_state:
    description:
      - With O(state=reverted), the run state to leave the VM in. By default the VM is left as it was
        when the snapshot was taken.
      - V(stopped) with a memory snapshot restores it paused and then powers it off, so the guest never runs.
    type: str
    choices: [running, paused, stopped]
  children:
    description:
      - With O(state=absent), also delete every descendant of the snapshot, the deepest first (so
        external snapshots are merged one by one, each a leaf when it goes, whether the VM runs or not).
    type: bool
    default: false
  keep_last:
    description:
      - Keep the newest this many snapshots of the VM and delete older ones. A snapshot this task
        creates counts as the newest.
      - Only snapshots whose names match O(retention_pattern) count and can be deleted.
    type: int
  max_age:
    description:
      - Delete snapshots older than this, a number of seconds or a number with a unit
        (V(30m), V(12h), V(7d), V(2w)).
    type: str
  retention_pattern:
    description: Shell pattern of the snapshot names that O(keep_last) and O(max_age) prune, for example V(nightly-*).
    type: str
    default: "*"
  prune_current:
    description: Let O(keep_last) and O(max_age) delete the current snapshot too.
    type: bool
    default: false
notes:
  - Reverting to an external (O(disk_only)) snapshot needs libvirt 9.9.0 or later; the module says so
    before it changes anything on older hypervisors.
  - Running VMs are snapshotted as they run; a memory snapshot of a VM with much memory takes time
    (the memory is written into the first qcow2 disk).
seealso:
  - module: virtops.libvirt.snapshot_info
  - module: virtops.libvirt.vm
"""

EXAMPLES = r"""
- name: Snapshot web1 (with its memory, as it is running) before an upgrade
  virtops.libvirt.snapshot:
    vm: web1
    name: before-upgrade
    description: before the PostgreSQL 16 upgrade

- name: Roll back, and leave the VM running
  virtops.libvirt.snapshot:
    vm: web1
    name: before-upgrade
    state: reverted
    revert_state: running

- name: Nightly external snapshot with quiesced file systems; keep a week of them
  virtops.libvirt.snapshot:
    vm: db1
    name: "nightly-{{ now(utc=true, fmt='%Y%m%d') }}"
    disk_only: true
    quiesce: true
    keep_last: 7
    retention_pattern: "nightly-*"

- name: Prune snapshots older than 30 days (the current one stays)
  virtops.libvirt.snapshot:
    vm: db1
    max_age: 30d

- name: Delete a snapshot and everything taken after it
  virtops.libvirt.snapshot:
    vm: web1
    name: before-upgrade
    state: absent
    children: true
"""

RETURN = r"""
vm:
  description: Name of the VM.
  returned: always
  type: str
  sample: web1
vm_state:
  description: Run state of the VM after the task (V(running), V(paused), V(stopped), ...).
  returned: always
  type: str
  sample: running
current:
  description: Name of libvirt's current snapshot of the VM after the task, or null.
  returned: always
  type: str
  sample: before-upgrade
snapshot:
  description:
    - The snapshot O(name) after the task, or null when it does not exist (or no O(name) was given).
    - In check mode, what it is expected to be.
  returned: always
  type: dict
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
    current:
      description: Whether it is libvirt's current snapshot.
      type: bool
    children:
      description: Names of its child snapshots.
      type: list
      elements: str
    disks:
      description: Per disk C(name) (target), C(snapshot) (V(internal), V(external), V(no)) and C(file) (the overlay of an external snapshot).
      type: list
      elements: dict
snapshots:
  description: Names of the VM's snapshots after the task, oldest first.
  returned: always
  type: list
  elements: str
deleted:
  description: Snapshots this task deleted (or, in check mode, would delete), oldest first.
  returned: always
  type: list
  elements: str
  sample: [nightly-20261101, nightly-20261102]
actions:
  description: What the task did (or would do in check mode), one line per step.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot.kind import SNAPSHOT

ARGUMENT_SPEC = SNAPSHOT.argument_spec


def main():
    SNAPSHOT.run(AnsibleModule(**SNAPSHOT.module_kwargs()))


if __name__ == "__main__":
    main()
