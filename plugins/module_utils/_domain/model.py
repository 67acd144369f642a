# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The domain (VM) model and its libvirt XML, in both directions.

The model is a plain dict with the same shape whether it comes from module parameters
(:func:`normalize`) or from a domain definition (:func:`model_from_xml`), so that the generic
difference tracker can compare the two.  ``None`` means "not specified" and is never compared.

* ``memory`` and ``max_memory`` are MiB; disk ``size`` is bytes.
* ``disks`` and ``cdroms`` are matched by target device (``vda``, ``sdb``); ``interfaces`` by
  position.  A device list, once given, is the whole list of that kind of device.

:func:`apply_model` writes the specified parts of a model into an existing definition and keeps
everything else (UUID, MAC addresses, PCI addresses, controllers libvirt added); a new definition
is :func:`apply_model` on a skeleton, so there is one writer for both.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.names import validate_object_name
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import (
    from_libvirt_units,
    parse_size,
)

MIB = 1024 * 1024

DISK_BUSES = ("virtio", "scsi", "sata", "ide", "usb")
CDROM_BUSES = ("sata", "ide", "scsi", "usb")
BUS_PREFIX = {"virtio": "vd", "scsi": "sd", "sata": "sd", "usb": "sd", "ide": "hd"}
DISK_FORMATS = ("qcow2", "raw")
CACHE_MODES = ("default", "none", "writethrough", "writeback", "directsync", "unsafe")
DISCARD_MODES = ("unmap", "ignore")
CPU_MODES = ("host-passthrough", "host-model", "custom", "maximum")
BOOT_DEVICES = ("hd", "cdrom", "network", "fd")
INTERFACE_MODELS = ("virtio", "e1000", "e1000e", "rtl8139", "vmxnet3")
DIRECT_MODES = ("bridge", "vepa", "private", "passthrough")
GRAPHICS_TYPES = ("vnc", "spice", "none")
WATCHDOG_MODELS = ("i6300esb", "itco", "ib700")
WATCHDOG_ACTIONS = ("reset", "shutdown", "poweroff", "pause", "none", "dump", "inject-nmi")

_TARGET_RE = re.compile(r"^(vd|sd|hd|xvd)[a-z]{1,3}$")
_MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_PCI_RE = re.compile(r"^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_.:/@+=-]{1,64}$")
_META_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")

#: keys of the model that are part of the persistent definition
DEFINITION_KEYS = (
    "title", "description", "vcpus", "max_vcpus", "cpu", "memory", "max_memory", "machine", "arch",
    "virt_type", "firmware", "secure_boot", "nvram_template", "boot", "kernel", "initrd", "cmdline",
    "disks", "cdroms", "interfaces", "graphics", "serial", "guest_agent", "rng", "watchdog",
    "hostdevs", "tags", "metadata",
)


def validate_name(name):
    return validate_object_name(name, "VM")


# --- parameters -> model ------------------------------------------------------------------------


def memory_mib(value, what):
    """A memory size in MiB: an int is MiB, a string may carry a unit (``'2GiB'``)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value * MIB
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip()) * MIB
    else:
        number = parse_size(value, what, allow_zero=False)
    if number <= 0:
        raise InvalidInputError("%s: must be greater than zero" % what)
    if number % MIB:
        raise InvalidInputError("%s: %r is not a whole number of MiB" % (what, value))
    return number // MIB


def _positive(value, what, minimum=1):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError("%s: must be an integer of at least %d, got %r" % (what, minimum, value))
    return value


def _choice(value, choices, what):
    if value is None:
        return None
    if value not in choices:
        raise InvalidInputError("%s: %r is not one of %s" % (what, value, ", ".join(choices)))
    return value


def _target(value, what):
    if value is None:
        return None
    if not _TARGET_RE.match(value):
        raise InvalidInputError("%s: %r is not a disk target name such as vda, sdb or hdc" % (what, value))
    return value


def normalize_mac(value, what):
    if value is None:
        return None
    mac = str(value).strip().lower().replace("-", ":")
    if not _MAC_RE.match(mac):
        raise InvalidInputError("%s: %r is not a MAC address (aa:bb:cc:dd:ee:ff)" % (what, value))
    problem = mac_problem(mac)
    if problem:
        raise InvalidInputError("%s: %r %s" % (what, value, problem))
    return mac


def mac_problem(mac):
    """Why the MAC address ``mac`` (lower case, colons) cannot be a NIC's, or None."""
    if int(mac[:2], 16) & 1:
        return "is a multicast address; a NIC needs a unicast MAC"
    if mac == "00:00:00:00:00:00":
        return "is all zeros; give a real address, or leave mac out and libvirt makes one"
    return None


def normalize_pci(value, what):
    text = str(value).strip().lower()
    match = _PCI_RE.match(text)
    if not match:
        raise InvalidInputError("%s: %r is not a PCI address such as 0000:01:00.0" % (what, value))
    return "%s:%s:%s.%s" % (match.group(1) or "0000", match.group(2), match.group(3), match.group(4))


def _absolute(value, what):
    if not value:
        return value  # None (unspecified) or "" (remove)
    if not value.startswith("/"):
        raise InvalidInputError("%s: %r must be an absolute path" % (what, value))
    return value


def _normalize_disk(disk, index):
    what = "disks[%d]" % index
    path = _absolute(disk.get("path"), what + ".path")
    pool, volume = disk.get("pool"), disk.get("volume")
    if path and (pool or volume):
        raise InvalidInputError("%s: give either path or pool/volume, not both" % what)
    size = disk.get("size")
    backing = disk.get("backing_volume")
    if backing and path:
        raise InvalidInputError("%s: backing_volume makes a new volume in a pool; it cannot be used with path" % what)
    if volume:
        validate_object_name(volume, "volume")
    model = dict(
        target=_target(disk.get("target"), what + ".target"),
        bus=_choice(disk.get("bus"), DISK_BUSES, what + ".bus"),
        path=path,
        pool=pool,
        volume=volume,
        size=parse_size(size, what + ".size", allow_zero=False) if size is not None else None,
        format=_choice(disk.get("format"), DISK_FORMATS, what + ".format"),
        backing_volume=backing,
        backing_pool=disk.get("backing_pool"),
        cache=_choice(disk.get("cache"), CACHE_MODES, what + ".cache"),
        discard=_choice(disk.get("discard"), DISCARD_MODES, what + ".discard"),
        serial=disk.get("serial"),
        readonly=disk.get("readonly"),
        boot_order=_positive(disk.get("boot_order"), what + ".boot_order"),
    )
    if model["serial"] is not None and not re.match(r"^[A-Za-z0-9_.+-]{1,20}$", model["serial"]):
        raise InvalidInputError("%s.serial: %r must be 1-20 letters, digits or _.+-" % (what, model["serial"]))
    return model


