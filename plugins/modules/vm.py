#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vm
short_description: Manage libvirt virtual machines (definition, disks, devices, run state)
version_added: 0.1.0
description:
  - Defines, starts, stops, pauses, restarts, clones, renames and removes a libvirt domain (VM), and
    keeps its definition as specified.
  - The VM is described with options (a typed model turned into domain XML), or with full domain XML
    in O(xml) for what the options do not cover.
  - Only what you specify is compared, never libvirt's defaults. A changed definition is written by
    redefining the VM in place. Its UUID, the MAC addresses of its interfaces, device addresses and
    every setting you did not specify are kept.
  - A running VM takes some changes at once (live) as well as in its definition. These are memory up
    to O(max_memory) (balloon), vCPUs up to O(max_vcpus), CD-ROM media, disk growth, O(title),
    O(description), O(tags) and O(metadata), and disks, CD-ROM drives and NICs added or removed
    (hot-plug; a removal waits up to O(hotplug_timeout) for the guest to release the device). The table
    R(What a running VM takes live,ansible_collections.virtops.libvirt.docsite.guide_behaviour.live)
    lists every change and its conditions. Any other change waits for the next boot and the module
    returns RV(reboot_required=true), on this run and on later runs until the VM was restarted. With
    O(apply=restart) the module restarts the VM itself.
  - New disks can be new volumes made for the VM (empty, or linked clones of a base image with
    O(disks[].backing_volume)). If a later step of the run fails, the volumes and the definition this
    run made are removed again, on a new connection when the libvirt daemon was restarted meanwhile.
  - All input is checked before anything changes. This covers unknown pools, volumes and networks, a
    writable disk that another VM uses or that is attached twice, two devices on one target, memory or
    vCPUs above what the host has (with O(xml) too), a machine type or CPU model the host does not
    offer, and MAC addresses that are all zeros, multicast, given twice, or used by another VM on the
    same network.
  - Before a run starts the VM (a new or stopped VM, O(state=restarted), O(apply=restart)) it checks
    what would make the start fail and can be known before anything is stopped. The files the
    definition names (kernel, initrd, disks, CD-ROM media) must exist, passed-through PCI devices must
    exist, networks must run and the CPU model must be usable. If a restart's start still fails, the
    previous definition is defined and started again, and the task fails saying so (with C(changed=true),
    as the guest was restarted).
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
      - Name of the VM.
      - It must not be empty, contain V(/) or control characters, be V(.) or V(..), or be longer
        than 128 characters.
    type: str
    required: true
  state:
    description:
      - V(running) defines the VM if needed and makes sure it runs (a paused VM is resumed).
      - V(stopped) shuts the VM down with an ACPI power button event and waits up to
        O(shutdown_timeout) seconds. If it is still running then, it is powered off when O(force=true),
        otherwise the task fails.
      - V(paused) makes sure the VM is started and paused.
      - V(restarted) stops (as V(stopped)) and starts the VM; this is always a change.
      - V(present) makes sure the VM is defined and leaves it running or stopped as it is (a new VM is
        left stopped).
      - V(absent) powers the VM off and undefines it, with its snapshot metadata, managed save image and
        UEFI variable store. Its disks are kept unless O(remove_storage=true).
    type: str
    choices: [present, running, stopped, paused, restarted, absent]
    default: running
  title:
    description: Short title of the VM (one line). An empty string removes it.
    type: str
  description:
    description: Free-form description of the VM. An empty string removes it.
    type: str
  vcpus:
    description:
      - Number of virtual CPUs the VM runs with.
      - Raised on a running VM at once when it stays within O(max_vcpus); lowering it needs a reboot.
      - A new VM gets 1.
    type: int
  max_vcpus:
    description:
      - Most vCPUs the VM can have; vCPUs up to this number can be added while it runs.
      - A new VM without it gets O(vcpus).
    type: int
  cpu:
    description:
      - The CPU model seen by the guest and its topology.
      - Without it a new VM gets libvirt's default model (C(qemu64) on x86_64), which runs everywhere but
        hides most host CPU features; V(host-passthrough) or V(host-model) are faster where the host
        supports them (nested virtualisation often does not support V(host-model)).
    type: dict
    suboptions:
      mode:
        description:
          - V(host-passthrough) shows the host CPU as it is (best performance; live migration only
            between identical hosts). V(host-model) shows a model close to the host's. V(custom)
            shows the named O(cpu.model). V(maximum) enables everything the hypervisor can.
        type: str
        choices: [host-passthrough, host-model, custom, maximum]
      model:
        description: CPU model name for V(custom), such as V(Haswell-noTSX) or V(qemu64).
        type: str
      sockets:
        description: Sockets; give O(cpu.sockets), O(cpu.cores) and O(cpu.threads) together, their product
          being O(max_vcpus) (or O(vcpus)).
        type: int
      cores:
        description: Cores per socket.
        type: int
      threads:
        description: Threads per core.
        type: int
  memory:
    description:
      - Memory of the VM. A number is MiB; a string may carry a unit (V(2GiB), V(512M)).
      - On a running VM it is changed at once (balloon) within O(max_memory).
      - A new VM gets 1024 MiB.
    type: str
  max_memory:
    description:
      - Most memory the VM can be given while it runs (libvirt's C(<memory>)); changing it needs a reboot.
      - A new VM without it gets O(memory).
    type: str
  machine:
    description:
      - QEMU machine type, such as V(q35) or V(pc). libvirt stores the versioned name (V(pc-q35-7.2)).
      - A new VM gets V(q35).
    type: str
  arch:
    description: Guest CPU architecture (V(x86_64), V(aarch64)...). A new VM gets the host's.
    type: str
  virt_type:
    description:
      - V(kvm) uses hardware virtualisation. V(qemu) emulates the CPU (TCG), which is slow but works
        where KVM does not.
      - V(auto) picks V(kvm) when the host offers it and V(qemu) otherwise. For an existing VM, V(auto)
        changes nothing.
      - A new VM gets V(auto).
    type: str
    choices: [kvm, qemu, auto]
  firmware:
    description:
      - V(bios) (SeaBIOS) or V(uefi) (OVMF). For V(uefi) libvirt picks the firmware build from the
        descriptors the firmware package installs, and creates the VM's UEFI variable store.
      - A new VM gets V(bios).
    type: str
    choices: [bios, uefi]
  secure_boot:
    description: With O(firmware=uefi), use a Secure Boot firmware build with the usual keys enrolled.
    type: bool
  nvram_template:
    description: With O(firmware=uefi), the variable store template a new variable store is copied from.
    type: path
  boot:
    description:
      - Boot devices in order (C(<os><boot dev=...>)). Cannot be combined with per-device C(boot_order).
    type: list
    elements: str
    choices: [hd, cdrom, network, fd]
  kernel:
    description: Direct kernel boot, the kernel image on the hypervisor. An empty string removes it.
    type: path
  initrd:
    description: Direct kernel boot, the initrd on the hypervisor.
    type: path
  cmdline:
    description: Direct kernel boot, the kernel command line.
    type: str
  disks:
    description:
      - The VM's disks, all of them. A disk is matched to the current definition by its target device;
        disks of the VM that are not in the list are detached (their volumes are kept).
      - A disk is an existing volume (O(disks[].pool) and O(disks[].volume)), a path, or a new volume. A
        new volume is made when O(disks[].volume) does not exist and O(disks[].size) or
        O(disks[].backing_volume) is given; without O(disks[].volume) its name is C(<vm>-<target>.qcow2)
        in pool C(default).
      - A writable disk cannot be a disk of another VM.
    type: list
    elements: dict
    suboptions:
      target:
        description: Target device (V(vda), V(sdb), V(hdc)). By default the next free name of the bus
          (virtio V(vdX); scsi, sata and usb V(sdX); ide V(hdX)), in list order.
        type: str
      bus:
        description: Disk bus. V(virtio) by default (or the bus the O(disks[].target) name implies).
        type: str
        choices: [virtio, scsi, sata, ide, usb]
      pool:
        description: Storage pool of the volume (V(default) for new volumes when not given).
        type: str
      volume:
        description: Volume name in O(disks[].pool).
        type: str
      path:
        description: A file or block device path instead of a pool volume.
        type: path
      size:
        description:
          - Size of a new volume (V(20G), V(512MiB), bytes as a number).
          - For an existing disk a larger size grows it (live with C(blockresize) when the VM runs); disks
            are never shrunk (a smaller size only warns).
        type: str
      format:
        description:
          - Image format. V(qcow2) for new volumes. For existing images, unset means the format of the VM's
            own definition of that disk, else the collection's record of the volume, else libvirt's report
            of it; a declared format that differs from the recorded one is refused (see the notes).
        type: str
        choices: [qcow2, raw]
      backing_volume:
        description: Make the new volume a qcow2 linked clone of this volume (a base image).
        type: str
      backing_pool:
        description: Pool of O(disks[].backing_volume) (default O(disks[].pool)).
        type: str
      cache:
        description: Host cache mode (V(none) is best with O_DIRECT-capable storage).
        type: str
        choices: [default, none, writethrough, writeback, directsync, unsafe]
      discard:
        description: Pass guest TRIM/discard to the image (V(unmap)) or drop it (V(ignore)).
        type: str
        choices: [unmap, ignore]
      serial:
        description: Disk serial number the guest sees (1-20 letters, digits, C(_.+-)).
        type: str
      readonly:
        description: Attach read-only. Read-only disks may be shared between VMs and are never deleted
          by O(remove_storage).
        type: bool
      boot_order:
        description: Boot priority of this disk (1 first). Cannot be combined with O(boot).
        type: int
      encryption:
        description:
          - The disk is a LUKS-encrypted volume, a qcow2 image or a raw LUKS image (made by the
            M(virtops.libvirt.volume) module with its O(virtops.libvirt.volume#module:encryption) option);
            QEMU decrypts it with the passphrase of this libvirt secret (see the M(virtops.libvirt.secret)
            module). The passphrase is never in the VM's XML.
          - The volume must exist; the vm module does not create encrypted volumes.
          - Encrypted images are refused as disks without this option.
        type: dict
        suboptions:
          format:
            description: The encryption format.
            type: str
            choices: [luks]
            default: luks
          secret:
            description: The libvirt secret, by UUID or by the usage of a volume secret (by convention the volume's path).
            type: str
            required: true
  cdroms:
    description:
      - The VM's CD-ROM drives, all of them, matched by target device.
      - A drive without O(cdroms[].path) or O(cdroms[].volume) is empty. Inserting, changing and ejecting
        media happens at once on a running VM; adding or removing drives waits for a reboot.
      - The default bus is V(sata), or V(ide) on the i440fx (V(pc)) machine types.
    type: list
    elements: dict
    suboptions:
      target:
        description: Target device (V(sda), V(hdc)...). By default the next free name of the bus.
        type: str
      bus:
        description: Bus of the drive.
        type: str
        choices: [sata, ide, scsi, usb]
      path:
        description: ISO image path on the hypervisor.
        type: path
      pool:
        description: Pool of O(cdroms[].volume).
        type: str
      volume:
        description: ISO image volume.
        type: str
      boot_order:
        description: Boot priority (1 first).
        type: int
  interfaces:
    description:
      - The VM's network interfaces, all of them, matched by position.
      - Give exactly one of O(interfaces[].network), O(interfaces[].bridge) or O(interfaces[].direct).
      - A MAC address is generated by libvirt once and then kept across redefinitions.
    type: list
    elements: dict
    suboptions:
      network:
        description: Name of a libvirt network.
        type: str
      bridge:
        description: Name of a host bridge.
        type: str
      direct:
        description: Host device for a macvtap (direct) interface.
        type: str
      mode:
        description: Mode of a O(interfaces[].direct) interface (V(bridge) by default).
        type: str
        choices: [bridge, vepa, private, passthrough]
      model:
        description: NIC model the guest sees (V(virtio) for new interfaces).
        type: str
        choices: [virtio, e1000, e1000e, rtl8139, vmxnet3]
      mac:
        description: MAC address (unicast). Generated when not given.
        type: str
      boot_order:
        description: Network boot priority (1 first).
        type: int
      filter:
        description:
          - "The libvirt network filter (firewall rules, see the M(virtops.libvirt.nwfilter) module) of this
            interface, with its parameters, for example V({name: clean-traffic, parameters: {IP: 192.168.210.10}})."
          - "V({name: \"\"}) removes the interface's filter. Without this option the filter is left as it is."
          - On a running VM a changed filter or parameter is applied at once (a live device update), without a
            restart.
        type: dict
        suboptions:
          name:
            description: Name of the network filter (V("") for none).
            type: str
            required: true
          parameters:
            description: The filter's parameters; a list gives a parameter several values.
            type: dict
  graphics:
    description:
      - Graphical console. A new VM gets VNC listening on 127.0.0.1 with an automatic port.
    type: dict
    suboptions:
      type:
        description: V(none) removes the graphical console. Without it, a new console is VNC and an existing
          one keeps its type.
        type: str
        choices: [vnc, spice, none]
      listen:
        description: Address to listen on.
        type: str
      port:
        description: Fixed port (5900-65535), or V(-1) for an automatic one.
        type: int
      password:
        description: Console password. Never returned, logged or shown in a diff.
        type: str
  serial:
    description: Serial console (with a matching C(<console>)). A new VM gets a V(pty).
    type: dict
    suboptions:
      type:
        description: V(pty) (C(virsh console)) or V(file) (everything the guest writes goes to O(serial.path)).
          Without it, V(file) when O(serial.path) is given, else V(pty).
        type: str
        choices: [pty, file]
      path:
        description: Log file for V(file).
        type: path
  guest_agent:
    description: Give the VM the C(org.qemu.guest_agent.0) channel qemu-guest-agent talks on. On for new VMs.
    type: bool
  rng:
    description: A virtio random number generator fed from the host's C(/dev/urandom). On for new VMs.
    type: bool
  watchdog:
    description: A watchdog device and what happens when the guest stops feeding it.
    type: dict
    suboptions:
      model:
        description: Watchdog model. A new watchdog is V(i6300esb); an existing one keeps its model.
        type: str
        choices: [i6300esb, itco, ib700]
      action:
        description: What libvirt does when the watchdog fires. A new watchdog does V(reset).
        type: str
        choices: [reset, shutdown, poweroff, pause, none, dump, inject-nmi]
  hostdevs:
    description:
      - Host PCI devices passed through to the VM (GPU passthrough), by PCI address (V(0000:01:00.0)),
        managed by libvirt (detached from their host driver while the VM runs). The list is complete.
      - A device may also be named by libvirt's node device name (V(pci_0000_01_00_0)), as
        virtops.libvirt.host_device_info returns it. The VM's model keeps the PCI address.
      - A device added by this run must exist on the host and not be passed through to another VM
        (which is named); both are checked before anything changes.
    type: list
    elements: str
  tpm:
    description:
      - An emulated TPM 2.0 (C(swtpm) on the hypervisor; Windows 11 requires a TPM 2.0, and
        V(tpm-crb) with UEFI and O(secure_boot)).
      - libvirt keeps the TPM's state in C(/var/lib/libvirt/swtpm/<uuid>); O(state=absent) removes it
        with the VM. O(tpm.model=none) removes the TPM (and its state when the VM is next undefined).
      - Needs the C(swtpm) and C(swtpm-tools) packages on the hypervisor (the hypervisor role installs
        them); a host without them is refused before anything changes. Applied at the next start
        (RV(reboot_required)).
    type: dict
    suboptions:
      model:
        description: The TPM interface. V(tpm-crb) suits q35 and UEFI guests; V(none) removes the TPM.
        type: str
        choices: [tpm-crb, tpm-tis, none]
        default: tpm-crb
  filesystems:
    description:
      - Host directories shared with the guest through virtiofs. The guest mounts one with
        C(mount -t virtiofs TARGET /mnt). The list is complete (V([]) removes every share).
      - A VM with shares gets shared memory (C(<memoryBacking>) with a C(memfd) source and shared
        access), which virtiofs needs; it stays when the shares are removed.
      - Needs C(virtiofsd) on the hypervisor (Debian 12 has C(/usr/lib/qemu/virtiofsd) in
        qemu-system-common; libvirt finds it through QEMU's vhost-user descriptors). Applied at the
        next start (RV(reboot_required)).
    type: list
    elements: dict
    suboptions:
      source:
        description: The directory on the hypervisor (absolute path).
        type: path
        required: true
      target:
        description: The mount tag the guest sees (1-36 letters, digits or C(_.:-)).
        type: str
        required: true
      readonly:
        description:
          - Export the directory read-only. This needs libvirt 11 or later on the hypervisor; with an
            older one (Debian 12 has 9.0) it is refused before anything changes, so mount the share
            read-only in the guest instead.
        type: bool
        default: false
  pinning:
    description:
      - CPU pinning (C(<cputune>)). CPU sets use libvirt's syntax (V(0-3,^2,6)) and are compared as
        sets.
      - A running VM takes new pins at once (C(virDomainPinVcpuFlags), C(virDomainPinEmulator)) as
        well as in its definition; a removed pin is a pin to every host CPU there.
    type: dict
    suboptions:
      vcpus:
        description: Which host CPUs each vCPU runs on. The list is complete (V([]) removes every vCPU pin).
        type: list
        elements: dict
        suboptions:
          vcpu:
            description: The vCPU number (from 0, below the VM's O(max_vcpus)).
            type: int
            required: true
          cpuset:
            description: Host CPUs (libvirt CPU set syntax), each below the host's CPU count.
            type: str
            required: true
      emulator:
        description: Host CPUs for QEMU's emulator threads; V("") removes the pin.
        type: str
  numa:
    description:
      - Guest NUMA topology, one item per cell (cell C(i) has id C(i)). Each vCPU (0 to O(max_vcpus)-1)
        must be in exactly one cell. V([]) removes the cells.
      - libvirt makes the VM's maximum memory the sum of the cells, so O(max_memory) (when given) must
        equal it; when not given it becomes that sum.
      - Applied at the next start (RV(reboot_required)).
    type: list
    elements: dict
    suboptions:
      cpus:
        description: The cell's vCPUs (CPU set syntax, V(0-1)).
        type: str
        required: true
      memory:
        description: The cell's memory, MiB as a number or a size with unit (V(1GiB)).
        type: str
        required: true
  hugepages:
    description:
      - Back the guest's memory with huge pages of this size (V(2MiB), V(1GiB)), V(default) (the host's
        default huge page size) or V(none) (ordinary pages).
      - The size must be one the host has; the pages must be reserved on the host (C(vm.nr_hugepages))
        before the VM starts. Applied at the next start (RV(reboot_required)).
    type: str
  tags:
    description:
      - Free-form tags stored in the VM's metadata (in the collection's XML namespace); the inventory
        plugin groups on them. The list is complete; order does not matter.
    type: list
    elements: str
  metadata:
    description: Key/value pairs stored in the VM's metadata beside O(tags). The dict is complete.
    type: dict
  xml:
    description:
      - Full domain XML instead of the options that describe the VM. It is compared with the VM's
        definition as a subset (what libvirt adds does not count). Its C(<name>) must be O(name) or absent.
    type: str
  autostart:
    description: Whether libvirt starts the VM when it starts.
    type: bool
  shutdown_timeout:
    description: Seconds to wait for an ACPI shutdown (O(state=stopped), restarts); a positive number.
    type: int
    default: 120
  hotplug_timeout:
    description:
      - Seconds to wait for the guest of a running VM to release a disk, CD-ROM drive or NIC that is
        removed live; a positive number.
      - When the guest does not release it in time (paused, hung, no hot-plug support), the task fails
        with RV(ignore:error_kind=timeout) and the device stays in the definition as it stays in the
        running VM.
    type: int
    default: 60
  pcie_spare_ports:
    description:
      - Free PCIe root ports a new VM with a q35 machine gets, so that as many PCI devices (virtio
        disks, NICs) can be plugged in while it runs; each such device needs a free port, and a port
        cannot be added to a running VM. libvirt alone leaves one.
      - Only when the module creates the VM (not with O(xml)). An existing VM keeps the ports it has and
        is never reported as changed for them.
      - V(0) leaves the ports as libvirt makes them. At most V(32).
    type: int
    default: 4
  force:
    description: Power the VM off when it does not shut down within O(shutdown_timeout).
    type: bool
    default: false
  remove_storage:
    description:
      - With O(state=absent), also delete the volumes of the VM's writable disks.
      - A volume is kept (with a warning) when another VM uses it, another volume is based on it, or it
        is not in a libvirt storage pool. CD-ROM media and read-only disks are never deleted. Another
        VM counts whether it runs or not, and so do the disks of its snapshots.
    type: bool
    default: false
  apply:
    description:
      - What to do when a running VM's definition changed in a way that waits for a reboot.
      - V(config) leaves it running and returns RV(reboot_required=true). V(restart) shuts it down (as
        O(state=stopped)) and starts it again.
    type: str
    choices: [config, restart]
    default: config
  rename_from:
    description:
      - Rename the stopped VM of this name to O(name). Nothing happens when O(name) exists already, so
        the task stays idempotent. When neither exists the task fails (it does not create an empty VM).
    type: str
  clone_from:
    description:
      - Make the new VM a copy of this stopped VM, or of its snapshot O(clone_snapshot). Its definition is
        copied with a new UUID, new MAC addresses and a new UEFI variable store; each writable disk is
        copied into a new volume C(<name>-<target>) in the same pool (read-only disks are shared).
        Other options given are applied on top.
      - Ignored when O(name) exists.
    type: str
  clone_snapshot:
    description:
      - Clone the state saved in this snapshot of O(clone_from) (its definition and disks as they were
        when the snapshot was taken), instead of the VM's current state.
      - From an external (C(disk_only)) snapshot the source VM may be running, and O(clone_mode=linked)
        makes overlays on the files the snapshot froze. M(virtops.libvirt.snapshot) then refuses to
        delete that snapshot while the clone uses them.
      - An internal snapshot is copied in full with C(qemu-img) on the hypervisor. The source VM must be
        stopped, and O(uri) must be local, so the task must run on the hypervisor.
    type: str
  clone_mode:
    description:
      - V(full) copies each disk. V(linked) makes each new disk a qcow2 overlay whose backing file is the
        source VM's disk; the source must then stay unchanged.
    type: str
    choices: [full, linked]
    default: full
  template:
    description:
      - For a new VM, the template (made by M(virtops.libvirt.vm_template)) to make it from, as O(clone_mode) says.
        V(linked) makes each disk a qcow2 overlay on the template's read-only base volume, V(full) copies it.
      - The VM takes the template's definition (memory, vCPUs, disks, NICs, machine, kernel...) with a new
        UUID and new MAC addresses; options given in the task win. Give it its own O(cloud_init) seed to set its
        host name. Ignored for an existing VM. The task must run on the hypervisor (a local O(uri)).
    type: str
  template_pool:
    description: The pool that keeps O(template).
    type: str
    default: default
  cloud_init:
    description:
      - A cloud-init NoCloud seed for the VM, made (or updated) by the module and attached as one more
        CD-ROM, or as a read-only virtio disk.
      - It takes the content options of M(virtops.libvirt.cloudinit) (O(virtops.libvirt.cloudinit#module:user_data),
        C(meta_data), C(network_config), C(vendor_data), C(hostname), C(users), C(password),
        C(ssh_authorized_keys), C(packages), C(runcmd), C(write_files)), plus C(pool) (default V(default)),
        C(volume) (the seed volume, default C(<name>-seed.iso)) and C(bus) (V(sata), V(ide), V(scsi), V(usb)
        for a CD-ROM on that bus, the default being the machine's CD-ROM bus; V(virtio) for a disk).
      - With only C(volume), an existing seed volume is attached as it is.
      - A changed seed gets a new instance-id, so cloud-init runs again at the next boot.
      - C(detach=true) removes the seed after first boot. Once the VM has booted with the seed, the module
        waits (up to C(detach_timeout) seconds, default 900) for cloud-init to finish, through the guest
        agent. It checks that the guest runs the seed's instance-id, then ejects the CD-ROM (or detaches
        the disk) and deletes the seed volume. It records the instance-id in the VM's metadata, so later
        runs with the same content neither attach nor make the seed again. New content makes a new seed,
        which is detached the same way after the next boot. This needs O(state=running) and the guest agent.
      - Only secrets are kept out of logs, results and diffs. C(password) and C(users[].password) are
        C(no_log), and the secret values inside C(user_data), C(vendor_data), C(network_config),
        C(meta_data) and C(write_files) are found and masked (see M(virtops.libvirt.cloudinit) for the
        list). Other values, such as C(pool) or C(hostname), stay readable in messages.
      - O(state=absent) with O(remove_storage=true) also deletes C(<name>-seed.iso).
    type: dict
    suboptions:
      user_data:
        description: The user-data, a dict (cloud-config) or a text, as O(virtops.libvirt.cloudinit#module:user_data).
        type: raw
      meta_data:
        description: The meta-data, as O(virtops.libvirt.cloudinit#module:meta_data).
        type: dict
      network_config:
        description: The network-config, as O(virtops.libvirt.cloudinit#module:network_config).
        type: raw
      vendor_data:
        description: The vendor-data, as O(virtops.libvirt.cloudinit#module:vendor_data).
        type: raw
      hostname:
        description: Host name of the guest, as O(virtops.libvirt.cloudinit#module:hostname).
        type: str
      users:
        description: Users to create, as O(virtops.libvirt.cloudinit#module:users).
        type: list
        elements: dict
        suboptions:
          name:
            description: User name; V(default) means the image's default user.
            type: str
            required: true
          password:
            description: Password of the user, written only as a SHA-512 crypt hash; never logged.
            type: str
          ssh_authorized_keys:
            description: Public SSH keys for the user.
            type: list
            elements: str
          sudo:
            description: A sudoers rule.
            type: str
          groups:
            description: Supplementary groups.
            type: list
            elements: str
          shell:
            description: Login shell.
            type: str
          lock_passwd:
            description: Whether password login is locked.
            type: bool
          gecos:
            description: Full name or comment.
            type: str
      password:
        description: Password of the image's default user, written only as a SHA-512 crypt hash; never logged.
        type: str
      ssh_authorized_keys:
        description: Public SSH keys for the image's default user.
        type: list
        elements: str
      packages:
        description: Packages to install at first boot.
        type: list
        elements: raw
      runcmd:
        description: Commands to run at the end of the first boot.
        type: list
        elements: raw
      write_files:
        description: Files to write at first boot, the cloud-config C(write_files) entries.
        type: list
        elements: dict
      pool:
        description: Storage pool of the seed volume.
        type: str
        default: default
      volume:
        description: Name of the seed volume. Unset means C(<name>-seed.iso).
        type: str
      bus:
        description:
          - V(sata), V(ide), V(scsi) or V(usb) attach the seed as a CD-ROM on that bus; V(virtio) as a read-only disk.
          - Unset means a CD-ROM on the machine's CD-ROM bus.
        type: str
        choices: [sata, ide, scsi, usb, virtio]
      detach:
        description: Remove the seed after the guest booted with it and cloud-init finished (see above).
        type: bool
        default: false
      detach_timeout:
        description: Seconds to wait for cloud-init to finish before the seed is detached.
        type: int
        default: 900
  wait_for_ip:
    description:
      - After the run, when the VM runs, wait until each of its interfaces has an IPv4 address and
        return the addresses.
    type: bool
    default: false
  wait_for_ip_timeout:
    description: Seconds to wait for O(wait_for_ip); a positive number.
    type: int
    default: 300
  ip_source:
    description:
      - Where addresses come from. V(lease) asks libvirt networks' DHCP server. V(agent) asks the guest
        agent. V(arp) reads the host's ARP table. V(any) tries them in that order (agent first).
    type: str
    choices: [lease, agent, arp, any]
    default: any
  wait_for:
    description:
      - After the run, when the VM runs, wait until it is ready in these ways, in this order whatever
        the order given, within one deadline of O(wait_for_timeout) seconds; the result is in RV(ready).
      - V(agent) waits until the QEMU guest agent answers C(guest-ping) (the VM needs
        O(guest_agent=true) and qemu-guest-agent in the guest; without an agent channel it fails at once).
      - V(cloud_init) waits until cloud-init has finished this boot, read through the agent from
        C(/run/cloud-init/result.json) and C(status.json) (C(guest-file-open/read), no C(guest-exec)).
        When cloud-init reports errors (a failing C(runcmd) makes its C(scripts-user) module fail), the
        task fails with cloud-init's own messages and the state in C(cloud_init); when cloud-init is
        disabled in the guest, it fails at once.
      - V(ip) is O(wait_for_ip=true) (which is kept), every interface gets an IPv4 address from O(ip_source).
      - A VM that is ready already returns at once, with C(changed=false) when nothing else changed.
        In check mode the module waits only for a VM that runs already and that the run would not
        start, restart or shut down; RV(ready) is null otherwise.
      - Only with O(state=running), V(restarted) or V(present).
    type: list
    elements: str
    choices: [agent, cloud_init, ip]
    version_added: 0.2.0
  wait_for_timeout:
    description:
      - Seconds for everything in O(wait_for), counted from the end of the run's changes; on timeout the
        task fails with what was seen last (the changes made stay).
      - Without O(wait_for), O(wait_for_ip=true) waits O(wait_for_ip_timeout) seconds as before.
    type: int
    default: 600
    version_added: 0.2.0
notes:
  - O(memory), O(max_memory) and disk sizes are checked against the host; a name, pool, volume,
    network or host interface that does not exist fails the task before anything changes.
seealso:
  - module: virtops.libvirt.vm_info
  - module: virtops.libvirt.volume
  - module: virtops.libvirt.network
"""

EXAMPLES = r"""
- name: A VM with a linked clone of a base image, on the default network
  virtops.libvirt.vm:
    name: web1
    vcpus: 2
    memory: 2GiB
    disks:
      - backing_volume: debian-12.qcow2
        pool: default
        size: 20G
    interfaces:
      - network: default
    tags: [web, prod]
    autostart: true
    wait_for_ip: true
  register: web1

- name: Boot with a cloud-init seed and wait until cloud-init finished (fails with its errors)
  virtops.libvirt.vm:
    name: build1
    memory: 1GiB
    disks:
      - backing_volume: debian-12.qcow2
        size: 10G
    guest_agent: true
    cloud_init:
      hostname: build1
      runcmd:
        - [sh, -c, "apt-get update"]
    wait_for: [agent, cloud_init]
    wait_for_timeout: 900
  register: build1

- name: Grow memory of a running VM within its maximum (applied live)
  virtops.libvirt.vm:
    name: web1
    memory: 3GiB
    max_memory: 4GiB
    apply: restart   # max_memory needs a reboot; restart when needed

- name: Insert an ISO into the first CD-ROM drive of a running VM
  virtops.libvirt.vm:
    name: web1
    cdroms:
      - path: /var/lib/libvirt/images/tools.iso

- name: UEFI with Secure Boot, host CPU, two data disks on virtio-scsi
  virtops.libvirt.vm:
    name: db1
    firmware: uefi
    secure_boot: true
    cpu:
      mode: host-passthrough
    vcpus: 4
    memory: 8GiB
    disks:
      - volume: db1-root.qcow2
        size: 40G
      - volume: db1-data.qcow2
        size: 200G
        bus: scsi
        cache: none
        discard: unmap
    interfaces:
      - bridge: br0
    graphics:
      type: vnc
      password: "{{ vault_vnc_password }}"

- name: Clone a stopped template VM as a linked clone
  virtops.libvirt.vm:
    name: web2
    clone_from: web-template
    clone_mode: linked
    state: running

- name: A VM made from template debian12 as a linked clone, with its own host name
  virtops.libvirt.vm:
    name: web3
    template: debian12
    clone_mode: linked
    cloud_init:
      hostname: web3

- name: A test copy of db1 as it was at its nightly external snapshot (db1 keeps running)
  virtops.libvirt.vm:
    name: db1-test
    clone_from: db1
    clone_snapshot: nightly-20261123
    clone_mode: linked

- name: Shut down, waiting at most 60 s before powering off
  virtops.libvirt.vm:
    name: web1
    state: stopped
    shutdown_timeout: 60
    force: true

- name: Remove a VM and the volumes only it uses
  virtops.libvirt.vm:
    name: web2
    state: absent
    remove_storage: true

- name: A Windows 11 VM - UEFI with secure boot and an emulated TPM 2.0
  virtops.libvirt.vm:
    name: win11
    memory: 4GiB
    vcpus: 2
    firmware: uefi
    secure_boot: true
    tpm:
      model: tpm-crb
    disks:
      - size: 64G

- name: Share a host directory (virtiofs), pin vCPUs, two NUMA cells on huge pages
  virtops.libvirt.vm:
    name: db1
    vcpus: 4
    filesystems:
      - source: /srv/exports/db1
        target: data
    pinning:
      vcpus:
        - {vcpu: 0, cpuset: "2"}
        - {vcpu: 1, cpuset: "3"}
        - {vcpu: 2, cpuset: "4"}
        - {vcpu: 3, cpuset: "5"}
      emulator: "0-1"
    numa:
      - {cpus: "0-1", memory: 2GiB}
      - {cpus: "2-3", memory: 2GiB}
    hugepages: 2MiB
"""

RETURN = r"""
vm:
  description: The VM after the run (predicted in check mode); null when it is absent.
  returned: success
  type: dict
  contains:
    name:
      description: Name.
      type: str
    uuid:
      description: UUID (null for a VM that check mode would create).
      type: str
    state:
      description: V(running), V(paused), V(stopped), or libvirt's name for rarer states (V(crashed), V(pmsuspended)).
      type: str
    autostart:
      description: Whether libvirt starts the VM when it starts.
      type: bool
    persistent:
      description: Whether the VM is defined (not transient).
      type: bool
    vcpus:
      description: vCPUs of the definition.
      type: int
    max_vcpus:
      description: Most vCPUs.
      type: int
    memory:
      description: Memory in MiB.
      type: int
    max_memory:
      description: Most memory in MiB.
      type: int
    virt_type:
      description: V(kvm) or V(qemu).
      type: str
    machine:
      description: Machine type.
      type: str
    firmware:
      description: V(bios) or V(uefi).
      type: str
    disks:
      description:
        - Disks with target, bus, path, format, size (bytes; null when unknown), cache, discard, readonly.
        - C(pool) and C(volume) name the storage pool volume that is the disk's file (for disks given by
          path too); null for a file of no pool.
      type: list
      elements: dict
    cdroms:
      description: CD-ROM drives with target, bus, path (null when empty), and C(pool) and C(volume) as for disks.
      type: list
      elements: dict
    interfaces:
      description: Interfaces with type, source, model and MAC address (and C(addresses) with O(wait_for_ip)).
      type: list
      elements: dict
    graphics:
      description: Graphical console type, listen address and port (V(-1) for automatic); never the password.
      type: dict
    tags:
      description: Tags.
      type: list
      elements: str
    metadata:
      description: Key/value metadata.
      type: dict
    active:
      description: Whether the VM has a running (or paused) QEMU process.
      type: bool
    title:
      description: Title (empty string when none).
      type: str
    description:
      description: Description (empty string when none).
      type: str
    arch:
      description: Guest architecture.
      type: str
    cpu:
      description: CPU C(mode), C(model) and topology (C(sockets), C(cores), C(threads)); null values where libvirt has none.
      type: dict
    secure_boot:
      description: Whether UEFI Secure Boot is on.
      type: bool
    nvram:
      description: Path of the UEFI variable store.
      type: str
    nvram_template:
      description: Template of the UEFI variable store.
      type: str
    boot:
      description: Boot devices of C(<os>) in order.
      type: list
      elements: str
    kernel:
      description: Direct kernel boot kernel (empty string when none); C(initrd) and C(cmdline) likewise.
      type: str
    initrd:
      description: Direct kernel boot initrd.
      type: str
    cmdline:
      description: Direct kernel boot command line.
      type: str
    serial:
      description: Serial console C(type) (V(pty), V(file), V(none)) and C(path).
      type: dict
    guest_agent:
      description: Whether the guest agent channel is there.
      type: bool
    rng:
      description: Whether a virtio RNG is there.
      type: bool
    watchdog:
      description: Watchdog C(model) and C(action), or null.
      type: dict
    hostdevs:
      description: PCI addresses passed through.
      type: list
      elements: str
    tpm:
      description: The TPM's C(model) (V(none) without one) and C(version).
      type: dict
    filesystems:
      description: virtiofs shares, each with C(source), C(target) and C(readonly), sorted by target.
      type: list
      elements: dict
    pinning:
      description: C(vcpus) (items with C(vcpu) and C(cpuset)) and C(emulator) (V("") when not pinned).
      type: dict
    numa:
      description: Guest NUMA cells, each with C(cpus) and C(memory) (MiB).
      type: list
      elements: dict
    hugepages:
      description: V(none), V(default) or the huge page size.
      type: str
reboot_required:
  description:
    - Whether the VM runs with a definition that differs from its saved one in what only a reboot
      applies. It stays true on later runs until the VM was restarted.
  returned: success
  type: bool
pending_changes:
  description: What waits for the reboot (paths into the model, such as C(max_memory) or C(disks.vdb)).
  returned: success
  type: list
  elements: str
addresses:
  description: With O(wait_for_ip), per interface its MAC, name and addresses, and where they came from.
  returned: when O(wait_for_ip=true) and the VM runs
  type: list
  elements: dict
  sample: [{"mac": "52:54:00:12:34:56", "name": "eth0", "source": "agent",
            "addresses": [{"type": "ipv4", "address": "192.168.122.50", "prefix": 24}]}]
ip:
  description: The first IPv4 address found (with O(wait_for_ip)).
  returned: when O(wait_for_ip=true) and the VM runs
  type: str
  sample: 192.168.122.50
ready:
  description:
    - What O(wait_for) (or O(wait_for_ip)) waited for (C(conditions)), whether the guest agent answered
      (C(agent)), cloud-init's state (C(cloud_init), with C(status) V(done), C(errors),
      C(recoverable_errors), C(datasource) and per stage C(start), C(finished), C(errors)) and how long
      the wait took (C(seconds)).
    - Null in check mode when the run would start the VM (the module does not wait then).
  returned: when O(wait_for) or O(wait_for_ip=true) is given and the VM runs
  type: dict
  sample: {"conditions": ["agent", "cloud_init"], "agent": true, "seconds": 93.4,
           "cloud_init": {"status": "done", "finished": true, "errors": [], "recoverable_errors": {},
                          "datasource": "DataSourceNoCloud [seed=/dev/sr0][dsmode=net]", "stage": null,
                          "stages": {"init": {"start": 1796666445.97, "finished": 1796666448.15, "errors": []}}}}
cloud_init:
  description: With O(cloud_init) content, the seed volume's C(path), its C(instance_id) and C(content_sha256),
    whether it C(changed), and whether it was C(detached) after first boot (C(cloud_init.detach)).
  returned: when O(cloud_init) has content
  type: dict
actions:
  description: What the module did (or would do in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["create qcow2 volume web1-vda.qcow2 in pool default", "define VM web1", "start VM web1"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._domain.kind import VM

ARGUMENT_SPEC = VM.argument_spec


def main():
    VM.run(AnsibleModule(**VM.module_kwargs()))


if __name__ == "__main__":
    main()
