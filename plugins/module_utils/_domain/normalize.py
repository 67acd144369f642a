# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Module parameters -> the VM model (:func:`normalize`), disk target names, creation defaults.

Pure functions on plain data: nothing here talks to libvirt or writes XML.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.virtops.libvirt.plugins.module_utils._nwfilter.names import normalize_parameters, validate_name as validate_filter_name
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.names import validate_object_name
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import parse_size
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import shares as _shares
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import tuning as _tuning
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.model import (
    BOOT_DEVICES,
    BUS_PREFIX,
    CACHE_MODES,
    CDROM_BUSES,
    CPU_MODES,
    CREATION_DEFAULTS,
    DIRECT_MODES,
    DISCARD_MODES,
    DISK_BUSES,
    DISK_FORMATS,
    GRAPHICS_TYPES,
    INTERFACE_MODELS,
    MIB,
    WATCHDOG_ACTIONS,
    WATCHDOG_MODELS,
    mac_problem,
)

_TARGET_RE = re.compile(r"^(vd|sd|hd|xvd)[a-z]{1,3}$")
_MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_PCI_RE = re.compile(r"^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$")
_PCI_NAME_RE = re.compile(r"^pci_([0-9a-f]{4})_([0-9a-f]{2})_([0-9a-f]{2})_([0-7])$")  # libvirt's node device name
_TAG_RE = re.compile(r"^[A-Za-z0-9_.:/@+=-]{1,64}$")
_META_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


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


def normalize_pci(value, what):
    text = str(value).strip().lower()
    match = _PCI_RE.match(text) or _PCI_NAME_RE.match(text)
    if not match:
        raise InvalidInputError("%s: %r is not a PCI address such as 0000:01:00.0 (or a node device name such as "
                                "pci_0000_01_00_0)" % (what, value))
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
        encryption=_normalize_encryption(disk.get("encryption"), what),
    )
    if model["encryption"] is not None and backing:
        raise InvalidInputError("%s.encryption: an encrypted disk is an existing LUKS-encrypted volume, qcow2 or raw (made "
                                "with the volume module's encryption), not a new linked clone" % what)
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
        filter=_normalize_filter(nic.get("filter"), what + ".filter"),
    )


def _normalize_encryption(enc, what):
    if enc is None:
        return None
    if not enc.get("secret"):
        raise InvalidInputError("%s.encryption.secret: the libvirt secret (UUID, or a volume secret's usage) is missing" % what)
    return dict(format=enc.get("format") or "luks", secret=enc["secret"])


def _normalize_filter(ref, what):
    """``{name, parameters: {IP: x}}`` -> ``{name, parameters: ['IP=x']}``; ``{name: ''}`` removes the filter."""
    if ref is None:
        return None
    if not ref.get("name"):
        return dict(name="", parameters=[])
    validate_filter_name(ref["name"])
    params = normalize_parameters(ref.get("parameters"), what + ".parameters")
    return dict(name=ref["name"], parameters=sorted("%s=%s" % (k, v) for k, values in params.items() for v in values))


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
        tpm=_shares.normalize_tpm(params.get("tpm")),
        filesystems=_shares.normalize_filesystems(params.get("filesystems")),
        pinning=_tuning.normalize_pinning(params.get("pinning")),
        numa=_tuning.normalize_numa(params.get("numa"), memory_mib),
        hugepages=_tuning.normalize_hugepages(params.get("hugepages")),
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
