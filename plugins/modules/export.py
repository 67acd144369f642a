#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: export
short_description: Export a VM or a volume to disk images, an OVA or a VM archive
version_added: 0.1.0
description:
  - Writes a whole VM (all its disks and its definition) or a single volume of a pool to files on the
    hypervisor, for backups, for another hypervisor (VMware, VirtualBox, Hyper-V) or for another
    libvirt host (see M(virtops.libvirt.vm_import)).
  - Only allocated data is read (C(qemu-img convert) skips holes and unallocated clusters in the whole
    backing chain), so a 20 GiB disk holding 1 GiB of data costs 1 GiB of reading.
  - A stopped VM, and a volume no running VM uses, is read directly. C(qemu-img) then holds the image
    lock, so the VM cannot be started while it is read.
  - A running (or paused) VM keeps running. Its disks get a temporary external disk-only snapshot, taken
    for all disks at the same instant (optionally with the guest file systems frozen, O(quiesce)).
    The guest writes into the temporary overlays while the frozen images below them are exported;
    then every overlay is merged back (an active block commit of the top image only, and a pivot)
    and deleted. This also happens when the export fails. An overlay left behind by a task that was
    killed is merged back by the next run before anything else.
  - Every file is written under a temporary name in the destination directory and renamed when it is
    complete. On any failure (full disk, the VM vanished, a C(qemu-img) error, a signal) the temporary
    files are removed and the error says what happened; a full destination fails with
    RV(ignore:error_kind=no_space).
  - Each artefact gets a checksum file C(<artefact>.sha256) in C(sha256sum) format, and each export a
    record C(<artefact>.export.json) (C(<vm>.<format>.export.json) when a VM gives several files) with the
    identity of its source.
  - An existing export is left alone unless O(force=true), the options differ, an artefact was changed
    or removed, or the source changed since; the source identity is the SHA-256 of the VM's definition
    and the path, size and modification time of every image in each disk's backing chain. A running
    guest that writes to its disks therefore gets a new export on every run, an idle one does not.
    Sources with block device disks (no trustworthy modification time) are exported on every run.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