def _normalize_cdrom(cdrom, index):
    what = "cdroms[%d]" % index
    path = _absolute(cdrom.get("path"), what + ".path")
    if path and (cdrom.get("pool") or cdrom.get("volume")):
        raise InvalidInputError("%s: give either path or pool/volume, not both" % what)
    if bool(cdrom.get("pool")) != bool(cdrom.get("volume")):
        raise InvalidInputError("%s: pool and volume go together" % what)
    return dict(
        target=_target(cdrom.get("target"), what + ".target"),
        bus=_choice(cdrom.get("bus"), CDROM_BUSES, what + ".bus"),
        path=path,
        pool=cdrom.get("pool"),
        volume=cdrom.get("volume"),
        boot_order=_positive(cdrom.get("boot_order"), what + ".boot_order"),
    )


def _normalize_interface(nic, index):
    what = "interfaces[%d]" % index
    sources = [k for k in ("network", "bridge", "direct") if nic.get(k)]
    if len(sources) != 1:
        raise InvalidInputError("%s: give exactly one of network, bridge or direct (a host device)" % what)
    kind = sources[0]
    if nic.get("mode") is not None and kind != "direct":
        raise InvalidInputError("%s.mode: only a direct (macvtap) interface has a mode" % what)
    return dict(
        type=kind,
        source=nic[kind],
        mode=_choice(nic.get("mode"), DIRECT_MODES, what + ".mode"),
        model=_choice(nic.get("model"), INTERFACE_MODELS, what + ".model"),
        mac=normalize_mac(nic.get("mac"), what + ".mac"),
        boot_order=_positive(nic.get("boot_order"), what + ".boot_order"),
    )


def _normalize_cpu(cpu, vcpus, max_vcpus):
    if not cpu:
        return None
    model = dict(
        mode=_choice(cpu.get("mode"), CPU_MODES, "cpu.mode"),
        model=cpu.get("model"),
        sockets=_positive(cpu.get("sockets"), "cpu.sockets"),
        cores=_positive(cpu.get("cores"), "cpu.cores"),
        threads=_positive(cpu.get("threads"), "cpu.threads"),
    )
    if model["model"] and model["mode"] not in (None, "custom"):
        raise InvalidInputError("cpu.model: a named CPU model needs cpu.mode custom")
    if model["model"] and model["mode"] is None:
        model["mode"] = "custom"
    if model["mode"] == "custom" and not model["model"]:
        raise InvalidInputError("cpu.mode custom needs cpu.model (for example Haswell-noTSX or qemu64)")
    topology = [model[k] for k in ("sockets", "cores", "threads")]
    if any(v is not None for v in topology):
        if any(v is None for v in topology):
            raise InvalidInputError("cpu: give sockets, cores and threads together")
        total = topology[0] * topology[1] * topology[2]
        limit = max_vcpus or vcpus
        if limit is not None and total != limit:
            raise InvalidInputError(
                "cpu: sockets*cores*threads is %d but the VM has %d vCPUs at most (max_vcpus, or vcpus)" % (total, limit))
    return model


def _normalize_graphics(graphics):
    if not graphics:
        return None
    kind = _choice(graphics.get("type"), GRAPHICS_TYPES, "graphics.type")
    if kind == "none":
        return dict(type="none")
    port = graphics.get("port")
    if port is not None and port != -1 and not 5900 <= port <= 65535:
        raise InvalidInputError("graphics.port: %r is outside 5900-65535 (or -1 for automatic)" % port)
    password = graphics.get("password")
    if kind in ("vnc", None) and password and len(password) > 8:
        raise InvalidInputError("graphics.password: VNC passwords have at most 8 characters (this one has %d)" % len(password))
    return dict(type=kind, listen=graphics.get("listen"), port=port, password=password)


def _normalize_serial(serial):
    if not serial:
        return None
    path = _absolute(serial.get("path"), "serial.path")
    kind = _choice(serial.get("type") or ("file" if path else "pty"), ("pty", "file"), "serial.type")
    if kind == "file" and not path:
        raise InvalidInputError("serial: type file needs path (the log file)")
    if kind == "pty" and path:
        raise InvalidInputError("serial.path: only type file writes to a path")
    return dict(type=kind, path=path)


def _normalize_tags(tags):
    if tags is None:
        return None
    out = []
    for tag in tags:
        tag = str(tag)
        if not _TAG_RE.match(tag):
            raise InvalidInputError("tags: %r must be 1-64 letters, digits or _.:/@+=-" % tag)
        if tag not in out:
            out.append(tag)
    return sorted(out)


def _normalize_metadata(metadata):
    if metadata is None:
        return None
    out = {}
    for key, value in metadata.items():
        if not _META_KEY_RE.match(str(key)):
            raise InvalidInputError("metadata: key %r must start with a letter or _ and hold letters, digits, _.-" % key)
        if isinstance(value, (dict, list)):
            raise InvalidInputError("metadata: value of %r must be a string, number or boolean" % key)
        out[str(key)] = "" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
    return out


