#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vm_keep
short_description: Keep the definitions of a hypervisor's VMs where the other hypervisors can read them
version_added: 0.2.0
description:
  - Writes the persistent definition of every VM of the hypervisor (the inactive domain XML, with its console
    passwords) into the directory O(path), together with an index. The index records for each VM its UUID,
    the checksum of its definition, whether it was running, whether it starts with the host, and the pool of
    its first writable disk.
  - O(path) is meant to be on storage the other hypervisors see (the storage the VMs' disks are on, or
    another shared file system), one directory per hypervisor. When this hypervisor fails,
    M(virtops.libvirt.vm_recover) (role C(virtops.libvirt.recover)) starts its VMs elsewhere from what was kept.
  - Idempotent. A VM that was defined, changed, started, stopped or undefined since the last run is a change.
    Run it whenever VMs change (the C(keep) entry point of the C(virtops.libvirt.recover) role, after the
    C(virtops.libvirt.guests) role, or from a timer); recovery can only start what was kept, in the state it
    had then.
  - The store is written so that a reader never sees half of it. Definitions are written under new names that
    carry their checksum, then the index is replaced atomically, then the files it no longer names are
    deleted. A run that fails leaves the previous index and its files as they were.
  - The directory is made with mode 0700 and every file with mode 0600. A store whose directory or files are
    owned by another user than the one the module runs as (or root), are writable by group or others, or are
    symbolic links is refused, by this module and by M(virtops.libvirt.vm_recover).
  - Transient VMs have no persistent definition and are not kept.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.resource_module
options:
  path:
    description:
      - Absolute path on the managed node of the directory of this hypervisor's kept definitions, for
        example C(/srv/shared/virtops-kept/kvm1). Made when missing (mode 0700).
      - Use one directory per hypervisor, never the same for two.
    type: path
    required: true
notes:
  - The definitions carry console (VNC, SPICE) passwords. Keep the store on storage only the hypervisors and
    their administrators can read.
seealso:
  - ref: ansible_collections.virtops.libvirt.docsite.guide_recover
    description: Recovering the VMs of a failed hypervisor.
"""

EXAMPLES = r"""
- name: Keep the definitions of this hypervisor's VMs on the shared storage
  virtops.libvirt.vm_keep:
    path: "/srv/shared/virtops-kept/{{ inventory_hostname }}"
"""

RETURN = r"""
path:
  description: The store directory.
  returned: success
  type: str
  sample: /srv/shared/virtops-kept/kvm1
vms:
  description: The VMs kept (predicted in check mode), sorted by name.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: VM name.
      type: str
    uuid:
      description: VM UUID.
      type: str
    definition:
      description: The first 16 hex digits of the SHA-256 of the kept definition.
      type: str
    active:
      description: Whether the VM was running (or paused) when it was kept; recovery starts only those.
      type: bool
    autostart:
      description: Whether the VM starts with its host.
      type: bool
    pool:
      description: Storage pool of its first writable disk (null when none is in a pool).
      type: str
  sample: [{name: web1, uuid: 4f0c1a52-8e7d-4c1b-9a55-2b1f0e6c7d31, definition: 9c1f0e2ab47d33e1, active: true,
            autostart: true, pool: shared}]
actions:
  description: What the run did (or would do in check mode).
  returned: always
  type: list
  elements: str
  sample: ["keep the definitions of 3 VM(s) in /srv/shared/virtops-kept/kvm1 (updated: web1)"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._recover.keep import KEEP

ARGUMENT_SPEC = KEEP.argument_spec


def main():
    KEEP.run(AnsibleModule(**KEEP.module_kwargs()))


if __name__ == "__main__":
    main()
