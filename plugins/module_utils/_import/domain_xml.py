# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Domain XML from an archive, rebuilt from an allow-list.

An archive's ``domain.xml`` is not trusted: it may come from another host, another person or an
attacker.  libvirt acts on much of what a definition names: it lets QEMU create files as root
(``<serial type='file'>``), read files into the guest (``<kernel>``, ``<rom file>``, an rng
backend), connect to or create sockets, pass through host devices and directories, run scripts
(``<script path>``) and hand raw arguments to QEMU (``<qemu:commandline>``).

So :func:`rebuild` does not remove what is known to be dangerous (a deny-list misses what it does
not know); it builds a new ``<domain>`` and copies into it only the elements and attributes of
:data:`DOMAIN` (an allow-list of what the collection understands and can keep safely), with every
text and attribute value of it.  Everything else is left out, each with a note that names it and
says why.  A few things are converted rather than copied:

* the firmware: UEFI (and secure boot) is kept, through libvirt's firmware auto-selection on this
  host; the old host's loader, NVRAM and template paths are not used;
* serial ports and consoles of another type than ``pty`` (a file, socket, device, pipe, network
  port) become ``pty`` ones, so the guest keeps its console;
* the guest agent channel keeps its target, and libvirt picks the socket path;
* an rng device reads this host's ``/dev/urandom``; a graphical console that listened on another
  address than the loopback listens on ``127.0.0.1``.