def normalize(params):
    """Module parameters -> model (unspecified values stay None).  Raises InvalidInputError."""
    vcpus = _positive(params.get("vcpus"), "vcpus")
    max_vcpus = _positive(params.get("max_vcpus"), "max_vcpus")
    if vcpus and max_vcpus and vcpus > max_vcpus:
        raise InvalidInputError("vcpus (%d) is above max_vcpus (%d)" % (vcpus, max_vcpus))
    memory = memory_mib(params.get("memory"), "memory")
    max_memory = memory_mib(params.get("max_memory"), "max_memory")
    if memory and max_memory and memory > max_memory:
        raise InvalidInputError("memory (%d MiB) is above max_memory (%d MiB)" % (memory, max_memory))
    firmware = _choice(params.get("firmware"), ("bios", "uefi"), "firmware")
    if params.get("secure_boot") and firmware == "bios":
        raise InvalidInputError("secure_boot needs firmware uefi")
    if params.get("nvram_template") and firmware == "bios":
        raise InvalidInputError("nvram_template needs firmware uefi")
    if firmware is None and (params.get("secure_boot") or params.get("nvram_template")):
        firmware = "uefi"  # they exist only with UEFI; a BIOS VM would drop them again on every run
    disks = params.get("disks")
    cdroms = params.get("cdroms")
    interfaces = params.get("interfaces")
    hostdevs = params.get("hostdevs")
    boot = params.get("boot")
    model = dict(
        title=params.get("title"),
        description=params.get("description"),
        vcpus=vcpus,
        max_vcpus=max_vcpus,
        cpu=_normalize_cpu(params.get("cpu"), vcpus, max_vcpus),
        memory=memory,
        max_memory=max_memory,
        machine=params.get("machine"),
        arch=_arch(params.get("arch")),
        virt_type=params.get("virt_type"),
        firmware=firmware,
        secure_boot=params.get("secure_boot"),
        nvram_template=_absolute(params.get("nvram_template"), "nvram_template"),
        boot=[_choice(b, BOOT_DEVICES, "boot") for b in boot] if boot is not None else None,
        kernel=_absolute(params.get("kernel"), "kernel"),
        initrd=_absolute(params.get("initrd"), "initrd"),
        cmdline=params.get("cmdline"),
        disks=[_normalize_disk(d, i) for i, d in enumerate(disks)] if disks is not None else None,
        cdroms=[_normalize_cdrom(c, i) for i, c in enumerate(cdroms)] if cdroms is not None else None,
        interfaces=[_normalize_interface(n, i) for i, n in enumerate(interfaces)] if interfaces is not None else None,
        graphics=_normalize_graphics(params.get("graphics")),
        serial=_normalize_serial(params.get("serial")),
        guest_agent=params.get("guest_agent"),
        rng=params.get("rng"),
        watchdog=_normalize_watchdog(params.get("watchdog")),
        hostdevs=[normalize_pci(h, "hostdevs[%d]" % i) for i, h in enumerate(hostdevs)] if hostdevs is not None else None,
        tags=_normalize_tags(params.get("tags")),
        metadata=_normalize_metadata(params.get("metadata")),
    )
    if (model["initrd"] or model["cmdline"]) and not model["kernel"]:
        raise InvalidInputError("initrd and cmdline need kernel (direct kernel boot)")
    _check_boot_order(model)
    return model


def _arch(value):
    if value is not None and not re.match(r"^[a-z0-9_]{2,16}$", value):
        raise InvalidInputError("arch: %r is not an architecture name such as x86_64 or aarch64" % value)
    return value


def _normalize_watchdog(watchdog):
    if not watchdog:
        return None
    return dict(
        model=_choice(watchdog.get("model"), WATCHDOG_MODELS, "watchdog.model"),
        action=_choice(watchdog.get("action"), WATCHDOG_ACTIONS, "watchdog.action"),
    )


def _check_boot_order(model):
    orders = []
    for key in ("disks", "cdroms", "interfaces"):
        for index, dev in enumerate(model.get(key) or []):
            if dev.get("boot_order") is not None:
                orders.append((dev["boot_order"], "%s[%d]" % (key, index)))
    if orders and model.get("boot"):
        raise InvalidInputError("boot cannot be combined with per-device boot_order (libvirt allows one or the other)")
    seen = {}
    for order, where in orders:
        if order in seen:
            raise InvalidInputError("boot_order %d is given to both %s and %s" % (order, seen[order], where))
        seen[order] = where


def assign_targets(model, default_cdrom_bus="sata", current=None):
    """Give every disk and cdrom a bus and a target device name, in list order.

    Explicit targets are kept.  A device without one takes, on an existing VM (``current``), the
    target of the device of its kind and bus at the same position among those of that bus (so
    ``disks: [{size: 20G}]`` keeps meaning the first virtio disk); otherwise the first free name of its bus's prefix (virtio: vda,
    vdb...; scsi/sata/usb: sda...; ide: hda...).  Targets of the current devices of a kind the
    model does not list stay taken.  Two devices on one target fail.
    """
    current = current or {}
    kinds = [k for k in ("disks", "cdroms") if model.get(k) is not None]
    devices = [(k, i, d) for k in kinds for i, d in enumerate(model[k])]
    taken = {}
    for key in ("disks", "cdroms"):
        if key not in kinds:
            for dev in current.get(key) or []:
                taken[dev["target"]] = key
    for key, index, dev in devices:
        if dev.get("target") is not None:
            _take(taken, key, dev, dev["target"], default_cdrom_bus)
    # The k-th listed device of a kind and bus without a target is the k-th current one of that
    # kind and bus (in target order: libvirt keeps disks sorted by bus and target).
    seen = {}
    for key, index, dev in devices:
        if dev.get("target") is not None:
            continue
        bus = dev.get("bus") or ("virtio" if key == "disks" else default_cdrom_bus)
        position = seen.get((key, bus), 0)
        seen[(key, bus)] = position + 1
        have = sorted((d for d in current.get(key) or [] if d.get("bus") == bus and d["target"] not in taken),
                      key=lambda d: (len(d["target"]), d["target"]))
        if position < len(have):
            dev["bus"] = bus
            _take(taken, key, dev, have[position]["target"], default_cdrom_bus)
    for key, index, dev in devices:
        if dev.get("target") is None:
            if dev.get("bus") is None:
                dev["bus"] = "virtio" if key == "disks" else default_cdrom_bus
            prefix = BUS_PREFIX[dev["bus"]]
            number = 0
            while prefix + target_letters(number) in taken:
                number += 1
            _take(taken, key, dev, prefix + target_letters(number), default_cdrom_bus)
    return model


