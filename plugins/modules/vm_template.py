#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vm_template
short_description: Make VM templates (sealed, read-only base volumes) and remove them
version_added: 0.2.0
description:
  - Makes a template from a VM. Each writable disk of the VM is flattened (no backing file) into a read-only
    qcow2 base volume C(<name>-<target>.base.qcow2) in O(pool) (file mode 0444). The VM's definition is kept
    beside them in the file C(<name>.template.xml), written atomically.
  - The kept definition has no UUID, MAC addresses, NVRAM path or graphics. Read-only disks (a cloud-init
    seed) are left out and CD-ROM drives are kept empty. Its disks are the base volumes.
  - VMs are made from a template by M(virtops.libvirt.vm) with O(virtops.libvirt.vm#module:template), as linked
    clones (qcow2 overlays on the base volumes) or full copies. Each gets a new UUID and new MAC addresses.
  - O(seal=true) on a running VM seals its guest through the guest agent, so that each VM made from the template
    is a new machine. It waits for cloud-init to finish, runs C(cloud-init clean --logs --seed), empties
    C(/etc/machine-id) (systemd makes a new one at the next boot) and removes C(/var/lib/dbus/machine-id).
    Then it shuts the VM down (ACPI) and copies its disks. The host never mounts or reads the guest's file system.
  - A stopped VM cannot be sealed by the module. It is taken as it is only with O(seal=false); without O(seal) the
    module refuses, because it cannot tell whether the guest was sealed.
  - An existing template is never made again, and O(vm) naming another VM than the one it was made from is an
    error. A failed run removes the base volumes it made; a VM it sealed and shut down stays so.
  - Removing a template (O(state=absent)) deletes its definition and base volumes. It is refused while VMs use the
    base volumes (linked clones, through their overlays); the refusal names them.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.resource_module
options:
  name:
    description:
      - Name of the template. It names the definition file and the base volumes, so it must be a valid volume
        name without spaces.
    type: str
    required: true
  pool:
    description:
      - The directory pool that keeps the template; it must exist and be active.
      - The task must run on the hypervisor, with a local O(uri), because the definition is a file in the pool's
        directory.
    type: str
    default: default
  state:
    description: Whether the template exists.
    type: str
    choices: [present, absent]
    default: present
  vm:
    description:
      - The VM to make the template from. Required when the template does not exist yet.
      - Its disks must be volumes of storage pools; encrypted disks are refused.
    type: str
  seal:
    description:
      - V(true) seals the guest of the running VM O(vm) through its guest agent and shuts the VM down before its
        disks are copied. The VM needs a guest agent channel and qemu-guest-agent and cloud-init in the guest.
      - V(false) takes the disks of the stopped VM O(vm) as they are (it was sealed by other means, or clones
        need not be new machines).
      - Unset, a running VM is refused (its disks change while they are copied) and so is a stopped one.
    type: bool
  seal_timeout:
    description: Seconds to wait for the guest agent and for sealing (cloud-init still running is waited for).
    type: int
    default: 600
  shutdown_timeout:
    description: Seconds to wait for the sealed VM to shut down. The VM is never powered off.
    type: int
    default: 120
  force:
    description:
      - With O(state=absent), remove a template although VMs use its base volumes. The definition and the base
        volumes nobody uses are removed; the base volumes those VMs need are kept (with a warning), because
        deleting them would break the VMs.
    type: bool
    default: false
notes:
  - Sealing and copying are done in this order in one run. A check mode run reads the VM and its disks and
    changes nothing.
seealso:
  - module: virtops.libvirt.vm_template_info
  - module: virtops.libvirt.vm
"""

EXAMPLES = r"""
- name: Make template debian12 from the running VM golden, sealed first
  virtops.libvirt.vm_template:
    name: debian12
    vm: golden
    seal: true

- name: A template from a stopped VM whose guest was sealed by other means
  virtops.libvirt.vm_template:
    name: appliance
    pool: templates
    vm: appliance-build
    seal: false

- name: Two VMs from it, a linked clone and a full copy, each with its own seed
  virtops.libvirt.vm:
    name: "{{ item.name }}"
    template: debian12
    clone_mode: "{{ item.mode }}"
    memory: 1024
    cloud_init:
      hostname: "{{ item.name }}"
  loop:
    - {name: web1, mode: linked}
    - {name: web2, mode: full}

- name: Remove the template (refused while linked clones use it)
  virtops.libvirt.vm_template:
    name: debian12
    state: absent
"""

RETURN = r"""
template:
  description: The template after the run (predicted in check mode); null when it is absent.
  returned: success
  type: dict
  contains:
    name:
      description: Name of the template.
      type: str
      sample: debian12
    pool:
      description: Pool that keeps it.
      type: str
      sample: default
    path:
      description: Path of the definition file.
      type: str
      sample: /var/lib/libvirt/images/debian12.template.xml
    source_vm:
      description: The VM it was made from.
      type: str
      sample: golden
    sealed:
      description: V(agent) when the module sealed the guest, V(none) when it was taken as it was (O(seal=false)).
      type: str
      sample: agent
    created:
      description: When the template was made (UTC, ISO 8601); null in check mode.
      type: str
      sample: "2026-12-07T21:40:00Z"
    disks:
      description: The base volumes, one per disk.
      type: list
      elements: dict
      contains:
        target:
          description: The disk's target in the VM (C(vda)).
          type: str
        volume:
          description: Name of the base volume.
          type: str
        path:
          description: Path of the base volume.
          type: str
        format:
          description: Always V(qcow2).
          type: str
        capacity:
          description: Size the guest sees, in bytes.
          type: int
    memory:
      description: Memory of the kept definition, in MiB.
      type: int
      sample: 512
    vcpus:
      description: vCPUs of the kept definition.
      type: int
      sample: 1
    machine:
      description: Machine type of the kept definition.
      type: str
      sample: pc-q35-7.2
    interfaces:
      description: Number of network interfaces in the kept definition.
      type: int
      sample: 1
removed_volumes:
  description: Paths of the base volumes deleted (or to be deleted in check mode) by a removal.
  returned: when a removal deletes volumes
  type: list
  elements: str
actions:
  description: What was done (or would be done in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["seal the guest of VM golden through its agent (...)", "shut down VM golden (ACPI, up to 120 s)"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._template.kind import TEMPLATE

ARGUMENT_SPEC = TEMPLATE.argument_spec


def main():
    TEMPLATE.run(AnsibleModule(**TEMPLATE.module_kwargs()))


if __name__ == "__main__":
    main()
