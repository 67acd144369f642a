# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: guests_resources
short_description: The resources of one apply task that makes and removes the VMs of a hypervisor
version_added: 0.1.0
author:
  - virtops.libvirt developers (@virtops)
description:
  - Returns the O(virtops.libvirt.apply#module:resources) of the one M(virtops.libvirt.apply) task with
    which the role C(virtops.libvirt.guests) makes, updates and removes the VMs of one hypervisor, with
    their base images and cloud-init seeds. The module orders the items (a VM after its base image, a
    base image removed after the VMs) and runs the others side by side.
  - "The items come in this order. A C(volume) per item of O(images) (its C(pool) defaulting to O(pool)).
    A C(vm) per VM of the input: what P(virtops.libvirt.guests_vm_args#filter) returns, without C(uri)
    (the task's), with O(shutdown_timeout), O(force) and O(apply) over the VM's own when they are not
    V(null). A C(cloudinit) per VM of O(seeds) that has seed content (C(_seed)): the VM's C(_cloud_init)
    content, in its pool, named its C(volume) or C(<name>-seed.iso), the name the vm module gives it."
  - "Then the removals: a C(vm) with C(state=absent) per name of O(remove), with O(remove_storage); with
    O(remove_storage), a C(cloudinit) with C(state=absent) per VM of O(remove_seeds) that has seed
    content; a C(volume) with C(state=absent) per item of O(remove_images). Seeds and images removed are
    left out when their pool is not in O(pools): there is nothing to remove."
  - The seed content options are those of M(virtops.libvirt.cloudinit), read from its argument spec.
options:
  _input:
    description: The VMs to make or update on the hypervisor, as P(virtops.libvirt.guests_normalize#filter) returns them.
    type: list
    elements: dict
    required: true
  images:
    description: The base images to upload (items of the role's C(guests_images)).
    type: list
    elements: dict
    default: []
  seeds:
    description: VMs placed on other hypervisors whose seed this one keeps (normalised VMs).
    type: list
    elements: dict
    default: []
  remove:
    description: Names of the VMs to remove from the hypervisor.
    type: list
    elements: str
    default: []
  remove_seeds:
    description: VMs whose seed this hypervisor kept and removes (normalised VMs).
    type: list
    elements: dict
    default: []
  remove_images:
    description: Base images to remove (items of the role's C(guests_images)).
    type: list
    elements: dict
    default: []
  pool:
    description: Pool of an image that names none (C(guests_pool)).
    type: str
    default: default
  pools:
    description: Names of the pools active on the hypervisor; V(null) keeps every seed and image removal.
    type: list
    elements: str
  remove_storage:
    description: A VM removed takes its volumes and seed with it, and the seeds of O(remove_seeds) are removed.
    type: bool
    default: true
  shutdown_timeout:
    description: O(virtops.libvirt.vm#module:shutdown_timeout) of every VM made; V(null) leaves the VM's own.
    type: int
  force:
    description: O(virtops.libvirt.vm#module:force) of every VM made; V(null) leaves the VM's own.
    type: bool
  apply:
    description: O(virtops.libvirt.vm#module:apply) of every VM made; V(null) leaves the VM's own.
    type: str
notes:
  - Pure Python on the controller; it does not connect to any hypervisor.
seealso:
  - module: virtops.libvirt.apply
  - plugin: virtops.libvirt.guests_vm_args
    plugin_type: filter
  - plugin: virtops.libvirt.guests_report
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Make the VMs of this hypervisor with their base image, and remove old1, in one task
  virtops.libvirt.apply:
    uri: qemu:///system
    resources: "{{ vms_here | virtops.libvirt.guests_resources(images=images, remove=['old1'], pool='vms') }}"
  vars:
    images: [{name: debian-12.qcow2, source: /srv/images/debian-12.qcow2}]
    vms_here: "{{ [{'name': 'web1', 'image': 'debian-12.qcow2'}] | virtops.libvirt.guests_normalize(pool='vms', images=images) }}"
  register: applied
"""

RETURN = r"""
_value:
  description: The items of O(virtops.libvirt.apply#module:resources), each with its C(kind).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.virtops.libvirt.plugins.modules.cloudinit import ARGUMENT_SPEC as SEED_SPEC
from ansible_collections.virtops.libvirt.plugins.modules.vm import ARGUMENT_SPEC as VM_SPEC
from ansible_collections.virtops.libvirt.plugins.plugin_utils._guests import resources


def _dicts(name, value):
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise AnsibleFilterError("guests_resources: %s must be a list of dictionaries" % name)
    return value


def guests_resources(guests, images=None, seeds=None, remove=None, remove_seeds=None, remove_images=None, pool="default",
                     pools=None, remove_storage=True, shutdown_timeout=None, force=None, apply=None):
    """``guests_here | virtops.libvirt.guests_resources(images=..., seeds=..., remove=..., ...)``"""
    lists = dict(guests=guests, images=images or [], seeds=seeds or [], remove_seeds=remove_seeds or [],
                 remove_images=remove_images or [])
    for name, value in lists.items():
        _dicts("the input" if name == "guests" else name, value)
    remove = list(remove or [])
    if not all(isinstance(name, str) for name in remove):
        raise AnsibleFilterError("guests_resources: remove must be a list of VM names")
    return resources(guests, VM_SPEC, SEED_SPEC, images=lists["images"], seeds=lists["seeds"], remove=remove,
                     remove_seeds=lists["remove_seeds"], remove_images=lists["remove_images"], pool=pool,
                     pools=None if pools is None else list(pools), remove_storage=remove_storage,
                     shutdown_timeout=shutdown_timeout, force=force, apply=apply)


class FilterModule(object):
    def filters(self):
        return {"guests_resources": guests_resources}
