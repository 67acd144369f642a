# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks of a VM definition made before anything changes.

* **Host limits**: memory and vCPUs no larger than the host, for every way a definition is made
  (the ``vm`` options, ``xml``, ``vm_import``).
* **What the host offers**: the machine type and a named CPU model.  libvirt's own messages for
  these mislead (an unknown machine type fails with "No PCI buses available").
* **One VM**: a writable disk file is attached once; MAC addresses are unique, neither all-zero nor
  multicast, and not used by another VM on the same network, bridge or host device.
* **Before a start** (a new VM, a stopped one, a restart): the files the definition names exist on
  the hypervisor, passed-through PCI devices exist, the networks run, and the CPU model is usable.
  A restart checks all of this before it shuts the VM down.  A file or a running network that an
  earlier task of the play could provide is a check-mode assumption (``ctx.assume``).

Files are looked up as storage pool volumes first (libvirt sees them as the daemon does), then,
for a local URI only, in this machine's file system; on a remote hypervisor a file of no pool is
not checked (libvirt reports it at the start, and a restart brings the old definition back).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors, uri_is_local
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import from_libvirt_units

_XML_INACTIVE = flag("VIR_DOMAIN_XML_INACTIVE", 2)


# --- host limits ---------------------------------------------------------------------------------

