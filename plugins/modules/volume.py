#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: volume
short_description: Create, clone, resize and delete libvirt storage volumes
version_added: 0.1.0
description:
  - Manages one volume in an active libvirt storage pool.
  - A new volume is created empty (O(capacity), O(format)), from a source image (O(source), a local file
    or an http(s) URL), as a linked clone (a qcow2 overlay on O(backing_volume)) or as a full copy of
    another volume (O(clone_from)).
  - An existing volume is grown when O(capacity) is larger; while a running domain uses it, the domain's
    disk is grown online (block resize), otherwise the volume is resized offline.
    Shrinking needs O(allow_shrink=true).
  - The format of an existing volume is never converted; asking for a different O(format) is an error.
    O(source), O(checksum), O(clone_from) and O(preallocation) only matter when the volume is created.
  - A failed creation (bad URL, checksum mismatch, full pool) removes the volume and the temporary files again.
    When the libvirt daemon went away during the creation (it was restarted), the removal is tried again
    on a new connection, for up to 30 seconds.
  - A volume filled from O(source) or O(clone_from) is known complete by its record (see the notes). When
    the record says that its fill did not complete (the daemon, the node or the task died during the
    upload), or that it was filled from another O(source) or O(checksum) (another O(clone_from)), the
    volume is deleted and made again, in check mode reported as such. It is refused while a VM uses the
    volume or other volumes are overlays on it. Volumes without a record (made before, elsewhere, or
    where no record is kept) are left as they are.
  - Two tasks that create the same volume at the same time converge. The one that comes second waits
    while the other fills the volume (up to 10 minutes), then uses that volume when its record shows the
    same format, source and checksum, with a warning, and fails with a clear message otherwise.
  - Lookups refresh the pool only when a volume is not found, and pool refreshes are retried while libvirt
    reports asynchronous jobs in the pool, so several volumes can be created in one pool in parallel.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.resource_module
  - virtops.libvirt.image_trust