Refused outright (dropping them would silently change the VM in a way its owner relies on, or the
document is not libvirt's own): a DOCTYPE or entity declarations, another domain type than
``kvm``/``qemu``, another OS type than ``hvm``, ``<launchSecurity>`` (memory encryption), two
disks with one target, and interfaces that are not on a libvirt network or bridge unless the
import gives ``network`` (leaving them out would renumber the guest's NICs).

Disk sources are never copied: the caller points each kept disk at its new volume
(:func:`._import.rewrite_domain_xml`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
LIBOSINFO_NS = "http://libosinfo.org/xmlns/libvirt/domain/1.0"

HOST_PATH = "it names a file, device or socket of the host"
RAW_ARGS = "it passes raw arguments or capabilities to QEMU"
OLD_HOST = "it is a device of the old host"
TUNING = "it tunes or pins resources of the old host"
CONFINEMENT = "it sets the host's security confinement of the VM"
NOT_ALLOWED = "the import does not keep it (not on its allow-list)"

#: why an element is left out, by tag (anything else: NOT_ALLOWED)
_REASONS = {
    "kernel": HOST_PATH, "initrd": HOST_PATH, "dtb": HOST_PATH, "cmdline": "it belongs to the direct kernel boot that is left out",
    "acpi": HOST_PATH, "loader": HOST_PATH, "nvram": HOST_PATH, "bootloader": HOST_PATH, "bootloader_args": HOST_PATH,
    "init": HOST_PATH, "initarg": HOST_PATH, "initdir": HOST_PATH, "initenv": HOST_PATH, "emulator": HOST_PATH,
    "filesystem": HOST_PATH, "lease": HOST_PATH, "shmem": HOST_PATH, "memory": HOST_PATH, "pstore": HOST_PATH,
    "smartcard": HOST_PATH, "log": HOST_PATH, "script": HOST_PATH, "downscript": HOST_PATH, "backend": HOST_PATH,
    "source": HOST_PATH, "socket": HOST_PATH, "gl": "it needs a render node of the host", "resource": HOST_PATH, "audio": HOST_PATH, "idmap": HOST_PATH,
    "hostdev": OLD_HOST, "redirdev": OLD_HOST, "redirfilter": OLD_HOST, "input": OLD_HOST, "tpm": OLD_HOST,
    "parallel": HOST_PATH, "channel": HOST_PATH, "vsock": "it gives the guest a socket to services of this host",
    "crypto": NOT_ALLOWED,
    "cputune": TUNING, "numatune": TUNING, "memtune": TUNING, "blkiotune": TUNING, "memoryBacking": TUNING,
    "perf": TUNING, "defaultiothread": TUNING, "throttlegroups": TUNING,
    "auth": "it uses a secret of the old host", "encryption": "it uses a secret of the old host",
    "seclabel": CONFINEMENT, "keywrap": CONFINEMENT,
}
#: why an attribute is left out, by name (anything else: NOT_ALLOWED)
_ATTR_REASONS = {
    "file": HOST_PATH, "path": HOST_PATH, "socket": HOST_PATH, "rendernode": HOST_PATH, "dir": HOST_PATH,
    "dev": HOST_PATH, "evdev": HOST_PATH, "xauth": HOST_PATH, "cpuset": TUNING,
    "dumpCore": "it writes the guest's memory into the host's core dumps",
}
#: attributes and element texts shown in a note as the host path an element names
_PATH_ATTRS = ("file", "path", "dev", "dir", "socket", "rendernode", "evdev", "tap", "vhost", "address", "name")
_PATH_TEXTS = ("kernel", "initrd", "dtb", "loader", "nvram", "emulator", "backend", "partition", "table", "bootloader")

_MAX_SHOWN = 60


class Spec:
    """What of an element is kept: ``attrs`` (name -> None for any value, a tuple of allowed values
    or a regular expression), ``text`` (keep the text; a regular expression it must match, else the
    XML is refused), ``children`` (tag -> Spec, or a function ``(builder, node, path) -> new
    element or None`` for the elements that need more than copying) and ``single`` (child tags that
    may come once, or True for all: a second one is left out)."""

    def __init__(self, attrs="", text=False, children=None, values=None, single=False):
        self.attrs = dict((name, None) for name in attrs.split())
        self.attrs.update(values or {})
        self.text = text
        self.children = children or {}
        self.single = single or ()


def _leaf(attrs="", values=None):
    return Spec(attrs, values=values)


def _text(attrs="", values=None):
    return Spec(attrs, text=True, values=values)


_NUMBER = re.compile(r"^[0-9]{1,12}$")


def _number(attrs="", values=None):
    return Spec(attrs, text=_NUMBER, values=values)


_FLAG_ATTRS = "state value retries size version driver mode unknown eoi enabled policy unit"
_ADDRESS = _leaf("type domain bus slot function multifunction controller target unit port reg cssid ssid devno "
                 "iobase irq base uid fid")
_ALIAS = _leaf("name")
_BOOT = _leaf("order loadparm")
_VIRTIO_DRIVER = "iommu ats packed page_per_vq"
_COMMON = dict(address=_ADDRESS, alias=_ALIAS)


def _join(path, tag):
    return "%s/%s" % (path, tag) if path else tag


def _with(base, **more):
    out = dict(base)
    out.update(more)
    return out


def _flags(depth=2):
    """A feature flag (``<acpi/>``, ``<hyperv mode><relaxed state/>...``, ``<smm><tseg>``): no paths."""
    return Spec(_FLAG_ATTRS, text=True, children=_AnyTag(_flags(depth - 1)) if depth else None)


def _only_if(attr, values, spec, reason):
    """A handler keeping the element (by ``spec``) only when its ``attr`` is one of ``values``."""

    def handler(builder, node, path):
        if node.get(attr) not in values:
            builder.left_out(node, path, reason)
            return None
        return builder.copy(node, spec, path)

    return handler


class _AnyTag(dict):
    """Children of any (non-namespaced) tag with one Spec."""

    def __init__(self, spec):
        super(_AnyTag, self).__init__()
        self.spec = spec

    def get(self, key, default=None):
        return self.spec if "}" not in key else default

    def __contains__(self, key):
        return "}" not in key


_FEATURES = ("acpi", "apic", "pae", "hap", "viridian", "privnet", "hyperv", "kvm", "xen", "pvspinlock", "pmu",
             "vmport", "gic", "smm", "ioapic", "hpt", "vmcoreinfo", "htm", "nested-hv", "msrs", "ccf-assist", "cfpc",
             "sbbc", "ibs", "tcg", "async-teardown", "ras", "ps2")
_ON_ACTIONS = ("destroy", "restart", "preserve", "rename-restart")
_WATCHDOG_ACTIONS = ("reset", "shutdown", "poweroff", "pause", "none", "inject-nmi")
_NIC_MODELS = ("virtio", "virtio-transitional", "virtio-non-transitional", "e1000", "e1000e", "rtl8139", "vmxnet3",
               "ne2k_pci", "pcnet", "i82559er")
_NIC_FALLBACK = "e1000"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_KEYMAP = re.compile(r"^[a-z]{2}(-[a-z]{2,})?$")
_ALLOWED_INPUTS = ("tablet", "mouse", "keyboard")
_GA_CHANNEL = "org.qemu.guest_agent.0"
_SPICE_CHANNEL = "com.redhat.spice.0"

_CPU = Spec("mode match check migratable", children=dict(
    model=_text("fallback vendor_id"), vendor=_text(), topology=Spec(values=dict((k, _NUMBER) for k in ("sockets", "dies", "clusters", "cores", "threads"))),
    feature=_leaf("policy name"), cache=_leaf("level mode"), maxphysaddr=_leaf("mode bits"),
    numa=Spec(children=dict(cell=Spec("id cpus memory unit discard", children=dict(
        distances=Spec(children=dict(sibling=_leaf("id value"))))))),
))
_CLOCK = Spec("offset timezone adjustment basis", children=dict(
    timer=Spec("name present tickpolicy track frequency mode", children=dict(catchup=_leaf("threshold slew limit"))),
))
_SYSINFO_BLOCK = Spec(children=dict(entry=_text("name")))
_SYSINFO = _only_if("type", ("smbios",), Spec("type", children=dict(
    bios=_SYSINFO_BLOCK, system=_SYSINFO_BLOCK, baseBoard=_SYSINFO_BLOCK, chassis=_SYSINFO_BLOCK,
    oemStrings=Spec(children=dict(entry=_text())),
)), HOST_PATH)
_DISK_CHILDREN = _with(
    _COMMON,
    driver=_leaf("name cache error_policy rerror_policy io ioeventfd event_idx copy_on_read discard detect_zeroes "
                 "iothread queues queue_size " + _VIRTIO_DRIVER, values=dict(name=("qemu",), type=("raw", "qcow2"))),
    target=_leaf("dev bus tray removable rotation_rate"), serial=_text(), wwn=_text(), vendor=_text(), product=_text(),
    readonly=_leaf(), shareable=_leaf(), boot=_BOOT, geometry=_leaf("cyls heads secs trans"),
    blockio=_leaf("logical_block_size physical_block_size discard_granularity"),
    iotune=Spec(children=_AnyTag(_text())),
)
_DISK = Spec("device model", children=_DISK_CHILDREN)
_CONTROLLER = Spec("type index model ports vectors", children=_with(
    _COMMON, model=_leaf("name"), target=Spec("chassisNr chassis port busNr index hotplug memReserve",
                                              children=dict(node=_text())),
    driver=_leaf("queues cmd_per_lun max_sectors ioeventfd iothread " + _VIRTIO_DRIVER), pcihole64=_text("unit"),
))
_OFFLOADS = _leaf("csum gso tso4 tso6 ecn ufo mrg_rxbuf")
_INTERFACE = Spec(children=_with(
    _COMMON, mac=_leaf("address"), model=_leaf("type"), boot=_BOOT, link=_leaf("state"), mtu=_leaf("size"),
    driver=Spec("name txmode ioeventfd event_idx queues rx_queue_size tx_queue_size " + _VIRTIO_DRIVER,
                values=dict(name=("qemu", "vhost")), children=dict(host=_OFFLOADS, guest=_OFFLOADS)),
    rom=_leaf("bar enabled"), filterref=Spec("filter", children=dict(parameter=_leaf("name value"))),
    bandwidth=Spec(children=dict(inbound=_leaf("average peak burst floor"), outbound=_leaf("average peak burst"))),
    coalesce=Spec(children=dict(rx=Spec(children=dict(frames=_leaf("max"))))), acpi=_leaf("index"),
    port=_leaf("isolated"), tune=Spec(children=dict(sndbuf=_text())),
    vlan=Spec("trunk", children=dict(tag=_leaf("id nativeMode"))),
    virtualport=Spec("type", children=dict(
        parameters=_leaf("interfaceid profileid instanceid managerid typeid typeidversion"))),
))
_CHAR_TARGET = Spec("type port", children=dict(model=_leaf("name")))
_GRAPHICS_COMMON = "autoport port passwd passwdValidTo connected keymap"
_SPICE_CHILDREN = dict(
    channel=_leaf("name mode"), image=_leaf("compression"), jpeg=_leaf("compression"), zlib=_leaf("compression"),
    playback=_leaf("compression"), streaming=_leaf("mode"), clipboard=_leaf("copypaste"), mouse=_leaf("mode"),
    filetransfer=_leaf("enable"),
)
_VIDEO = Spec(children=_with(
    _COMMON, model=Spec("type vram heads ram vgamem vram64 primary blob", children=dict(
        acceleration=_leaf("accel3d accel2d"), resolution=_leaf("x y"))),
    driver=_leaf("name " + _VIRTIO_DRIVER, values=dict(name=("qemu",))),
))


def _metadata(builder, node, path):
    """Only the collection's own tags/meta and libosinfo's OS id; other applications' data is left out."""
    out = _xml.element("metadata")
    for child in node:
        if not isinstance(child.tag, str):
            continue
        if child.tag == "{%s}vm" % _xml.VIRTOPS_NS:
            out.append(_copy_virtops_meta(child))
        elif child.tag == "{%s}libosinfo" % LIBOSINFO_NS:
            os_node = child.find("{%s}os" % LIBOSINFO_NS)
            if os_node is not None and os_node.get("id"):
                info = _xml.etree.SubElement(out, child.tag, nsmap={"libosinfo": LIBOSINFO_NS})
                _xml.etree.SubElement(info, os_node.tag).set("id", os_node.get("id"))
        else:
            builder.left_out(child, _join(path, "metadata"), "it is another application's metadata")
    return out if len(out) else None


def _copy_virtops_meta(node):
    ns = "{%s}" % _xml.VIRTOPS_NS
    out = _xml.etree.Element(ns + "vm", nsmap={"virtops": _xml.VIRTOPS_NS})
    tags = _xml.etree.SubElement(out, ns + "tags")
    for tag in node.findall("%stags/%stag" % (ns, ns)):
        if tag.text:
            _xml.etree.SubElement(tags, ns + "tag").text = tag.text
    for meta in node.findall(ns + "meta"):
        if meta.get("key"):
            item = _xml.etree.SubElement(out, ns + "meta")
            item.set("key", meta.get("key"))
            item.text = meta.text or ""
    return out


def _os(builder, node, path):
    if (_xml.find_text(node, "type") or "hvm") != "hvm":
        raise InvalidInputError("the archived domain XML has OS type %r: only hvm guests can be imported"
                                % _xml.find_text(node, "type"))
    out = builder.copy(node, Spec(children=dict(
        type=_text("arch machine"), boot=_leaf("dev"), bootmenu=_leaf("enable timeout"),
        bios=_leaf("useserial rebootTimeout"),
        smbios=_only_if("mode", ("emulate", "sysinfo"), _leaf("mode"), "it copies the host's SMBIOS data into the guest"),
    )), path, quiet=("firmware", "loader", "nvram"))
    loader = node.find("loader")
    efi = node.get("firmware") == "efi" or (loader is not None and loader.get("type") == "pflash")
    if loader is not None and not efi and (loader.text or "").strip():
        builder.left_out(loader, _join(path, "os"), HOST_PATH)
    return out


def _disk(builder, node, path):
    device = node.get("device") or "disk"
    if device == "lun":
        builder.left_out(node, path, "it passes a block device of the old host through")
        return None
    if device not in ("disk", "cdrom", "floppy"):
        builder.left_out(node, path, NOT_ALLOWED)
        return None
    target = _xml.find_attr(node, "target", "dev")
    if target is None:
        builder.left_out(node, path, "it has no target")
        return None
    key = (device == "disk", target)
    if key in builder.disk_targets:
        raise InvalidInputError("the archived domain XML has two %s with target %s" % (
            "disks" if device == "disk" else "drives", target))
    builder.disk_targets.add(key)
    out = builder.copy(node, _DISK, path, quiet=("type", "source", "backingStore"))
    out.set("type", "file")
    if device == "disk":
        builder.disks.append(dict(target=target, source=_describe_source(node)))
    elif node.find("source") is not None and _describe_source(node):
        builder.note("%s %s was emptied (it held %s of the old host)" % (
            "CD-ROM" if device == "cdrom" else "floppy", target, _describe_source(node)))
    return out


def _describe_source(node):
    src = node.find("source")
    if src is None:
        return None
    for attr in ("file", "dev", "dir", "volume", "name"):
        if src.get(attr):
            value = src.get(attr)
            if attr == "volume" and src.get("pool"):
                value = "%s/%s" % (src.get("pool"), value)
            return _show(value)
    return "a %s source" % (node.get("type") or "disk")


def _interface(builder, node, path):
    kind = node.get("type")
    if builder.network:
        quiet = ("type", "source", "virtualport", "vlan", "target")
    elif kind in ("network", "bridge"):
        quiet = ("type", "source", "target")
    else:
        raise InvalidInputError(
            "interface %d of the archived VM is of type %s%s, which an import does not keep (only libvirt networks "
            "and bridges): give network to connect the imported VM's interfaces to a libvirt network"
            % (builder.nics + 1, _show(kind), _source_hint(node)))
    builder.nics += 1
    out = builder.copy(node, _INTERFACE, path, quiet=quiet)
    target = node.find("target")
    if target is not None and not re.match(r"^(vnet|macvtap|macvlan)[0-9]+$", target.get("dev") or "vnet0"):
        builder.left_out(target, _join(path, "interface"), "it names a network device of the host")
    if builder.network:
        kind, kept = "network", dict(network=builder.network)
    else:
        src = node.find("source")
        attrs = dict(network=("network", "portgroup"), bridge=("bridge",))[kind]
        kept = dict((a, src.get(a)) for a in attrs if src is not None and src.get(a))
    out.set("type", kind)
    mac = out.find("mac")
    if mac is not None:
        mac.addnext(_xml.element("source", attrs=kept))
    else:
        out.insert(0, _xml.element("source", attrs=kept))
    model = out.find("model")
    if model is not None and model.get("type") not in _NIC_MODELS:
        builder.note("NIC model %s is not kept: the imported NIC is an %s" % (_show(model.get("type")), _NIC_FALLBACK))
        model.set("type", _NIC_FALLBACK)
    return out


def _source_hint(node):
    src = node.find("source")
    if src is None:
        return ""
    for attr in ("dev", "path", "bridge", "network", "address"):
        if src.get(attr):
            return " (%s %s)" % (attr, _show(src.get(attr)))
    return ""


def _chardev(builder, node, path):
    """``<serial>``/``<console>``: kept as a pty (QEMU's end is a pseudo terminal libvirt makes)."""
    kind = node.get("type")
    out = builder.copy(node, Spec(children=_with(_COMMON, target=_CHAR_TARGET)), path,
                       quiet=("type", "tty", "source", "protocol", "log"))
    out.set("type", "pty")
    if kind != "pty":
        builder.note("the archived domain XML's %s %s became a pty: the old one was of type %s%s" % (
            node.tag, _port(node), _show(kind), _named(node)))
    elif node.find("source") is not None and node.find("source").get("path"):
        builder.left_out(node.find("source"), _join(path, node.tag), HOST_PATH)
    if node.find("log") is not None:
        builder.left_out(node.find("log"), _join(path, node.tag), HOST_PATH)
    return out


def _port(node):
    port = _xml.find_attr(node, "target", "port")
    return port if port is not None else "0"


def _named(node):
    found = _first_path(node)
    return " naming %s" % found if found else ""


def _channel(builder, node, path):
    kind, name = node.get("type"), _xml.find_attr(node, "target", "name")
    if (kind, name) not in (("unix", _GA_CHANNEL), ("spicevmc", _SPICE_CHANNEL)):
        builder.left_out(node, path, HOST_PATH if _first_path(node) else NOT_ALLOWED)
        return None
    out = builder.copy(node, Spec(values=dict(type=(kind,)), children=_with(_COMMON, target=_leaf("type name"))),
                       path, quiet=("source",))
    src = node.find("source")
    if src is not None and src.get("path"):
        builder.left_out(src, _join(path, "channel"), HOST_PATH)
    return out


def _graphics(builder, node, path):
    kind = node.get("type")
    if kind not in ("vnc", "spice"):
        builder.left_out(node, path, HOST_PATH if _first_path(node) else NOT_ALLOWED)
        return None
    attrs = _GRAPHICS_COMMON + (" websocket sharePolicy powerControl" if kind == "vnc" else " tlsPort defaultMode")
    children = dict(_SPICE_CHILDREN) if kind == "spice" else {}
    children["audio"] = _leaf("id")
    out = builder.copy(node, Spec("type " + attrs, children=children), path, quiet=("listen",))
    keymap = out.get("keymap")
    if keymap is not None and not _KEYMAP.match(keymap):
        del out.attrib["keymap"]
        builder.note("the archived domain XML's %s/graphics keymap=%s was left out: %s" % (path, _show(keymap), NOT_ALLOWED))
    listens = [node.get("listen")] + [n.get("address") or n.get("socket") or n.get("network") or n.get("type")
                                      for n in node.findall("listen")]
    outside = []
    for address in listens:
        if address and address not in _LOOPBACK + ("address", "none") + tuple(outside):
            outside.append(address)
    if any(n.get("type") == "none" for n in node.findall("listen")) and not outside:
        _xml.sub(out, "listen", attrs={"type": "none"})
        return out
    out.set("listen", "127.0.0.1")
    out.insert(0, _xml.element("listen", attrs={"type": "address", "address": "127.0.0.1"}))
    if outside:
        builder.note("the %s console listened on %s; it listens on 127.0.0.1 (set graphics.listen with the vm module "
                     "to change that)" % (kind, ", ".join(_show(a) for a in outside)))
    return out


def _input(builder, node, path):
    if node.get("type") not in _ALLOWED_INPUTS:
        builder.left_out(node, path, HOST_PATH if _first_path(node) else NOT_ALLOWED)
        return None
    return builder.copy(node, Spec("type bus model", children=_with(_COMMON, driver=_leaf(_VIRTIO_DRIVER))), path)


def _tpm(builder, node, path):
    backend = node.find("backend")
    if backend is None or backend.get("type") != "emulator":
        builder.left_out(node, path, "it passes the host's TPM through" if backend is not None else NOT_ALLOWED)
        return None
    out = builder.copy(node, Spec("model", children=_with(_COMMON, backend=Spec(
        "type version", values=dict(type=("emulator",)), children=dict(active_pcr_banks=Spec(children=_AnyTag(_leaf())))
    ))), path)
    builder.note("the TPM is a new, empty emulated one: the old TPM's state is not in the archive")
    return out


def _rng(builder, node, path):
    backend = node.find("backend")
    out = builder.copy(node, Spec("model", values=dict(model=("virtio", "virtio-transitional", "virtio-non-transitional")),
                                  children=_with(_COMMON, rate=_leaf("period bytes"), driver=_leaf(_VIRTIO_DRIVER))),
                       path, quiet=("backend",))
    if out.get("model") is None:
        return None
    old = (backend.get("model"), (backend.text or "").strip()) if backend is not None else (None, None)
    if old not in (("random", "/dev/urandom"), ("random", "/dev/random")):
        builder.note("the random number generator reads this host's /dev/urandom (the old one %s)" % (
            "read %s" % _show(old[1]) if old[0] == "random" else "had a backend of model %s" % _show(old[0])))
    _xml.sub(out, "backend", "/dev/urandom", attrs={"model": "random"})
    return out


def _audio(builder, node, path):
    if node.get("type") not in ("none", "spice"):
        builder.left_out(node, path, HOST_PATH)
        return None
    out = builder.copy(node, Spec("id type timerPeriod"), path)
    if out.get("id"):
        builder.audio_ids.add(out.get("id"))
    return out


def _watchdog(builder, node, path):
    return builder.copy(node, Spec("model", values=dict(action=_WATCHDOG_ACTIONS), children=_COMMON), path)


def _emulator(builder, node, path):
    binary = (node.text or "").strip().rsplit("/", 1)[-1]
    if not re.match(r"^(qemu-system-[a-z0-9_]+|qemu-kvm|kvm)$", binary):
        builder.left_out(node, path, HOST_PATH)
    return None  # this host's own emulator is used


def _seclabel(builder, node, path):
    if node.get("type") == "dynamic" and node.get("relabel") in (None, "yes") and len(node) == 0:
        return None  # the host's default
    builder.left_out(node, path, CONFINEMENT)
    return None


def _resource(builder, node, path):
    if [c.tag for c in node] != ["partition"] or _xml.find_text(node, "partition") != "/machine":
        builder.left_out(node, path, HOST_PATH)
    return None


def _refuse_launch_security(builder, node, path):
    raise InvalidInputError("the archived domain XML has <launchSecurity type=%s> (memory encryption): importing it "
                            "without would expose the guest's memory, and a guest key cannot move between hosts; "
                            "refused" % _show(node.get("type")))


_DEVICES = Spec(single=("watchdog", "memballoon", "iommu"), children=_with(
    {},
    emulator=_emulator, disk=_disk, controller=_CONTROLLER, interface=_interface, input=_input, graphics=_graphics,
    serial=_chardev, console=_chardev, channel=_channel, tpm=_tpm, rng=_rng, audio=_audio, watchdog=_watchdog,
    video=_VIDEO,
    sound=Spec("model", children=_with(_COMMON, codec=_leaf("type"), audio=_leaf("id"))),
    memballoon=Spec("model autodeflate freePageReporting", children=_with(
        _COMMON, stats=_leaf("period"), driver=_leaf(_VIRTIO_DRIVER))),
    panic=Spec("model", children=_COMMON),
    iommu=Spec("model", children=_with(_COMMON, driver=_leaf("intremap caching_mode eim iotlb aw_bits"))),
    hub=_only_if("type", ("usb",), Spec("type", children=_COMMON), NOT_ALLOWED),
))

_DOMAIN_CHILDREN = dict(
    name=_text(), uuid=_text(), genid=_text(), title=_text(), description=_text(), metadata=_metadata,
    maxMemory=_number("unit", values=dict(slots=_NUMBER)), memory=_number("unit"), currentMemory=_number("unit"),
    vcpu=_number("placement", values=dict(current=_NUMBER)), vcpus=Spec(children=dict(vcpu=_leaf("id enabled hotpluggable order"))),
    iothreads=_number(), iothreadids=Spec(children=dict(iothread=_leaf("id"))), os=_os,
    features=Spec(children=dict((f, _flags()) for f in _FEATURES)), cpu=_CPU,
    clock=_CLOCK, sysinfo=_SYSINFO, pm=Spec(children={"suspend-to-mem": _leaf("enabled"), "suspend-to-disk": _leaf("enabled")}),
    on_poweroff=_text(), on_reboot=_text(), on_crash=_text(), devices=_DEVICES, seclabel=_seclabel,
    resource=_resource, launchSecurity=_refuse_launch_security,
)
#: the allow-list: what of a ``<domain>`` is kept (each top-level element once, but for seclabel)
DOMAIN = Spec(single=tuple(sorted(set(_DOMAIN_CHILDREN) - {"seclabel"})), children=_DOMAIN_CHILDREN)
_ON_TAGS = ("on_poweroff", "on_reboot", "on_crash")


class _Builder:
    """One rebuild: the notes, and what the handlers learn on the way (disks, NIC count, audio ids)."""

    def __init__(self, network):
        self.network = network
        self.notes = []
        self.disks = []
        self.disk_targets = set()
        self.nics = 0
        self.audio_ids = set()

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)

    def left_out(self, node, path, reason):
        self.note("the archived domain XML's %s was left out: %s" % (_name(node, path), reason))

    def copy(self, node, spec, path, quiet=()):
        """A new element with the allowed attributes, text and children of ``node`` (recursively)."""
        out = _xml.element(node.tag)
        here = "" if path is None else _join(path, node.tag)
        for attr, value in node.attrib.items():
            allowed = spec.attrs.get(attr, False) if "}" not in attr else False
            if allowed is None or (hasattr(allowed, "match") and allowed.match(value)) or (
                    isinstance(allowed, tuple) and value in allowed):
                out.set(attr, value)
            elif attr not in quiet:
                self.note("the archived domain XML's %s %s=%s was left out: %s" % (
                    here or "domain", _local(attr), _show(value), _ATTR_REASONS.get(_local(attr), NOT_ALLOWED)))
        if spec.text and node.text is not None:
            out.text = node.text.strip()
            if hasattr(spec.text, "match") and not spec.text.match(out.text):
                raise InvalidInputError("the archived domain XML's %s %s is not valid" % (here, _show(out.text)))
        seen = set()
        for child in node:
            if not isinstance(child.tag, str):
                continue  # comments and processing instructions: nothing acts on them
            rule = spec.children.get(child.tag) if child.tag in spec.children else None
            if rule is None:
                if child.tag not in quiet:
                    self.left_out(child, here, _reason(child))
                continue
            if child.tag in seen and (spec.single is True or child.tag in spec.single):
                self.left_out(child, here, "it is given twice")
                continue
            seen.add(child.tag)
            new = rule(self, child, here) if callable(rule) else self.copy(child, rule, here)
            if new is not None:
                out.append(new)
        return out


def _reason(node):
    ns = node.tag[1:].split("}", 1)[0] if node.tag.startswith("{") else None
    if ns == QEMU_NS:
        return RAW_ARGS
    if ns is not None:
        return "it belongs to another XML namespace (%s) that libvirt's drivers may act on" % _show(ns)
    return _REASONS.get(node.tag, NOT_ALLOWED)


def _local(tag):
    return tag.split("}", 1)[1] if tag.startswith("{") else tag


def _name(node, path):
    """``devices/serial type='file' ('/etc/cron.d/x')``: where the element was, its type and what it names."""
    prefix = "qemu:" if node.tag.startswith("{%s}" % QEMU_NS) else ""
    text = "%s%s%s" % (path + "/" if path else "", prefix, _local(node.tag))
    if node.get("type"):
        text += " type=%s" % _show(node.get("type"))
    if prefix:
        args = [a.get("value") for a in node.iter("{%s}arg" % QEMU_NS) if a.get("value") is not None]
        args += ["%s=%s" % (e.get("name"), e.get("value")) for e in node.iter("{%s}env" % QEMU_NS)]
        return text + (" (%s)" % _show(" ".join(args)) if args else "")
    found = _first_path(node)
    return text + (" (%s)" % found if found else "")


def _first_path(node):
    for el in node.iter():
        if not isinstance(el.tag, str):
            continue
        if el.get("service"):
            return _show("%s:%s" % (el.get("host") or "", el.get("service")))
        for attr in _PATH_ATTRS:
            value = el.get(attr)
            if value and (attr not in ("name", "address") or "/" in value):
                return _show(value)
        if _local(el.tag) in _PATH_TEXTS and (el.text or "").strip():
            return _show(el.text.strip())
    return None


def _show(value):
    """A value from the archive for a message: quoted, control characters escaped, at most 60 characters."""
    if value is None:
        return "(none)"
    text = "".join(c if c.isprintable() else "\\x%02x" % ord(c) for c in str(value))
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN] + "..."
    return "'%s'" % text.replace("'", "\\'")


def _check_document(root, what):
    doc = root.getroottree().docinfo
    if doc.doctype or doc.internalDTD is not None:
        raise InvalidInputError("%s has a DOCTYPE (%s): libvirt never writes one, and an archive's XML may not "
                                "declare entities; refused" % (what, _show(doc.doctype)))
    if root.tag != "domain":
        raise InvalidInputError("%s has <%s> as root, not <domain>" % (what, root.tag))
    kind = root.get("type")
    if kind not in ("kvm", "qemu"):
        raise InvalidInputError("%s is a domain of type %s: only kvm and qemu domains can be imported" % (what, _show(kind)))


class Rebuilt:
    """What :func:`rebuild` made: ``root`` (the new ``<domain>``), ``notes`` (what was left out or
    converted), ``disks`` (the kept disks: ``target`` and ``source``, the old source for messages) and
    ``firmware``/``secure_boot`` (to be applied with this host's firmware auto-selection)."""

    def __init__(self, root, notes, disks, firmware, secure_boot):
        self.root = root
        self.notes = notes
        self.disks = disks
        self.firmware = firmware
        self.secure_boot = secure_boot


def rebuild(text, network=None, what="the archived domain XML"):
    """A new ``<domain>`` made of what :data:`DOMAIN` allows of ``text`` (a :class:`Rebuilt`).

    ``network``: the interfaces will be moved to that libvirt network (any interface type is then
    accepted; its old connection is dropped quietly).  Raises InvalidInputError for what is refused.
    """
    original = _xml.parse(text, what)
    _check_document(original, what)
    builder = _Builder(network)
    root = builder.copy(original, DOMAIN, None, quiet=("id", "type"))
    root.set("type", original.get("type"))
    for tag in _ON_TAGS:
        node = root.find(tag)
        if node is not None and node.text not in _ON_ACTIONS:
            builder.note("the archived domain XML's %s %s was left out: libvirt's default applies" % (tag, _show(node.text)))
            root.remove(node)
    for ref in root.xpath("devices/sound/audio | devices/graphics/audio"):
        if ref.get("id") not in builder.audio_ids:
            ref.getparent().remove(ref)
    firmware, secure = _domain._firmware_model(original.find("os"))  # pylint: disable=protected-access
    return Rebuilt(root, builder.notes, builder.disks, firmware, secure)