def check_host_limits(host, model, prefix=""):
    """``host`` (``cpus``, ``memory`` in bytes) against the model's vCPUs and memory (MiB)."""
    for key in ("vcpus", "max_vcpus"):
        value = model.get(key)
        if value and value > host["cpus"]:
            raise InvalidInputError("%s%s: %d is more than the %d CPUs of the host" % (prefix, key, value, host["cpus"]))
    for key in ("memory", "max_memory"):
        value = model.get(key)
        if value and value * _domain.MIB > host["memory"]:
            raise InvalidInputError("%s%s: %d MiB is more than the host's memory (%d MiB)"
                                    % (prefix, key, value, host["memory"] // _domain.MIB))


def check_xml_limits(host, root, prefix="xml: "):
    """The host limits for a whole domain definition, ``<maxMemory>`` (memory hot-plug) included."""
    check_host_limits(host, _domain.model_from_xml(root), prefix)
    node = root.find("maxMemory")
    if node is not None and (node.text or "").strip():
        try:
            size = from_libvirt_units(node.text.strip(), node.get("unit") or "KiB")
        except InvalidInputError:
            raise InvalidInputError("%s<maxMemory>: %r is not a size" % (prefix, node.text))
        if size > host["memory"]:
            raise InvalidInputError("%s<maxMemory>: %d MiB is more than the host's memory (%d MiB)"
                                    % (prefix, size // _domain.MIB, host["memory"] // _domain.MIB))


# --- machine type and CPU model ------------------------------------------------------------------

def machine_types(caps, arch):
    """``{name: canonical name or None}`` of the machine types the host offers for ``arch``."""
    names = {}
    for guest in caps.findall("guest"):
        node = guest.find("arch")
        if _xml.find_text(guest, "os_type") != "hvm" or node is None or node.get("name") != arch:
            continue
        for machine in node.iter("machine"):
            text = (machine.text or "").strip()
            if text:
                names[text] = machine.get("canonical") or names.get(text)
    return names


def check_machine(caps, machine, arch, what="machine"):
    """An unknown machine type, named as such (a driver that lists none is not checked)."""
    if not machine:
        return
    arch = arch or _xml.find_text(caps, "host/cpu/arch")
    names = machine_types(caps, arch)
    if not names or machine in names:
        return
    aliases = sorted("%s (%s)" % (name, canonical) for name, canonical in names.items() if canonical)
    raise InvalidInputError("%s: %r is not a machine type of this hypervisor for %s; it offers %s and %d versioned "
                            "ones (host_info lists them all as machine_types)"
                            % (what, machine, arch, ", ".join(aliases) or "none by alias", len(names) - len(aliases)))


def cpu_models(conn, arch, machine, virt_type):
    """``{model: usable}`` (``yes``, ``no``, ``unknown``) from the domain capabilities, or None when the
    driver does not describe them."""
    try:
        text = conn.getDomainCapabilities(None, arch, machine, virt_type, 0)
    except libvirt.libvirtError:
        return None
    mode = _xml.parse(text, "domain capabilities").find("cpu/mode[@name='custom']")
    if mode is None:
        return None
    return dict((m.text.strip(), m.get("usable") or "unknown") for m in mode.findall("model") if (m.text or "").strip())


def check_cpu_model(conn, cpu, arch, machine, virt_type, what="cpu.model", usable=False):
    """A named CPU model QEMU does not know is an error; with ``usable``, so is one the host's CPU
    cannot provide under KVM (the start would fail on the missing features)."""
    if not cpu or cpu.get("mode") != "custom" or not cpu.get("model"):
        return
    models = cpu_models(conn, arch, machine, virt_type)
    if not models:
        return
    name = cpu["model"]
    if name not in models:
        raise InvalidInputError("%s: %r is not a CPU model of this hypervisor (%s, %s); it offers %s"
                                % (what, name, virt_type or "kvm", arch or "host arch",
                                   ", ".join(sorted(m for m, u in models.items() if u == "yes")) or "none usable"))
    if usable and virt_type == "kvm" and models[name] == "no":
        raise ConflictError("%s: %r is not usable on this host's CPU under KVM (virsh domcapabilities says which "
                            "features are missing), so the VM could not start; use cpu.mode host-model or another model"
                            % (what, name))


# --- one VM --------------------------------------------------------------------------------------

def check_disk_files(model):
    """A file (or pool volume) attached twice to one VM, once writable: both would write it."""
    seen = {}
    for key in ("disks", "cdroms"):
        for dev in model.get(key) or ():
            ident = dev.get("path") or ((dev.get("pool"), dev.get("volume")) if dev.get("volume") else None)
            if not ident:
                continue
            where = "%s[%s]" % (key, dev.get("target"))
            writable = key == "disks" and not dev.get("readonly")
            if ident not in seen:
                seen[ident] = (where, writable)
                continue
            other, other_writable = seen[ident]
            if writable or other_writable:
                label = ident if isinstance(ident, str) else "volume %s of pool %s" % (ident[1], ident[0])
                raise InvalidInputError("%s: %s is also %s of this VM; a disk that is written is attached once"
                                        % (where, label, other))


def _segment(nic):
    return (nic.get("type"), nic.get("source"))


def _other_interfaces(conn, skip):
    """``(vm name, interface model)`` of every interface of the other VMs, saved and live definitions."""
    with libvirt_errors("listing VMs"):
        domains = conn.listAllDomains(0)
    for dom in domains:
        try:
            name = dom.name()
            if name in skip:
                continue
            texts = [dom.XMLDesc(0)]
            if dom.isActive() and dom.isPersistent():
                texts.append(dom.XMLDesc(_XML_INACTIVE))
        except libvirt.libvirtError:
            continue  # went away while we looked
        for text in texts:
            for nic in _domain.model_from_xml(text)["interfaces"]:
                yield name, nic


def check_macs(conn, interfaces, new_macs, skip=()):
    """The final ``interfaces`` of a VM: each MAC valid and once; ``new_macs`` (those this run sets)
    not used by another VM (any but those in ``skip``) on the same network, bridge or host device."""
    seen = {}
    for index, nic in enumerate(interfaces or ()):
        mac = (nic.get("mac") or "").lower()
        if not mac:
            continue
        what = "interfaces[%d].mac" % index
        problem = _domain.mac_problem(mac)
        if problem:
            raise InvalidInputError("%s: %r %s" % (what, mac, problem))
        if mac in seen:
            raise InvalidInputError("%s: %s is also the MAC of interfaces[%d]; each interface of a VM needs its own"
                                    % (what, mac, seen[mac]))
        seen[mac] = index
    wanted = dict((mac, index) for mac, index in seen.items() if mac in new_macs)
    if not wanted:
        return
    for other, nic in _other_interfaces(conn, set(skip)):
        index = wanted.get((nic.get("mac") or "").lower())
        if index is not None and _segment(nic) == _segment(interfaces[index]):
            raise ConflictError("interfaces[%d].mac: %s is already the MAC of VM %r on %s %r; two interfaces with one "
                                "MAC on one network disturb each other" % (index, nic["mac"], other, nic["type"], nic["source"]))


# --- before a start --------------------------------------------------------------------------------

def _named_files(root):
    """``(what, path)`` of every host file the definition needs at start (files QEMU creates are not)."""
    for tag in ("kernel", "initrd", "dtb", "loader"):
        path = _xml.find_text(root, "os/%s" % tag)
        if path:
            yield tag, path.strip()
    template = _xml.find_attr(root, "os/nvram", "template")
    if template:
        yield "nvram_template", template
    for disk in root.findall("devices/disk"):
        src = disk.find("source")
        path = src.get("file") or src.get("dev") if src is not None else None
        if path and disk.get("type") in ("file", "block"):
            key = "cdroms" if disk.get("device") in ("cdrom", "floppy") else "disks"
            yield "%s[%s]" % (key, _xml.find_attr(disk, "target", "dev")), path


def file_exists(conn, path, local):
    """True or False, or None when it cannot be known here (a remote hypervisor's file of no pool)."""
    try:
        conn.storageVolLookupByPath(path)
        return True
    except libvirt.libvirtError:
        pass
    if local:
        return os.path.exists(path)
    return None


def _pci_device_name(address):
    """libvirt's node device name of a PCI address (``pci_0000_01_00_0``)."""
    return "pci_" + _domain.pci_address(address).replace(":", "_").replace(".", "_")


def check_startable(ctx, root, skip_paths=()):
    """What makes a start of the definition ``root`` fail and can be known before anything is stopped."""
    conn = ctx.conn
    name = _xml.find_text(root, "name")
    local = uri_is_local(ctx.uri)
    for what, path in _named_files(root):
        if path in skip_paths:
            continue
        if file_exists(conn, path, local) is False:
            ctx.assume(NotFoundError("%s: %s does not exist on the hypervisor, so VM %r could not start" % (what, path, name)))
    for node in root.findall("devices/hostdev[@type='pci']/source/address"):
        device = _pci_device_name(node)
        try:
            conn.nodeDeviceLookupByName(device)
        except libvirt.libvirtError:
            raise NotFoundError("hostdevs: the host has no PCI device %s (%s), so VM %r could not start"
                                % (_domain.pci_address(node), device, name))
    for index, nic in enumerate(root.findall("devices/interface")):
        network = _xml.find_attr(nic, "source", "network") if nic.get("type") == "network" else None
        if not network:
            continue
        try:
            active = conn.networkLookupByName(network).isActive()
        except libvirt.libvirtError:
            continue  # a missing network is reported where the interfaces are resolved
        if not active:
            ctx.assume(ConflictError("interfaces[%d]: libvirt network %r is not active, so VM %r could not start; start "
                                     "the network first" % (index, network, name)))
    # libvirt compares the model with the host's CPU at the start unless the definition says check='none'
    # (its own default CPU for KVM, qemu64, is 'none': QEMU then runs without the missing features)
    if _xml.find_attr(root, "cpu", "check") != "none":
        model = _domain.model_from_xml(root)
        check_cpu_model(conn, model["cpu"], model["arch"], model["machine"], model["virt_type"], usable=True)
