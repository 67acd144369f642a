# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``export``: a VM (its disks and definition) or one volume, written to files on the hypervisor.

Formats
    Disk formats ``qcow2`` (``compressed``: zlib clusters), ``raw``, ``vmdk`` (streamOptimized),
    ``vdi`` and ``vhdx`` (dynamic) are made by ``qemu-img convert``, which reads only the allocated
    parts of the source and its backing chain.  ``ova`` is a ustar archive holding the OVF 1.0
    descriptor (:func:`_ovf.build_ovf`), the SHA-256 manifest and the streamOptimized VMDKs, in
    that order.  ``tar``, ``tar.gz`` and ``tar.zst`` are the collection's own VM archive
    (:mod:`_archive`): manifest, ``domain.xml``, ``disks/<target>.qcow2``; gzip goes through ``pigz``
    when it is installed (all cores) and Python's gzip otherwise, zstd through ``zstd -T0``.

A consistent point in time
    A stopped VM (and a volume no running domain uses) is read directly; qemu-img then holds the
    image lock, so the VM cannot be started halfway through.  A running or paused VM gets a
    temporary external disk-only snapshot without metadata: libvirt puts a qcow2 overlay on top of
    every exported disk at the same instant (``quiesce`` freezes the guest file systems through the
    guest agent for that instant), the guest writes into the overlays, and the frozen images below
    are converted.  Then each overlay is merged back with an active block commit (``SHALLOW``: only
    into the image right below it, never further down a linked clone's chain) and a pivot, and
    removed.  That also happens when the export fails; an overlay left behind by a killed task
    (its name says ``.virtops-export-<pid>.qcow2``) is merged back by the next run.  libvirt's
    backup API was not used: it writes the copy itself (qcow2 or raw only), so every other format
    would cost a second pass, and a pull-mode backup needs an NBD server.

Files
    Everything is written under a temporary name (``.<name>.virtops-tmp-<pid>``) in the
    destination directory and renamed when complete; on failure the temporary files are removed
    (and a full destination is reported as such).  Each artefact gets ``<name>.sha256``
    (``sha256sum -c`` format).  A record ``<artefact>.export.json`` (``<vm>.<format>.export.json``
    when a VM gives several files) holds the identity of the source, the options and the
    artefacts' sizes, times and digests.  Every file gets ``mode`` (0600 unless the user asks for
    another): temporary files are created with it before anything writes into them
    (:mod:`_filemode`), so no file is ever more open than that; a current export whose files have
    another mode is only chmod-ed.  A directory the export creates gets search permission where
    ``mode`` gives read permission (0700 for 0600).

Idempotency
    The source identity is the SHA-256 of the VM's persistent definition (without secrets) plus
    path, size and modification time of every image in each disk's backing chain.  An existing
    export is current when its record has the same identity and options and its artefacts are
    unchanged on disk.  A running guest that writes to its disks changes the identity, so it is
    exported again on the next run; an idle one is not.  When nothing was written during the
    export, the identity after the merge is recorded; otherwise the one of the frozen point in time,
    so that the writes made meanwhile lead to a new export next time.  Block devices have no
    modification time worth trusting: a source with a block device disk is always exported again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import gzip
import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import tarfile
import threading
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive as _archive

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain

from ansible_collections.virtops.libvirt.plugins.module_utils._export import ovf as _ovf

