# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``vm_import`` resource: a VM made from an archive, an OVA/OVF or bare disk images.

Sources:

* the collection's own archives (tar, tar.gz, tar.zst; see ``_archive``): the domain is rebuilt from
  what the allow-list of ``_import_xml`` keeps of the archived XML, with its disks pointed at the new
  volumes, its interfaces at ``network`` when given, and a new UUID and new MAC addresses when the VM
  gets another name (or its UUID is taken on this host);
* an OVA (a tar whose first member is the OVF descriptor) or an OVF with its files beside it: the
  hardware section becomes a VM model (CPU, memory, firmware, disks, NICs);
* bare disk images (``disks``) plus the VM parameters.

Every disk becomes a volume ``<vm>-<target>.<qcow2|img>`` of ``pool`` in ``disk_format`` (qcow2 for
file-based pools, raw for block pools), and the VM is defined with the collection's ``vm``
resource, so it is exactly what the ``vm`` module would make.

Nothing in the source is trusted: member headers are checked before any data is read (no absolute
names, no ``..``, regular files only, sizes equal to those the manifest or the OVF declares; an
uncompressed tar is scanned whole before anything is written); members are streamed into a private
scratch directory with their length capped and SHA-256 (or the OVA manifest's digest) checked;
images pass the image-trust check (``_trust.check_image``: under their declared format, refused when
they refer to any other file, such as backing files, qcow2 external data files or VMDK extents, are
encrypted, oversized or not what they are declared to be).  Then each disk is converted when its
format differs, uploaded into a new volume through libvirt (so remote hypervisors work too), which
gets the collection's record (``_record``: format, source, fill complete), and the VM is defined.  A
failure undoes what the run made (also after libvirtd restarted, on a new connection); the scratch
directory is always removed.  A volume left by an earlier import of the same VM that failed and
could not be undone (its record says so, and no VM uses it) is made anew.

The VM name decides idempotency: an existing VM is left alone unless ``force`` is set, which
removes it (and the volumes only it used) once the new disks are read and verified.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import shutil
import tarfile
import tempfile

from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive as _archive

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import codec_write as _codec_write
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import normalize as _normalize

from ansible_collections.virtops.libvirt.plugins.module_utils._import import domain_xml as _import_xml

from ansible_collections.virtops.libvirt.plugins.module_utils._export import ovf as _ovf

from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record

from ansible_collections.virtops.libvirt.plugins.module_utils._storage import trust as _trust

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.defined import lookup_or_none
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import ABSENT, DifferenceTracker
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._host.capabilities import guest_facts, host_capabilities, host_limits, kvm_usable
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.qemu_img import QemuImg
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Plan, Resource
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.view import vm_view
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.vm import VmResource
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.checks import check_host_limits
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume import (
    build_volume_xml,
    delete_by_name,
    disk_users,
    exists_already,
    lookup_pool_or_assume,
    lookup_volume,
    model_and_record,
    normal_capacity,
    parse_volume_xml,
    record_fill,
    refresh_pool,
    retry_busy,
    upload_file,
    users_of,
    volume_path,
    volume_xml,
)

KINDS = ("auto", "archive", "ova", "ovf")
TARGET_FORMATS = ("qcow2", "raw")
#: image formats accepted in a source (what qemu-img reads and the exporters of this world write)
IMAGE_FORMATS = ("qcow2", "raw", "vmdk", "vdi", "vhdx", "vpc")
_EXTENSION_FORMATS = {"vmdk": "vmdk", "qcow2": "qcow2", "vdi": "vdi", "vhdx": "vhdx", "vhd": "vpc", "img": "raw",
                      "raw": "raw"}
#: pool types whose volumes are files (qcow2 is possible); the others hold raw block devices
FILE_POOL_TYPES = ("dir", "fs", "netfs", "gluster", "vstorage")
MAX_MF_BYTES = 1024 * 1024
_HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
_NIC_FALLBACK = "e1000"


def _ext_format(name):
    return _EXTENSION_FORMATS.get(name.rsplit(".", 1)[-1].lower()) if "." in name else None


def _split_digest(value):
    """``'hex'`` (SHA-256) or ``'sha1:hex'`` -> (algorithm, hex)."""
    if value is None:
        return None, None
    if ":" in value:
        algo, digest = value.split(":", 1)
        return algo, digest
    return "sha256", value


def inspect_image(qemu_img, path, fmt, what):
    """The image-trust check (``_trust.check_image``, no backing file allowed) of one disk: returns
    (format, virtual size).  ``fmt`` None: the format is sniffed (only for files the user named)."""
    facts = _trust.check_image(qemu_img, path, fmt, what)
    if facts["format"] not in IMAGE_FORMATS:
        raise InvalidInputError("%s: image format %r is not accepted (%s)" % (what, facts["format"], ", ".join(IMAGE_FORMATS)))
    return facts["format"], facts["virtual_size"]


def assign_targets(disks):
    """Fill ``target`` (vda, sda, hda...) of disks that have none, by bus, after the ones given."""
    used = set(d["target"] for d in disks if d.get("target"))
    for disk in disks:
        if disk.get("target"):
            continue
        prefix = _domain.BUS_PREFIX.get(disk["bus"], "vd")
        index = 0
        while "%s%s" % (prefix, _normalize.target_letters(index)) in used:
            index += 1
        disk["target"] = "%s%s" % (prefix, _normalize.target_letters(index))
        used.add(disk["target"])
    return disks


# --- own archives: rewriting the domain XML ----------------------------------------------------


def rewrite_domain_xml(text, name, keep_uuid, disks, network=None, virt_type=None, nic_model=None):
    """The archived domain XML made fit for this host.

    The definition is rebuilt from an allow-list (:func:`_import_xml.rebuild`): what names files,
    devices or sockets of a host or passes raw arguments to QEMU is left out (with a note) or
    refused; the firmware is kept through this host's firmware auto-selection.  ``disks``: target
    -> dict(path, format); each disk of the XML is pointed at its new volume, and disks not in it
    are dropped (with a note).  Without ``keep_uuid`` the UUID and every MAC address go (libvirt
    makes new ones); ``network`` moves every interface to that network.
    Returns (xml text, list of notes).
    """
    rebuilt = _import_xml.rebuild(text, network)
    root, notes = rebuilt.root, list(rebuilt.notes)
    name_node = root.find("name")
    if name_node is None:
        name_node = _xml.element("name")
        root.insert(0, name_node)
    name_node.text = name
    if not keep_uuid:
        for path in ("uuid", "devices/interface/mac"):
            for node in root.findall(path):
                node.getparent().remove(node)
    old_sources = dict((d["target"], d["source"]) for d in rebuilt.disks)
    model = _domain.model_from_xml(root)
    kept = []
    for disk in model["disks"]:
        new = disks.get(disk["target"])
        if new is None:
            notes.append("disk %s (%s) of the archived VM is not in the archive: left out"
                         % (disk["target"], old_sources.get(disk["target"]) or "no source"))
            continue
        kept.append(dict(disk, path=new["path"], format=new["format"], pool=None, volume=None))
    missing = sorted(set(disks) - set(d["target"] for d in model["disks"]))
    if missing:
        raise InvalidInputError("the archive holds disk(s) %s that its domain XML does not have" % ", ".join(missing))
    update = dict(disks=kept, firmware=rebuilt.firmware, secure_boot=rebuilt.secure_boot)
    if network:
        update["interfaces"] = [dict(type="network", source=network, model=nic_model) for _n in model["interfaces"]]
    elif nic_model:
        update["interfaces"] = [dict(type=None, source=None, model=nic_model) for _n in model["interfaces"]]
    if virt_type:
        update["virt_type"] = virt_type
    _codec_write.apply_model(root, update)
    return _xml.to_string(root), notes


# --- the source ---------------------------------------------------------------------------------


class Source:
    """What an import reads: kind, VM name, disks and (by kind) domain XML or hardware."""

    def __init__(self, kind, path, fmt=None):
        self.kind = kind
        self.path = path
        self.format = fmt            # archive format (tar, tar.gz, tar.zst) for archive and ova
        self.name = None
        self.disks = []              # dicts: target, bus, member/path, format, virtual_size, size, digest
        self.domain_xml = None       # own archives
        self.hardware = None         # ova/ovf/disks: vcpus, memory_mib, firmware, os_hint, nics
        self.first = []              # (member name, bytes) read at planning time, compared when applying
        self.mf = None               # OVA/OVF manifest {name: digest}
        self.mf_name = None
        self.extra_members = set()   # OVA members that are read but not imported (.cert)
        self.notes = []

    def view(self):
        return dict(path=self.path, type=self.kind, format=self.format, name=self.name)


def _read_head(path, size=512):
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except (IOError, OSError) as exc:
        raise NotFoundError("src: cannot read %s: %s" % (path, exc))


def load_source(path, kind="auto"):
    """Read the metadata of the source at ``path`` (manifest + domain XML, or the OVF); nothing is
    extracted.  Uncompressed tar archives are scanned whole (headers only) here already."""
    if not os.path.isabs(path):
        raise InvalidInputError("src: %r must be an absolute path" % path)
    if os.path.isdir(path):
        raise InvalidInputError("src: %s is a directory; give the archive, the .ova or the .ovf file" % path)
    head = _read_head(path)
    if kind in ("auto", "ovf") and head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return _load_ovf(path)
    if kind == "ovf":
        raise InvalidInputError("src: %s is not an OVF descriptor (XML)" % path)
    fmt = _archive.detect_format(path)
    src = Source(None, path, fmt)
    with _archive.ArchiveStream(path, fmt) as stream:
        members = stream.members()
        try:
            name, size, fileobj = next(members)
        except StopIteration:
            raise InvalidInputError("src: %s is an empty archive" % path)
        if name == _archive.MANIFEST_NAME:
            src.kind = "archive"
            data = _archive.read_small(fileobj, size, name)
            src.first.append((name, data))
            manifest = _archive.load_manifest(data)
            try:
                name, size, fileobj = next(members)
            except StopIteration:
                name = None
            if name != _archive.DOMAIN_XML_NAME:
                raise InvalidInputError("archive %s: the second member must be %s, not %r" % (path, _archive.DOMAIN_XML_NAME, name))
            src.domain_xml = _archive.read_small(fileobj, size, name)
            src.first.append((name, src.domain_xml))
            _fill_from_manifest(src, manifest)
        elif name.lower().endswith(".ovf") and "/" not in name:
            src.kind = "ova"
            data = _archive.read_small(fileobj, size, name)
            src.first.append((name, data))
            _fill_from_ovf(src, _ovf.parse_ovf(data))
        else:
            raise InvalidInputError("src: %s is neither an archive of this collection (first member %s) nor an OVA "
                                    "(first member *.ovf); its first member is %r" % (path, _archive.MANIFEST_NAME, name))
    if kind not in ("auto", src.kind):
        raise InvalidInputError("src: %s is an %s, not an %s" % (path, "OVA" if src.kind == "ova" else "archive of this collection", kind))
    if fmt == "tar":
        _check_listing(src, _archive.scan(path))
    return src


def _fill_from_manifest(src, manifest):
    src.name = manifest["vm"]["name"]
    for disk in manifest["disks"]:
        src.disks.append(dict(target=disk["target"], bus=disk.get("bus"), member=disk["file"], path=None,
                              format=disk["format"], virtual_size=disk["virtual_size"], size=disk["size"],
                              digest=disk["sha256"]))


def _fill_from_ovf(src, vm):
    src.name = vm["name"]
    src.hardware = vm
    for index, disk in enumerate(vm["disks"]):
        if not disk.get("file"):
            raise InvalidInputError("OVF: disk %d has no file (an empty disk): this is not supported" % (index + 1))
        member = _archive.normal_name(disk["file"])
        src.disks.append(dict(target=None, bus=disk["bus"], member=member, path=None, format=_ext_format(member),
                              virtual_size=disk["capacity"], size=disk.get("size"), digest=None))
    assign_targets(src.disks)


def _check_listing(src, listing):
    """An uncompressed archive's whole member list against what its metadata declares."""
    sizes = dict(listing)
    expected = dict((d["member"], d) for d in src.disks)
    if src.kind == "archive":
        allowed = set([_archive.MANIFEST_NAME, _archive.DOMAIN_XML_NAME]) | set(expected)
    else:
        allowed = set([src.first[0][0]]) | set(expected)
        stem = src.first[0][0][:-4]
        for name, _size in listing:
            if name.lower().endswith(".mf") and "/" not in name:
                src.mf_name = name
            elif name.lower().endswith(".cert") and "/" not in name:
                src.extra_members.add(name)
        allowed |= src.extra_members
        if src.mf_name:
            allowed.add(src.mf_name)
        if src.mf_name and src.mf_name[:-3] != stem:
            src.notes.append("the OVA manifest %s is not named after its descriptor" % src.mf_name)
    unexpected = [name for name, _size in listing if name not in allowed]
    if unexpected:
        raise InvalidInputError("%s: unexpected member %r (the archive holds more than its %s declares)"
                                % (src.path, unexpected[0], "manifest" if src.kind == "archive" else "OVF descriptor"))
    for name, disk in expected.items():
        if name not in sizes:
            raise InvalidInputError("%s: member %r is missing" % (src.path, name))
        if disk["size"] is not None and sizes[name] != disk["size"]:
            raise InvalidInputError("%s: member %r is %d bytes, but the %s declares %d" % (
                src.path, name, sizes[name], "manifest" if src.kind == "archive" else "OVF descriptor", disk["size"]))
    if src.mf_name:
        with tarfile.open(src.path, "r:") as tar:
            info = [i for i in tar.getmembers() if _archive.normal_name(i.name) == src.mf_name][0]
            src.mf = _ovf.parse_manifest(_archive.read_small(tar.extractfile(info), info.size, src.mf_name, MAX_MF_BYTES))
        _apply_mf(src)


def _apply_mf(src):
    """Digests of the OVA/OVF manifest onto the disks; every disk must be listed."""
    for disk in src.disks:
        key = disk["member"] if disk.get("member") else os.path.basename(disk["path"])
        if key not in src.mf:
            raise InvalidInputError("%s: the manifest %s does not list %s" % (src.path, src.mf_name, key))
        disk["digest"] = src.mf[key]


def _load_ovf(path):
    if os.path.getsize(path) > _archive.MAX_METADATA_BYTES:
        raise InvalidInputError("src: %s is too large for an OVF descriptor" % path)
    with open(path, "rb") as handle:
        data = handle.read()
    src = Source("ovf", path)
    vm = _ovf.parse_ovf(data)
    _fill_from_ovf(src, vm)
    base = os.path.realpath(os.path.dirname(path))
    for disk in src.disks:
        full = os.path.join(base, disk["member"])
        real = os.path.realpath(full)
        if not real.startswith(base + os.sep):
            raise InvalidInputError("OVF: file %r resolves to %s, outside the directory of the descriptor" % (disk["member"], real))
        if not os.path.isfile(real):
            raise NotFoundError("OVF: file %s does not exist" % full)
        if disk["size"] is not None and os.path.getsize(real) != disk["size"]:
            raise InvalidInputError("OVF: file %s is %d bytes, but the descriptor declares %d"
                                    % (full, os.path.getsize(real), disk["size"]))
        disk["path"] = real
    mf = os.path.splitext(path)[0] + ".mf"
    if os.path.isfile(mf):
        src.mf_name = mf
        with open(mf, "rb") as handle:
            src.mf = _ovf.parse_manifest(handle.read(MAX_MF_BYTES + 1))
        _apply_mf(src)
        own = src.mf.get(os.path.basename(path))
        if own is not None:
            algo, digest = _split_digest(own)
            if _HASHES[algo](data).hexdigest() != digest:
                raise InvalidInputError("OVF: checksum mismatch for %s (manifest %s)" % (path, mf))
    else:
        src.notes.append("no manifest %s beside the OVF: the disk files are not checksum-verified" % mf)
    return src


def load_disks(items, qemu_img):
    """Bare disk images: each path checked and inspected now (qemu-img reads only the headers)."""
    if not items:
        raise InvalidInputError("disks: give at least one disk image")
    src = Source("disks", None)
    for index, item in enumerate(items):
        what = "disks[%d]" % index
        path = item.get("path")
        if not path or not os.path.isabs(path):
            raise InvalidInputError("%s.path must be an absolute path" % what)
        if not os.path.isfile(path):
            raise NotFoundError("%s.path: %s does not exist or is not a regular file" % (what, path))
        fmt, vsize = inspect_image(qemu_img, path, item.get("format"), "%s (%s)" % (what, path))
        bus = item.get("bus") or "virtio"
        if bus not in _domain.DISK_BUSES:
            raise InvalidInputError("%s.bus must be one of %s" % (what, ", ".join(_domain.DISK_BUSES)))
        target = item.get("target")
        if target is not None:
            _normalize.normalize(dict(disks=[dict(target=target)]))  # validates the name
        src.disks.append(dict(target=target, bus=bus, member=None, path=path, format=fmt, virtual_size=vsize,
                              size=None, digest=None, inspected=True))
    assign_targets(src.disks)
    targets = [d["target"] for d in src.disks]
    if len(set(targets)) != len(targets):
        raise InvalidInputError("disks: two disks use the same target")
    return src


# --- the resource -------------------------------------------------------------------------------


class ImportResource(Resource):
    kind = "vm_import"

    def __init__(self, ctx):
        super(ImportResource, self).__init__(ctx)
        p = self.params
        if bool(p.get("src")) == bool(p.get("disks")):
            raise InvalidInputError("give either src (an archive, OVA or OVF) or disks (bare disk images)")
        if p.get("disks") and not p.get("name"):
            raise InvalidInputError("name is required to import bare disk images")
        if p.get("disk_format") not in (None,) + TARGET_FORMATS:
            raise InvalidInputError("disk_format must be qcow2 or raw")
        self.source = None
        self._vm_name = None
        self._pool = None
        self._pool_type = None
        self._new = None          # VmResource of the VM to define
        self._new_desired = None
        self._old = None          # VmResource of a VM this import replaces (force)
        self._volumes = []        # dicts per disk: target, volume, path, format, source_format, capacity
        self._old_steps = None
        self._old_owned = []
        self._format = None
        self._work = {}
        self._qemu = None

    # --- helpers -------------------------------------------------------------------------------

    @property
    def name(self):
        return self._vm_name or self.params.get("name")

    def _child_ctx(self, params):
        return self.ctx.child(params)

    def _vm(self, **params):
        base = dict(name=self.name, state="present", shutdown_timeout=120,
                    force=False, remove_storage=False, apply="config", clone_mode="full", wait_for_ip=False,
                    wait_for_ip_timeout=300, ip_source="any")
        base.update(params)
        return VmResource(self._child_ctx(base))

    def _qemu_img(self):
        if self._qemu is None:
            self._qemu = QemuImg(run=self.ctx.run_command)
        return self._qemu

    def _load(self):
        if self.source is None:
            p = self.params
            if p.get("src"):
                self.source = load_source(p["src"], p.get("src_type") or "auto")
            else:
                self.source = load_disks(p["disks"], self._qemu_img())
            for note in self.source.notes:
                self.ctx.warn(note)
        return self.source

    # --- read ----------------------------------------------------------------------------------

    def read(self):
        name = self.params.get("name")
        if not name:
            name = self._load().name
            if not name:
                raise InvalidInputError("the source names no VM: give name")
        try:
            _domain.validate_name(name)
        except InvalidInputError as exc:
            raise InvalidInputError("%s%s" % (exc.msg, "" if self.params.get("name") else " (the name in the source): give name"))
        self._vm_name = name
        vm = self._vm()
        current = vm.read()
        if current is None:
            return None
        return dict(vm=vm_view(current), replaced=False)

    # --- desired -------------------------------------------------------------------------------

    def desired(self, current):
        state = self.params.get("state") or "present"
        # before any disk is read: the definition made from the source is checked again (VmResource)
        asked = dict(memory=_normalize.memory_mib(self.params.get("memory"), "memory"), vcpus=self.params.get("vcpus"))
        if any(value is not None for value in asked.values()):
            check_host_limits(host_limits(self.ctx.conn), asked)
        return dict(state=state, force=bool(self.params.get("force")))

    def compare(self, current, desired):
        tracker = DifferenceTracker()
        if current is None:
            tracker.add(("state",), ABSENT, "imported")
        elif desired["force"]:
            tracker.add(("state",), "present", "replaced")
        elif desired["state"] == "running" and current["vm"]["state"] != "running":
            tracker.add(("vm", "state"), current["vm"]["state"], "running")
        return tracker

    # --- plan ----------------------------------------------------------------------------------

    def plan(self, current, desired, diff, plan):
        if current is not None and not desired["force"]:
            if desired["state"] == "running":
                vm = self._vm(state="running")
                plan.include(vm)
            return
        src = self._load()
        self._resolve_pool()
        if current is not None:
            self._old = self._vm(state="absent", remove_storage=True, force=True)
            old_current = self._old.read()
            old_plan = Plan()
            self._old.plan(old_current, None, DifferenceTracker(), old_plan)
            self._old_steps = old_plan
            self._old_owned = list(self._old.removed_volumes)
            for text in old_plan.warnings:
                plan.warn(text)
        if src.kind in ("ova", "ovf"):
            self._final_buses(src)
        self._plan_volumes(src)
        self._prepare_definition(src, desired)

        what = "read and verify %s" % (src.path if src.path else "%d disk image(s)" % len(src.disks))
        plan.add(what, self._prepare, self._remove_scratch)
        if self._old_steps is not None:
            for step in self._old_steps.steps:
                plan.add("replace: %s" % step.description, step.action, step.undo)
        for vol in self._volumes:
            if vol.get("leftover"):
                plan.add("delete volume %s in pool %s, left by an earlier import of %s that failed"
                         % (vol["volume"], self._pool_name(), self.name),
                         lambda vol=vol: delete_by_name(self.ctx.conn, self._pool_name(), vol["volume"]))
            label = "create %s volume %s in pool %s from disk %s (%s%s)" % (
                vol["format"], vol["volume"], self._pool_name(), vol["target"], vol["source_format"],
                ", converted" if vol["source_format"] != vol["format"] else "")
            plan.add(label, self._make_volume(vol), self._delete_volume(vol), partial=True)
        self._new.plan(None, self._new_desired, DifferenceTracker(), plan)
        plan.add("remove temporary files", self._remove_scratch)

    def _pool_name(self):
        return self.params.get("pool") or "default"

    def _resolve_pool(self):
        self._pool = lookup_pool_or_assume(self.ctx, self._pool_name(), "pool")
        if self._pool is not None:
            with libvirt_errors("reading storage pool %r" % self._pool_name()):
                self._pool_type = _xml.parse(self._pool.XMLDesc(0), "pool XML").get("type")
        fmt = self.params.get("disk_format")
        if fmt is None:
            fmt = "qcow2" if self._pool_type in FILE_POOL_TYPES else "raw"
        elif fmt == "qcow2" and self._pool_type not in FILE_POOL_TYPES:
            raise InvalidInputError("disk_format: pool %r (type %s) holds raw block volumes, not qcow2"
                                    % (self._pool_name(), self._pool_type))
        self._format = fmt

    def _final_buses(self, src):
        """Buses of OVF disks on this host (``disk_bus``, or IDE as SATA: q35 has no IDE) and their targets."""
        override = self.params.get("disk_bus")
        for disk in src.disks:
            bus = override or disk.get("bus") or "virtio"
            disk["bus"] = "sata" if bus == "ide" and not override else bus
            disk["target"] = None
        assign_targets(src.disks)

    def _plan_volumes(self, src):
        ext = "qcow2" if self._format == "qcow2" else "img"
        for disk in src.disks:
            name = "%s-%s.%s" % (self.name, disk["target"], ext)
            path = volume_path(self._pool, name) if self._pool is not None else None
            existing = lookup_volume(self._pool, name) if self._pool is not None else None
            leftover = existing is not None and path not in self._old_owned and self._leftover(existing, name)
            if existing is not None and path not in self._old_owned and not leftover:
                raise ConflictError("volume %s already exists in pool %s and is not a disk of the VM being replaced: "
                                    "remove it or import under another name" % (name, self._pool_name()))
            self._volumes.append(dict(target=disk["target"], volume=name, path=path, format=self._format,
                                      source_format=disk["format"] or "probed", capacity=normal_capacity(disk["virtual_size"], self._format),
                                      disk=disk, pool=self._pool_name(), leftover=leftover))

    def _leftover(self, vol, name):
        """Whether ``vol`` was made by an import that failed and could not be undone: its record says
        vm_import made it, and no VM uses it."""
        model, rec = model_and_record(vol, self.ctx.uri)
        if rec is None or rec.get("made_by") != "vm_import":
            return False
        return not users_of(disk_users(self.ctx.conn), self._pool_name(), name, model["path"])

    # --- the new definition --------------------------------------------------------------------

    def _virt_type(self):
        wanted = self.params.get("virt_type") or "auto"
        if wanted != "auto":
            return wanted
        conn = self.ctx.conn
        caps = host_capabilities(conn)
        arches = guest_facts(caps)[0]
        return "kvm" if kvm_usable(conn, _xml.find_text(caps, "host/cpu/arch"), arches) else "qemu"

    def _prepare_definition(self, src, desired):
        state = "running" if desired["state"] == "running" else "present"
        if src.kind == "archive":
            xml_text = self._archive_xml(src)
            self._new = self._vm(state=state, xml=xml_text)
        else:
            self._new = self._vm(state=state, **self._model_params(src))
        self._new.paths_made.update(v["path"] for v in self._volumes)
        self._new_desired = self._new.desired(None)

    def _archive_xml(self, src):
        p = self.params
        root = _xml.parse(src.domain_xml, "the archived domain XML")
        archived_uuid = _xml.find_text(root, "uuid")
        keep = self.name == src.name and archived_uuid is not None
        if keep:
            other = None
            try:
                other = self.ctx.conn.lookupByUUIDString(archived_uuid)
            except libvirt.libvirtError:
                other = None
            if other is not None and other.name() != self.name:
                keep = False
                self.ctx.warn("UUID %s is used by VM %s on this host: the imported VM gets a new UUID and new MAC addresses"
                              % (archived_uuid, other.name()))
        virt_type = p.get("virt_type")
        if virt_type in (None, "auto") and root.get("type") == "kvm" and self._virt_type() != "kvm":
            virt_type = "qemu"
            self.ctx.warn("KVM is not usable on this host: the imported VM runs with virt_type qemu (emulation)")
        disks = dict((v["target"], dict(path=v["path"], format=v["format"])) for v in self._volumes)
        text, notes = rewrite_domain_xml(src.domain_xml, self.name, keep, disks, network=p.get("network"),
                                         virt_type=virt_type if virt_type not in (None, "auto") else None,
                                         nic_model=p.get("nic_model"))
        for note in notes:
            self.ctx.warn(note)
        root = _xml.parse(text)
        override = dict(vcpus=p.get("vcpus"), memory=_normalize.memory_mib(p.get("memory"), "memory"))
        if any(v is not None for v in override.values()):
            _codec_write.apply_model(root, override)
        if not p.get("network"):
            self._check_networks(root)
        return _xml.to_string(root)

    def _network_missing(self, name):
        return lookup_or_none(self.ctx.conn.networkLookupByName, name, libvirt.VIR_ERR_NO_NETWORK, "network") is None

    def _check_networks(self, root):
        for nic in root.findall("devices/interface[@type='network']"):
            net = _xml.find_attr(nic, "source", "network")
            if net and self._network_missing(net):
                self.ctx.assume(NotFoundError("the imported VM uses libvirt network %r, which does not exist here: give "
                                              "network" % net))

    def _model_params(self, src):
        p = self.params
        hw = src.hardware or {}
        disks = [dict(target=v["target"], bus=v["disk"]["bus"] or "virtio", path=v["path"], format=v["format"],
                      **(dict(pool=v["pool"], volume=v["volume"]) if v["path"] is None else {}))  # check mode, no pool
                 for v in self._volumes]
        interfaces = []
        if src.kind == "disks":
            if p.get("network"):
                interfaces.append(dict(network=p["network"], model=p.get("nic_model") or "virtio"))
        else:
            for nic in hw.get("nics") or []:
                network = p.get("network") or nic.get("network")
                if not network:
                    continue
                if not p.get("network") and self._network_missing(network):
                    self.ctx.assume(NotFoundError("the OVF connects a NIC to network %r, which is not a libvirt network "
                                                  "here: give network" % network))
                model = p.get("nic_model") or nic.get("model")
                if model not in _domain.INTERFACE_MODELS:
                    if model:
                        self.ctx.warn("NIC model %s is not available: the imported NIC is an %s" % (model, _NIC_FALLBACK))
                    model = _NIC_FALLBACK if model else "virtio"
                interfaces.append(dict(network=network, model=model))
        firmware = p.get("firmware") or hw.get("firmware") or "bios"
        vcpus = p.get("vcpus") or hw.get("vcpus") or 1
        memory = p.get("memory") or hw.get("memory_mib") or 1024
        params = dict(vcpus=vcpus, memory=memory, firmware=firmware, machine=p.get("machine"),
                      virt_type=p.get("virt_type") or "auto", disks=disks, interfaces=interfaces)
        if hw.get("os_hint"):
            params["description"] = "imported from %s (OS: %s)" % (os.path.basename(src.path or ""), hw["os_hint"])
        return params

    # --- actions -------------------------------------------------------------------------------

    def _scratch(self):
        if "scratch" not in self._work:
            parent = self.params.get("tmp_dir")
            if parent and not os.path.isdir(parent):
                raise NotFoundError("tmp_dir: %s is not a directory" % parent)
            self._work["scratch"] = tempfile.mkdtemp(prefix="virtops-import-", dir=parent)
        return self._work["scratch"]

    def _remove_scratch(self):
        scratch = self._work.pop("scratch", None)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)

    def _prepare(self):
        """Read the source and verify everything; disks of archives land in the scratch directory."""
        try:
            src = self.source
            if src.kind in ("archive", "ova"):
                self._extract(src)
            elif src.kind == "ovf":
                self._verify_files(src)
            for vol in self._volumes:
                disk = vol["disk"]
                if not disk.get("inspected"):
                    what = "disk %s (%s)" % (disk["target"], disk.get("member") or disk["path"])
                    fmt, vsize = inspect_image(self._qemu_img(), disk["local"], disk["format"], what)
                    disk["format"], disk["virtual_size"] = fmt, vsize
                    vol["source_format"] = fmt
                vol["capacity"] = normal_capacity(max(disk["virtual_size"], vol["capacity"] or 0), vol["format"])
        except BaseException:
            self._remove_scratch()  # this step's own undo does not run when the step itself fails
            raise

    def _extract(self, src):
        scratch = self._scratch()
        by_member = dict((d["member"], d) for d in src.disks)
        first = dict(src.first)
        seen = set()
        late = []
        with _archive.ArchiveStream(src.path, src.format) as stream:
            for index, (name, size, fileobj) in enumerate(stream.members()):
                seen.add(name)
                if name in first:
                    if index >= len(src.first) or src.first[index][0] != name:
                        raise InvalidInputError("%s: member %r is out of place" % (src.path, name))
                    if _archive.read_small(fileobj, size, name) != first[name]:
                        raise InvalidInputError("%s changed while it was imported (member %r differs)" % (src.path, name))
                elif name in by_member:
                    disk = by_member[name]
                    algo, expected = _split_digest(disk["digest"])
                    hasher = _HASHES[algo or "sha256"]()
                    local = os.path.join(scratch, "disk-%s" % disk["target"])
                    actual = _archive.copy_member(fileobj, local, size, name, declared_size=disk["size"], hasher=hasher,
                                                  sparse=True)
                    disk["local"] = local
                    disk["actual_digest"] = (algo or "sha256", actual)
                    if expected is not None and actual != expected:
                        raise InvalidInputError("%s: checksum mismatch for member %r: the %s says %s:%s, the member has %s:%s"
                                                % (src.path, name, "manifest" if src.kind == "archive" else "OVA manifest",
                                                   algo, expected, algo, actual))
                elif src.kind == "ova" and name.lower().endswith(".mf") and "/" not in name and src.mf is None:
                    src.mf = _ovf.parse_manifest(_archive.read_small(fileobj, size, name, MAX_MF_BYTES))
                    src.mf_name = name
                    done = [d for d in src.disks if "actual_digest" in d]
                    for disk in src.disks:
                        if disk not in done:
                            self._digest_from_mf(src, disk)
                    late = done
                elif src.kind == "ova" and (name == src.mf_name or name in src.extra_members
                                            or (name.lower().endswith(".cert") and "/" not in name)):
                    continue
                else:
                    raise InvalidInputError("%s: unexpected member %r" % (src.path, name))
        missing = [d["member"] for d in src.disks if d["member"] not in seen]
        if missing:
            raise InvalidInputError("%s: member %r is missing" % (src.path, missing[0]))
        if late:
            self._verify_late_mf(src, late)
        if src.kind == "ova" and src.mf is not None:
            own = src.mf.get(src.first[0][0])
            if own is not None:
                algo, digest = _split_digest(own)
                if _HASHES[algo](src.first[0][1]).hexdigest() != digest:
                    raise InvalidInputError("%s: checksum mismatch for the OVF descriptor %s" % (src.path, src.first[0][0]))

    @staticmethod
    def _digest_from_mf(src, disk):
        listed = src.mf.get(disk["member"])
        if listed is None:
            raise InvalidInputError("%s: the manifest %s does not list %s" % (src.path, src.mf_name, disk["member"]))
        disk["digest"] = listed

    def _verify_late_mf(self, src, disks):
        """Disks read before the OVA manifest (which OVF puts before them): compare what was hashed."""
        for disk in disks:
            self._digest_from_mf(src, disk)
            algo, digest = _split_digest(disk["digest"])
            have_algo, have = disk["actual_digest"]
            if algo != have_algo:
                raise InvalidInputError("%s: the manifest %s comes after the disks and uses %s: it cannot be verified"
                                        % (src.path, src.mf_name, algo))
            if have != digest:
                raise InvalidInputError("%s: checksum mismatch for member %r (OVA manifest)" % (src.path, disk["member"]))

    def _verify_files(self, src):
        for disk in src.disks:
            disk["local"] = disk["path"]
            if disk["digest"] is None:
                continue
            algo, expected = _split_digest(disk["digest"])
            hasher = _HASHES[algo]()
            with open(disk["path"], "rb") as handle:
                for chunk in iter(lambda: handle.read(_archive.CHUNK), b""):
                    hasher.update(chunk)
            if hasher.hexdigest() != expected:
                raise InvalidInputError("OVF: checksum mismatch for %s (manifest %s)" % (disk["path"], src.mf_name))

    def _image_for_upload(self, vol):
        """The file to upload into ``vol``: the source itself, or a conversion in the scratch directory."""
        disk = vol["disk"]
        local = disk.get("local") or disk["path"]
        src_fmt = disk["format"]
        if src_fmt == vol["format"]:
            return local
        out = os.path.join(self._scratch(), "%s.%s" % (vol["target"], vol["format"]))
        self._qemu_img().convert(local, out, vol["format"], src_fmt=src_fmt, threads=4)
        if local != disk.get("path"):
            os.unlink(local)  # the extracted copy is not needed any more: keep the scratch space small
            disk["local"] = None
        return out

    def _record_of(self, vol):
        """The record of a volume this import fills: what went into it and whether that finished."""
        disk, src = vol["disk"], self.source
        source = "%s#%s" % (src.path, disk["member"]) if src.path and disk.get("member") else disk.get("local") or disk["path"]
        digest = disk.get("actual_digest")
        return _record.new_record(vol["format"], "vm_import", source=source,
                                  checksum="%s:%s" % digest if digest else None, complete=False)

    def _make_volume(self, vol):
        def call():
            image = self._image_for_upload(vol)
            size = max(vol["capacity"], os.path.getsize(image))
            xml = build_volume_xml(vol["volume"], normal_capacity(size, vol["format"]), vol["format"], allocation=0)
            text = _xml.to_string(xml, pretty=False)
            vol["ours"] = True  # a partial step: the undo deletes the volume also when this step broke off
            try:
                created = retry_busy(lambda: self._pool.createXML(text, 0), "creating volume %r" % vol["volume"])
            except ConflictError as exc:
                if exists_already(exc):
                    vol["ours"] = False  # another task's volume
                raise
            rec = self._record_of(vol)
            path = _record.local_file(self.ctx.uri, parse_volume_xml(volume_xml(created)))
            record_fill(path, rec, complete=False)
            upload_file(self.ctx.conn, created, image, sparse=vol["format"] == "raw")
            record_fill(path, rec, complete=True)
            refresh_pool(self._pool)
            if image != vol["disk"].get("path"):
                os.unlink(image)
            with libvirt_errors("reading volume %r" % vol["volume"]):
                vol["path"] = created.path()

        return call

    def _delete_volume(self, vol):
        """Undo: by name, through the current connection (a new one after libvirtd restarted)."""
        def call():
            if vol.get("ours"):
                delete_by_name(self.ctx.conn, self._pool_name(), vol["volume"])
            vol.pop("ours", None)  # only now: the plan may run this undo again after a reconnect

        return call

    # --- results -------------------------------------------------------------------------------

    def _disks_view(self):
        return [dict(target=v["target"], pool=v["pool"], volume=v["volume"], path=v["path"], format=v["format"],
                     source_format=v["source_format"], capacity=v["capacity"]) for v in self._volumes]

    def predict(self, current, desired):
        if self._new is None:  # an existing VM, only (maybe) started
            out = dict(current)
            out["vm"] = dict(current["vm"], state="running")
            return out
        model = self._new.predict(None, self._new_desired)
        return dict(vm=vm_view(model), replaced=current is not None)

    def refresh(self):
        current = self._vm().read()
        if current is None:
            raise BackendError("VM %r is not there after the import" % self.name)
        return dict(vm=vm_view(current), replaced=self._old is not None)

    def result(self, state, outcome):
        out = dict(vm=state["vm"] if state else None, replaced=bool(state and state.get("replaced")),
                   disks=self._disks_view(), source=self.source.view() if self.source is not None else None)
        return out

    def diff_views(self, current, desired):
        before = dict(name=self.name, state="absent" if current is None else "present")
        after = dict(name=self.name, state="present")
        if self._new is not None:
            after.update(state="imported" if current is None else "replaced",
                         source=self.source.view(), volumes=[v["volume"] for v in self._volumes])
        elif current is not None and desired["state"] == "running":
            before["run_state"] = current["vm"]["state"]
            after["run_state"] = "running"
        return before, after