options:
  name:
    description:
      - Name of the volume in the pool (the file name in a directory pool).
      - Must not be empty and must not contain C(/), C(..) or control characters.
    type: str
    required: true
  pool:
    description:
      - Name of the storage pool; it must exist and be active.
      - With O(state=absent), a pool that does not exist holds no volume, so there is nothing to do.
    type: str
    required: true
  state:
    description:
      - Whether the volume should exist.
      - V(absent) is refused while VMs use the volume, or volumes are based on it, unless O(force=true).
        This counts every VM, running or not, with its disks, CD-ROMs, NVRAM, kernel and initrd, and
        the overlays and saved definitions of its snapshots. It also counts the VMs that use a volume
        based on this one, through its whole backing chain. The error names them and returns them as
        C(used_by), and the volumes based on it as C(dependants).
    type: str
    choices: [present, absent]
    default: present
  capacity:
    description:
      - Size the guest sees, for example V(20G), V(512MiB) or a number of bytes (single letters and
        C(KiB), C(MiB)... are powers of 1024; C(KB), C(MB)... are powers of 1000).
      - Required to create an empty volume. With O(source), O(backing_volume) or O(clone_from) it defaults
        to the size of the image and may only be larger.
      - qcow2 sizes are rounded up to whole KiB.
    type: str
  format:
    description:
      - Image format of the volume.
      - Defaults to V(qcow2) for new empty volumes and linked clones; to the format of the source
        (V(qcow2) or V(raw), otherwise V(qcow2)) for O(source) and O(clone_from).
      - A source image in another format is converted with C(qemu-img convert).
    type: str
    choices: [qcow2, raw]
  preallocation:
    description:
      - Space reserved when an empty volume is created. V(off) allocates nothing, V(metadata) writes the
        qcow2 metadata (qcow2 only), V(full) allocates the whole capacity.
      - Ignored for existing volumes. Unset means V(off).
    type: str
    choices: ['off', metadata, full]
  source:
    description:
      - Image to create the volume from, either a path on the managed node or an C(http://) or C(https://) URL.
      - gzip and xz compressed images are recognised by their content and decompressed.
      - The image is prepared in a temporary directory on the managed node and then uploaded through
        libvirt, so remote hypervisors work too.
      - The image passes the image-trust check (see the notes). Images with a backing file, an external
        data file or VMDK extents, encrypted images and images that are not what O(source_format) says
        are refused. A directory or a device is refused with a message that says so.
    type: str
  source_format:
    description:
      - Format of the (decompressed) source image. Unset means the format its first bytes show (its
        header), raw when there is none.
      - Set it for images you do not trust. An image whose content is another format is then refused,
        a raw one whose first bytes look like a qcow2, qed, vmdk, vdi, vhdx, vpc or LUKS header too.
    type: str
    choices: [raw, qcow2, vmdk, vdi, vhdx, vpc, qed]
  checksum:
    description:
      - Expected checksum of the O(source) as published (before decompression), as C(ALGORITHM:HEXDIGEST),
        for example C(sha256:9f86d0...).
      - Algorithms are C(sha1), C(sha224), C(sha256), C(sha384) and C(sha512).
      - On a mismatch the task fails and no volume is left behind.
    type: str
  validate_certs:
    description: Whether to verify the TLS certificate of an C(https://) O(source).
    type: bool
    default: true
  timeout:
    description: Timeout in seconds for connecting to and reading from an O(source) URL.
    type: int
    default: 60
  backing_volume:
    description:
      - Create the volume as a linked clone, a qcow2 overlay whose backing file is this volume of the same pool.
      - The base passes the image-trust check (see the notes), and the overlay names it with its recorded
        format, so a base recorded raw is read as raw, whatever its content looks like.
      - For an existing volume, a different backing volume is an error.
    type: str
  clone_from:
    description:
      - Create the volume as a full copy of this volume of the same pool.
      - The volume copied passes the image-trust check (see the notes). With a local URI it is copied with
        C(qemu-img convert), read with its recorded (or checked) format; with a remote URI libvirt copies
        it, reading it with the format it probes.
    type: str
  allow_shrink:
    description: Allow O(capacity) to be smaller than the current size. Data beyond the new size is lost.
    type: bool
    default: false
  force:
    description:
      - With O(state=absent), delete the volume even though VMs use it or other volumes use it as their
        backing file. Those VMs no longer start, and those volumes lose their backing file. The module
        warns and names them.
    type: bool
    default: false
  wipe:
    description: With O(state=absent), overwrite the volume's data before deleting it.
    type: bool
    default: false
  encryption:
    description:
      - Make the new empty volume LUKS-encrypted (qcow2 with LUKS encryption, or raw LUKS). libvirt creates
        it with the passphrase of the libvirt secret O(encryption.secret), which must exist with its value
        (see the M(virtops.libvirt.secret) module). The passphrase never appears on a command line.
      - Only for an empty volume (not with O(source), O(backing_volume) or O(clone_from)).
      - An existing volume is neither encrypted nor decrypted, and its key is not changed. A volume
        encrypted with another secret, or not encrypted, is a conflict.
      - Attach it to a VM with O(virtops.libvirt.vm#module:disks[].encryption) so that QEMU can decrypt it.
    type: dict
    suboptions:
      format:
        description: The encryption format.
        type: str
        choices: [luks]
        default: luks
      secret:
        description:
          - The libvirt secret with the passphrase, by UUID, or by the usage of a volume secret
            (by convention the volume's path).
        type: str
        required: true
"""

EXAMPLES = r"""
- name: An empty 20 GiB qcow2 volume
  virtops.libvirt.volume:
    name: data1.qcow2
    pool: default
    capacity: 20G

- name: A cloud image, verified, as base volume
  virtops.libvirt.volume:
    name: debian-12-base.qcow2
    pool: default
    source: https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2
    checksum: "sha512:{{ debian_image_sha512 }}"

- name: A 20 GiB linked clone per VM, on top of the base image
  virtops.libvirt.volume:
    name: "{{ item }}.qcow2"
    pool: default
    backing_volume: debian-12-base.qcow2
    capacity: 20G
  loop: [web1, web2, web3]

- name: Grow a disk (online when its domain runs)
  virtops.libvirt.volume:
    name: web1.qcow2
    pool: default
    capacity: 40G

- name: Remove a volume, overwriting its data first
  virtops.libvirt.volume:
    name: data1.qcow2
    pool: default
    state: absent
    wipe: true
"""

RETURN = r"""
volume:
  description: The volume after the run (predicted in check mode); null when it is absent.
  returned: success
  type: dict
  contains:
    name:
      description: Volume name.
      type: str
      sample: web1.qcow2
    pool:
      description: Pool name.
      type: str
      sample: default
    path:
      description: Path of the volume on the hypervisor.
      type: str
      sample: /var/lib/libvirt/images/web1.qcow2
    type:
      description: libvirt volume type (file, block, dir...).
      type: str
      sample: file
    format:
      description: Image format the volume is used with, the recorded one when the collection keeps a record.
      type: str
      sample: qcow2
    reported_format:
      description: Image format as libvirt reports (probes) it.
      type: str
      sample: qcow2
    record:
      description:
        - The collection's record of the volume (see the notes), null when it has none or none can be read
          (remote URI, a file system without user extended attributes).
      type: dict
      contains:
        format:
          description: The recorded format.
          type: str
        made_by:
          description: The module that made the volume (volume, vm, vm_import, cloudinit).
          type: str
        backing_format:
          description: For an overlay, the format its base is read with.
          type: str
        source:
          description: What the volume was filled from (an URL without user, password and query; a path; C(volume:POOL/NAME)).
          type: str
        checksum:
          description: The checksum the fill was verified against (the SHA-256 of what was read when none was given).
          type: str
        complete:
          description: Whether the fill completed.
          type: bool
    capacity:
      description: Size the guest sees, in bytes.
      type: int
      sample: 21474836480
    allocation:
      description: Space used on the host, in bytes (null in check mode for a volume not created yet).
      type: int
      sample: 196624
    backing_volume:
      description: Name of the backing volume when it is in the same pool, else null.
      type: str
      sample: debian-12-base.qcow2
    encryption:
      description: The volume's encryption (C(format) and C(secret), the secret's UUID), or null.
      type: dict
      sample: {format: luks, secret: 17b0fd0a-f348-4e4b-9747-c72259d3cc74}
    backing_chain:
      description: Backing images, nearest first (empty for a self-contained volume).
      type: list
      elements: dict
      contains:
        path:
          description: Path of the backing image.
          type: str
        format:
          description: Format of the backing image.
          type: str
        pool:
          description: Pool of the backing image, when libvirt knows it as a volume.
          type: str
        volume:
          description: Volume name of the backing image, when libvirt knows it as a volume.
          type: str
actions:
  description: What was done (or would be done in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["create empty qcow2 volume 'data1.qcow2' of 21474836480 bytes in pool 'default'"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_kind import VOLUME

ARGUMENT_SPEC = VOLUME.argument_spec


def main():
    VOLUME.run(AnsibleModule(**VOLUME.module_kwargs()))


if __name__ == "__main__":
    main()
