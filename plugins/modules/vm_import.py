#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vm_import
short_description: Import a VM from an archive, an OVA/OVF or bare disk images
version_added: 0.1.0
description:
  - Makes a libvirt VM from one of three kinds of source, given with O(src) or O(disks).
  - An archive written by M(virtops.libvirt.export) (C(tar), C(tar.gz) or C(tar.zst)). The VM is rebuilt
    from the archive's domain XML, keeping only what is on the import's allow-list (see below), with the
    disks pointed at the new volumes, the interfaces at O(network) when given, and CD-ROMs emptied. The
    VM keeps its UUID and MAC addresses when it is imported under the name it had, unless another VM of
    this host has that UUID. Under another name it gets a new UUID and new MAC addresses.
  - The archive's domain XML is not trusted. Kept from it are the name, UUID, title, description,
    memory, vCPUs, CPU model and topology, I/O thread counts, the OS type, machine and boot order,
    the feature flags (ACPI, APIC, SMM, Hyper-V enlightenments...), the clock and timers, the power
    management and lifecycle actions (C(destroy), C(restart), C(preserve), C(rename-restart)), SMBIOS
    strings (C(sysinfo type=smbios)), the collection's tags and metadata and libosinfo's OS id, and these
    devices with their guest-facing settings and addresses. Disks (pointed at the new volumes), empty
    CD-ROM and floppy drives, controllers, interfaces on a libvirt network or bridge (MAC, model, boot
    order, link state, MTU, bandwidth, filter, VLAN, virtual port), C(pty) serial ports and consoles,
    the guest agent and SPICE agent channels, tablet/mouse/keyboard inputs, VNC and SPICE consoles (with
    their password), video and sound devices, C(none) and C(spice) audio, an emulated TPM (new and
    empty), watchdog, memory balloon, random number generator, panic, IOMMU and USB hub devices.
  - Converted rather than copied. UEFI and secure boot are kept, but this host picks its own firmware
    and NVRAM (the old host's loader, NVRAM and template paths are never used). Serial ports and consoles
    of any other type (C(file), C(unix), C(dev), C(pipe), C(tcp), C(udp)...) become C(pty). The random
    number generator reads this host's C(/dev/urandom). A console that listened on another address than
    the loopback listens on C(127.0.0.1). NIC models that QEMU does not have under that name become
    V(e1000).
  - Left out, each with a warning that names it and what it named, is everything that names a file, device or
    socket of a host, or passes raw arguments. That is C(kernel), C(initrd), C(dtb) and C(cmdline) (direct kernel
    boot), custom BIOS loaders, ACPI tables, C(bootloader), the emulator binary, sources of channels and
    parallel ports, C(qemu:commandline), C(qemu:capabilities), C(qemu:override) and every other XML
    namespace, filesystem passthrough, host devices (C(hostdev), C(redirdev), C(smartcard)), LUN and
    block passthrough disks, disks the archive does not hold, C(shmem), memory devices and
    C(memoryBacking), C(pstore), C(lease), C(vsock), TPM passthrough, C(evdev) and passthrough inputs,
    graphics sockets and render nodes, SDL, EGL and D-Bus displays, audio backends with host paths,
    vhost-user video, C(sysinfo type=fwcfg), SMBIOS C(mode=host), interface scripts, backends, ROM
    files and host device names, C(seclabel), C(keywrap), C(resource) partitions, and the host tuning
    C(cputune), C(numatune), C(memtune), C(blkiotune), C(perf) and C(vcpu cpuset). Anything else that
    is not on the allow-list is left out the same way.
  - Refused, with nothing made. A DOCTYPE (entity declarations), a domain type other than C(kvm) or C(qemu),
    an OS type other than C(hvm), C(launchSecurity) (memory encryption), two disks with one target, malformed
    numbers, and interfaces other than libvirt networks and bridges (direct, ethernet, vhost-user, user,
    hostdev...) unless O(network) is given, which moves every interface to that network.
  - An OVA (a tar whose first member is the OVF descriptor) or an OVF 1.0/2.0 descriptor with its disk
    files beside it, as VMware, VirtualBox and M(virtops.libvirt.export) write them. The virtual
    hardware section becomes the VM. This covers vCPUs, memory, firmware (BIOS or UEFI), the disks
    with their buses (IDE disks become SATA, because the q35 machine has no IDE) and the NICs.
  - Bare disk images (O(disks)) plus the VM options O(vcpus), O(memory), O(firmware) and O(network).
  - Every disk becomes a new volume V(<name>-<target>.qcow2) (V(.img) for raw) in O(pool). Disks are
    converted to O(disk_format) with C(qemu-img convert) when their format differs, then uploaded
    through libvirt, which also works for remote hypervisors. The VM is defined the way
    M(virtops.libvirt.vm) defines one.
  - Idempotent by VM name. When a VM of that name exists, nothing is read or changed unless
    O(force=true). With O(force=true) the existing VM is replaced. It is removed, with the volumes
    only it used, after the source has been read and verified.
  - The source is not trusted. Archive members with absolute names, C(..) components, links, device
    files or sizes other than declared are refused. So are checksum mismatches against the archive
    manifest or the OVA/OVF manifest (C(.mf)), and images that refer to other files (backing files,
    external data files, VMDK extents) or are encrypted. An uncompressed tar or OVA is checked whole
    before anything is written. Compressed archives are checked member by member as they stream.
  - Disks of archives are streamed into a private scratch directory (O(tmp_dir)), never unpacked as a
    whole. The scratch directory is removed at the end of the run, also on failure. A failure removes
    the volumes and the definition the run made.
  - Disk images pass the image-trust check described in the notes, under their declared format (the
    manifest's or the OVF's, or O(disks[].format)). The new volumes carry the collection's record of
    their format and their source, and whether their upload completed. A volume left by an earlier
    import of the same VM that failed and could not be undone (libvirtd went away for longer than the
    30 s the undo waits for it) is made anew, when no VM uses it.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.resource_module
  - virtops.libvirt.image_trust
options:
  name:
    description:
      - Name of the VM to make. Defaults to the name in the archive or the OVF.
      - Required with O(disks).
    type: str
  src:
    description:
      - Absolute path on the managed node of the archive, the C(.ova) or the C(.ovf) to import.
      - The kind is recognised by the content, see O(src_type).
      - For an OVF, the disk files are looked up beside it, and a manifest with the same stem
        (C(NAME.mf)) is used for checksums when it exists.
    type: path
  src_type:
    description:
      - What O(src) is. V(auto) recognises it by its content. An XML file is an OVF; a tar whose first
        member is C(virtops-export.json) is an archive of this collection; a tar whose first member is
        a C(.ovf) is an OVA.
    type: str
    choices: [auto, archive, ova, ovf]
    default: auto
  disks:
    description:
      - Bare disk images to import, in order. The first one is the boot disk.
      - Images with a backing file are refused.
    type: list
    elements: dict
    suboptions:
      path:
        description: Absolute path of the image on the managed node.
        type: path
        required: true
      format:
        description: Format of the image. Unset means it is probed with C(qemu-img info).
        type: str
        choices: [qcow2, raw, vmdk, vdi, vhdx, vpc]
      bus:
        description: Bus the guest sees the disk on.
        type: str
        choices: [virtio, scsi, sata, ide, usb]
        default: virtio
      target:
        description: Target device name (V(vda), V(sdb)...). Unset means the next free one of the bus.
        type: str
  pool:
    description: Storage pool for the new volumes. It must exist and be active.
    type: str
    default: default
  disk_format:
    description:
      - Format of the new volumes. Unset means V(qcow2) for pools of files (C(dir), C(fs), C(netfs)) and
        V(raw) for pools of block devices (C(logical), C(disk), C(iscsi)...).
    type: str
    choices: [qcow2, raw]
  network:
    description:
      - libvirt network for every interface of the imported VM.
      - Unset means that interfaces keep the networks the source names. These networks must then exist
        on this host. Bare disk images get no interface.
    type: str
  nic_model:
    description:
      - Model of every interface. Unset means the model the source has. OVF models that QEMU lacks
        become V(e1000), and interfaces added for O(disks) are V(virtio).
    type: str
    choices: [virtio, e1000, e1000e, rtl8139, vmxnet3]
  disk_bus:
    description:
      - Bus of every disk of an OVA/OVF, instead of the bus the OVF names. For example, use V(sata) for
        guests without virtio drivers, or V(virtio) for guests that have them.
    type: str
    choices: [virtio, scsi, sata, ide, usb]
  vcpus:
    description: vCPUs of the VM, instead of what the source says (V(1) for O(disks)).
    type: int
  memory:
    description:
      - Memory of the VM, instead of what the source says (V(1024) MiB for O(disks)). A number is MiB.
        A string may carry a unit, for example V(2GiB).
    type: str
  firmware:
    description: Firmware of a VM made from an OVA/OVF or O(disks), instead of what the OVF says (V(bios) for O(disks)).
    type: str
    choices: [bios, uefi]
  machine:
    description: Machine type of a VM made from an OVA/OVF or O(disks). Unset means V(q35).
    type: str
  virt_type:
    description:
      - V(kvm) or V(qemu) (emulation). V(auto) uses KVM when the host can.
      - An archived VM that used KVM is imported with V(qemu) when KVM is not usable here, with a warning.
    type: str
    choices: [auto, kvm, qemu]
    default: auto
  state:
    description:
      - V(present) imports the VM and leaves it stopped. V(running) also starts it. For a VM that exists,
        V(running) starts it when it is not running.
    type: str
    choices: [present, running]
    default: present
  force:
    description:
      - Replace a VM of the same name.
      - The old VM is powered off and undefined, and its volumes that no other VM uses are deleted.
        This happens after the source has been read and verified. If a later step fails, the old VM
        is not restored.
    type: bool
    default: false
  tmp_dir:
    description:
      - Directory on the managed node for the scratch directory, where disks of archives are unpacked
        and converted. It needs room for the largest disk, twice when the disk is converted.
      - Unset means the system's temporary directory (C(TMPDIR), else C(/tmp)).
    type: path
notes:
  - An OVA has no place for direct kernel boot settings or cloud-init seeds. Set them afterwards with
    M(virtops.libvirt.vm) when the guest needs them.
  - Only the first virtual system of an OVF is supported. An OVF with several (a VirtualSystemCollection)
    is refused.
seealso:
  - module: virtops.libvirt.vm
  - module: virtops.libvirt.export
"""

EXAMPLES = r"""
- name: Import an archive made by virtops.libvirt.export, on another network
  virtops.libvirt.vm_import:
    src: /srv/backup/web1.tar.zst
    pool: default
    network: lan

- name: Import a copy of it under a new name (new UUID and MAC addresses), and start it
  virtops.libvirt.vm_import:
    src: /srv/backup/web1.tar.zst
    name: web1-restore-test
    state: running

- name: Import an appliance from VMware or VirtualBox
  virtops.libvirt.vm_import:
    src: /srv/images/appliance.ova
    name: appliance
    pool: default
    network: default
    disk_bus: sata
    tmp_dir: /var/lib/libvirt/images

- name: Make a VM from bare disk images
  virtops.libvirt.vm_import:
    name: legacy1
    disks:
      - path: /srv/images/legacy1-system.vmdk
      - path: /srv/images/legacy1-data.raw
        format: raw
    vcpus: 2
    memory: 2GiB
    network: default

- name: Replace the VM with the state in the archive
  virtops.libvirt.vm_import:
    src: /srv/backup/web1.tar.zst
    force: true
"""

RETURN = r"""
vm:
  description:
    - The VM after the run (predicted in check mode), as M(virtops.libvirt.vm) returns it.
  returned: success
  type: dict
  sample: {"name": "web1", "state": "stopped", "vcpus": 1, "memory": 512, "disks": [{"target": "vda"}]}
replaced:
  description: Whether an existing VM was replaced (O(force=true)).
  returned: success
  type: bool
disks:
  description: The volumes the import made (or would make); empty when nothing was imported.
  returned: success
  type: list
  elements: dict
  contains:
    target:
      description: Target device of the disk in the VM.
      type: str
      sample: vda
    pool:
      description: Storage pool of the volume.
      type: str
      sample: default
    volume:
      description: Name of the volume.
      type: str
      sample: web1-vda.qcow2
    path:
      description: Path of the volume on the hypervisor.
      type: str
      sample: /var/lib/libvirt/images/web1-vda.qcow2
    format:
      description: Format of the volume.
      type: str
      sample: qcow2
    source_format:
      description: Format of the disk in the source (V(probed) in check mode when it is not declared).
      type: str
      sample: vmdk
    capacity:
      description: Size the guest sees, in bytes.
      type: int
      sample: 2147483648
source:
  description: What was read; null when nothing was read (the VM existed).
  returned: success
  type: dict
  contains:
    path:
      description: O(src); null for O(disks).
      type: str
    type:
      description: V(archive), V(ova), V(ovf) or V(disks).
      type: str
    format:
      description: Archive format (V(tar), V(tar.gz), V(tar.zst)) of an archive or OVA.
      type: str
    name:
      description: Name of the VM in the source.
      type: str
actions:
  description: What was done (or would be done in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["read and verify /srv/web1.ova", "create qcow2 volume web1-vda.qcow2 in pool default from disk vda (vmdk, converted)",
           "define VM web1"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._import.vm_import import ImportResource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.options import find
from ansible_collections.virtops.libvirt.plugins.module_utils._core.kind import run_resource
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.model import DISK_BUSES, INTERFACE_MODELS
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.options import OPTIONS as VM_OPTIONS

ARGUMENT_SPEC = dict(
    COMMON_ARGS,
    name=dict(type="str"),
    src=dict(type="path"),
    src_type=dict(type="str", default="auto", choices=["auto", "archive", "ova", "ovf"]),
    disks=dict(type="list", elements="dict", options=dict(
        path=dict(type="path", required=True),
        format=dict(type="str", choices=["qcow2", "raw", "vmdk", "vdi", "vhdx", "vpc"]),
        bus=dict(type="str", default="virtio", choices=list(DISK_BUSES)),
        target=dict(type="str"),
    )),
    pool=dict(type="str", default="default"),
    disk_format=dict(type="str", choices=["qcow2", "raw"]),
    network=dict(type="str"),
    nic_model=dict(type="str", choices=list(INTERFACE_MODELS)),
    disk_bus=dict(type="str", choices=list(DISK_BUSES)),
    vcpus=dict(type="int"),
    memory=dict(type="str"),
    firmware=find(VM_OPTIONS, "firmware").spec(),
    machine=dict(type="str"),
    virt_type=dict(type="str", default="auto", choices=["auto", "kvm", "qemu"]),
    state=dict(type="str", default="present", choices=["present", "running"]),
    force=dict(type="bool", default=False),
    tmp_dir=dict(type="path"),
)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("src", "disks")],
        required_one_of=[("src", "disks")],
        required_by=dict(disks="name"),
        supports_check_mode=True,
    )
    run_resource(module, ImportResource)


if __name__ == "__main__":
    main()
