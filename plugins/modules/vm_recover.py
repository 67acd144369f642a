#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vm_recover
short_description: Start the VMs of a failed, fenced hypervisor on this one, from their kept definitions
version_added: 0.2.0
description:
  - Defines the VMs of O(names) on this hypervisor from the definitions M(virtops.libvirt.vm_keep) kept of the
    failed hypervisor O(failed_host) in O(path), with the same disks, UUID and MAC addresses, and starts those
    that were running when they were kept. Their disks must be on storage this hypervisor sees at the same
    paths (a shared pool).
  - Refuses, before it reads anything else, unless O(fenced=true) confirms that O(failed_host) is fenced
    (powered off, or cut from the shared storage). A host that still runs a VM, or still writes its disk,
    while the same VM starts from the same disk elsewhere corrupts that disk.
  - Refuses when the libvirt of O(failed_host) answers at O(failed_uri) (a real connection attempt bounded by
    O(probe_timeout)), and when the attempt fails in a way that does not say the host is down (for example
    an unknown URI scheme). Connection refused, no socket, no route and no answer in time count as down.
  - A VM of the same UUID already defined here is not defined again; it is started if it should run and does
    not. A second run changes nothing. A different VM with the same name here is an error.
  - A VM that was set to start with its host is set so here too. A failed start undefines what the run defined.
  - Every run returns RV(kept), what the store holds, so the module with no O(names) reads the store for
    placement (the P(virtops.libvirt.recover_plan#filter) filter) after the same two refusals.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.resource_module
options:
  failed_host:
    description: Name of the failed hypervisor, used in messages and results.
    type: str
    required: true
  failed_uri:
    description:
      - libvirt URI at which the failed hypervisor would answer if it were up, as this hypervisor reaches it,
        for example V(qemu+tls://kvm2.example.com/system).
    type: str
    required: true
  path:
    description: Directory of the failed hypervisor's kept definitions (the O(virtops.libvirt.vm_keep#module:path) it wrote).
    type: path
    required: true
  fenced:
    description:
      - Confirms that O(failed_host) is fenced. Nothing is done without V(true).
    type: bool
    default: false
  probe_timeout:
    description: Seconds the connection attempt to O(failed_uri) may take; no answer by then counts as down.
    type: int
    default: 10
  names:
    description:
      - The kept VMs to define (and start) on this hypervisor. Each must be in the store.
      - Empty reads the store only.
    type: list
    elements: str
    default: []
seealso:
  - ref: ansible_collections.virtops.libvirt.docsite.guide_recover
    description: Recovering the VMs of a failed hypervisor, and what to do when it comes back.
"""

EXAMPLES = r"""
- name: Start web1 and db1 of the fenced kvm2 here
  virtops.libvirt.vm_recover:
    failed_host: kvm2
    failed_uri: qemu+tls://kvm2.example.com/system
    path: /srv/shared/virtops-kept/kvm2
    fenced: true
    names: [web1, db1]
"""

RETURN = r"""
failed_host:
  description: O(failed_host).
  returned: success
  type: str
probe:
  description: Why the failed host counted as down (the connection error, or that it did not answer in time).
  returned: success
  type: str
  sample: "Failed to connect socket to '/var/run/libvirt/libvirt-sock': Connection refused"
kept:
  description: Every VM in the store, sorted by name, with what placement needs of it.
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
    vcpus:
      description: vCPUs.
      type: int
    memory:
      description: Memory, MiB.
      type: int
    arch:
      description: CPU architecture.
      type: str
    pool:
      description: Pool of its first writable disk on the failed host, or null.
      type: str
    anti_affinity:
      description: Its anti-affinity groups (metadata key C(anti_affinity)), or null.
      type: str
    active:
      description: Whether it was running when it was kept.
      type: bool
    autostart:
      description: Whether it started with the failed host.
      type: bool
vms:
  description: The VMs of O(names) on this hypervisor after the run (predicted in check mode).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: VM name.
      type: str
    state:
      description: V(running), V(stopped), or V(absent).
      type: str
  sample: [{name: web1, state: running}]
actions:
  description: What the run did (or would do in check mode).
  returned: always
  type: list
  elements: str
  sample: ["define web1 from the definition kept of kvm2, autostart", "start web1"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._recover.recover import RECOVER

ARGUMENT_SPEC = RECOVER.argument_spec


def main():
    RECOVER.run(AnsibleModule(**RECOVER.module_kwargs()))


if __name__ == "__main__":
    main()
