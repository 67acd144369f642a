#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: migrate
short_description: Move a libvirt VM to another hypervisor, live or offline, with or without its storage
version_added: 0.1.0
description:
  - Moves the VM O(name) from the hypervisor O(uri) (the source) to the hypervisor O(dest_uri) (the
    destination). The module opens both connections.
  - A running VM is live-migrated peer to peer. The source libvirt daemon connects to O(peer_uri) and
    sends the VM's memory (and disks, with O(copy_storage)) over O(migration_uri). The VM keeps running
    throughout; it stops only for the final switch-over (see O(max_downtime)).
  - A stopped VM moves offline. Its definition goes from the source to the destination over the module's
    own two connections. With O(copy_storage), its disk images are first copied through libvirt volume
    streams, because libvirt's offline migration cannot copy storage.
  - Idempotent. A VM that is on the destination and not on the source reports C(changed=false). A VM that
    runs on the destination while its stopped definition is still on the source has that definition
    removed when O(undefine_source=true). Two different VMs of the same name (different UUIDs) on the two
    hosts, the same VM running on both, or the same VM stopped on both (with O(undefine_source=true)) are
    errors. The module never guesses which copy is the right one.
  - "Pre-checks run before anything moves, in check mode too. Each failure names the check. The checks:
    the destination answers and is another host (host UUID); the VM exists; no other VM of that name on
    the destination; the destination offers the VM's guest arch, virt type, machine type and emulator;
    the VM's CPU model is compatible with the destination (C(virConnectCompareHypervisorCPU); for a
    C(host-passthrough) KVM guest the source host's CPU is compared with the destination's); enough memory
    (a running VM needs its memory plus O(reserve_memory) available on the destination, a stopped one must
    fit the destination's total memory); no snapshots or saved state; the VM's libvirt networks exist (and
    are active, for a running VM); every disk is on the destination (found through the destination's
    storage pools), or, with O(copy_storage), can be created there: a pool covers its directory, no file
    of that name exists there yet, the pool has room, and the backing chain is there for
    V(incremental)."
  - With O(copy_storage), the module creates the destination images itself, with the same format and size
    and no preallocation. libvirt then copies into them. If the migration fails, the module deletes them
    again. They are left alone when the VM exists on the destination after all.
  - A live migration is followed through libvirt's job statistics. When O(timeout) passes, the job is
    aborted and the VM stays on the source.
  - The source's copies of copied disks stay on the source unless O(remove_source_storage=true).
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
options:
  name:
    description:
      - Name of the VM to move.
    type: str
    required: true
  dest_uri:
    description:
      - libvirt URI the module uses to connect to the destination hypervisor, for example
        V(qemu+ssh://root@kvm2.example.com/system), or V(qemu:///system?socket=/path) on the same machine.
      - Must not be O(uri), and must not name the same hypervisor (the host UUIDs are compared).
    type: str
    required: true
  peer_uri:
    description:
      - URI the I(source libvirt daemon) uses to reach the destination's libvirt daemon (peer-to-peer
        migration), for example V(qemu+tls://kvm2.example.com/system) or V(qemu+tcp://10.0.0.12/system).
      - Defaults to O(dest_uri). Set it when the module reaches the destination differently from the
        source host (a local socket, an SSH tunnel from the controller).
      - Not used for a stopped VM, which moves over the module's own connections.
    type: str
  migration_uri:
    description:
      - Where the source sends the VM's memory and disks (the data channel), for example
        V(tcp://10.0.0.12) or V(tcp://10.0.0.12:49152).
      - Without it, the destination offers its hostname (or its C(migration_host) setting in
        C(qemu.conf)). Set it when that name does not resolve, from the source, to an address on the
        migration network.
    type: str
  live:
    description:
      - Migrate a running VM while it runs. With V(false), the VM is paused while its memory is copied
        and resumes on the destination (RV(mode=paused)). This is faster and always converges.
      - A stopped VM always moves offline.
    type: bool
    default: true
  copy_storage:
    description:
      - V(none) means the hosts share the VM's disks (the same paths, for example NFS or a cluster file
        system). Each disk must be present on the destination.
      - V(all) copies every writable disk. A running VM's disk is copied whole, and the data of its backing
        chain is merged into the copy. For a stopped VM, its image files are copied as they are, together
        with the backing files the destination lacks.
      - V(incremental) copies only the top image of each writable disk. Its backing chain must already be
        on the destination (a base image present on both hosts).
      - Read-only and shareable disks (CD-ROMs, seeds) are never copied. They must be on the destination.
      - The destination needs an active storage pool whose directory holds each copied disk (the same path
        as on the source). No image of that name may exist there yet. The module creates the images.
    type: str
    choices: [none, all, incremental]
    default: none
  remove_source_storage:
    description:
      - After a successful migration with O(copy_storage), delete the copied disk images (top images, never
        backing files) from the source. If that deletion fails, the module only warns, since the VM has moved.
      - Needs O(undefine_source=true).
    type: bool
    default: false
  bandwidth:
    description:
      - Limit for the live migration's transfer (memory and disks), in MiB/s.
    type: int
  max_downtime:
    description:
      - Longest pause, in milliseconds, the VM may have at the switch-over of a live migration. It is set
        on the VM before the migration starts and restored if the migration fails.
    type: int
  timeout:
    description:
      - Seconds a live migration may take. When they have passed, the job is aborted, the VM stays on the
        source, and the task fails (C(error_kind=timeout)).
      - Without it, the module waits until libvirt ends the job.
    type: int
  auto_converge:
    description:
      - Let QEMU slow the VM's vCPUs down when its memory changes faster than it can be copied.
    type: bool
    default: false
  compressed:
    description:
      - Compress the memory pages sent (QEMU's XBZRLE cache). Costs CPU on both hosts.
    type: bool
    default: false
  tls:
    description:
      - Encrypt the migration data channel with TLS. Both hosts' libvirt must be set up for TLS migration.
    type: bool
    default: false
  unsafe:
    description:
      - Migrate a running VM even though libvirt calls its storage unsafe to share. libvirt treats a
        disk as shared only on a network or cluster file system (NFS, GlusterFS, GFS2, OCFS2, Ceph...).
        A directory that both hosts see in another way, a local file system or a bind mount, counts as
        unsafe. libvirt also warns about disks whose cache mode is not V(none) or V(directsync).
      - Set it only when both hosts really use the same files, and O(copy_storage=none).
    type: bool
    default: false
  persistent:
    description:
      - Define the VM persistently on the destination. With V(false), a running VM arrives as a transient
        VM. It is gone from the destination once it stops.
      - A stopped VM always moves as its persistent definition. V(false) is an error for it.
    type: bool
    default: true
  undefine_source:
    description:
      - Remove the VM's definition from the source once it runs (or is defined) on the destination. With
        V(false), the source keeps a stopped copy of the definition.
    type: bool
    default: true
  reserve_memory:
    description:
      - MiB of memory that must stay available on the destination after a running VM arrives. The
        capacity pre-check fails otherwise.
      - For a stopped VM, it is added to the VM's memory and compared with the destination's total memory.
    type: int
    default: 0
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Check mode runs every pre-check and reports what would move.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details:
      - The diff shows the VM's state on the source and on the destination, before and after.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
notes:
  - Snapshots are not migrated by libvirt, so a VM with snapshots is refused.
  - Kernel, initrd and NVRAM files named by the VM's definition are not checked or copied. The
    destination must have them at the same paths.
  - Disks outside the destination's storage pools cannot be checked. The module warns and leaves the
    check to libvirt, which fails the migration if a disk is missing.
seealso:
  - name: libvirt migration guide
    description: Peer-to-peer migration, migration URIs and storage copy in libvirt.
    link: https://libvirt.org/migration.html
"""

EXAMPLES = r"""
- name: Live-migrate a VM whose disks are on shared storage
  virtops.libvirt.migrate:
    name: web1
    uri: qemu+ssh://root@kvm1.example.com/system
    dest_uri: qemu+ssh://root@kvm2.example.com/system
    peer_uri: qemu+tls://kvm2.example.com/system
    max_downtime: 300
    timeout: 600

- name: Live-migrate a VM with its local disks, over the migration network
  virtops.libvirt.migrate:
    name: db1
    uri: qemu+ssh://root@kvm1.example.com/system
    dest_uri: qemu+ssh://root@kvm2.example.com/system
    peer_uri: qemu+tcp://10.0.0.12/system
    migration_uri: tcp://10.0.0.12
    copy_storage: all
    remove_source_storage: true
    bandwidth: 500
    auto_converge: true

- name: Only the VM's overlay moves; the base image is on both hosts
  virtops.libvirt.migrate:
    name: app3
    uri: qemu+ssh://root@kvm1.example.com/system
    dest_uri: qemu+ssh://root@kvm2.example.com/system
    copy_storage: incremental

- name: Would it fit? (every pre-check, nothing moves)
  virtops.libvirt.migrate:
    name: web1
    uri: qemu+ssh://root@kvm1.example.com/system
    dest_uri: qemu+ssh://root@kvm2.example.com/system
    reserve_memory: 4096
  check_mode: true
  register: fits
"""

RETURN = r"""
name:
  description: The VM.
  returned: always
  type: str
  sample: web1
source:
  description: The source URI (O(uri)).
  returned: always
  type: str
  sample: qemu+ssh://root@kvm1.example.com/system
destination:
  description: The destination URI (O(dest_uri)).
  returned: always
  type: str
  sample: qemu+ssh://root@kvm2.example.com/system
mode:
  description:
    - How the VM moved (or would move, in check mode). V(live), V(paused) (a running VM migrated with
      O(live=false)) or V(offline) (a stopped VM).
    - Null when no migration was needed.
  returned: always
  type: str
  sample: live
duration:
  description: Seconds the migration itself took (0 in check mode and when nothing moved).
  returned: always
  type: float
  sample: 7.412
checks:
  description: What each pre-check found. Empty when no migration was needed.
  returned: always
  type: dict
  sample:
    arch: "x86_64 guest, virt type kvm, machine pc-q35-7.2: offered by the destination"
    cpu: "compatible: CPU model Skylake-Client-IBRS"
    memory: "2048 MiB needed, 20312 MiB available on the destination"
    networks: "present on the destination: default"
    disks:
      vda: "copied to the destination (pool default)"
      sda: "present on the destination (pool isos)"
storage:
  description: The images copied (or to be copied in check mode) to the destination.
  returned: always
  type: list
  elements: dict
  contains:
    target:
      description: The VM's disk the image belongs to.
      type: str
      sample: vda
    path:
      description: Path of the image (the same on both hosts).
      type: str
      sample: /var/lib/libvirt/images/db1.qcow2
    action:
      description: V(copy) for a disk's image, V(copy-backing) for a backing file copied with it (stopped VMs).
      type: str
    pool:
      description: Destination pool.
      type: str
    format:
      description: Image format.
      type: str
    capacity:
      description: Virtual size in bytes.
      type: int
    note:
      description: How the backing chain is handled, when there is one.
      type: str
job:
  description:
    - libvirt's statistics of the finished live migration (from the destination), in libvirt's names,
      for example C(time_elapsed) and C(downtime) (ms), and C(data_total), C(memory_processed) and
      C(disk_processed) (bytes). Empty for offline moves and in check mode.
  returned: always
  type: dict
  sample: {time_elapsed: 9928, downtime: 236, data_total: 403046400, memory_iteration: 3}
vm:
  description: Where the VM is after the run (predicted in check mode).
  returned: always
  type: dict
  contains:
    host:
      description: V(destination) or V(source).
      type: str
    state:
      description: Its state there (V(running), V(paused), V(stopped)...).
      type: str
    persistent:
      description: Whether it is defined persistently on the destination.
      type: bool
actions:
  description: What was done (or would be done in check mode), in order.
  returned: always
  type: list
  elements: str
  sample:
    - >-
      create /var/lib/libvirt/images/db1.qcow2 on the destination for the copy of disk vda (pool default,
      qcow2, 21474836480 bytes)
    - >-
      live-migrate VM 'db1' from qemu+ssh://root@kvm1/system to qemu+ssh://root@kvm2/system with
      copy_storage: all, peer to peer via qemu+tcp://10.0.0.12/system
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._migrate.decide import COPY_STORAGE
from ansible_collections.virtops.libvirt.plugins.module_utils._migrate.resource import run_migration
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import run_module

ARGUMENT_SPEC = dict(
    COMMON_ARGS,
    name=dict(type="str", required=True),
    dest_uri=dict(type="str", required=True),
    peer_uri=dict(type="str"),
    migration_uri=dict(type="str"),
    live=dict(type="bool", default=True),
    copy_storage=dict(type="str", choices=list(COPY_STORAGE), default="none"),
    remove_source_storage=dict(type="bool", default=False),
    bandwidth=dict(type="int"),
    max_downtime=dict(type="int"),
    timeout=dict(type="int"),
    auto_converge=dict(type="bool", default=False),
    compressed=dict(type="bool", default=False),
    tls=dict(type="bool", default=False),
    unsafe=dict(type="bool", default=False),
    persistent=dict(type="bool", default=True),
    undefine_source=dict(type="bool", default=True),
    reserve_memory=dict(type="int", default=0),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, run_migration)


if __name__ == "__main__":
    main()