from ansible_collections.virtops.libvirt.plugins.module_utils._storage import trust as _trust

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.defined import lookup_or_none
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import ABSENT, DifferenceTracker
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    CommandError,
    ConflictError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
    VirtopsError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.filemode import (
    create_file,
    dir_mode,
    file_modes,
    mode_text,
    parse_mode,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.progress import Progress, run_with_percent
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.qemu_img import QemuImg
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Resource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import human_size
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import guard_replace
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.disks import disk_users
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import (
    backing_chain,
    lookup_pool,
    lookup_volume,
    parse_volume_xml,
    validate_name as validate_volume_name,
    volume_xml,
)

DISK_FORMATS = ("qcow2", "raw", "vmdk", "vdi", "vhdx")
PACKED_FORMATS = ("ova",) + _archive.ARCHIVE_FORMATS
FORMATS = DISK_FORMATS + PACKED_FORMATS

#: file name extension of each disk format
EXTENSIONS = dict(qcow2="qcow2", raw="raw", vmdk="vmdk", vdi="vdi", vhdx="vhdx")
#: qemu-img ``-o`` options per output format
_CREATE_OPTIONS = dict(vmdk={"subformat": "streamOptimized"}, vhdx={"subformat": "dynamic"})
#: formats whose output qemu-img can check
_CHECKABLE = ("qcow2", "vmdk", "vdi", "vhdx")
#: name extensions taken off a volume name to name its export
_IMAGE_SUFFIXES = (".qcow2", ".qcow", ".img", ".raw", ".vmdk", ".vdi", ".vhdx", ".vhd", ".qed")

TMP_MARK = ".virtops-tmp-"
OVERLAY_MARK = ".virtops-export-"
RECORD_SUFFIX = ".export.json"
CHECKSUM_SUFFIX = ".sha256"
RECORD_VERSION = 1
#: mode of every file an export writes, unless the user gives ``mode``
DEFAULT_MODE = 0o600
CHUNK = 1024 * 1024
GZIP_LEVEL = 6
ZSTD_LEVEL = 3
#: ustar stores sizes in 11 octal digits
USTAR_MAX = 8 ** 11 - 1

_TMP_RE = re.compile(r"^\..*" + re.escape(TMP_MARK) + r"(\d+)(\..*)?$")
_OVERLAY_RE = re.compile(re.escape(OVERLAY_MARK) + r"(\d+)\.qcow2$")
_SAFE_RE = re.compile(r"[^A-Za-z0-9._+-]")
_NO_SPACE_MARKERS = ("no space left on device", "disk quota exceeded")


def _flag(name, default=0):
    return getattr(libvirt, name, default) if libvirt else default


_XML_INACTIVE = _flag("VIR_DOMAIN_XML_INACTIVE", 2)
_XML_SECURE = _flag("VIR_DOMAIN_XML_SECURE", 1)


class DestinationFullError(BackendError):
    """The destination file system filled up (ENOSPC/EDQUOT)."""

    kind = "no_space"


class ExportInterrupted(VirtopsError):
    """SIGTERM or SIGINT arrived while the export ran (raised so that the clean-up runs)."""

    kind = "interrupted"


# --- small helpers ------------------------------------------------------------------------------


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def safe_file_name(text):
    """A file name made from a VM or volume name: ``/``, blanks and other odd characters become ``_``."""
    name = _SAFE_RE.sub("_", text or "")
    if name.startswith("."):
        name = "_" + name[1:]
    return name[:200] or "export"


def volume_stem(name):
    low = name.lower()
    for suffix in _IMAGE_SUFFIXES:
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def is_no_space(text):
    low = (text or "").lower()
    return any(marker in low for marker in _NO_SPACE_MARKERS)


def free_bytes(directory):
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def iso_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def sha256_file(path, on_bytes=None):
    """SHA-256 of a file.  Holes are hashed as zeros without being read (raw images are sparse)."""
    hasher = hashlib.sha256()
    if not hasattr(os, "SEEK_DATA"):  # pragma: no cover - not Linux
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                hasher.update(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
        return hasher.hexdigest()
    zeros = bytes(CHUNK)
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                data_at = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: only a hole is left
                    raise
                data_at = size
            while pos < data_at:  # a hole
                step = min(CHUNK, data_at - pos)
                hasher.update(zeros[:step] if step < CHUNK else zeros)
                pos += step
            if pos >= size:
                break
            hole_at = os.lseek(fd, pos, os.SEEK_HOLE)
            os.lseek(fd, pos, os.SEEK_SET)
            while pos < hole_at:
                chunk = os.read(fd, min(CHUNK, hole_at - pos))
                if not chunk:
                    raise BackendError("%s shrank while its checksum was computed" % path)
                hasher.update(chunk)
                pos += len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
    finally:
        os.close(fd)
    return hasher.hexdigest()


def checksum_line(digest, name):
    """One ``sha256sum`` line: ``<hex>  <name>``."""
    return "%s  %s\n" % (digest, name)


def _write_bytes(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_stamp(path):
    """``[size, mtime_ns]`` of a file, or None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


# --- qemu-img -----------------------------------------------------------------------------------


class ExportQemuImg(QemuImg):
    """:class:`QemuImg` plus what export needs: allocated bytes, offline commit, its own convert argv."""

    def data_bytes(self, path, fmt=None):
        """Bytes of guest data that reading ``path`` costs: the allocated extents of the whole chain."""
        args = ["map", "-U"]
        if fmt:
            args += ["-f", fmt]
        args.append(path)
        _rc, entries = self._json(args, "map")
        return sum(int(e.get("length", 0)) for e in entries if e.get("data"))

    def top_data_bytes(self, path):
        """Bytes allocated in ``path`` itself (not its backing files): what a guest wrote into an overlay."""
        _rc, entries = self._json(["map", "-U", "-f", "qcow2", path], "map")
        return sum(int(e.get("length", 0)) for e in entries if e.get("data") and e.get("depth", 0) == 0)

    def commit(self, path, fmt="qcow2"):
        """Merge the overlay ``path`` into its backing file (offline)."""
        self._call(["commit", "-q", "-f", fmt, path], "commit")

    def export_argv(self, src, dst, out_fmt, src_fmt=None, compress=False, force_share=False):
        """``qemu-img convert`` with progress; ``force_share`` (-U) only for images that a running
        VM holds open but no longer writes (the frozen image under an overlay, read-only disks).
        Writes out of order (-W) except compressed images and streamOptimized VMDKs, written in order."""
        return self.convert_argv(src, dst, out_fmt, src_fmt, compress, options=_CREATE_OPTIONS.get(out_fmt),
                                 threads=8, progress=True, force_share=force_share,
                                 out_of_order=not compress and out_fmt != "vmdk")


# --- parameters ---------------------------------------------------------------------------------


def check_params(params):
    """The options, checked and completed; InvalidInputError on bad combinations."""
    vm, volume, pool = params.get("vm"), params.get("volume"), params.get("pool")
    if bool(vm) == bool(volume):
        raise InvalidInputError("give exactly one source: vm, or volume with pool")
    if volume and not pool:
        raise InvalidInputError("volume needs pool")
    if vm and pool:
        raise InvalidInputError("pool goes with volume, not with vm")
    if volume:
        validate_volume_name(volume, "volume")
    else:
        _domain.validate_name(vm)
    fmt = params.get("format") or "qcow2"
    if fmt not in FORMATS:
        raise InvalidInputError("format must be one of %s, not %r" % (", ".join(FORMATS), fmt))
    if volume and fmt in PACKED_FORMATS:
        raise InvalidInputError("format %s packs a whole VM (definition and disks): export a vm, or a volume in "
                                "one of %s" % (fmt, ", ".join(DISK_FORMATS)))
    compressed = bool(params.get("compressed"))
    if compressed and fmt not in ("qcow2", "tar"):
        raise InvalidInputError("compressed applies to formats qcow2 and tar (vmdk is always compressed, tar.gz and "
                                "tar.zst compress the whole archive), not to %s" % fmt)
    dest = params.get("dest")
    if not dest or not os.path.isabs(dest):
        raise InvalidInputError("dest must be an absolute path, not %r" % (dest,))
    for key in ("overlay_dir", "tmp_dir"):
        value = params.get(key)
        if value is not None and (not os.path.isabs(value) or not os.path.isdir(value)):
            raise InvalidInputError("%s must be an existing directory given as an absolute path, not %r" % (key, value))
    return dict(
        kind="vm" if vm else "volume",
        name=vm or volume,
        pool=pool,
        format=fmt,
        compressed=compressed,
        dest=dest,
        force=bool(params.get("force")),
        quiesce=bool(params.get("quiesce")),
        verify=bool(params.get("verify")),
        overlay_dir=params.get("overlay_dir"),
        tmp_dir=params.get("tmp_dir"),
        progress_file=params.get("progress_file"),
        mode=_mode_param(params.get("mode")),
    )


def _mode_param(value):
    mode = parse_mode(value, "mode", maximum=0o777)
    if mode is None:
        return DEFAULT_MODE
    if mode & 0o111:
        raise InvalidInputError("mode %s gives execute permission, which exported files do not need" % mode_text(mode))
    return mode


# --- the source ---------------------------------------------------------------------------------


def _without_passwords(root):
    for node in root.xpath("//*[@passwd]"):
        del node.attrib["passwd"]
    return root


def definition_xml(dom):
    """The persistent definition (the live one of a transient VM), never with secrets."""
    with libvirt_errors("reading the definition of VM '%s'" % dom.name()):
        text = dom.XMLDesc(_XML_INACTIVE) if dom.isPersistent() else dom.XMLDesc(0)
    return _xml.to_string(_without_passwords(_xml.parse(text, "domain XML")), pretty=True)


def _os_hint(root):
    """``debian12`` from libosinfo metadata (``http://debian.org/debian/12``), or None."""
    for node in root.iter():
        if isinstance(node.tag, str) and node.tag.endswith("}os") and node.get("id"):
            parts = [p for p in node.get("id").split("/") if p][-2:]
            return "".join(parts) or None
    return None


def _resolve_volume_path(conn, pool_name, vol_name, what):
    with libvirt_errors("%s: looking up volume %r in pool %r" % (what, vol_name, pool_name)):
        pool = conn.storagePoolLookupByName(pool_name)
        return pool.storageVolLookupByName(vol_name).path()


def domain_disks(conn, root, what):
    """The exportable disks (``device='disk'``) of a domain XML, in order: target, bus, path, type,
    format, readonly, shareable.  CD-ROMs, floppies and LUNs are left out; network disks refused."""
    disks = []
    for node in root.findall("devices/disk"):
        if (node.get("device") or "disk") != "disk":
            continue
        target = _xml.find_attr(node, "target", "dev")
        kind = node.get("type") or "file"
        src = node.find("source")
        label = "%s: disk %s" % (what, target)
        if src is None:
            continue  # an empty drive has nothing to export
        if kind == "file":
            path = src.get("file")
        elif kind == "block":
            path = src.get("dev")
        elif kind == "volume":
            path = _resolve_volume_path(conn, src.get("pool"), src.get("volume"), label)
        else:
            raise InvalidInputError("%s is a %s disk: only file, block device and pool volume disks can be exported"
                                    % (label, kind))
        if not path:
            continue
        disks.append(dict(
            target=target,
            bus=_xml.find_attr(node, "target", "bus") or "virtio",
            path=path,
            # what QEMU reads: the definition's driver type, raw without one (libvirt never probes a disk)
            format=_xml.find_attr(node, "driver", "type") or "raw",
            readonly=node.find("readonly") is not None,
            shareable=node.find("shareable") is not None,
        ))
    return disks


def _nics(root):
    nics = []
    for node in root.findall("devices/interface"):
        src = node.find("source")
        network = None
        if src is not None:
            network = src.get("network") or src.get("bridge") or src.get("dev")
        nics.append(dict(network=network, model=_xml.find_attr(node, "model", "type")))
    return nics


def _is_block(path):
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def describe_image(qemu, disk, what):
    """Fill in ``disk`` (needs path, format): virtual size, data bytes, chain of files."""
    path = disk["path"]
    if not os.path.exists(path):
        raise NotFoundError("%s: the image %s is not there on this node: export runs on the hypervisor itself "
                            "(delegate the task to it)" % (what, path))
    chain = qemu.info(path, backing_chain=True, fmt=disk.get("format"))
    if not chain:
        raise BackendError("%s: qemu-img info gave nothing for %s" % (what, path))
    disk["format"] = disk.get("format") or chain[0].get("format")
    disk["virtual_size"] = int(chain[0]["virtual-size"])
    disk["chain"] = [c.get("filename") for c in chain if c.get("filename")]
    disk["block"] = any(_is_block(p) for p in disk["chain"])
    disk["data"] = qemu.data_bytes(path, disk["format"])
    return disk


def leftover_overlay(disk, own_pid):
    """The pid in the name of a temporary overlay the disk currently runs on, or None."""
    match = _OVERLAY_RE.search(os.path.basename(disk["path"] or ""))
    if match is None:
        return None
    pid = int(match.group(1))
    return pid if pid != own_pid else None


def read_vm(conn, name, qemu):
    dom = lookup_or_none(conn.lookupByName, name, libvirt.VIR_ERR_NO_DOMAIN, "VM")
    if dom is None:
        raise NotFoundError("VM '%s' does not exist" % name)
    with libvirt_errors("reading VM '%s'" % name):
        active = bool(dom.isActive())
        state = dom.state()[0]
        uuid = dom.UUIDString()
        live = dom.XMLDesc(0)
    definition = definition_xml(dom)
    def_root = _xml.parse(definition, "domain XML")
    model = _domain.model_from_xml(def_root)
    disk_root = _xml.parse(live, "domain XML") if active else def_root
    disks = domain_disks(conn, disk_root, "VM '%s'" % name)
    leftovers = find_leftovers(qemu, disk_root if active else None, disks, "VM '%s'" % name)
    for disk in disks:
        describe_image(qemu, disk, "VM '%s', disk %s" % (name, disk["target"]))
    return dict(
        kind="vm", name=name, uuid=uuid, dom=dom, active=active, state=state, definition=definition,
        vm=dict(name=name, uuid=uuid, vcpus=model["vcpus"], memory_mib=model["memory"], firmware=model["firmware"],
                arch=model["arch"] or "x86_64"),
        os_hint=_os_hint(def_root), nics=_nics(def_root), disks=disks, leftovers=leftovers,
    )


def _live_backing(root, target):
    """Path and format of the image right below the top one of disk ``target`` in a live XML, or None."""
    for node in root.findall("devices/disk"):
        if _xml.find_attr(node, "target", "dev") != target:
            continue
        store = node.find("backingStore")
        if store is not None and store.find("source") is not None:
            src = store.find("source")
            return dict(path=src.get("file") or src.get("dev"), format=_xml.find_attr(store, "format", "type"))
    return None


def _overlay_base(qemu, path):
    info = qemu.info(path, fmt="qcow2")
    base = info.get("full-backing-filename") or info.get("backing-filename")
    if not base:
        raise BackendError("%s looks like a temporary export overlay but has no backing file" % path)
    return dict(path=base, format=info.get("backing-filename-format"))


def find_leftovers(qemu, live_root, disks, what):
    """Temporary overlays of an export whose process is gone, that ``disks`` still run on.

    Each disk is pointed at the image below its overlay (what the merge leaves); returns the
    overlays as dicts target, overlay, base, base_format.  An overlay of a live export is a conflict.
    """
    found = []
    for disk in disks:
        pid = leftover_overlay(disk, os.getpid())
        if pid is None:
            continue
        if pid_alive(pid):
            raise ConflictError("%s is being exported by another task (pid %d): disk %s runs on its temporary overlay %s"
                                % (what, pid, disk["target"], disk["path"]))
        base = _live_backing(live_root, disk["target"]) if live_root is not None else None
        if base is None or not base["path"]:
            base = _overlay_base(qemu, disk["path"])
        found.append(dict(target=disk["target"], overlay=disk["path"], base=base["path"], base_format=base["format"]))
        disk["path"], disk["format"] = base["path"], base["format"]
    return found


def read_volume(conn, pool_name, name, qemu, uri=None):
    pool = lookup_pool(conn, pool_name)
    vol = lookup_volume(pool, name)
    if vol is None:
        raise NotFoundError("volume %r does not exist in pool %r" % (name, pool_name))
    model = parse_volume_xml(volume_xml(vol))
    if not model["path"]:
        raise InvalidInputError("volume %r of pool %r has no path to read" % (name, pool_name))
    # the recorded or checked format, never libvirt's probe alone: a raw volume whose guest wrote a qcow2
    # header naming a host file must be read as raw, not through that "backing file"
    trusted = _trust.trusted_volume(conn, uri, model, qemu, "volume %r" % name, chain=lambda: backing_chain(conn, model))
    disk = dict(target=None, bus=None, path=model["path"], format=trusted["format"], readonly=False, shareable=False)
    users = [u for u in disk_users(conn) if u["path"] == model["path"] or (u["pool"] == pool_name and u["volume"] == name)]
    running = [u for u in users if u["active"]]
    source = dict(kind="volume", name=name, pool=pool_name, dom=None, active=False, definition=None, disks=[disk],
                  leftovers=[], users=[u["domain"] for u in users])
    if running:
        user = running[0]
        dom = conn.lookupByName(user["domain"])
        root = _xml.parse(dom.XMLDesc(0), "domain XML")
        for live in domain_disks(conn, root, "VM '%s'" % user["domain"]):
            if live["target"] != user["target"]:
                continue
            source["leftovers"] = find_leftovers(qemu, root, [live], "volume %r (disk %s of VM '%s')"
                                                 % (name, live["target"], user["domain"]))
            disk.update(target=live["target"], readonly=live["readonly"], shareable=live["shareable"])
        source.update(dom=dom, active=True, user=user["domain"])
    describe_image(qemu, disk, "volume %r" % name)
    return source


def source_identity(source):
    """``(digest, detail)``: what must not change for an existing export to stay current."""
    disks = []
    volatile = False
    for disk in source["disks"]:
        chain = []
        for path in disk["chain"]:
            if _is_block(path):
                volatile = True
                chain.append([path, "block device"])
            else:
                chain.append([path] + (file_stamp(path) or ["missing"]))
        disks.append(dict(target=disk["target"], format=disk["format"], virtual_size=disk["virtual_size"], chain=chain))
    detail = dict(kind=source["kind"], name=source["name"], disks=disks)
    if source.get("definition") is not None:
        detail["definition_sha256"] = hashlib.sha256(_xml.canonical(source["definition"])).hexdigest()
    digest = hashlib.sha256(json.dumps(detail, sort_keys=True).encode("utf-8")).hexdigest()
    if volatile:
        digest = "volatile:%s:%s" % (digest, time.time())
    return digest, detail


# --- where the files go -------------------------------------------------------------------------


def plan_layout(opts, source):
    """Destination directory, the artefacts (name, kind, format, target) and the record's path."""
    fmt, dest = opts["format"], opts["dest"]
    multi = source["kind"] == "vm" and fmt in DISK_FORMATS
    is_dir = multi or dest.endswith("/") or os.path.isdir(dest)
    if is_dir:
        directory = os.path.normpath(dest)
        if os.path.lexists(directory) and not os.path.isdir(directory):
            raise InvalidInputError("dest %s is a file, but a VM exported as %s gives one file per disk plus its "
                                    "definition: dest must be a directory" % (dest, fmt))
        parent = os.path.dirname(directory)
        if not os.path.isdir(directory) and not os.path.isdir(parent):
            raise NotFoundError("dest: the parent directory %s does not exist" % parent)
    else:
        directory = os.path.dirname(os.path.normpath(dest))
        if not os.path.isdir(directory):
            raise NotFoundError("dest: the directory %s does not exist" % directory)
    if source["kind"] == "vm":
        base = safe_file_name(source["name"])
    else:
        base = safe_file_name(volume_stem(source["name"]))
    artefacts = []
    if multi:
        artefacts.append(dict(name="%s.xml" % base, kind="definition", format="xml", target=None))
        for disk in source["disks"]:
            artefacts.append(dict(name="%s-%s.%s" % (base, disk["target"], EXTENSIONS[fmt]), kind="disk", format=fmt,
                                  target=disk["target"]))
        record = os.path.join(directory, "%s.%s%s" % (base, EXTENSIONS[fmt], RECORD_SUFFIX))
    else:
        if is_dir:
            ext = EXTENSIONS.get(fmt, fmt)
            name = "%s.%s" % (base, ext)
        else:
            name = os.path.basename(os.path.normpath(dest))
        kind = "disk" if fmt in DISK_FORMATS else ("ova" if fmt == "ova" else "archive")
        target = source["disks"][0]["target"] if kind == "disk" else None
        artefacts.append(dict(name=name, kind=kind, format=fmt, target=target))
        record = os.path.join(directory, name + RECORD_SUFFIX)
    for art in artefacts:
        art["path"] = os.path.join(directory, art["name"])
        art["checksum_file"] = art["path"] + CHECKSUM_SUFFIX
        if os.path.isdir(art["path"]):
            raise InvalidInputError("dest: %s is a directory, not a file the export can write" % art["path"])
    return dict(directory=directory, create_dir=not os.path.isdir(directory), artefacts=artefacts, record=record)


def read_record(path):
    """The record of an earlier export, or None; an unreadable record is treated as none."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read(1024 * 1024).decode("utf-8"))
    except (IOError, OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("generator") != _archive.GENERATOR or not isinstance(data.get("artefacts"), list):
        return None
    return data


def plain_name(name):
    """True for a file name of the destination directory itself (what a record may list)."""
    return isinstance(name, str) and bool(name) and name not in (".", "..") and "/" not in name and "\x00" not in name


def artefacts_intact(record, directory):
    """True when every artefact of ``record`` and its checksum file are still as written."""
    for art in record.get("artefacts") or []:
        if not isinstance(art, dict) or not plain_name(art.get("name")):
            return False
        path = os.path.join(directory, art["name"])
        if file_stamp(path) != [art.get("size"), art.get("mtime_ns")]:
            return False
        if not os.path.isfile(path + CHECKSUM_SUFFIX):
            return False
    return True


def stale_temporaries(directory):
    """Temporary files of exports whose process is gone, in ``directory``."""
    found = []
    try:
        names = os.listdir(directory)
    except OSError:
        return found
    for name in sorted(names):
        match = _TMP_RE.match(name)
        if match and not pid_alive(int(match.group(1))):
            found.append(os.path.join(directory, name))
    return found


# --- running VMs: a temporary snapshot and its merge --------------------------------------------


def build_snapshot_xml(name, overlays, other_targets):
    """``<domainsnapshot>`` for a disk-only snapshot: ``overlays`` is ``[(target, overlay path)]``;
    ``other_targets`` (CD-ROMs, read-only disks...) are left out of it (``snapshot='no'``)."""
    root = _xml.element("domainsnapshot")
    _xml.sub(root, "name", name)
    _xml.sub(root, "description", "temporary: made by virtops.libvirt export, merged back when it is done")
    _xml.sub(root, "memory", attrs={"snapshot": "no"})
    disks = _xml.sub(root, "disks")
    for target, overlay in overlays:
        node = _xml.sub(disks, "disk", attrs={"name": target, "snapshot": "external", "type": "file"})
        _xml.sub(node, "driver", attrs={"type": "qcow2"})
        _xml.sub(node, "source", attrs={"file": overlay})
    for target in other_targets:
        _xml.sub(disks, "disk", attrs={"name": target, "snapshot": "no"})
    return _xml.to_string(root, pretty=False)


def overlay_path(base, target, overlay_dir, fallback_dir, pid=None):
    directory = overlay_dir or (os.path.dirname(base) if os.path.isfile(base) else fallback_dir)
    stem = os.path.basename(base) if os.path.isfile(base) else target
    return os.path.join(directory, ".%s%s%d.qcow2" % (stem, OVERLAY_MARK, pid or os.getpid()))


def _live_source(dom, target):
    with libvirt_errors("reading the live definition of VM '%s'" % dom.name()):
        root = _xml.parse(dom.XMLDesc(0), "domain XML")
    for node in root.findall("devices/disk"):
        if _xml.find_attr(node, "target", "dev") == target:
            src = node.find("source")
            return src.get("file") or src.get("dev") if src is not None else None
    return None


def _error_text(exc):
    return " ".join(str(exc.get_error_message() or exc).split())


def active_commit(dom, target, sleep=time.sleep, clock=time.monotonic, stall_timeout=600):
    """Merge the top image of disk ``target`` of the running ``dom`` into the image below it and pivot.

    ``SHALLOW`` keeps the rest of the chain (a linked clone's base) untouched.  The pivot is retried
    until libvirt says the job is ready; a job that makes no progress for ``stall_timeout`` seconds
    is an error (the overlay is then still in use and the next run retries the merge).
    """
    name = dom.name()
    flags = _flag("VIR_DOMAIN_BLOCK_COMMIT_ACTIVE", 4) | _flag("VIR_DOMAIN_BLOCK_COMMIT_SHALLOW", 1)
    with libvirt_errors("merging the temporary overlay of disk %s of VM '%s' back" % (target, name)):
        dom.blockCommit(target, None, None, 0, flags)
    last_cur, last_move = -1, clock()
    while True:
        try:
            info = dom.blockJobInfo(target, 0)
        except libvirt.libvirtError as exc:
            raise BackendError("watching the merge of disk %s of VM '%s' failed: %s" % (target, name, _error_text(exc)))
        if not info:
            raise BackendError("the merge of disk %s of VM '%s' ended without a pivot (was it cancelled?)" % (target, name))
        cur, end = int(info.get("cur", 0)), int(info.get("end", 0))
        if cur != last_cur:
            last_cur, last_move = cur, clock()
        if cur == end:
            try:
                dom.blockJobAbort(target, _flag("VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT", 2))
                break
            except libvirt.libvirtError as exc:
                if "not ready" not in _error_text(exc).lower() and \
                        exc.get_error_code() != _flag("VIR_ERR_BLOCK_COPY_ACTIVE", -1):
                    raise BackendError("switching disk %s of VM '%s' back to its image failed: %s"
                                       % (target, name, _error_text(exc)))
        if clock() - last_move > stall_timeout:
            raise BackendError("the merge of disk %s of VM '%s' made no progress for %d s" % (target, name, stall_timeout))
        sleep(0.2)
    deadline = clock() + 120
    while clock() < deadline:
        try:
            if not dom.blockJobInfo(target, 0):
                return
        except libvirt.libvirtError:
            return
        sleep(0.1)


def _repoint_definition(conn, dom, entries, saved_xml):
    """Make the persistent definition use the original images again, if it still names an overlay."""
    if dom is None or not dom.isPersistent():
        return
    with libvirt_errors("reading the definition of VM '%s'" % dom.name()):
        text = dom.XMLDesc(_XML_INACTIVE | _XML_SECURE)
    overlays = set(e["overlay"] for e in entries)
    root = _xml.parse(text, "domain XML")
    touched = False
    for node in root.findall("devices/disk"):
        src = node.find("source")
        if src is None or src.get("file") not in overlays:
            continue
        entry = [e for e in entries if e["overlay"] == src.get("file")][0]
        if saved_xml is not None:
            root = _xml.parse(saved_xml, "domain XML")
            touched = True
            break
        src.set("file", entry["base"])
        store = node.find("backingStore")
        if store is not None:
            node.remove(store)
        driver = node.find("driver")
        if driver is not None and entry.get("base_format"):
            driver.set("type", entry["base_format"])
        touched = True
    if touched:
        with libvirt_errors("restoring the definition of VM '%s'" % dom.name()):
            conn.defineXML(_xml.to_string(root, pretty=False))


def _written(qemu, overlay):
    """Bytes the guest wrote into an overlay (1 when that cannot be told: assume something)."""
    try:
        return qemu.top_data_bytes(overlay)
    except VirtopsError:
        return 1


def merge_overlays(conn, qemu, dom_name, entries, saved_xml=None, sleep=time.sleep, clock=time.monotonic):
    """Merge every temporary overlay of ``entries`` (dicts target, overlay, base, base_format) back
    and delete it: online (active commit + pivot) while the VM runs on it, offline (qemu-img commit)
    when the VM was stopped or removed meanwhile.  Returns the bytes the guest wrote meanwhile.

    Keeps going after a failure and raises one BackendError naming every overlay still in place.
    """
    dom = lookup_or_none(conn.lookupByName, dom_name, libvirt.VIR_ERR_NO_DOMAIN, "VM")
    problems = []
    written = 0
    for entry in entries:
        if entry.get("merged"):
            continue
        try:
            active = dom is not None and bool(dom.isActive())
            if active and _live_source(dom, entry["target"]) == entry["overlay"]:
                active_commit(dom, entry["target"], sleep=sleep, clock=clock)
                written += _written(qemu, entry["overlay"])  # an active commit leaves the overlay as it was
            elif os.path.exists(entry["overlay"]) and not active:
                written += _written(qemu, entry["overlay"])  # qemu-img commit empties it
                qemu.commit(entry["overlay"])
            elif active and os.path.exists(entry["overlay"]):
                raise ConflictError("disk %s of VM '%s' no longer runs on the temporary overlay %s (another snapshot "
                                    "was taken on top of it?): it cannot be merged safely"
                                    % (entry["target"], dom_name, entry["overlay"]))
            if os.path.exists(entry["overlay"]):
                os.unlink(entry["overlay"])
            entry["merged"] = True
        except (VirtopsError, OSError, libvirt.libvirtError) as exc:
            problems.append("disk %s (%s): %s" % (entry["target"], entry["overlay"], exc))
    try:
        _repoint_definition(conn, dom, entries, saved_xml)
    except VirtopsError as exc:
        problems.append("definition: %s" % exc)
    if problems:
        raise BackendError(
            "the temporary snapshot of VM '%s' could not be fully merged back: %s. The VM keeps working on the "
            "overlay; run the export again (it merges leftovers first) or merge each disk with 'virsh blockcommit %s "
            "TARGET --active --shallow --pivot'" % (dom_name, "; ".join(problems), dom_name),
            overlays=[e["overlay"] for e in entries if not e.get("merged")],
        )
    return written


# --- writing archives ---------------------------------------------------------------------------


class _HashingWriter:
    """A write-only file object that hashes, counts and forwards what it gets."""

    def __init__(self, raw):
        self.raw = raw
        self.hasher = hashlib.sha256()
        self.count = 0

    def write(self, data):
        self.hasher.update(data)
        self.count += len(data)
        view = memoryview(data)
        while view:
            written = self.raw.write(view)
            view = view[written:]
        return len(data)

    def flush(self):
        self.raw.flush()

    def tell(self):
        return self.count


class _CountingReader:
    def __init__(self, raw, on_bytes):
        self.raw = raw
        self.on_bytes = on_bytes

    def read(self, size=-1):
        data = self.raw.read(size)
        if data and self.on_bytes is not None:
            self.on_bytes(len(data))
        return data


def find_binary(name):
    return _archive.find_binary(name)


def compressor_argv(fmt):
    """The external compressor for an archive format (None: Python does it, or nothing to do)."""
    if fmt == "tar.zst":
        binary = find_binary("zstd")
        if binary is None:
            raise MissingDependencyError("format tar.zst needs the zstd command on the managed node: install the "
                                         "'zstd' package")
        return [binary, "-T0", "-%d" % ZSTD_LEVEL, "-q", "-c", "--no-progress"]
    if fmt == "tar.gz":
        binary = find_binary("pigz")
        if binary is not None:
            return [binary, "-c", "-%d" % GZIP_LEVEL]
    return None


def _tarinfo(name, size, mtime, tar_format):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if tar_format == tarfile.USTAR_FORMAT and size > USTAR_MAX:
        raise InvalidInputError("member %s is %d bytes, more than a ustar archive can hold" % (name, size))
    return info


def write_tar(path, members, fmt, on_bytes=None, tar_format=tarfile.PAX_FORMAT):
    """Write the archive ``path``; ``members`` is ``[(name, bytes or file path)]`` in order.

    Returns the SHA-256 of the file written.  Disk full and compressor failures raise our errors.
    """
    argv = compressor_argv(fmt)
    mtime = time.time()
    proc = tar = gz = hashing = None
    out = open(path, "wb", buffering=0)
    try:
        try:
            if argv is not None:
                try:
                    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE)
                except OSError as exc:
                    raise BackendError("cannot start %s: %s" % (argv[0], exc))
                sink = proc.stdin
            else:
                hashing = _HashingWriter(out)
                sink = hashing
            if fmt == "tar.gz" and argv is None:
                gz = gzip.GzipFile(filename="", mode="wb", fileobj=sink, compresslevel=GZIP_LEVEL, mtime=0)
                sink = gz
            tar = tarfile.open(fileobj=sink, mode="w|", format=tar_format, bufsize=CHUNK, copybufsize=CHUNK)
            for name, content in members:
                if isinstance(content, bytes):
                    tar.addfile(_tarinfo(name, len(content), mtime, tar_format), _BytesReader(content))
                else:
                    info = _tarinfo(name, os.path.getsize(content), mtime, tar_format)
                    with open(content, "rb") as handle:
                        tar.addfile(info, _CountingReader(handle, on_bytes))
            tar.close()
            tar = None
            if gz is not None:
                gz.close()
                gz = None
            if proc is not None:
                proc.stdin.close()
        except (IOError, OSError) as exc:
            _abandon(tar, gz)
            tar = gz = None
            if proc is not None:
                _finish_compressor(proc, argv, path, exc)
            raise _write_error(exc, path)
        if proc is not None:
            _finish_compressor(proc, argv, path, None)
        try:
            os.fsync(out.fileno())
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # devices and pipes cannot be synced
                raise _write_error(exc, path)
    except BaseException:
        _abandon(tar, gz)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    finally:
        out.close()
    if hashing is not None:
        return hashing.hasher.hexdigest()
    return sha256_file(path)


def _abandon(tar, gz):
    """Forget a half-written tar stream and gzip file: closing them would only write into a failed file."""
    if tar is not None:
        tar.fileobj.closed = True  # the _Stream: its __del__ would try to flush
        tar.closed = True
    if gz is not None:
        gz.fileobj = None


class _BytesReader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def read(self, size=-1):
        if size is None or size < 0:
            size = len(self.data) - self.pos
        chunk = self.data[self.pos:self.pos + size]
        self.pos += len(chunk)
        return chunk


def _finish_compressor(proc, argv, path, write_exc):
    """Wait for the compressor; its failure (a full disk most often) becomes our error."""
    if write_exc is not None:
        try:
            proc.stdin.close()
        except (IOError, OSError):
            pass
    err = proc.stderr.read().decode("utf-8", "replace")
    proc.stderr.close()
    rc = proc.wait()
    if rc == 0 and write_exc is None:
        return
    text = " ".join(err.split())
    if is_no_space(text):
        raise DestinationFullError("the destination of %s is full: %s (%s)" % (path, text, os.path.basename(argv[0])),
                                   free_bytes=free_bytes(os.path.dirname(path)))
    if rc != 0:
        tool = os.path.basename(argv[0])
        raise CommandError("%s failed (rc=%s) while writing %s: %s" % (tool, rc, path, text or "no output"),
                           argv, rc, "", err)


def _write_error(exc, path):
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return DestinationFullError("the destination of %s is full: %s" % (path, exc.strerror),
                                    free_bytes=free_bytes(os.path.dirname(path)))
    return BackendError("writing %s failed: %s" % (path, exc))


# --- the resource -------------------------------------------------------------------------------


class ExportResource(Resource):
    kind = "export"

    def __init__(self, ctx):
        super(ExportResource, self).__init__(ctx)
        self.opts = check_params(ctx.params)
        self._qemu = None
        self.source = None
        self.layout = None
        self.identity = None
        self.record = None
        self.progress = Progress(self.opts["progress_file"])
        self.started = time.time()
        self.reason = None
        self._temps = set()
        self._overlays = []
        self._saved_xml = None
        self._signals = {}
        self._error = None
        self._work = {}
        self._written_during = None
        self._made_dir = False

    @property
    def name(self):
        return self.opts["name"]

    @property
    def qemu(self):
        if self._qemu is None:
            self._qemu = ExportQemuImg(run=self.ctx.run_command)
        return self._qemu

    # --- read / desired / compare -------------------------------------------------------------

    def _missing_source(self):
        """The error of a source VM, pool or volume that is not there (None when it is)."""
        opts, conn = self.opts, self.ctx.conn
        if opts["kind"] == "vm":
            if lookup_or_none(conn.lookupByName, opts["name"], libvirt.VIR_ERR_NO_DOMAIN, "VM") is None:
                return NotFoundError("VM '%s' does not exist" % opts["name"])
            return None
        try:
            pool = lookup_pool(conn, opts["pool"])
        except (NotFoundError, ConflictError) as exc:
            return exc
        if lookup_volume(pool, opts["name"]) is None:
            return NotFoundError("volume %r does not exist in pool %r" % (opts["name"], opts["pool"]))
        return None

    def read(self):
        opts = self.opts
        missing = self._missing_source()
        if missing is not None:
            self.ctx.assume(missing)  # check mode: an earlier task may create it; a real run fails
            return None
        if opts["kind"] == "vm":
            self.source = read_vm(self.ctx.conn, opts["name"], self.qemu)
        else:
            self.source = read_volume(self.ctx.conn, opts["pool"], opts["name"], self.qemu, self.ctx.uri)
        if not self.source["disks"] and opts["format"] in ("ova",) + DISK_FORMATS:
            raise InvalidInputError("VM '%s' has no disk to export as %s" % (opts["name"], opts["format"]))
        self.layout = plan_layout(opts, self.source)
        self.identity = source_identity(self.source)
        self.record = read_record(self.layout["record"])
        self._work["old_record"] = self.record
        existing = [a["name"] for a in self.layout["artefacts"] if self._occupied(a)]
        if self.record is None:
            if not existing:
                return None
            return dict(recorded=False, existing=existing)
        return self._view_of_record(self.record)

    def _written_files(self):
        """The files an export writes: each artefact, its checksum file, and the record."""
        paths = [p for a in self.layout["artefacts"] for p in (a["path"], a["checksum_file"])]
        return paths + [self.layout["record"]]

    def _modes_text(self):
        """The modes of the files of the export as they are (``'0600'``, ``'0600, 0644'``), or None."""
        modes = sorted(set(file_modes(self._written_files()).values()))
        return ", ".join(mode_text(m) for m in modes) or None

    def _occupied(self, art):
        """Whether a file is in the way of ``art``: a definition file with the very content this export
        writes is not (the definition is shared by the exports of one VM in several disk formats)."""
        if not os.path.lexists(art["path"]):
            return False
        if art["kind"] == "definition" and os.path.isfile(art["path"]):
            data = self.source["definition"].encode("utf-8")
            return sha256_file(art["path"]) != hashlib.sha256(data).hexdigest()
        return True

    def _view_of_record(self, record):
        return dict(
            recorded=True,
            existing=[a["name"] for a in self.layout["artefacts"] if self._occupied(a)],
            options=record.get("options"),
            source_identity=record.get("source", {}).get("identity"),
            artefacts=sorted(a.get("name") for a in record.get("artefacts") or [] if isinstance(a, dict)),
            intact=artefacts_intact(record, self.layout["directory"]),
            mode=self._modes_text(),
            record=record,
        )

    def _options(self):
        return dict(format=self.opts["format"], compressed=self.opts["compressed"])

    def desired(self, current):
        if self.source is None:  # assumed (check mode)
            return dict(options=self._options())
        return dict(
            options=self._options(),
            source_identity=self.identity[0],
            artefacts=sorted(a["name"] for a in self.layout["artefacts"]),
            intact=True,
            mode=mode_text(self.opts["mode"]),
        )

    def compare(self, current, desired):
        tracker = DifferenceTracker()
        if current is None:
            tracker.add(("state",), ABSENT, "present")
            self.reason = "no export yet"
            return tracker
        if not current["recorded"]:
            if not self.opts["force"]:
                raise ConflictError(
                    "%s already exist(s) in %s but was not written by this module (no record %s): set force=true to "
                    "overwrite" % (", ".join(current["existing"]), self.layout["directory"],
                                   os.path.basename(self.layout["record"])),
                    existing=current["existing"])
            tracker.add(("force",), False, True)
            self.reason = "force (files without a record)"
            return tracker
        reasons = []
        if tracker.add_if_different(("options",), current["options"], desired["options"]):
            reasons.append("options changed")
        if tracker.add_if_different(("source_identity",), current["source_identity"], desired["source_identity"]):
            reasons.append("the source changed")
        if tracker.add_if_different(("artefacts",), current["artefacts"], desired["artefacts"]):
            reasons.append("other artefacts")
        if tracker.add_if_different(("intact",), current["intact"], True):
            reasons.append("an artefact was changed or removed")
        if current["mode"] != desired["mode"]:
            tracker.add(("mode",), current["mode"], desired["mode"])
            reasons.append("file mode")
        if self.opts["force"] and not tracker:
            tracker.add(("force",), False, True)
            reasons.append("force")
        self.reason = ", ".join(reasons) or None
        return tracker

    def diff_views(self, current, desired):
        def view(state):
            if state is None:
                return {"state": ABSENT}
            return dict((k, state.get(k)) for k in ("options", "source_identity", "artefacts", "mode") if k in state)
        return view(current), view(desired)

    # --- plan ----------------------------------------------------------------------------------

    def plan(self, current, desired, diff, plan):
        if not diff:
            return
        if diff.paths == ["mode"]:
            self._plan_mode(plan)
            return
        opts, source, layout = self.opts, self.source, self.layout
        if source is None:  # assumed (check mode)
            plan.add("export %s to %s (%s)" % (self._what(), opts["dest"], opts["format"]))
            return
        guard_replace(self.ctx, [p for a in layout["artefacts"] for p in (a["path"], a["checksum_file"])]
                      + [layout["record"]], [p for d in source["disks"] for p in d["chain"]], self._what())
        estimate = sum(d["data"] for d in source["disks"])
        free = free_bytes(layout["directory"] if not layout["create_dir"] else os.path.dirname(layout["directory"]))
        if free is not None and free < estimate:
            plan.warn("%s has %s free; the export may need up to %s (the allocated data of the source)"
                      % (layout["directory"], human_size(free), human_size(estimate)))
        if opts["quiesce"] and not source["active"]:
            plan.warn("quiesce applies to running VMs only: %s is read as it is" % self._what())
        if opts["format"] in _archive.ARCHIVE_FORMATS:
            compressor_argv(opts["format"])  # a missing zstd is known before anything is read
        plan.add("start the export of %s to %s (%s)%s" % (self._what(), layout["directory"], opts["format"],
                                                          ", creating the directory" if layout["create_dir"] else ""),
                 self._guard(self._start), self._cleanup)
        stale = stale_temporaries(layout["directory"])
        if stale:
            plan.add("remove %d leftover temporary file(s) of an interrupted export: %s"
                     % (len(stale), ", ".join(os.path.basename(p) for p in stale)),
                     self._guard(lambda: self._remove(stale)))
        if source["leftovers"]:
            plan.add("merge the temporary overlay(s) %s of an interrupted export back"
                     % ", ".join(e["overlay"] for e in source["leftovers"]),
                     self._guard(self._merge_leftovers))
        if self._snapshot_disks():
            targets = ", ".join(d["target"] for d in self._snapshot_disks())
            plan.add("take a temporary disk-only snapshot of %s of running %s%s" % (
                targets, self._owner_what(), " (file systems quiesced by the guest agent)" if opts["quiesce"] else ""),
                self._guard(self._snapshot), self._merge_back)
        out_fmt = self._disk_format()
        for disk in source["disks"]:
            plan.add("convert %s (%s of data, %s virtual) to %s%s" % (
                self._disk_what(disk), human_size(disk["data"]), human_size(disk["virtual_size"]), out_fmt,
                " (compressed)" if self._compress() else ""), self._guard(self._converter(disk)))
        if opts["verify"]:
            plan.add("compare the converted disks with their source", self._guard(self._verify))
        if self._snapshot_disks():
            plan.add("merge the temporary snapshot back into the disks of %s" % self._owner_what(),
                     self._guard(self._merge_back))
        if opts["format"] == "ova":
            plan.add("pack %s (OVF descriptor, manifest, %d VMDK disk(s))" % (layout["artefacts"][0]["name"],
                                                                              len(source["disks"])),
                     self._guard(self._pack_ova))
        elif opts["format"] in _archive.ARCHIVE_FORMATS:
            tool = {"tar.zst": "zstd -T0", "tar.gz": "pigz" if find_binary("pigz") else "gzip (Python)"}.get(opts["format"])
            plan.add("pack %s (manifest, domain.xml, %d qcow2 disk(s))%s" % (
                layout["artefacts"][0]["name"], len(source["disks"]), " with %s" % tool if tool else ""),
                self._guard(self._pack_archive))
        plan.add("compute SHA-256 checksums", self._guard(self._checksums))
        plan.add("move %s into place in %s" % (", ".join(a["name"] for a in layout["artefacts"]), layout["directory"]),
                 self._guard(self._commit_files))
        self._work["estimate"] = estimate

    def _plan_mode(self, plan):
        """A current export whose files have another mode: chmod them (undo: the old modes)."""
        mode = self.opts["mode"]
        old = file_modes(self._written_files())
        changing = sorted(p for p, m in old.items() if m != mode)

        def chmod():
            for path in changing:
                os.chmod(path, mode)

        def undo():
            for path in changing:
                os.chmod(path, old[path])

        plan.add("set the mode of %s in %s to %s" % (", ".join(os.path.basename(p) for p in changing),
                                                     self.layout["directory"], mode_text(mode)), chmod, undo)

    # --- plan helpers --------------------------------------------------------------------------

    def _what(self):
        if self.opts["kind"] == "vm":
            return "VM '%s'" % self.opts["name"]
        return "volume %r of pool %r" % (self.opts["name"], self.opts["pool"])

    def _owner_what(self):
        if self.opts["kind"] == "vm":
            return "VM '%s'" % self.opts["name"]
        return "VM '%s' (which uses volume %r)" % (self.source["user"], self.opts["name"])

    def _disk_what(self, disk):
        if self.opts["kind"] == "vm":
            return "disk %s" % disk["target"]
        return "volume %r" % self.opts["name"]

    def _disk_format(self):
        fmt = self.opts["format"]
        if fmt == "ova":
            return "vmdk"
        if fmt in _archive.ARCHIVE_FORMATS:
            return "qcow2"
        return fmt

    def _compress(self):
        return self.opts["compressed"] and self._disk_format() == "qcow2"

    def _snapshot_disks(self):
        """Disks read through a temporary overlay: every writable, unshared disk of a running source."""
        if not self.source["active"]:
            return []
        return [d for d in self.source["disks"] if d["target"] and not d["readonly"] and not d["shareable"]]

    def _guard(self, action):
        """Remember the error a step raises (for the progress file) and keep signals as exceptions."""
        def run():
            try:
                action()
            except BaseException as exc:
                self._error = exc
                raise
        return run

    # --- steps ---------------------------------------------------------------------------------

    def _on_signal(self, signum, _frame):
        raise ExportInterrupted("the export was interrupted by signal %d; what it had made was removed" % signum)

    def _start(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._signals[sig] = signal.signal(sig, self._on_signal)
        if self.layout["create_dir"]:
            try:
                os.mkdir(self.layout["directory"], dir_mode(self.opts["mode"]))
            except OSError as exc:
                raise BackendError("creating the directory %s failed: %s" % (self.layout["directory"], exc))
            self._made_dir = True
        self.progress.add_total(sum(d["data"] for d in self.source["disks"]))
        self.progress.set_phase("starting")
        if self.source["active"]:
            with libvirt_errors("reading the definition of %s" % self._owner_what()):
                dom = self.source["dom"]
                self._saved_xml = dom.XMLDesc(_XML_INACTIVE | _XML_SECURE) if dom.isPersistent() else None

    def _restore_signals(self):
        for sig, handler in self._signals.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, TypeError):
                pass
        self._signals = {}

    def _cleanup(self):
        """The undo of the whole run: temporary files (and the directory this run made) go."""
        self._remove(sorted(self._temps))
        self._temps = set()
        if self._made_dir:
            try:
                os.rmdir(self.layout["directory"])
            except OSError:
                pass
        self.progress.finish(False, str(self._error) if self._error is not None else "failed")
        self._restore_signals()

    @staticmethod
    def _remove(paths):
        for path in paths:
            try:
                os.unlink(path)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise BackendError("removing %s failed: %s" % (path, exc))

    def _tmp(self, name, suffix=""):
        directory = self.opts["tmp_dir"] if suffix and self.opts["tmp_dir"] else self.layout["directory"]
        path = os.path.join(directory, ".%s%s%d%s" % (name, TMP_MARK, os.getpid(), suffix))
        self._temps.add(path)
        try:
            create_file(path, self.opts["mode"])  # qemu-img, compressors and our writers keep its mode
        except OSError as exc:
            raise _write_error(exc, path)
        return path

    def _merge_leftovers(self):
        self.progress.set_phase("merging leftover overlays")
        dom_name = self.opts["name"] if self.opts["kind"] == "vm" else self.source["user"]
        merge_overlays(self.ctx.conn, self.qemu, dom_name, self.source["leftovers"])
        if self.opts["kind"] == "vm":
            self.source["definition"] = definition_xml(self.source["dom"])  # it may have been repointed
        self.identity = source_identity(self.source)

    def _snapshot(self):
        self.progress.set_phase("taking a temporary snapshot")
        dom = self.source["dom"]
        disks = self._snapshot_disks()
        entries = []
        for disk in disks:
            entries.append(dict(target=disk["target"], base=disk["path"], base_format=disk["format"],
                                overlay=overlay_path(disk["path"], disk["target"], self.opts["overlay_dir"],
                                                     self.opts["tmp_dir"] or self.layout["directory"])))
        for entry in entries:
            if os.path.lexists(entry["overlay"]):
                raise ConflictError("the temporary overlay %s exists already" % entry["overlay"])
        snapshot_targets = set(e["target"] for e in entries)
        root = _xml.parse(dom.XMLDesc(0), "domain XML")
        others = [t for t in (_xml.find_attr(n, "target", "dev") for n in root.findall("devices/disk"))
                  if t and t not in snapshot_targets]
        xml = build_snapshot_xml("virtops-export-%d-%d" % (os.getpid(), int(time.time())),
                                 [(e["target"], e["overlay"]) for e in entries], others)
        flags = (_flag("VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY", 16) | _flag("VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA", 4)
                 | _flag("VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC", 128))
        if self.opts["quiesce"]:
            flags |= _flag("VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE", 64)
        self._overlays = entries
        try:
            dom.snapshotCreateXML(xml, flags)
        except libvirt.libvirtError as exc:
            self._overlays = []
            text = _error_text(exc)
            hint = ""
            if self.opts["quiesce"] and ("agent" in text.lower() or "quiesce" in text.lower() or "freeze" in text.lower()):
                hint = ": quiesce needs qemu-guest-agent running in the guest and an org.qemu.guest_agent.0 channel " \
                       "(or set quiesce=false)"
            raise BackendError("taking the temporary snapshot of %s failed: %s%s" % (self._owner_what(), text, hint),
                               libvirt_error_code=exc.get_error_code())
        # the identity of the frozen point in time (kept unless nothing was written meanwhile)
        self._work["identity_at_snapshot"] = source_identity(self.source)

    def _merge_back(self):
        """Merge the overlays back (the step, and the undo of the snapshot step)."""
        if not self._overlays or all(e.get("merged") for e in self._overlays):
            return
        self.progress.set_phase("merging the temporary snapshot back")
        dom_name = self.opts["name"] if self.opts["kind"] == "vm" else self.source["user"]
        self._written_during = merge_overlays(self.ctx.conn, self.qemu, dom_name, self._overlays, self._saved_xml)

    def _converter(self, disk):
        return lambda: self._convert(disk)

    def _convert(self, disk):
        out_fmt = self._disk_format()
        if self.opts["format"] in DISK_FORMATS:
            art = [a for a in self.layout["artefacts"] if a["kind"] == "disk" and a["target"] == disk["target"]][0]
            tmp = self._tmp(art["name"])
        else:
            tmp = self._tmp(self.layout["artefacts"][0]["name"], ".%s.%s" % (disk["target"] or "disk", EXTENSIONS[out_fmt]))
        disk["tmp"] = tmp
        force_share = self.source["active"]
        argv = self.qemu.export_argv(disk["path"], tmp, out_fmt, disk["format"], self._compress(), force_share)
        self.progress.set_phase("converting %s" % self._disk_what(disk))
        base = self.progress.done
        data = disk["data"]

        def on_percent(percent):
            self.progress.done = base + int(data * percent / 100.0)
            self.progress.write()

        rc, out, err = run_with_percent(argv, on_percent)
        if rc != 0:
            text = " ".join((err or out or "").split()) or "no output"
            if is_no_space(text):
                raise DestinationFullError(
                    "the destination %s is full: converting %s stopped with '%s'; about %s of data had to be written"
                    % (os.path.dirname(tmp), self._disk_what(disk), text, human_size(data)),
                    free_bytes=free_bytes(os.path.dirname(tmp)))
            raise CommandError("qemu-img convert of %s failed (rc=%s): %s" % (self._disk_what(disk), rc, text),
                               argv, rc, out, err)
        self.progress.done = base + data
        if out_fmt in _CHECKABLE:
            report = self.qemu.check(tmp, out_fmt)
            if not report.get("clean"):
                raise BackendError("the exported %s does not pass qemu-img check: %s"
                                   % (self._disk_what(disk), json.dumps(report, sort_keys=True)))

    def _verify(self):
        self.progress.set_phase("comparing the exported disks with their source")
        for disk in self.source["disks"]:
            if not self.qemu.compare(disk["path"], disk["tmp"]):
                raise BackendError("the exported %s differs from its source (qemu-img compare)" % self._disk_what(disk))

    def _pack_ova(self):
        art = self.layout["artefacts"][0]
        base = safe_file_name(self.source["name"])[:64]  # ustar member names hold 100 bytes
        files = []
        for index, disk in enumerate(self.source["disks"], 1):
            files.append(("%s-disk%d.vmdk" % (base, index), disk))
        total = sum(os.path.getsize(d["tmp"]) for _n, d in files)
        self.progress.add_total(total)
        self.progress.set_phase("checksums of the VMDK disks")
        digests = {}
        for name, disk in files:
            digests[name] = sha256_file(disk["tmp"])
        bus_map = dict(virtio="virtio", sata="sata", scsi="scsi", ide="ide")
        vm = dict(
            name=self.source["name"], vcpus=self.source["vm"]["vcpus"], memory_mib=self.source["vm"]["memory_mib"],
            firmware=self.source["vm"]["firmware"], os_hint=self.source["os_hint"],
            disks=[dict(file=name, size=os.path.getsize(d["tmp"]), capacity=d["virtual_size"],
                        bus=bus_map.get(d["bus"], "sata")) for name, d in files],
            nics=[dict(network=n["network"], model=n["model"]) for n in self.source["nics"]],
        )
        ovf = _ovf.build_ovf(vm)
        ovf_name, mf_name = "%s.ovf" % base, "%s.mf" % base
        listing = dict([(ovf_name, hashlib.sha256(ovf).hexdigest())] + [(n, digests[n]) for n, _d in files])
        members = [(ovf_name, ovf), (mf_name, _ovf.manifest(listing))] + [(n, d["tmp"]) for n, d in files]
        tar_format = tarfile.USTAR_FORMAT
        if any(os.path.getsize(d["tmp"]) > USTAR_MAX for _n, d in files):
            tar_format = tarfile.GNU_FORMAT
            self._work.setdefault("warnings", []).append(
                "a VMDK is larger than 8 GiB, which ustar cannot hold: the OVA uses GNU tar size fields")
        self.progress.set_phase("packing %s" % art["name"])
        tmp = self._tmp(art["name"])
        art["sha256"] = write_tar(tmp, members, "tar", on_bytes=self.progress.advance, tar_format=tar_format)
        art["tmp"] = tmp
        self._remove([d["tmp"] for _n, d in files])

    def _pack_archive(self):
        art = self.layout["artefacts"][0]
        disks = self.source["disks"]
        self.progress.add_total(sum(os.path.getsize(d["tmp"]) for d in disks))
        self.progress.set_phase("checksums of the disks")
        entries = []
        for disk in disks:
            entries.append(dict(target=disk["target"], format="qcow2", virtual_size=disk["virtual_size"],
                                size=os.path.getsize(disk["tmp"]), sha256=sha256_file(disk["tmp"]),
                                bus=disk["bus"], device="disk"))
        manifest = _archive.build_manifest(self.source["vm"], entries)
        members = [(_archive.MANIFEST_NAME, manifest), (_archive.DOMAIN_XML_NAME, self.source["definition"].encode("utf-8"))]
        members += [(_archive.disk_member_name(d["target"], "qcow2"), d["tmp"]) for d in disks]
        self.progress.set_phase("packing %s" % art["name"])
        tmp = self._tmp(art["name"])
        art["sha256"] = write_tar(tmp, members, self.opts["format"], on_bytes=self.progress.advance)
        art["tmp"] = tmp
        self._remove([d["tmp"] for d in disks])

    def _checksums(self):
        self.progress.set_phase("checksums")
        for art in self.layout["artefacts"]:
            if art["kind"] == "definition":
                data = self.source["definition"].encode("utf-8")
                art["sha256"] = hashlib.sha256(data).hexdigest()
                if os.path.isfile(art["path"]) and sha256_file(art["path"]) == art["sha256"]:
                    art["keep"] = True  # same content: the file (and its time) stays as it is
                else:
                    art["tmp"] = self._tmp(art["name"])
                    self._write(art["tmp"], data)
            elif art["kind"] == "disk":
                disk = [d for d in self.source["disks"] if d["target"] == art["target"]][0]
                art["tmp"] = disk["tmp"]
                self.progress.add_total(os.path.getsize(disk["tmp"]) if self.opts["format"] != "raw" else disk["data"])
                art["sha256"] = sha256_file(disk["tmp"], on_bytes=self.progress.advance)
            art["checksum_tmp"] = self._tmp(art["name"] + CHECKSUM_SUFFIX)
            self._write(art["checksum_tmp"], checksum_line(art["sha256"], art["name"]).encode("utf-8"))

    def _write(self, path, data):
        try:
            _write_bytes(path, data)
        except (IOError, OSError) as exc:
            raise _write_error(exc, path)

    def _commit_files(self):
        """Rename everything into place, then write the record and drop what the old export had extra."""
        self.progress.set_phase("moving the files into place")
        mode = self.opts["mode"]
        for art in self.layout["artefacts"]:
            if art.get("tmp"):
                os.chmod(art["tmp"], mode)
                os.rename(art["tmp"], art["path"])
                self._temps.discard(art["tmp"])
            elif art.get("keep"):
                os.chmod(art["path"], mode)
            os.chmod(art["checksum_tmp"], mode)
            os.rename(art["checksum_tmp"], art["checksum_file"])
            self._temps.discard(art["checksum_tmp"])
        identity = self.identity
        if self._overlays and self._written_during == 0:
            identity = source_identity(self.source)  # nothing written meanwhile: the state now is the exported one
        elif self._overlays:
            identity = self._work.get("identity_at_snapshot", identity)
        artefacts = []
        for art in self.layout["artefacts"]:
            size, mtime_ns = file_stamp(art["path"])
            art.update(size=size, mtime_ns=mtime_ns)
            artefacts.append(dict(name=art["name"], kind=art["kind"], format=art["format"], target=art["target"],
                                  size=size, mtime_ns=mtime_ns, sha256=art["sha256"]))
        record = dict(
            generator=_archive.GENERATOR, record_version=RECORD_VERSION, module="export", created=iso_now(),
            source=dict(kind=self.source["kind"], name=self.source["name"], pool=self.source.get("pool"),
                        uuid=self.source.get("uuid"), identity=identity[0], detail=identity[1],
                        consistency=self._consistency()),
            options=self._options(), artefacts=artefacts, duration_seconds=round(time.time() - self.started, 1),
        )
        tmp = self._tmp(os.path.basename(self.layout["record"]))
        self._write(tmp, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        os.chmod(tmp, mode)
        os.rename(tmp, self.layout["record"])
        self._temps.discard(tmp)
        self.record = record
        old = self._old_record_names()
        obsolete = [n for n in old if n not in set(a["name"] for a in artefacts)]
        for name in obsolete:
            self._remove([os.path.join(self.layout["directory"], name),
                          os.path.join(self.layout["directory"], name + CHECKSUM_SUFFIX)])
        _fsync_dir(self.layout["directory"])
        self._made_dir = False
        self.progress.finish(True)
        self._restore_signals()

    def _old_record_names(self):
        current = self._work.get("old_record")
        if current is None:
            return []
        return [a.get("name") for a in current.get("artefacts") or [] if isinstance(a, dict) and plain_name(a.get("name"))]

    def _consistency(self):
        if self._snapshot_disks():
            return "snapshot (quiesced)" if self.opts["quiesce"] else "snapshot"
        if self.source["active"]:
            return "read-only disk of a running VM"
        return "stopped" if self.opts["kind"] == "vm" else "offline"

    # --- results -------------------------------------------------------------------------------

    def refresh(self):
        return self._view_of_record(self.record) if self.record is not None else None

    def predict(self, current, desired):
        return None

    def result(self, state, outcome):
        layout, source = self.layout, self.source
        if source is None:  # assumed (check mode)
            return dict(format=self.opts["format"], directory=None, record=None, artefacts=[], total_size=None,
                        estimated_size=None, source=dict(kind=self.opts["kind"], name=self.opts["name"],
                                                         pool=self.opts["pool"]),
                        consistency=None, reason=self.reason, duration=round(time.time() - self.started, 2),
                        created=None, progress_file=self.opts["progress_file"])
        record = self.record
        artefacts = []
        recorded = dict((a.get("name"), a) for a in (record or {}).get("artefacts") or [] if isinstance(a, dict))
        predicted = state is None
        for art in layout["artefacts"]:
            entry = dict(name=art["name"], path=art["path"], kind=art["kind"], format=art["format"], target=art["target"],
                         checksum_file=art["checksum_file"], size=None, sha256=None)
            if not predicted and art["name"] in recorded:
                entry.update(size=recorded[art["name"]].get("size"), sha256=recorded[art["name"]].get("sha256"))
            artefacts.append(entry)
        estimate = sum(d["data"] for d in source["disks"])
        disks = [dict(target=d["target"], path=d["path"], format=d["format"], virtual_size=d["virtual_size"],
                      data=d["data"]) for d in source["disks"]]
        out = dict(
            format=self.opts["format"],
            directory=layout["directory"],
            record=layout["record"],
            artefacts=artefacts,
            total_size=None if predicted else sum(a["size"] or 0 for a in artefacts),
            estimated_size=estimate,
            source=dict(kind=source["kind"], name=source["name"], pool=source.get("pool"), active=source["active"],
                        used_by=source.get("user"), disks=disks),
            consistency=self._consistency() if predicted or self.reason else (record.get("source") or {}).get("consistency"),
            reason=self.reason,
            duration=round(time.time() - self.started, 2),
            created=(record or {}).get("created") if not predicted else None,
            progress_file=self.opts["progress_file"],
            mode=mode_text(self.opts["mode"]),
        )
        if self._work.get("warnings"):
            out["warnings"] = list(self._work["warnings"])
        return out