def _take(taken, key, dev, target, default_cdrom_bus):
    if dev.get("bus") is None:
        dev["bus"] = _bus_for_target(target, "virtio" if key == "disks" else default_cdrom_bus)
    if key == "cdroms" and dev["bus"] not in CDROM_BUSES:
        raise InvalidInputError("cdroms: target %s is a %s name; a CD-ROM drive is on %s"
                                % (target, dev["bus"], ", ".join(CDROM_BUSES)))
    if target in taken:
        raise InvalidInputError("%s: target %s is used by another device" % (key, target))
    if not target.startswith(BUS_PREFIX[dev["bus"]]):
        raise InvalidInputError("%s: target %s does not fit bus %s (use a %s* name)" % (key, target, dev["bus"], BUS_PREFIX[dev["bus"]]))
    dev["target"] = target
    taken[target] = key


def _bus_for_target(target, default):
    """``default`` when the target name fits it, else the bus the name implies (``sd``: scsi, as libvirt does)."""
    if target.startswith(BUS_PREFIX[default]):
        return default
    return {"vd": "virtio", "hd": "ide", "sd": "scsi"}.get(target[:2], default)


def target_letters(index):
    """0 -> a, 25 -> z, 26 -> aa (the kernel's disk naming)."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(ord("a") + rem) + out
    return out


# --- XML -> model -------------------------------------------------------------------------------


def _mem_mib(root, path):
    node = root.find(path)
    if node is None or node.text is None:
        return None
    return from_libvirt_units(node.text.strip(), node.get("unit") or "KiB") // MIB


def _source_path(dev):
    src = dev.find("source")
    if src is None:
        return None
    return src.get("file") or src.get("dev") or src.get("name")


def _boot_order(dev):
    order = _xml.find_attr(dev, "boot", "order")
    return int(order) if order is not None and order.isdigit() else None


def _disk_model(disk):
    src = disk.find("source")
    driver = disk.find("driver")
    return dict(
        target=_xml.find_attr(disk, "target", "dev"),
        bus=_xml.find_attr(disk, "target", "bus"),
        path=_source_path(disk),
        pool=src.get("pool") if src is not None else None,
        volume=src.get("volume") if src is not None else None,
        format=driver.get("type") if driver is not None else None,
        cache=(driver.get("cache") if driver is not None else None) or "default",
        discard=(driver.get("discard") if driver is not None else None) or "ignore",
        serial=_xml.find_text(disk, "serial"),
        readonly=disk.find("readonly") is not None,
        boot_order=_boot_order(disk),
    )


_CDROM_MODEL_KEYS = ("target", "bus", "path", "pool", "volume", "boot_order")


def _cdrom_model(disk):
    """A CD-ROM drive: the part of the disk model that a drive has."""
    model = _disk_model(disk)
    return dict((key, model[key]) for key in _CDROM_MODEL_KEYS)


def _interface_model(nic):
    kind = nic.get("type")
    src = nic.find("source")
    source = None
    if src is not None:
        source = {"network": src.get("network"), "bridge": src.get("bridge"), "direct": src.get("dev")}.get(kind)
    return dict(
        type=kind,
        source=source,
        mode=src.get("mode") if kind == "direct" and src is not None else None,
        model=_xml.find_attr(nic, "model", "type"),
        mac=(_xml.find_attr(nic, "mac", "address") or "").lower() or None,
        boot_order=_boot_order(nic),
        target=_xml.find_attr(nic, "target", "dev"),
    )


def _graphics_model(root):
    node = root.find("devices/graphics")
    if node is None:
        return dict(type="none")
    port = node.get("port")
    listen = node.get("listen") or _xml.find_attr(node, "listen", "address")
    return dict(
        type=node.get("type"),
        listen=listen,
        port=-1 if node.get("autoport") == "yes" else (int(port) if port and port.lstrip("-").isdigit() else None),
        password=node.get("passwd") or "",
    )


def _serial_model(root):
    node = root.find("devices/serial")
    if node is None:
        return dict(type="none", path=None)
    kind = node.get("type")
    return dict(type=kind, path=_xml.find_attr(node, "source", "path") if kind == "file" else None)


def _firmware_model(os_node):
    if os_node is None:
        return "bios", False
    loader = os_node.find("loader")
    efi = os_node.get("firmware") == "efi" or (loader is not None and loader.get("type") == "pflash")
    secure = bool(
        (loader is not None and loader.get("secure") == "yes")
        or os_node.find("firmware/feature[@name='secure-boot'][@enabled='yes']") is not None
    )
    return ("uefi" if efi else "bios"), secure


def _metadata_model(root):
    node = root.find("metadata/{%s}vm" % _xml.VIRTOPS_NS)
    if node is None:
        return [], {}
    tags = sorted(t.text for t in node.findall("{%s}tags/{%s}tag" % (_xml.VIRTOPS_NS, _xml.VIRTOPS_NS)) if t.text)
    meta = dict((m.get("key"), m.text or "") for m in node.findall("{%s}meta" % _xml.VIRTOPS_NS) if m.get("key"))
    return tags, meta


def model_from_xml(text_or_node):
    """Domain XML -> model.  Every key is filled (with libvirt's effective value where it has one)."""
    root = _xml.parse(text_or_node, "domain XML") if isinstance(text_or_node, (str, bytes)) else text_or_node
    if root.tag != "domain":
        raise InvalidInputError("domain XML: the root element must be <domain>, not <%s>" % root.tag)
    os_node = root.find("os")
    vcpu = root.find("vcpu")
    max_vcpus = int(vcpu.text) if vcpu is not None and vcpu.text else 1
    vcpus = int(vcpu.get("current")) if vcpu is not None and vcpu.get("current") else max_vcpus
    cpu_node = root.find("cpu")
    cpu = dict(mode=None, model=None, sockets=None, cores=None, threads=None)
    if cpu_node is not None:
        topo = cpu_node.find("topology")
        cpu.update(
            mode=cpu_node.get("mode") or ("custom" if cpu_node.find("model") is not None else None),
            model=_xml.find_text(cpu_node, "model"),
            sockets=int(topo.get("sockets")) if topo is not None and topo.get("sockets") else None,
            cores=int(topo.get("cores")) if topo is not None and topo.get("cores") else None,
            threads=int(topo.get("threads")) if topo is not None and topo.get("threads") else None,
        )
    max_memory = _mem_mib(root, "memory")
    memory = _mem_mib(root, "currentMemory") or max_memory
    firmware, secure = _firmware_model(os_node)
    disks, cdroms = [], []
    for disk in root.findall("devices/disk"):
        device = disk.get("device") or "disk"
        if device == "disk":
            disks.append(_disk_model(disk))
        elif device == "cdrom":
            cdroms.append(_cdrom_model(disk))
    tags, meta = _metadata_model(root)
    watchdog = root.find("devices/watchdog")
    return dict(
        name=_xml.find_text(root, "name"),
        uuid=_xml.find_text(root, "uuid"),
        title=_xml.find_text(root, "title") or "",
        description=_xml.find_text(root, "description") or "",
        vcpus=vcpus,
        max_vcpus=max_vcpus,
        cpu=cpu,
        memory=memory,
        max_memory=max_memory,
        machine=_xml.find_attr(root, "os/type", "machine"),
        arch=_xml.find_attr(root, "os/type", "arch"),
        virt_type=root.get("type"),
        firmware=firmware,
        secure_boot=secure,
        nvram_template=_xml.find_attr(root, "os/nvram", "template"),
        nvram=_xml.find_text(root, "os/nvram"),
        boot=[b.get("dev") for b in root.findall("os/boot")],
        kernel=_xml.find_text(root, "os/kernel") or "",
        initrd=_xml.find_text(root, "os/initrd") or "",
        cmdline=_xml.find_text(root, "os/cmdline") or "",
        disks=disks,
        cdroms=cdroms,
        interfaces=[_interface_model(n) for n in root.findall("devices/interface")],
        graphics=_graphics_model(root),
        serial=_serial_model(root),
        guest_agent=root.find("devices/channel/target[@name='org.qemu.guest_agent.0']") is not None,
        rng=root.find("devices/rng") is not None,
        watchdog=dict(model=watchdog.get("model"), action=watchdog.get("action")) if watchdog is not None else None,
        hostdevs=sorted(_hostdev_address(h) for h in root.findall("devices/hostdev[@type='pci']")),
        tags=tags,
        metadata=meta,
        xml_sha256=_xml.find_attr(root, "metadata/{%s}vm" % _xml.VIRTOPS_NS, XML_HASH_ATTR),
    )


#: attribute of <virtops:vm> holding the hash of the user XML a VM was defined from (``xml`` option)
XML_HASH_ATTR = "xml-sha256"


def mark_xml_source(root, digest):
    """Record in the definition ``root`` that it was made from user XML with hash ``digest``."""
    container = _child(root, "metadata")
    node = container.find("{%s}vm" % _xml.VIRTOPS_NS)
    if node is None:
        node = metadata_element([], {})
        container.append(node)
    node.set(XML_HASH_ATTR, digest)
    return root


def _hostdev_address(node):
    addr = node.find("source/address")
    if addr is None:
        return None
    return pci_address(addr)


def pci_address(addr):
    """``<address domain= bus= slot= function=>`` -> ``0000:01:00.0``."""
    return "%04x:%02x:%02x.%x" % tuple(int(addr.get(k, "0"), 16) for k in ("domain", "bus", "slot", "function"))


# --- model -> XML -------------------------------------------------------------------------------


def skeleton(name, virt_type, uuid=None):
    root = _xml.element("domain", attrs={"type": virt_type})
    _xml.sub(root, "name", name)
    if uuid:
        _xml.sub(root, "uuid", uuid)
    return root


# The order of the top-level elements in libvirt's own output (its schema accepts any order, but
# keeping its order keeps definitions readable and stable).
_TOP_ORDER = ("name", "uuid", "title", "description", "metadata", "maxMemory", "memory", "currentMemory",
              "blkiotune", "memtune", "memoryBacking", "vcpu", "vcpus", "iothreads", "cputune", "resource",
              "sysinfo", "os", "idmap", "features", "cpu", "clock", "on_poweroff", "on_reboot", "on_crash",
              "pm", "perf", "devices", "seclabel")


def _place(parent, node, order):
    """Insert ``node`` into ``parent`` before the first child that ``order`` puts after it."""
    rank = order.index(node.tag) if node.tag in order else len(order)
    for existing in parent:
        other = existing.tag if isinstance(existing.tag, str) else None
        if other in order and order.index(other) > rank:
            existing.addprevious(node)
            return node
    parent.append(node)
    return node


def _child(root, tag, order=_TOP_ORDER):
    """The child ``tag`` of ``root``, created at its place in ``order`` when missing."""
    node = root.find(tag)
    if node is not None:
        return node
    return _place(root, _xml.element(tag), order)


def _drop(root, path):
    for node in root.findall(path):
        node.getparent().remove(node)


def _set_text(root, tag, value):
    if value is None:
        return
    if value == "":
        _drop(root, tag)
        return
    _child(root, tag).text = str(value)


def _set_memory(root, model):
    if model.get("max_memory") is not None:
        node = _child(root, "memory")
        node.text, node.attrib["unit"] = str(model["max_memory"] * 1024), "KiB"
    if model.get("memory") is not None:
        node = _child(root, "currentMemory")
        node.text, node.attrib["unit"] = str(model["memory"] * 1024), "KiB"
        memory = root.find("memory")
        if memory is None or from_libvirt_units(memory.text, memory.get("unit") or "KiB") < model["memory"] * MIB:
            memory = _child(root, "memory")
            memory.text, memory.attrib["unit"] = str(model["memory"] * 1024), "KiB"


def _set_vcpus(root, model):
    vcpu = root.find("vcpu")
    current_max = int(vcpu.text) if vcpu is not None and vcpu.text else 1
    max_vcpus = model.get("max_vcpus")
    vcpus = model.get("vcpus")
    if max_vcpus is None and vcpus is None:
        return
    vcpu = _child(root, "vcpu")
    if max_vcpus is None:
        max_vcpus = max(current_max, vcpus)
    vcpu.text = str(max_vcpus)
    vcpu.set("placement", vcpu.get("placement") or "static")
    current = vcpus if vcpus is not None else int(vcpu.get("current") or current_max)
    current = min(current, max_vcpus)
    if current < max_vcpus:
        vcpu.set("current", str(current))
    elif "current" in vcpu.attrib:
        del vcpu.attrib["current"]


def _set_cpu(root, cpu):
    if not cpu:
        return
    node = _child(root, "cpu")
    if cpu.get("mode"):
        node.set("mode", cpu["mode"])
        if cpu["mode"] in ("host-passthrough", "maximum"):
            node.set("check", "none")
            node.attrib.pop("match", None)
            _drop(node, "model")
        elif cpu["mode"] == "host-model":
            node.attrib.pop("match", None)
            node.attrib.pop("migratable", None)
            _drop(node, "model")
        else:
            node.set("match", "exact")
            node.attrib.pop("migratable", None)  # libvirt allows it only with host-passthrough and maximum
    if cpu.get("model"):
        model = node.find("model")
        if model is None:
            model = _xml.element("model")
            node.insert(0, model)
        model.text = cpu["model"]
        model.set("fallback", "forbid")
    if cpu.get("sockets") is not None:
        topo = node.find("topology")
        if topo is None:
            topo = _xml.sub(node, "topology")
        for key in ("sockets", "dies", "cores", "threads"):
            topo.attrib.pop(key, None)
        topo.set("sockets", str(cpu["sockets"]))
        topo.set("dies", "1")
        topo.set("cores", str(cpu["cores"]))
        topo.set("threads", str(cpu["threads"]))


_OS_ORDER = ("type", "firmware", "loader", "nvram", "kernel", "initrd", "cmdline", "boot", "bootmenu", "smbios")


def _set_os(root, model):
    os_node = _child(root, "os")
    type_node = os_node.find("type")
    if type_node is None:
        type_node = _xml.element("type", "hvm")
        os_node.insert(0, type_node)
    if model.get("arch"):
        type_node.set("arch", model["arch"])
    if model.get("machine"):
        type_node.set("machine", model["machine"])
    _set_firmware(root, os_node, model)
    for tag in ("kernel", "initrd", "cmdline"):
        value = model.get(tag)
        if value is None:
            continue
        if value == "":
            _drop(os_node, tag)
        else:
            _child(os_node, tag, _OS_ORDER).text = value
    if model.get("boot") is not None:
        _drop(os_node, "boot")
        for dev in model["boot"]:
            _place(os_node, _xml.element("boot", attrs={"dev": dev}), _OS_ORDER)
        if model["boot"]:
            _drop(root, "devices/*/boot")  # libvirt refuses <os><boot> next to per-device <boot order>
    elif any(dev.get("boot_order") for key in ("disks", "cdroms", "interfaces") for dev in model.get(key) or []):
        _drop(os_node, "boot")


def _set_firmware(root, os_node, model):
    firmware, secure = model.get("firmware"), model.get("secure_boot")
    if firmware is None and secure is None and model.get("nvram_template") is None:
        return
    current, current_secure = _firmware_model(os_node)
    firmware = firmware or current
    secure = current_secure if secure is None else secure
    if firmware == "bios":
        os_node.attrib.pop("firmware", None)
        for tag in ("firmware", "loader", "nvram"):
            _drop(os_node, tag)
        return
    if firmware != current or secure != current_secure:
        # Let libvirt pick the OVMF build (firmware auto-selection): it fills <loader>/<nvram>.
        for tag in ("firmware", "loader"):
            _drop(os_node, tag)
        if firmware != current:
            _drop(os_node, "nvram")
        os_node.set("firmware", "efi")
        fw = _child(os_node, "firmware", _OS_ORDER)
        _xml.sub(fw, "feature", attrs={"enabled": secure, "name": "secure-boot"})
        _xml.sub(fw, "feature", attrs={"enabled": secure, "name": "enrolled-keys"})
    if model.get("nvram_template"):
        _child(os_node, "nvram", _OS_ORDER).set("template", model["nvram_template"])
    features = _child(root, "features")
    if secure:
        _child(features, "smm").set("state", "on")
    if features.find("acpi") is None:
        features.insert(0, _xml.element("acpi"))


def _boot_element(dev, order):
    _drop(dev, "boot")
    if order:
        _xml.sub(dev, "boot", attrs={"order": order})


def _devices(root):
    return _child(root, "devices")


def _source_element(dev, path, pool=None, volume=None):
    """``<source>`` of a disk: a file, a block device or a pool volume; None empties a cdrom."""
    _drop(dev, "source")
    if path is None and not volume:
        dev.set("type", "file")
        return
    if volume:
        dev.set("type", "volume")
        node = _xml.element("source", attrs={"pool": pool, "volume": volume})
    elif path.startswith("/dev/"):
        dev.set("type", "block")
        node = _xml.element("source", attrs={"dev": path})
    else:
        dev.set("type", "file")
        node = _xml.element("source", attrs={"file": path})
    driver = dev.find("driver")
    if driver is not None:
        driver.addnext(node)
    else:
        dev.insert(0, node)


def _fill_disk(dev, disk, device):
    driver = dev.find("driver")
    if driver is None:
        driver = _xml.element("driver", attrs={"name": "qemu"})
        dev.insert(0, driver)
    if device == "cdrom":
        driver.set("type", "raw")
    elif disk.get("format"):
        driver.set("type", disk["format"])
    for key in ("cache", "discard"):
        value = disk.get(key)
        if value is None:
            continue
        if value in ("default", "ignore"):
            driver.attrib.pop(key, None)
        else:
            driver.set(key, value)
    if device == "cdrom" or disk.get("path") is not None or disk.get("volume"):
        _source_element(dev, disk.get("path"), disk.get("pool"), None if disk.get("path") else disk.get("volume"))
    target = dev.find("target")
    if target is None:
        target = _xml.sub(dev, "target")
    old_bus = target.get("bus")
    target.set("dev", disk["target"])
    target.set("bus", disk["bus"])
    if disk.get("serial") is not None:
        _set_text(dev, "serial", disk["serial"])
    readonly = True if device == "cdrom" else disk.get("readonly")
    if readonly is not None:
        _drop(dev, "readonly")
        if readonly:
            _xml.sub(dev, "readonly")
    if disk.get("boot_order") is not None:
        _boot_element(dev, disk["boot_order"])
    # a disk moved to another bus cannot keep its old bus address
    address = dev.find("address")
    if address is not None and (old_bus not in (None, disk["bus"]) or _address_bus(address) != _address_bus_for(disk["bus"])):
        dev.remove(address)


def _address_bus(address):
    return "pci" if address.get("type") == "pci" else address.get("type")


def _address_bus_for(bus):
    return "pci" if bus == "virtio" else ("usb" if bus == "usb" else "drive")


def _set_disks(root, items, device):
    devices = _devices(root)
    existing = dict(
        (_xml.find_attr(d, "target", "dev"), d)
        for d in devices.findall("disk")
        if (d.get("device") or "disk") == device
    )
    wanted = set(item["target"] for item in items)
    for target, node in existing.items():
        if target not in wanted:
            devices.remove(node)
    for item in items:
        node = existing.get(item["target"])
        if node is None:
            node = _xml.element("disk", attrs={"type": "file", "device": device})
            _insert_device(devices, node)
        _fill_disk(node, item, device)


# Device kinds in the order libvirt prints them.
_DEVICE_ORDER = ("emulator", "disk", "controller", "lease", "filesystem", "interface", "smartcard", "serial",
                 "parallel", "console", "channel", "input", "tpm", "graphics", "sound", "audio", "video",
                 "hostdev", "redirdev", "watchdog", "memballoon", "rng", "panic", "shmem", "memory", "iommu",
                 "vsock")


def _insert_device(devices, node):
    return _place(devices, node, _DEVICE_ORDER)


def _set_interfaces(root, items):
    devices = _devices(root)
    existing = devices.findall("interface")
    for node in existing[len(items):]:
        devices.remove(node)
    for index, nic in enumerate(items):
        if index < len(existing):
            node = existing[index]
        else:
            node = _xml.element("interface")
            _insert_device(devices, node)
        _fill_interface(node, nic)


def _fill_interface(node, nic):
    kind = nic.get("type")
    if kind is not None:
        old_kind = node.get("type")
        node.set("type", kind)
        src = node.find("source")
        if src is None or old_kind != kind:
            _drop(node, "source")
            src = _xml.element("source")
            mac = node.find("mac")
            if mac is not None:
                mac.addnext(src)
            else:
                node.insert(0, src)
        src.attrib.clear()
        src.set({"network": "network", "bridge": "bridge", "direct": "dev"}[kind], nic["source"])
        if kind == "direct":
            src.set("mode", nic.get("mode") or "bridge")
    if nic.get("mac"):
        mac = node.find("mac")
        if mac is None:
            mac = _xml.element("mac")
            node.insert(0, mac)
        mac.set("address", nic["mac"])
    if nic.get("model") or node.find("model") is None:
        model = node.find("model")
        if model is None:
            model = _xml.sub(node, "model")
        model.set("type", nic.get("model") or "virtio")
    if nic.get("boot_order") is not None:
        _boot_element(node, nic["boot_order"])


def _set_graphics(root, graphics):
    if not graphics:
        return
    devices = _devices(root)
    if graphics["type"] == "none":
        _drop(devices, "graphics")
        return
    node = devices.find("graphics")
    kind = graphics.get("type") or (node.get("type") if node is not None else "vnc")
    if node is None or node.get("type") != kind:
        _drop(devices, "graphics")
        node = _xml.element("graphics", attrs={"type": kind})
        _insert_device(devices, node)
        node.set("autoport", "yes")
        _xml.sub(node, "listen", attrs={"type": "address", "address": graphics.get("listen") or "127.0.0.1"})
    if graphics.get("port") is not None:
        if graphics["port"] == -1:
            node.set("autoport", "yes")
            node.attrib.pop("port", None)
        else:
            node.set("autoport", "no")
            node.set("port", str(graphics["port"]))
    if graphics.get("listen"):
        node.attrib.pop("listen", None)
        _drop(node, "listen")
        _xml.sub(node, "listen", attrs={"type": "address", "address": graphics["listen"]})
    if graphics.get("password") is not None:
        if graphics["password"]:
            node.set("passwd", graphics["password"])
        else:
            node.attrib.pop("passwd", None)


def _set_serial(root, serial):
    if not serial:
        return
    devices = _devices(root)
    current = _serial_model(root)
    if current == dict(type=serial["type"], path=serial.get("path")):
        return
    _drop(devices, "serial")
    _drop(devices, "console")
    node = _xml.element("serial", attrs={"type": serial["type"]})
    if serial["type"] == "file":
        _xml.sub(node, "source", attrs={"path": serial["path"], "append": "on"})
    _xml.sub(node, "target", attrs={"port": 0})
    _insert_device(devices, node)
    console = _xml.element("console", attrs={"type": serial["type"]})
    if serial["type"] == "file":
        _xml.sub(console, "source", attrs={"path": serial["path"], "append": "on"})
    _xml.sub(console, "target", attrs={"type": "serial", "port": 0})
    _insert_device(devices, console)


def _set_agent(root, enabled):
    if enabled is None:
        return
    devices = _devices(root)
    channels = [c for c in devices.findall("channel") if _xml.find_attr(c, "target", "name") == "org.qemu.guest_agent.0"]
    if enabled and not channels:
        node = _xml.element("channel", attrs={"type": "unix"})
        _xml.sub(node, "target", attrs={"type": "virtio", "name": "org.qemu.guest_agent.0"})
        _insert_device(devices, node)
    elif not enabled:
        for node in channels:
            devices.remove(node)


def _set_rng(root, enabled):
    if enabled is None:
        return
    devices = _devices(root)
    if enabled and devices.find("rng") is None:
        node = _xml.element("rng", attrs={"model": "virtio"})
        _xml.sub(node, "backend", "/dev/urandom", attrs={"model": "random"})
        _insert_device(devices, node)
    elif not enabled:
        _drop(devices, "rng")


def _set_watchdog(root, watchdog):
    if watchdog is None:
        return
    devices = _devices(root)
    node = devices.find("watchdog")
    model = watchdog.get("model") or (node.get("model") if node is not None else "i6300esb")
    if node is not None and node.get("model") != model:
        devices.remove(node)
        node = None
    if node is None:
        node = _xml.element("watchdog", attrs={"action": "reset"})
        _insert_device(devices, node)
    node.set("model", model)
    if watchdog.get("action"):
        node.set("action", watchdog["action"])


def _set_hostdevs(root, hostdevs):
    if hostdevs is None:
        return
    devices = _devices(root)
    existing = dict((_hostdev_address(h), h) for h in devices.findall("hostdev[@type='pci']"))
    for address, node in existing.items():
        if address not in hostdevs:
            devices.remove(node)
    for address in hostdevs:
        if address in existing:
            continue
        dom, rest = address.split(":", 1)
        bus, rest = rest.split(":")
        slot, function = rest.split(".")
        node = _xml.element("hostdev", attrs={"mode": "subsystem", "type": "pci", "managed": "yes"})
        src = _xml.sub(node, "source")
        _xml.sub(src, "address", attrs={"domain": "0x" + dom, "bus": "0x" + bus, "slot": "0x" + slot,
                                        "function": "0x" + function})
        _insert_device(devices, node)


def metadata_element(tags, metadata, namespaced=True):
    """``<virtops:vm>`` with the tags and key/value metadata.

    ``namespaced=False`` gives the same element without a namespace: what ``setMetadata`` takes
    (libvirt puts it into the namespace it is given).
    """
    ns = "{%s}" % _xml.VIRTOPS_NS if namespaced else ""
    node = _xml.etree.Element(ns + "vm", nsmap={"virtops": _xml.VIRTOPS_NS} if namespaced else None)
    tags_node = _xml.etree.SubElement(node, ns + "tags")
    for tag in tags or []:
        _xml.etree.SubElement(tags_node, ns + "tag").text = tag
    for key in sorted(metadata or {}):
        meta = _xml.etree.SubElement(node, ns + "meta")
        meta.set("key", key)
        meta.text = metadata[key]
    return node


def _set_metadata(root, model):
    if model.get("tags") is None and model.get("metadata") is None:
        return
    tags, meta = _metadata_model(root)
    tags = model["tags"] if model.get("tags") is not None else tags
    meta = model["metadata"] if model.get("metadata") is not None else meta
    container = _child(root, "metadata")
    for old in container.findall("{%s}vm" % _xml.VIRTOPS_NS):
        container.remove(old)
    container.append(metadata_element(tags, meta))


def apply_model(root, model):
    """Write every specified part of ``model`` into the domain element ``root`` (in place)."""
    if model.get("virt_type"):
        root.set("type", model["virt_type"])
    _set_text(root, "title", model.get("title"))
    _set_text(root, "description", model.get("description"))
    _set_metadata(root, model)
    _set_memory(root, model)
    _set_vcpus(root, model)
    _set_os(root, model)
    _set_cpu(root, model.get("cpu"))
    if model.get("disks") is not None:
        _set_disks(root, model["disks"], "disk")
        if any(d["bus"] == "scsi" for d in model["disks"]):
            _ensure_scsi_controller(root)
    if model.get("cdroms") is not None:
        _set_disks(root, model["cdroms"], "cdrom")
        if any(d["bus"] == "scsi" for d in model["cdroms"]):
            _ensure_scsi_controller(root)
    if model.get("interfaces") is not None:
        _set_interfaces(root, model["interfaces"])
    _set_serial(root, model.get("serial"))
    _set_agent(root, model.get("guest_agent"))
    _set_graphics(root, model.get("graphics"))
    _set_hostdevs(root, model.get("hostdevs"))
    _set_watchdog(root, model.get("watchdog"))
    _set_rng(root, model.get("rng"))
    return root


def _ensure_scsi_controller(root):
    devices = _devices(root)
    if devices.find("controller[@type='scsi']") is None:  # libvirt refuses a second one with index 0
        _insert_device(devices, _xml.element("controller", attrs={"type": "scsi", "index": 0, "model": "virtio-scsi"}))


#: what a new VM gets for what the user left unspecified
CREATION_DEFAULTS = dict(
    vcpus=1,
    memory=1024,
    machine="q35",
    firmware="bios",
    graphics=dict(type="vnc", listen="127.0.0.1", port=-1, password=None),
    serial=dict(type="pty", path=None),
    guest_agent=True,
    rng=True,
    disks=[],
    cdroms=[],
    interfaces=[],
)


def with_creation_defaults(model):
    """A copy of ``model`` with CREATION_DEFAULTS filled in where the user said nothing."""
    out = dict(model)
    cpu = out.get("cpu") or {}
    if cpu.get("sockets") and out.get("vcpus") is None and out.get("max_vcpus") is None:
        out["max_vcpus"] = out["vcpus"] = cpu["sockets"] * cpu["cores"] * cpu["threads"]
    for key, value in CREATION_DEFAULTS.items():
        if out.get(key) is None:
            out[key] = value.copy() if isinstance(value, (dict, list)) else value
    if out.get("max_memory") is None:
        out["max_memory"] = out["memory"]
    if out.get("max_vcpus") is None:
        out["max_vcpus"] = out["vcpus"]
    return out


def default_cdrom_bus(machine):
    """IDE exists only on the i440fx (``pc``) machine types; q35 and the rest use SATA."""
    return "ide" if machine and (machine == "pc" or machine.startswith("pc-i440fx")) else "sata"


def build_xml(name, model, uuid=None):
    """A new domain definition: a skeleton with ``model`` applied (defaults already in the model)."""
    root = skeleton(name, model.get("virt_type") or "kvm", uuid)
    apply_model(root, model)
    features = _child(root, "features")
    for tag in ("acpi", "apic"):
        if features.find(tag) is None:
            _xml.sub(features, tag)
    if root.find("devices/memballoon") is None:
        _insert_device(_devices(root), _xml.element("memballoon", attrs={"model": "virtio"}))
    return root


def disk_element(disk, device="disk"):
    """One ``<disk>`` element, as ``attachDevice``/``updateDevice`` take it."""
    node = _xml.element("disk", attrs={"type": "file", "device": device})
    _fill_disk(node, disk, device)
    return node
