# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: guests_normalize
short_description: Merge defaults under declared VMs and work out their disks, interfaces, metadata and seed
version_added: 0.1.0
author:
  - virtops.libvirt developers (@virtops)
description:
  - The first step of the role C(virtops.libvirt.guests),
    usable on its own. Each item of the input is merged over O(defaults) (the item's keys win) and gets these keys.
  - C(state) (V(running) when blank), C(hypervisor) (V(null) when blank), C(pool) (O(pool) when blank) and
    C(anti_affinity) (always a list).
  - C(_disks), the disks for O(virtops.libvirt.vm#module:disks). With C(image), a root disk in C(pool) backed by
    the volume C(image) in C(_image_pool), of C(disk_size) when that is not V(null). Without C(image) but with
    a C(disk_size), a new empty volume of that size. Then the item's own C(disks).
  - C(_image_pool), the pool of C(image). That is the C(pool) of the item of O(images) named C(image), else the
    item's C(image_pool), else its C(pool).
  - C(_interfaces), the item's C(interfaces) if it has that key, else one interface per item of C(networks)
    (a network name, or a dictionary as O(virtops.libvirt.vm#module:interfaces) takes it).
  - C(_metadata), the item's C(metadata) with C(cluster) set to O(cluster) and, when it has groups,
    C(anti_affinity) set to the groups joined with commas.
  - C(_cloud_init), the item's C(cloud_init) (V(null) when blank) with C(pool) defaulting to the item's pool
    and, when O(cloud_init_hostname) is true and it has content (keys other than C(pool), C(volume) and
    C(bus)), C(hostname) defaulting to the item's C(name).
  - C(_seed), whether the C(cloud_init) has such content (a seed volume is made for it).
options:
  _input:
    description: The declared VMs (C(guests_vms) of the role), each a dictionary with at least C(name).
    type: list
    elements: dict
    required: true
  defaults:
    description: Keys merged under every item (C(guests_defaults)).
    type: dict
    default: {}
  pool:
    description: Pool of an item that names none (C(guests_pool)).
    type: str
    default: default
  images:
    description: The base images (C(guests_images)), each with C(name) and optionally C(pool).
    type: list
    elements: dict
    default: []
  cluster:
    description: The cluster name written into each C(_metadata) (C(guests_cluster)).
    type: str
    default: default
  cloud_init_hostname:
    description: The VM name is the cloud-init host name unless the item's C(cloud_init) gives one.
    type: bool
    default: true
notes:
  - Pure Python on the controller; it does not connect to any hypervisor.
seealso:
  - plugin: virtops.libvirt.guests_vm_args
    plugin_type: filter
  - module: virtops.libvirt.vm
"""

EXAMPLES = r"""
- name: Two VMs with the defaults merged in
  ansible.builtin.debug:
    msg: "{{ guests | virtops.libvirt.guests_normalize(defaults={'vcpus': 2, 'networks': ['default']}, pool='vms') }}"
  vars:
    guests:
      - {name: web1, image: debian-12.qcow2, disk_size: 20G, anti_affinity: web}
      - {name: db1, disk_size: 100G, cloud_init: {packages: [postgresql]}}
"""

RETURN = r"""
_value:
  description: The VMs in the same order, each with the keys described above.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.virtops.libvirt.plugins.plugin_utils._guests import normalize


def guests_normalize(vms, defaults=None, pool="default", images=None, cluster="default", cloud_init_hostname=True):
    """``guests_vms | virtops.libvirt.guests_normalize(...)``"""
    if not isinstance(vms, list) or not all(isinstance(vm, dict) for vm in vms):
        raise AnsibleFilterError("guests_normalize: the input must be a list of dictionaries")
    return normalize(vms, defaults=defaults, pool=pool, images=images, cluster=cluster,
                     cloud_init_hostname=cloud_init_hostname)


class FilterModule(object):
    def filters(self):
        return {"guests_normalize": guests_normalize}
