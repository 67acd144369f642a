#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pool_info
short_description: Facts about libvirt storage pools
version_added: 0.1.0
description:
  - Returns every storage pool of a hypervisor, or the one named by O(name).
  - For each pool it returns the type, state, autostart flag, persistence, target path, source,
    capacity, allocation, free space and number of volumes, and optionally the volume names.
  - Active pools are refreshed first, so volumes created outside libvirt are seen.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.info_module
options:
  name:
    description:
      - Only this pool. The module fails (C(error_kind=not_found)) when there is no pool of this name;
        leave O(name) out to list all pools and test for one.
    type: str
  volumes:
    description:
      - Also return the names of the volumes of each active pool.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: All pools of the hypervisor
  virtops.libvirt.pool_info:
  register: pools

- name: Free space of the default pool
  ansible.builtin.debug:
    msg: "{{ (pools.pools | selectattr('name', 'equalto', 'default') | first).available | human_readable }}"

- name: One pool with its volume names
  virtops.libvirt.pool_info:
    name: images
    volumes: true
  register: images
"""

RETURN = r"""
pools:
  description: Storage pools, sorted by name; sizes in bytes (0 for inactive pools).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Pool name.
      type: str
      sample: images
    uuid:
      description: Pool UUID.
      type: str
    type:
      description: Pool type (dir, fs, netfs, logical, iscsi...).
      type: str
      sample: dir
    state:
      description: V(active) or V(inactive).
      type: str
      sample: active
    libvirt_state:
      description: libvirt's pool state (running, inactive, building, degraded, inaccessible).
      type: str
      sample: running
    active:
      description: Whether the pool is started.
      type: bool
    autostart:
      description: Whether the pool starts with the daemon.
      type: bool
    persistent:
      description: Whether the pool is defined persistently.
      type: bool
    path:
      description: Target path.
      type: str
      sample: /srv/images
    source:
      description: Source of the pool (devices, host, port, dir, name, format, iqn, initiator), only the keys that are set.
      type: dict
      sample: {host: nfs.example.com, dir: /exports/vm, format: nfs}
    permissions:
      description: Owner, group and mode of the target as libvirt reports them, or null.
      type: dict
      sample: {owner: 0, group: 0, mode: "0711"}
    capacity:
      description: Capacity in bytes.
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
    volumes:
      description: Volume names, sorted (null for an inactive pool).
      returned: when O(volumes=true)
      type: list
      elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.pool_view import gather_pool_info
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(COMMON_ARGS, name=dict(type="str"), volumes=dict(type="bool", default=False)),
        supports_check_mode=True,
    )
    run_module(module, gather_pool_info)


if __name__ == "__main__":
    main()
