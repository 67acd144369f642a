#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: volume_info
short_description: Facts about the volumes of a libvirt storage pool
version_added: 0.1.0
description:
  - Lists all volumes of an active storage pool, or one named volume, with path, format, capacity,
    allocation, backing chain and the domains whose disks use the volume.
  - Listing all volumes refreshes the pool first, so files created outside libvirt are included.
  - The RV(volumes[].format) is the format the collection recorded when it made the volume (see M(virtops.libvirt.volume));
    when libvirt probes the volume's content as another format (a guest wrote an image header into its
    raw disk), the module warns and the volume is still used as recorded. Incomplete fills are warned
    about too.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.info_module
options:
  pool:
    description: Name of the storage pool; it must exist and be active.
    type: str
    required: true
  name:
    description: Only this volume. Unset means all volumes of the pool. An unknown name gives an empty list.
    type: str
"""

EXAMPLES = r"""
- name: All volumes of the default pool
  virtops.libvirt.volume_info:
    pool: default
  register: vols

- name: Volumes no domain uses
  ansible.builtin.debug:
    msg: "{{ vols.volumes | rejectattr('used_by') | map(attribute='name') | list }}"

- name: One volume
  virtops.libvirt.volume_info:
    pool: default
    name: web1.qcow2
  register: web1
"""

RETURN = r"""
volumes:
  description: Volumes, sorted by name.
  returned: success
  type: list
  elements: dict
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
        - The collection's record of the volume, null when it has none or none can be read (remote URI,
          a file system without user extended attributes). See M(virtops.libvirt.volume).
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
          description: What the volume was filled from.
          type: str
        checksum:
          description: The checksum the fill was verified against.
          type: str
        complete:
          description: Whether the fill completed.
          type: bool
    capacity:
      description: Size the guest sees, in bytes.
      type: int
      sample: 21474836480
    allocation:
      description: Space used on the host, in bytes.
      type: int
      sample: 196624
    backing_volume:
      description: Name of the backing volume when it is in the same pool, else null.
      type: str
      sample: debian-12-base.qcow2
    encryption:
      description: The volume's encryption (C(format), C(secret), the secret's UUID), or null.
      type: dict
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
    used_by:
      description:
        - The VMs that use this volume, by path or by pool and volume name, once per VM and device.
        - Every use counts, as in the check before M(virtops.libvirt.volume) deletes a volume (a disk or
          CD-ROM, a backing file a running VM lists, NVRAM, loader, kernel, initrd, DTB, and the files of
          the VM's snapshots).
      type: list
      elements: dict
      contains:
        domain:
          description: VM name.
          type: str
        active:
          description: Whether the VM is running.
          type: bool
        target:
          description: Target device of the disk in the VM (null for a use that is not a disk, such as NVRAM).
          type: str
          sample: vda
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import run_module
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_info import gather_volume_info


def main():
    module = AnsibleModule(
        argument_spec=dict(COMMON_ARGS, pool=dict(type="str", required=True), name=dict(type="str")),
        supports_check_mode=True,
    )
    run_module(module, gather_volume_info)


if __name__ == "__main__":
    main()
