#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: host_device_info
short_description: PCI and USB devices of a libvirt/KVM hypervisor, and which VMs pass them through
version_added: 0.1.0
description:
  - Lists the hypervisor's PCI devices (vendor and product with names and ids, class, driver, IOMMU
    group, whether bound to C(vfio-pci), SR-IOV physical and virtual functions, mediated device
    types), its USB devices, and the views RV(gpus), RV(virtual_functions) and RV(mdev_types).
  - Read from libvirt's node device API, so it needs no C(lspci) and works for a remote hypervisor.
  - Each device says which VMs pass it through (RV(pci_devices[].used_by)), read from every VM's
    definition, running or not; a device no VM names is RV(pci_devices[].free).
  - The names it returns (V(pci_0000_01_00_0)) and the PCI addresses (V(0000:01:00.0)) are what
    O(virtops.libvirt.vm#module:hostdevs) accepts.
  - A separate module from virtops.libvirt.host_info, which stays fast for placement.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.info_module
options: {}
"""

EXAMPLES = r"""
- name: List the host's devices
  virtops.libvirt.host_device_info:
  register: devices

- name: Pass the first free GPU through to a VM
  virtops.libvirt.vm:
    name: render1
    hostdevs:
      - "{{ (devices.gpus | selectattr('free') | first).name }}"
  when: devices.gpus | selectattr('free') | list | length > 0

- name: Show the SR-IOV virtual functions no VM uses
  ansible.builtin.debug:
    msg: "{{ devices.virtual_functions | selectattr('free') | map(attribute='address') | list }}"
"""

RETURN = r"""
pci_devices:
  description: Every PCI device of the host, sorted by name.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: libvirt's node device name; what O(virtops.libvirt.vm#module:hostdevs) takes.
      type: str
      sample: pci_0000_01_00_0
    address:
      description: The PCI address (domain:bus:slot.function); O(virtops.libvirt.vm#module:hostdevs) takes it too.
      type: str
      sample: "0000:01:00.0"
    parent:
      description: The parent node device (a bridge, C(computer), or the physical function of a VF).
      type: str
    vendor:
      description: Vendor C(id) (V(0x10de)) and C(name) (null when the host's PCI id database lacks it).
      type: dict
    product:
      description: Product C(id) and C(name).
      type: dict
    class_code:
      description: The PCI class code.
      type: str
      sample: "0x030000"
    class_name:
      description: The base class (V(display), V(network), V(storage), V(multimedia), V(bridge), V(serial-bus), V(accelerator), V(other)).
      type: str
    gpu:
      description: Whether the device is a display controller (PCI class 0x03).
      type: bool
    driver:
      description: The host driver bound to it (null when none).
      type: str
      sample: vfio-pci
    vfio:
      description: Whether it is bound to C(vfio-pci) (ready for passthrough).
      type: bool
    iommu_group:
      description: Its IOMMU group number (null when the host has no IOMMU). Every device of a group goes to one VM.
      type: int
    iommu_group_devices:
      description: PCI addresses of the devices in its IOMMU group.
      type: list
      elements: str
    physical_function:
      description: For an SR-IOV virtual function, the PCI address of its physical function; else null.
      type: str
    virtual_functions:
      description: For an SR-IOV physical function, the PCI addresses of its virtual functions.
      type: list
      elements: str
    max_virtual_functions:
      description: How many virtual functions the physical function can have (null when it is none).
      type: int
    mdev_types:
      description: Mediated device types it offers (C(id), C(name), C(device_api), C(available_instances)).
      type: list
      elements: dict
    used_by:
      description: The VMs whose definition passes it through (running or not).
      type: list
      elements: str
    free:
      description: Whether no VM passes it through.
      type: bool
usb_devices:
  description: Every USB device of the host, with C(name), C(parent), C(bus), C(device), C(vendor), C(product), C(driver), C(used_by), C(free).
  returned: success
  type: list
  elements: dict
gpus:
  description: The RV(pci_devices) that are GPUs (PCI class 0x03), same keys.
  returned: success
  type: list
  elements: dict
virtual_functions:
  description: The RV(pci_devices) that are SR-IOV virtual functions, same keys.
  returned: success
  type: list
  elements: dict
mdev_types:
  description: Every mediated device type of every PCI device, with C(id), C(name), C(device_api), C(available_instances), C(parent) and C(parent_address).
  returned: success
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import run_module
from ansible_collections.virtops.libvirt.plugins.module_utils._host.nodedev import gather_host_devices


def main():
    module = AnsibleModule(argument_spec=dict(COMMON_ARGS), supports_check_mode=True)
    run_module(module, gather_host_devices)


if __name__ == "__main__":
    main()
