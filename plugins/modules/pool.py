#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pool
short_description: Manage libvirt storage pools (dir, fs, netfs, logical, iscsi, rbd, or any type from XML)
version_added: 0.1.0
description:
  - Defines, starts, stops and removes a libvirt storage pool, and keeps its definition and
    autostart flag as specified.
  - Only what you specify is compared, never libvirt's defaults. A changed definition is applied
    by redefining the pool with its UUID kept.
  - An active pool keeps running with its old definition until it is restarted. The module then
    returns RV(restart_required=true), unless O(restart=true) lets it stop and start the pool.
  - Active pools are refreshed before anything is decided or returned, so volumes created outside
    libvirt are seen.
  - Pool types other than V(dir), V(fs), V(netfs), V(logical), V(iscsi) and V(rbd) are managed by
    giving the whole definition in O(xml).
  - V(iscsi) (CHAP) and V(rbd) (Ceph) pools authenticate with a libvirt secret (O(auth)); see
    M(virtops.libvirt.secret). Such a secret is not removed while the pool names it.
  - A failed creation leaves nothing behind. This includes the target directory that libvirt's
    build made (a V(fs) pool whose device cannot be formatted or mounted, for example). A directory
    that existed before is kept. On a remote hypervisor the module cannot tell whether the directory
    existed before, so libvirt's pool delete (an C(rmdir)) removes it after a successful build.
  - In check mode, a pool that O(state=absent) with O(purge=true) would refuse because VMs use its
    volumes is a warning, with the same text, and the result is V(changed). An earlier task of the
    play may remove those VMs. A real run refuses.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.resource_module
