#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: apply
short_description: Reconcile many pools, networks, volumes, seeds, VMs and snapshots in one task
version_added: 0.1.0
description:
  - Takes a list of resources, each a C(kind) and exactly the options of that kind's module
    (M(virtops.libvirt.pool), M(virtops.libvirt.network), M(virtops.libvirt.volume),
    M(virtops.libvirt.cloudinit), M(virtops.libvirt.vm), M(virtops.libvirt.snapshot)), and reconciles
    all of them in one module process. An item is written the same way as the task it replaces, is
    checked against that module's own options, and behaves as that module does (idempotency, check
    mode, diff, the refusal to remove what is in use, the undo of a failed change).
  - "Items that depend on each other run in order: a volume after its pool, a linked clone after its
    base volume, a VM after the volumes, networks, seed and pool it names, a snapshot after the items
    of its VM that come before it in the list. When items take their objects away (C(state=absent)),
    the order is reversed: a VM goes before its volumes, volumes before their pool. A VM taken away need
    not list its disks and interfaces: the volumes, seeds, pools and networks taken away on its hypervisor
    wait for it (they still run when its removal failed, and refuse what is still in use)."
  - Items that do not depend on each other run at the same time, up to O(parallel), each worker with
    its own libvirt connection.
  - Nothing runs unless every item is valid; an invalid item is named with its place in the list and
    the option that is wrong.
  - When an item fails, what it had done is undone (as its module does), the items that need it are
    not attempted, the other items still run, and the task fails naming every failed item and every
    item not attempted. With O(stop_on_error=true) no new item starts after the first failure.
  - On SIGTERM, SIGINT or SIGHUP (a stopped job, Ctrl-C) no new item starts, and every item that has
    started stops before its next step and undoes its steps; the task then fails and says so.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.resource_module
options:
  resources:
    description:
      - The resources, in any order. Each is a dictionary with the key C(kind) and the options of that
        kind's module.
      - C(kind) is the short name or the FQCN of the module whose options the item has, one of V(pool),
        V(network), V(volume), V(cloudinit), V(vm), V(snapshot), V(nwfilter) and V(secret) (or
        V(virtops.libvirt.volume)...).
      - A network filter comes before the filters and VMs that reference it, a secret (named by its usage)
        before the encrypted volumes and VM disks that name that usage.
      - An item without C(uri) uses O(uri); an item may name another hypervisor with its own C(uri).
      - Two items must not declare the same object (the same pool, network, volume or seed, VM or
        snapshot on the same O(uri)).
    type: list
    elements: dict
    required: true
  parallel:
    description:
      - How many items may run at the same time, each with its own libvirt connection (1 to 32).
      - Starting many VMs at once costs the hypervisor CPU; creating volumes and defining VMs costs little.
    type: int
    default: 4
  stop_on_error:
    description:
      - Start no further item after the first item failed. Items that are running finish.
      - By default the items that do not need the failed item still run.
    type: bool
    default: false
notes:
  - Check mode predicts an item that depends on another item of the same task as if that item had run
    (for example a volume of a pool the task creates). Such an assumption is listed in the item's
    C(assumptions) and is not warned about.
  - "Items of one VM (the VM and its snapshots) never run at the same time: they run in the order of the list."
  - See each kind's module for the options of an item and for its return values.
seealso:
  - module: virtops.libvirt.vm
  - module: virtops.libvirt.volume
  - name: kubernetes.core.k8s
    description: Applies a list of Kubernetes definitions in one task, the model of this module.
    link: https://docs.ansible.com/ansible/latest/collections/kubernetes/core/k8s_module.html
"""

EXAMPLES = r"""
- name: A pool, a network, a base image and two VMs with their seeds, in one task
  virtops.libvirt.apply:
    uri: qemu:///system
    parallel: 8
    resources:
      - kind: pool
        name: lab
        type: dir
        path: /srv/lab
      - kind: network
        name: labnet
        forward_mode: nat
        ipv4: {address: 192.168.150.1, prefix: 24, dhcp_ranges: [{start: 192.168.150.10, end: 192.168.150.200}]}
      - kind: volume
        pool: lab
        name: debian-12.qcow2
        source: https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2
      - kind: vm
        name: web1
        memory: 1GiB
        disks: [{pool: lab, volume: web1.qcow2, backing_volume: debian-12.qcow2, size: 10G}]
        interfaces: [{network: labnet}]
        cloud_init: {pool: lab, hostname: web1}
      - kind: vm
        name: web2
        memory: 1GiB
        disks: [{pool: lab, volume: web2.qcow2, backing_volume: debian-12.qcow2, size: 10G}]
        interfaces: [{network: labnet}]
        cloud_init: {pool: lab, hostname: web2}
  register: applied

- name: Name the items that changed
  ansible.builtin.debug:
    msg: "{{ applied.results | selectattr('changed') | map(attribute='label') | list }}"

- name: Fifty linked clones of one base volume
  virtops.libvirt.apply:
    parallel: 8
    resources: "{{ clones | from_yaml }}"
  vars:
    # a template renders to a string: from_yaml makes it the list
    clones: >-
      [{% for i in range(50) %}{"kind": "volume", "pool": "lab", "name": "clone{{ i }}.qcow2",
      "backing_volume": "debian-12.qcow2"},{% endfor %}]

- name: Remove all of it (VMs first, then volumes, then the pool and the network)
  virtops.libvirt.apply:
    resources:
      - {kind: vm, name: web1, state: absent, remove_storage: true}
      - {kind: vm, name: web2, state: absent, remove_storage: true}
      - {kind: volume, pool: lab, name: debian-12.qcow2, state: absent}
      - {kind: pool, name: lab, state: absent}
      - {kind: network, name: labnet, state: absent}
"""

RETURN = r"""
changed:
  description: Whether any item changed (in check mode, would change).
  returned: always
  type: bool
results:
  description:
    - One result per item, in the order of O(resources), shaped like the results of a loop.
    - Besides the keys below, a successful item has the return values of its kind's module (for example
      C(volume), C(vm), C(pool), C(reboot_required)); a failed one the details of its error (C(error_kind),
      C(failed_step), C(rollback_errors), C(used_by)...).
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: The item's place in O(resources) (from 0).
      type: int
      sample: 3
    kind:
      description: The item's kind.
      type: str
      sample: volume
    label:
      description: How messages name the item.
      type: str
      sample: "resources[3] (volume 'web1.qcow2' in pool 'lab')"
    changed:
      description: Whether the item changed (in check mode, would change).
      type: bool
    failed:
      description: Whether the item failed. What it had done was undone.
      type: bool
    skipped:
      description: Present and true when the item was not attempted (an item it needs failed, the task was stopped).
      type: bool
      returned: when the item was not attempted
    msg:
      description: Why the item failed or was not attempted.
      type: str
      returned: when the item failed or was not attempted
    actions:
      description: The steps the item took (in check mode, would take).
      type: list
      elements: str
      returned: when the item ran
    diff:
      description: Before and after of what the item specifies, as its module shows it.
      type: dict
      returned: when the item ran, in diff mode
    warnings:
      description: The item's warnings (also shown as the task's warnings, with the item's label).
      type: list
      elements: str
      returned: when the item has warnings
    assumptions:
      description: In check mode, what the item assumed an earlier item (or task) makes.
      type: list
      elements: str
      returned: when the item assumed something
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._apply.task import APPLY_ARGUMENT_SPEC, run_apply

ARGUMENT_SPEC = APPLY_ARGUMENT_SPEC


def main():
    run_apply(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True))


if __name__ == "__main__":
    main()
