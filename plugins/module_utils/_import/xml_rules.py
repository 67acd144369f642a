# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The vocabulary of the allow-list for archived domain XML (see :mod:`._import.domain_xml`): element
specs (:class:`Spec`), the reasons given for what is left out, the specs of CPU, clock, disks,
controllers, interfaces, consoles and video, and how a left-out element is named in a note."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

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
ATTR_REASONS = {
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


def leaf(attrs="", values=None):
    return Spec(attrs, values=values)


def text_leaf(attrs="", values=None):
    return Spec(attrs, text=True, values=values)


NUMBER = re.compile(r"^[0-9]{1,12}$")


def number_leaf(attrs="", values=None):
    return Spec(attrs, text=NUMBER, values=values)


_FLAG_ATTRS = "state value retries size version driver mode unknown eoi enabled policy unit"
_ADDRESS = leaf("type domain bus slot function multifunction controller target unit port reg cssid ssid devno "
                "iobase irq base uid fid")
_ALIAS = leaf("name")
_BOOT = leaf("order loadparm")
VIRTIO_DRIVER = "iommu ats packed page_per_vq"
COMMON = dict(address=_ADDRESS, alias=_ALIAS)


def join_path(path, tag):
    return "%s/%s" % (path, tag) if path else tag


def with_common(base, **more):
    out = dict(base)
    out.update(more)
    return out


def flags_leaf(depth=2):
    """A feature flag (``<acpi/>``, ``<hyperv mode><relaxed state/>...``, ``<smm><tseg>``): no paths."""
    return Spec(_FLAG_ATTRS, text=True, children=AnyTag(flags_leaf(depth - 1)) if depth else None)


def only_if(attr, values, spec, reason):
    """A handler keeping the element (by ``spec``) only when its ``attr`` is one of ``values``."""

    def handler(builder, node, path):
        if node.get(attr) not in values:
            builder.left_out(node, path, reason)
            return None
        return builder.copy(node, spec, path)

    return handler


class AnyTag(dict):
    """Children of any (non-namespaced) tag with one Spec."""

    def __init__(self, spec):
        super(AnyTag, self).__init__()
        self.spec = spec

    def get(self, key, default=None):
        return self.spec if "}" not in key else default

    def __contains__(self, key):
        return "}" not in key


FEATURES = ("acpi", "apic", "pae", "hap", "viridian", "privnet", "hyperv", "kvm", "xen", "pvspinlock", "pmu",
            "vmport", "gic", "smm", "ioapic", "hpt", "vmcoreinfo", "htm", "nested-hv", "msrs", "ccf-assist", "cfpc",
            "sbbc", "ibs", "tcg", "async-teardown", "ras", "ps2")
ON_ACTIONS = ("destroy", "restart", "preserve", "rename-restart")
WATCHDOG_ACTIONS = ("reset", "shutdown", "poweroff", "pause", "none", "inject-nmi")
NIC_MODELS = ("virtio", "virtio-transitional", "virtio-non-transitional", "e1000", "e1000e", "rtl8139", "vmxnet3",
              "ne2k_pci", "pcnet", "i82559er")
NIC_FALLBACK = "e1000"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
KEYMAP = re.compile(r"^[a-z]{2}(-[a-z]{2,})?$")
ALLOWED_INPUTS = ("tablet", "mouse", "keyboard")
GA_CHANNEL = "org.qemu.guest_agent.0"
SPICE_CHANNEL = "com.redhat.spice.0"

CPU = Spec("mode match check migratable", children=dict(
    model=text_leaf("fallback vendor_id"), vendor=text_leaf(),
    topology=Spec(values=dict((k, NUMBER) for k in ("sockets", "dies", "clusters", "cores", "threads"))),
    feature=leaf("policy name"), cache=leaf("level mode"), maxphysaddr=leaf("mode bits"),
    numa=Spec(children=dict(cell=Spec("id cpus memory unit discard", children=dict(
        distances=Spec(children=dict(sibling=leaf("id value"))))))),
))
CLOCK = Spec("offset timezone adjustment basis", children=dict(
    timer=Spec("name present tickpolicy track frequency mode", children=dict(catchup=leaf("threshold slew limit"))),
))
_SYSINFO_BLOCK = Spec(children=dict(entry=text_leaf("name")))
SYSINFO = only_if("type", ("smbios",), Spec("type", children=dict(
    bios=_SYSINFO_BLOCK, system=_SYSINFO_BLOCK, baseBoard=_SYSINFO_BLOCK, chassis=_SYSINFO_BLOCK,
    oemStrings=Spec(children=dict(entry=text_leaf())),
)), HOST_PATH)
_DISK_CHILDREN = with_common(
    COMMON,
    driver=leaf("name cache error_policy rerror_policy io ioeventfd event_idx copy_on_read discard detect_zeroes "
                "iothread queues queue_size " + VIRTIO_DRIVER, values=dict(name=("qemu",), type=("raw", "qcow2"))),
    target=leaf("dev bus tray removable rotation_rate"), serial=text_leaf(), wwn=text_leaf(), vendor=text_leaf(), product=text_leaf(),
    readonly=leaf(), shareable=leaf(), boot=_BOOT, geometry=leaf("cyls heads secs trans"),
    blockio=leaf("logical_block_size physical_block_size discard_granularity"),
    iotune=Spec(children=AnyTag(text_leaf())),
)
DISK = Spec("device model", children=_DISK_CHILDREN)
CONTROLLER = Spec("type index model ports vectors", children=with_common(
    COMMON, model=leaf("name"), target=Spec("chassisNr chassis port busNr index hotplug memReserve",
                                            children=dict(node=text_leaf())),
    driver=leaf("queues cmd_per_lun max_sectors ioeventfd iothread " + VIRTIO_DRIVER), pcihole64=text_leaf("unit"),
))
_OFFLOADS = leaf("csum gso tso4 tso6 ecn ufo mrg_rxbuf")
INTERFACE = Spec(children=with_common(
    COMMON, mac=leaf("address"), model=leaf("type"), boot=_BOOT, link=leaf("state"), mtu=leaf("size"),
    driver=Spec("name txmode ioeventfd event_idx queues rx_queue_size tx_queue_size " + VIRTIO_DRIVER,
                values=dict(name=("qemu", "vhost")), children=dict(host=_OFFLOADS, guest=_OFFLOADS)),
    rom=leaf("bar enabled"), filterref=Spec("filter", children=dict(parameter=leaf("name value"))),
    bandwidth=Spec(children=dict(inbound=leaf("average peak burst floor"), outbound=leaf("average peak burst"))),
    coalesce=Spec(children=dict(rx=Spec(children=dict(frames=leaf("max"))))), acpi=leaf("index"),
    port=leaf("isolated"), tune=Spec(children=dict(sndbuf=text_leaf())),
    vlan=Spec("trunk", children=dict(tag=leaf("id nativeMode"))),
    virtualport=Spec("type", children=dict(
        parameters=leaf("interfaceid profileid instanceid managerid typeid typeidversion"))),
))
CHAR_TARGET = Spec("type port", children=dict(model=leaf("name")))
GRAPHICS_COMMON = "autoport port passwd passwdValidTo connected keymap"
SPICE_CHILDREN = dict(
    channel=leaf("name mode"), image=leaf("compression"), jpeg=leaf("compression"), zlib=leaf("compression"),
    playback=leaf("compression"), streaming=leaf("mode"), clipboard=leaf("copypaste"), mouse=leaf("mode"),
    filetransfer=leaf("enable"),
)
VIDEO = Spec(children=with_common(
    COMMON, model=Spec("type vram heads ram vgamem vram64 primary blob", children=dict(
        acceleration=leaf("accel3d accel2d"), resolution=leaf("x y"))),
    driver=leaf("name " + VIRTIO_DRIVER, values=dict(name=("qemu",))),
))


def reason_of(node):
    ns = node.tag[1:].split("}", 1)[0] if node.tag.startswith("{") else None
    if ns == QEMU_NS:
        return RAW_ARGS
    if ns is not None:
        return "it belongs to another XML namespace (%s) that libvirt's drivers may act on" % show(ns)
    return _REASONS.get(node.tag, NOT_ALLOWED)


def local_name(tag):
    return tag.split("}", 1)[1] if tag.startswith("{") else tag


def element_name(node, path):
    """``devices/serial type='file' ('/etc/cron.d/x')``: where the element was, its type and what it names."""
    prefix = "qemu:" if node.tag.startswith("{%s}" % QEMU_NS) else ""
    text = "%s%s%s" % (path + "/" if path else "", prefix, local_name(node.tag))
    if node.get("type"):
        text += " type=%s" % show(node.get("type"))
    if prefix:
        args = [a.get("value") for a in node.iter("{%s}arg" % QEMU_NS) if a.get("value") is not None]
        args += ["%s=%s" % (e.get("name"), e.get("value")) for e in node.iter("{%s}env" % QEMU_NS)]
        return text + (" (%s)" % show(" ".join(args)) if args else "")
    found = first_path(node)
    return text + (" (%s)" % found if found else "")


def first_path(node):
    for el in node.iter():
        if not isinstance(el.tag, str):
            continue
        if el.get("service"):
            return show("%s:%s" % (el.get("host") or "", el.get("service")))
        for attr in _PATH_ATTRS:
            value = el.get(attr)
            if value and (attr not in ("name", "address") or "/" in value):
                return show(value)
        if local_name(el.tag) in _PATH_TEXTS and (el.text or "").strip():
            return show(el.text.strip())
    return None


def show(value):
    """A value from the archive for a message: quoted, control characters escaped, at most 60 characters."""
    if value is None:
        return "(none)"
    text = "".join(c if c.isprintable() else "\\x%02x" % ord(c) for c in str(value))
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN] + "..."
    return "'%s'" % text.replace("'", "\\'")