options:
  name:
    description:
      - Name of the pool.
      - It must not be empty, contain V(/) or control characters, be V(.) or V(..), or be longer
        than 128 characters.
    type: str
    required: true
  state:
    description:
      - V(present) makes sure the pool is defined and leaves it running or stopped as it is (a new
        pool is left stopped).
      - V(active) makes sure the pool is defined and started.
      - V(inactive) makes sure the pool is defined and stopped.
      - V(absent) stops and undefines the pool. An active pool that still holds volumes is refused
        unless O(purge=true). The volumes of an inactive pool cannot be listed, so an inactive pool is
        undefined without that check; undefining never deletes the pool's storage or volumes.
    type: str
    choices: [present, active, inactive, absent]
    default: active
  type:
    description:
      - Pool type. A new pool without O(type) or O(xml) is a V(dir) pool.
      - V(dir) is a directory (O(path)).
      - V(fs) is a block device with a filesystem (O(source.devices), one device) mounted on O(path).
      - V(netfs) is a network filesystem (O(source.host), O(source.dir)) mounted on O(path).
      - V(logical) is an LVM volume group (O(source.name), built on O(source.devices)).
      - V(iscsi) is the LUNs of an iSCSI target (O(source.host), O(source.iqn)), seen under O(path)
        (default V(/dev/disk/by-path)). libvirt's iSCSI backend (C(iscsiadm)) logs in when the pool starts.
      - V(rbd) is a Ceph pool (O(source.name)) reached through a monitor (O(source.host)); it has no
        O(path). The hypervisor's libvirt needs its RBD storage backend.
      - The type of an existing pool cannot be changed.
    type: str
    choices: [dir, fs, netfs, logical, iscsi, rbd]
  path:
    description:
      - Target path of the pool, an absolute path. Required to create V(dir), V(fs) and V(netfs) pools.
      - For V(logical) pools libvirt uses C(/dev/<volume group>); leave it out.
      - V(iscsi) pools default to V(/dev/disk/by-path); V(rbd) pools take no path.
    type: path
  source:
    description:
      - Where the pool's storage comes from. Only the keys that the pool type uses are accepted.
    type: dict
    suboptions:
      devices:
        description:
          - Block devices. V(fs) pools take exactly one; V(logical) pools take the physical volumes
            the volume group is built on.
        type: list
        elements: str
      host:
        description:
          - Host name or address of the server of a V(netfs) pool, the portal of an V(iscsi) pool, or
            a Ceph monitor of an V(rbd) pool.
        type: str
      port:
        description:
          - Port of O(source.host) (V(iscsi) and V(rbd) pools), when not the default.
        type: int
      iqn:
        description:
          - The iSCSI target of an V(iscsi) pool, an iSCSI qualified name such as
            V(iqn.2024-01.com.example:storage).
        type: str
      initiator:
        description:
          - The initiator IQN an V(iscsi) pool logs in with (else the host's own).
        type: str
      dir:
        description:
          - Exported directory of a V(netfs) pool (for example the NFS export path).
        type: str
      name:
        description:
          - Volume group name of a V(logical) pool (libvirt uses the pool name when it is not given), or
            the Ceph pool of an V(rbd) pool.
        type: str
      format:
        description:
          - Source format. V(fs) pools take a filesystem type (V(auto), V(ext4), V(xfs), ...),
            V(netfs) pools V(auto), V(nfs), V(cifs) or V(glusterfs), V(logical) pools V(lvm2).
        type: str
  permissions:
    description:
      - Owner, group and mode of the pool's target directory. Applied when the pool is built.
    type: dict
    suboptions:
      owner:
        description:
          - Numeric user id.
        type: int
      group:
        description:
          - Numeric group id.
        type: int
      mode:
        description:
          - Octal mode, for example V('0755').
        type: str
  auth:
    description:
      - How an V(iscsi) pool (CHAP) or an V(rbd) pool (Ceph, C(cephx)) authenticates.
      - The password or key is the value of a libvirt secret, which must exist (check mode assumes an
        earlier task defines it). libvirt reads its value only when the pool starts.
    type: dict
    suboptions:
      username:
        description:
          - The CHAP user name, or the Ceph client name (without C(client.)).
        type: str
        required: true
      secret:
        description:
          - The secret, by UUID or by its usage id (usage type V(iscsi) for V(iscsi) pools, V(ceph) for
            V(rbd) pools). Written into the definition as given.
        type: str
        required: true
  xml:
    description:
      - The whole pool definition, for pool types without first-class options (disk, scsi, zfs...).
      - Cannot be combined with O(type), O(path), O(source), O(permissions) or O(auth). Its C(<name>) must
        match O(name) (it is added when missing); the UUID of an existing pool is kept.
      - Compared as a subset, so elements libvirt adds do not count as a difference.
    type: str
  autostart:
    description:
      - Whether the pool starts when the libvirt daemon starts. Not changed when not given.
    type: bool
  build:
    description:
      - Build the pool's storage before it is first started, when it is missing. V(dir) and
        V(netfs) pools get their directory created. V(fs) pools get a filesystem made and
        V(logical) pools get their volume group created.
      - Existing data is never overwritten. A device that already holds the expected
        filesystem or volume group counts as built, and a device with something else on it
        makes the build fail.
    type: bool
    default: true
  restart:
    description:
      - Allow the module to stop and start an active pool so that a changed definition takes effect.
      - When V(false) such a change is only saved, and RV(restart_required) is V(true).
    type: bool
    default: false
  purge:
    description:
      - With O(state=absent), delete the pool's volumes, then its storage with libvirt's pool delete
        (the target directory, or the volume group and its physical volume labels), then the pool.
      - Refused when a VM uses one of the volumes, unless O(force=true). This counts every VM,
        running or not, with its disks, CD-ROMs, NVRAM, kernel and initrd, and the overlays and
        saved definitions of its snapshots. It also counts volumes of other pools whose backing
        chain leads into this pool, and the VMs using those. The error names the VMs and returns
        them as C(used_by), and the other volumes as C(dependants). The files of an inactive pool
        cannot be listed, so there every file in its target directory counts.
      - Without it the pool's storage is never touched.
    type: bool
    default: false
  force:
    description:
      - With O(purge=true), delete the volumes even though VMs use them, or volumes of other pools
        are based on them. Such VMs no longer start, and those volumes lose their backing file. The
        module warns and names them.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: A directory pool, started and started at boot
  virtops.libvirt.pool:
    name: images
    path: /srv/images
    permissions:
      owner: 0
      group: 0
      mode: "0711"
    autostart: true

- name: An NFS pool
  virtops.libvirt.pool:
    name: shared
    type: netfs
    source:
      host: nfs.example.com
      dir: /exports/vm
      format: nfs
    path: /var/lib/libvirt/shared

- name: An LVM volume group built on a disk
  virtops.libvirt.pool:
    name: vg_vms
    type: logical
    source:
      name: vg_vms
      devices: [/dev/sdb]

- name: Change the path and restart the pool to apply it
  virtops.libvirt.pool:
    name: images
    path: /srv/images2
    restart: true

- name: The CHAP password as a libvirt secret
  virtops.libvirt.secret:
    usage_type: iscsi
    usage_id: san1-chap
    value: "{{ vault_san1_chap_password }}"

- name: An iSCSI target's LUNs, logging in with CHAP
  virtops.libvirt.pool:
    name: san1
    type: iscsi
    source:
      host: iscsi.example.com
      iqn: iqn.2024-01.com.example:storage
    auth:
      username: libvirt
      secret: san1-chap

- name: A Ceph pool through a monitor, with the key of a ceph secret
  virtops.libvirt.pool:
    name: ceph-vms
    type: rbd
    source:
      host: mon1.example.com
      name: vms
    auth:
      username: libvirt
      secret: client.libvirt

- name: Any other pool type from XML
  virtops.libvirt.pool:
    name: disk1
    state: present
    xml: |
      <pool type='disk'>
        <source>
          <device path='/dev/sdc'/>
          <format type='gpt'/>
        </source>
        <target><path>/dev</path></target>
      </pool>

- name: Remove a pool together with its volumes
  virtops.libvirt.pool:
    name: scratch
    state: absent
    purge: true
"""

RETURN = r"""
pool:
  description:
    - The pool after the run (in check mode the prediction; values not known yet are null).
    - For O(state=absent) only RV(pool.name) and RV(pool.state).
  returned: success
  type: dict
  contains:
    name:
      description: Pool name.
      type: str
      sample: images
    uuid:
      description: Pool UUID.
      type: str
      sample: 2f5b8d52-7a5e-4e43-9c1c-5f7c0c0e8f11
    type:
      description: Pool type.
      type: str
      sample: dir
    state:
      description: V(active), V(inactive) or V(absent).
      type: str
      sample: active
    autostart:
      description: Whether the pool starts with the daemon.
      type: bool
    persistent:
      description: Whether the pool is defined persistently.
      type: bool
    path:
      description: Target path of the pool.
      type: str
      sample: /srv/images
    capacity:
      description: Capacity in bytes (0 for an inactive pool).
      type: int
    allocation:
      description: Allocation in bytes.
      type: int
    available:
      description: Free space in bytes.
      type: int
    volume_count:
      description: Number of volumes (null for an inactive pool).
      type: int
restart_required:
  description:
    - Whether the pool is active with a definition that differs from the one it runs with; it
      takes effect once the pool is restarted.
  returned: success
  type: bool
actions:
  description: What the module did (or would do in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["define storage pool images", "build storage pool images", "start storage pool images"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._storage.pool_kind import POOL

ARGUMENT_SPEC = POOL.argument_spec


def main():
    POOL.run(AnsibleModule(**POOL.module_kwargs()))


if __name__ == "__main__":
    main()