options:
  vm:
    description:
      - Name of the VM to export with all its disks (CD-ROMs and empty drives are left out) and its
        definition.
      - Mutually exclusive with O(volume).
    type: str
  volume:
    description:
      - Name of a single volume of O(pool) to export.
      - When a running VM uses the volume, that disk of the VM is exported from a temporary snapshot as for O(vm).
    type: str
  pool:
    description: The storage pool of O(volume).
    type: str
  format:
    description:
      - V(qcow2), V(raw), V(vdi), V(vhdx) (dynamic) and V(vmdk) (streamOptimized, what VMware and OVAs use)
        give one image file per disk. For a VM, O(dest) is then a directory that receives
        C(<vm>-<target>.<ext>) per disk and the definition C(<vm>.xml) (the definition as libvirt keeps it,
        without secrets; its disk paths still name the original images).
      - V(ova) gives one OVA file holding an OVF 1.0 descriptor (CPU, memory, disks, NICs, OS hint), a SHA-256
        manifest and the VMDK disks, in the order OVF requires. VM only.
      - V(tar), V(tar.gz) and V(tar.zst) give one archive of this collection's own format for
        M(virtops.libvirt.vm_import) on another libvirt host (a JSON manifest, C(domain.xml) and the disks as
        qcow2). C(tar.gz) is compressed by C(pigz) on all cores when it is installed, by Python's gzip
        otherwise; C(tar.zst) by C(zstd -T0) (all cores), which must be installed. VM only.
    type: str
    choices: [qcow2, raw, vmdk, vdi, vhdx, ova, tar, tar.gz, tar.zst]
    default: qcow2
  compressed:
    description:
      - Write compressed qcow2 clusters (zlib), for O(format=qcow2) and for the disks inside O(format=tar).
      - Slower to write, often much smaller; the image stays a normal qcow2 that any QEMU reads.
    type: bool
    default: false
  dest:
    description:
      - Where to write, an absolute path on the managed node (the hypervisor).
      - An existing directory, a path ending in C(/), or (for a VM in a disk format) any path, is a
        directory; the files are named after the VM or volume. A missing directory is created (its parent
        must exist). Otherwise O(dest) is the file to write, in an existing directory.
    type: path
    required: true
  force:
    description:
      - Export even when an up-to-date export exists, and overwrite files at the destination that were not
        written by this module.
      - It never replaces a file of the source itself (the disks being exported and their backing
        files, as when O(dest) names the source's own pool file), nor a file that a VM uses or that
        volumes are based on. Such a O(dest) is refused and the VMs are named. In check mode that
        refusal is a warning, because an earlier task of the play may remove those VMs.
    type: bool
    default: false
  mode:
    description:
      - Permissions of every file the export writes (the artefacts, their C(.sha256) files and the record), as
        an octal string such as V('0640'). Exports hold whole disks, so the default lets only the owner read them.
      - Temporary files are created with this mode before anything is written into them, so no file of the
        export is ever more open than O(mode).
      - An up-to-date export whose files have another mode is not written again; only the mode of its files is
        changed. Execute permission is refused.
      - A directory the export creates gets search permission wherever O(mode) gives read permission
        (V(0700) for V('0600'), V(0750) for V('0640')). An existing directory keeps its mode.
    type: raw
    default: "0600"
  quiesce:
    description:
      - For a running VM, freeze the guest file systems through the guest agent for the instant of the
        snapshot, so that the export holds clean file systems (and what the guest's fsfreeze hooks flush).
      - Needs qemu-guest-agent running in the guest and an C(org.qemu.guest_agent.0) channel; fails
        otherwise. Ignored, with a warning, for stopped VMs.
    type: bool
    default: false
  verify:
    description:
      - After converting, compare every exported disk with its source (C(qemu-img compare)). This reads both
        once more. Each written image is always checked with C(qemu-img check) (formats that support it).
    type: bool
    default: false
  overlay_dir:
    description:
      - Directory for the temporary overlays of a running VM. QEMU must be able to write there.
      - Default is next to each disk image; for block device disks O(tmp_dir), or the destination directory.
    type: path
  tmp_dir:
    description:
      - Directory for the converted disks before they are packed into an OVA or an archive. Default is the
        destination directory, which then needs room for both for a moment.
    type: path
  progress_file:
    description:
      - Write the progress to this JSON file while the export runs, for a poller (for example a task polling
        an C(async) export, or an AWX user).
      - 'Keys: C(state) (V(running), V(done), V(failed)), C(phase), C(bytes_done), C(bytes_total), C(percent),
        C(eta_seconds), C(elapsed_seconds), C(bytes_per_second), C(started), C(updated), C(pid), C(message).'
      - C(bytes_total) counts every pass over the data (reading the allocated data of the source, then
        checksumming or packing what was written), and grows when a pass is better known; C(percent) never
        goes backwards.
      - The file is replaced atomically about once a second and is left in place at the end. A run that finds
        the export up to date (or runs in check mode) does not touch it.
    type: path
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Reports whether an export would be written, the files it would write and RV(estimated_size).
      - A source VM, pool or volume that does not exist is assumed to be made by an earlier task of the
        play. The result is V(changed), with a warning that names the assumption. A real run fails.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details:
      - Shows the recorded and the current options, source identity and artefact names.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
  async:
    description: Supports being used with the C(async) keyword.
    support: full
    details:
      - With O(progress_file), a poller can see how far a long export is.
requirements:
  - qemu-img on the managed node
  - zstd on the managed node for O(format=tar.zst); pigz (optional) makes O(format=tar.gz) use all cores
notes:
  - The module reads the disk images itself, so it must run on the hypervisor that holds them (with a remote
    O(uri), delegate the task to that host).
  - Network disks (Ceph RBD, iSCSI, NBD) cannot be exported.
  - A temporary snapshot is not possible while the VM runs a block job (a copy or another commit) on a disk.
seealso:
  - module: virtops.libvirt.vm_import
  - module: virtops.libvirt.snapshot
"""

EXAMPLES = r"""
- name: Nightly backup of a running VM as a compressed archive
  virtops.libvirt.export:
    vm: web1
    format: tar.zst
    dest: /backup/vms/
    quiesce: true

- name: An OVA for VMware or VirtualBox, in the background, with progress for a poller
  virtops.libvirt.export:
    vm: web1
    format: ova
    dest: /exports/web1.ova
    progress_file: /exports/web1.progress.json
  async: 7200
  poll: 0
  register: ova_job

- name: Wait for the OVA
  ansible.builtin.async_status:
    jid: "{{ ova_job.ansible_job_id }}"
  register: ova
  until: ova.finished
  retries: 720
  delay: 10

- name: One volume as a compressed qcow2
  virtops.libvirt.export:
    volume: data1.qcow2
    pool: default
    format: qcow2
    compressed: true
    dest: /backup/data1.qcow2

- name: Every disk of a VM as a VMDK, plus its definition
  virtops.libvirt.export:
    vm: db1
    format: vmdk
    dest: /exports/db1
"""

RETURN = r"""
format:
  description: The format written.
  returned: success
  type: str
  sample: ova
directory:
  description: The destination directory.
  returned: success
  type: str
  sample: /exports
record:
  description: Path of the record of the export (source identity, options, artefacts).
  returned: success
  type: str
  sample: /exports/web1.ova.export.json
artefacts:
  description: The files of the export (predicted ones in check mode, with null size and checksum).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: File name.
      type: str
      sample: web1.ova
    path:
      description: Full path.
      type: str
      sample: /exports/web1.ova
    kind:
      description: V(disk), V(definition) (a VM's domain XML), V(ova) or V(archive).
      type: str
      sample: ova
    format:
      description: Format of the file (V(xml) for a definition).
      type: str
      sample: ova
    target:
      description: The disk (V(vda)...) a disk image belongs to, else null.
      type: str
      sample: vda
    size:
      description: Size of the file in bytes.
      type: int
      sample: 734003200
    sha256:
      description: SHA-256 of the file (also in RV(artefacts[].checksum_file)).
      type: str
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    checksum_file:
      description: The checksum file next to it, in C(sha256sum -c) format.
      type: str
      sample: /exports/web1.ova.sha256
total_size:
  description: Bytes of all artefacts (null in check mode when an export would be written).
  returned: success
  type: int
  sample: 734003200
estimated_size:
  description: Bytes of allocated data in the source disks (their whole backing chains), what the export reads.
  returned: success
  type: int
  sample: 1073741824
source:
  description: The source as found.
  returned: success
  type: dict
  contains:
    kind:
      description: V(vm) or V(volume).
      type: str
    name:
      description: Name of the VM or volume.
      type: str
    pool:
      description: Pool of the volume (null for a VM).
      type: str
    active:
      description: Whether the VM (or the VM using the volume) was running or paused.
      type: bool
    used_by:
      description: The running VM that uses the volume (null when none, and for a VM).
      type: str
    disks:
      description: The disks read.
      type: list
      elements: dict
      contains:
        target:
          description: Disk target (null for a volume that no running VM uses).
          type: str
        path:
          description: The image read.
          type: str
        format:
          description: Its format.
          type: str
        virtual_size:
          description: Size the guest sees, in bytes.
          type: int
        data:
          description: Allocated bytes (of the whole backing chain).
          type: int
consistency:
  description:
    - How the point in time was obtained. V(stopped) (the VM was stopped), V(offline) (no running VM used the
      volume), V(snapshot) or V(snapshot (quiesced)) (a running VM, through a temporary snapshot),
      V(read-only disk of a running VM).
  returned: success
  type: str
  sample: snapshot
reason:
  description: Why an export was written (or would be, in check mode); null when the existing one is current.
  returned: success
  type: str
  sample: the source changed
created:
  description: When the export was written (UTC, ISO 8601); null in check mode when one would be written.
  returned: success
  type: str
  sample: "2024-05-01T10:00:00Z"
duration:
  description: Seconds this task took.
  returned: success
  type: float
  sample: 42.7
progress_file:
  description: The O(progress_file), if any.
  returned: success
  type: str
mode:
  description: The mode of the files of the export, as an octal string.
  returned: success
  type: str
  sample: "0600"
actions:
  description: What was done (or would be done in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["take a temporary disk-only snapshot of vda of running VM 'web1'", "convert disk vda (1 GiB of data, 20 GiB virtual) to vmdk"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._export.export import ExportResource
from ansible_collections.virtops.libvirt.plugins.module_utils._export.params import FORMATS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.kind import run_resource


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            vm=dict(type="str"),
            volume=dict(type="str"),
            pool=dict(type="str"),
            format=dict(type="str", default="qcow2", choices=list(FORMATS)),
            compressed=dict(type="bool", default=False),
            dest=dict(type="path", required=True),
            force=dict(type="bool", default=False),
            quiesce=dict(type="bool", default=False),
            verify=dict(type="bool", default=False),
            overlay_dir=dict(type="path"),
            tmp_dir=dict(type="path"),
            progress_file=dict(type="path"),
            mode=dict(type="raw", default="0600"),
        ),
        mutually_exclusive=[("vm", "volume"), ("vm", "pool")],
        required_one_of=[("vm", "volume")],
        required_by=dict(volume="pool"),
        supports_check_mode=True,
    )
    run_resource(module, ExportResource)


if __name__ == "__main__":
    main()
