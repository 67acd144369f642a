# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``export``: one run of an export, the steps its plan calls (start, snapshot, convert, verify, merge,
pack, checksums, move into place) and what the run leaves behind (its record, its warnings)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import json
import os
import tarfile
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive as _archive

from ansible_collections.virtops.libvirt.plugins.module_utils._export import ovf as _ovf
from ansible_collections.virtops.libvirt.plugins.module_utils._tools import ovf as _ovf_tools

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, CommandError, ConflictError, VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.filemode import create_file, dir_mode
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import human_size
from ansible_collections.virtops.libvirt.plugins.module_utils._export.overlay import build_snapshot_xml, error_text, merge_overlays, overlay_path
from ansible_collections.virtops.libvirt.plugins.module_utils._export.params import (
    CHECKSUM_SUFFIX,
    DISK_FORMATS,
    EXTENSIONS,
    RECORD_VERSION,
    TMP_MARK,
    _CHECKABLE,
    file_stamp,
    iso_now,
    safe_file_name,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._export.layout import checksum_line, plain_name
from ansible_collections.virtops.libvirt.plugins.module_utils._export.source import definition_xml, source_identity
from ansible_collections.virtops.libvirt.plugins.module_utils._export.writers import (
    USTAR_MAX,
    DestinationFullError,
    export_argv,
    free_bytes,
    is_no_space,
    write_bytes,
    write_error,
    write_tar,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.fs import atomic_write, fsync_dir, sha256_file
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.progress import run_with_percent
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.signalled import SignalledRun

_XML_INACTIVE = flag("VIR_DOMAIN_XML_INACTIVE", 2)
_XML_SECURE = flag("VIR_DOMAIN_XML_SECURE", 1)


class ExportInterrupted(VirtopsError):
    """SIGTERM or SIGINT arrived while the export ran (raised so that the clean-up runs)."""

    kind = "interrupted"


# --- words and choices shared by the plan and the run -------------------------------------------


def what(opts):
    if opts["kind"] == "vm":
        return "VM '%s'" % opts["name"]
    return "volume %r of pool %r" % (opts["name"], opts["pool"])


def owner_what(opts, source):
    if opts["kind"] == "vm":
        return "VM '%s'" % opts["name"]
    return "VM '%s' (which uses volume %r)" % (source["user"], opts["name"])


def disk_what(opts, disk):
    if opts["kind"] == "vm":
        return "disk %s" % disk["target"]
    return "volume %r" % opts["name"]


def disk_format(opts):
    fmt = opts["format"]
    if fmt == "ova":
        return "vmdk"
    if fmt in _archive.ARCHIVE_FORMATS:
        return "qcow2"
    return fmt


def compress(opts):
    return opts["compressed"] and disk_format(opts) == "qcow2"


def snapshot_disks(source):
    """Disks read through a temporary overlay: every writable, unshared disk of a running source."""
    if not source["active"]:
        return []
    return [d for d in source["disks"] if d["target"] and not d["readonly"] and not d["shareable"]]


def consistency(opts, source):
    if snapshot_disks(source):
        return "snapshot (quiesced)" if opts["quiesce"] else "snapshot"
    if source["active"]:
        return "read-only disk of a running VM"
    return "stopped" if opts["kind"] == "vm" else "offline"


def export_options(opts):
    """The options an export's record keeps (another value means another export)."""
    return dict(format=opts["format"], compressed=opts["compressed"])


# --- the run ------------------------------------------------------------------------------------


class ExportRun(SignalledRun):
    """The steps of one export and their state: temporary files, overlays, the record written."""

    def __init__(self, ctx, qemu, opts, source, layout, identity, old_record, progress, started):
        self.ctx = ctx
        self.qemu = qemu
        self.opts = opts
        self.source = source
        self.layout = layout
        self.identity = identity
        self.old_record = old_record
        self.progress = progress
        self.started = started
        self.temps = set()
        self.overlays = []
        self.saved_xml = None
        self.written_during = None
        self.identity_at_snapshot = None
        self.made_dir = False
        self.record = None
        self.warnings = []

    def interrupted(self, signum):
        return ExportInterrupted("the export was interrupted by signal %d; what it had made was removed" % signum)

    def start(self):
        self.catch_signals()
        if self.layout["create_dir"]:
            try:
                os.mkdir(self.layout["directory"], dir_mode(self.opts["mode"]))
            except OSError as exc:
                raise BackendError("creating the directory %s failed: %s" % (self.layout["directory"], exc))
            self.made_dir = True
        self.progress.add_total(sum(d["data"] for d in self.source["disks"]))
        self.progress.set_phase("starting")
        if self.source["active"]:
            with libvirt_errors("reading the definition of %s" % owner_what(self.opts, self.source)):
                dom = self.source["dom"]
                self.saved_xml = dom.XMLDesc(_XML_INACTIVE | _XML_SECURE) if dom.isPersistent() else None

    def cleanup(self):
        """The undo of the whole run: temporary files (and the directory this run made) go."""
        self.remove(sorted(self.temps))
        self.temps = set()
        if self.made_dir:
            try:
                os.rmdir(self.layout["directory"])
            except OSError:
                pass
        self.progress.finish(False, str(self.error) if self.error is not None else "failed")
        self._restore_signals()

    @staticmethod
    def remove(paths):
        for path in paths:
            try:
                os.unlink(path)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise BackendError("removing %s failed: %s" % (path, exc))

    def _tmp(self, name, suffix=""):
        directory = self.opts["tmp_dir"] if suffix and self.opts["tmp_dir"] else self.layout["directory"]
        path = os.path.join(directory, ".%s%s%d%s" % (name, TMP_MARK, os.getpid(), suffix))
        self.temps.add(path)
        try:
            create_file(path, self.opts["mode"])  # qemu-img, compressors and our writers keep its mode
        except OSError as exc:
            raise write_error(exc, path)
        return path

    def merge_leftovers(self):
        self.progress.set_phase("merging leftover overlays")
        dom_name = self.opts["name"] if self.opts["kind"] == "vm" else self.source["user"]
        merge_overlays(self.ctx.conn, self.qemu, dom_name, self.source["leftovers"])
        if self.opts["kind"] == "vm":
            self.source["definition"] = definition_xml(self.source["dom"])  # it may have been repointed
        self.identity = source_identity(self.source)

    def snapshot(self):
        self.progress.set_phase("taking a temporary snapshot")
        dom = self.source["dom"]
        disks = snapshot_disks(self.source)
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
        flags = (flag("VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY", 16) | flag("VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA", 4)
                 | flag("VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC", 128))
        if self.opts["quiesce"]:
            flags |= flag("VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE", 64)
        self.overlays = entries
        try:
            dom.snapshotCreateXML(xml, flags)
        except libvirt.libvirtError as exc:
            self.overlays = []
            text = error_text(exc)
            hint = ""
            if self.opts["quiesce"] and ("agent" in text.lower() or "quiesce" in text.lower() or "freeze" in text.lower()):
                hint = ": quiesce needs qemu-guest-agent running in the guest and an org.qemu.guest_agent.0 channel " \
                       "(or set quiesce=false)"
            raise BackendError("taking the temporary snapshot of %s failed: %s%s" % (owner_what(self.opts, self.source), text, hint),
                               libvirt_error_code=exc.get_error_code())
        # the identity of the frozen point in time (kept unless nothing was written meanwhile)
        self.identity_at_snapshot = source_identity(self.source)

    def merge_back(self):
        """Merge the overlays back (the step, and the undo of the snapshot step)."""
        if not self.overlays or all(e.get("merged") for e in self.overlays):
            return
        self.progress.set_phase("merging the temporary snapshot back")
        dom_name = self.opts["name"] if self.opts["kind"] == "vm" else self.source["user"]
        self.written_during = merge_overlays(self.ctx.conn, self.qemu, dom_name, self.overlays, self.saved_xml)

    def converter(self, disk):
        return lambda: self.convert(disk)

    def convert(self, disk):
        out_fmt = disk_format(self.opts)
        if self.opts["format"] in DISK_FORMATS:
            art = [a for a in self.layout["artefacts"] if a["kind"] == "disk" and a["target"] == disk["target"]][0]
            tmp = self._tmp(art["name"])
        else:
            tmp = self._tmp(self.layout["artefacts"][0]["name"], ".%s.%s" % (disk["target"] or "disk", EXTENSIONS[out_fmt]))
        disk["tmp"] = tmp
        force_share = self.source["active"]
        argv = export_argv(self.qemu, disk["path"], tmp, out_fmt, disk["format"], compress(self.opts), force_share)
        self.progress.set_phase("converting %s" % disk_what(self.opts, disk))
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
                    % (os.path.dirname(tmp), disk_what(self.opts, disk), text, human_size(data)),
                    free_bytes=free_bytes(os.path.dirname(tmp)))
            raise CommandError("qemu-img convert of %s failed (rc=%s): %s" % (disk_what(self.opts, disk), rc, text),
                               argv, rc, out, err)
        self.progress.done = base + data
        if out_fmt in _CHECKABLE:
            report = self.qemu.check(tmp, out_fmt)
            if not report.get("clean"):
                raise BackendError("the exported %s does not pass qemu-img check: %s"
                                   % (disk_what(self.opts, disk), json.dumps(report, sort_keys=True)))

    def verify(self):
        self.progress.set_phase("comparing the exported disks with their source")
        for disk in self.source["disks"]:
            if not self.qemu.compare(disk["path"], disk["tmp"]):
                raise BackendError("the exported %s differs from its source (qemu-img compare)" % disk_what(self.opts, disk))

    def pack_ova(self):
        art = self.layout["artefacts"][0]
        base = safe_file_name(self.source["name"])[:64]  # ustar member names hold 100 bytes
        files = [("%s-disk%d.vmdk" % (base, index), disk) for index, disk in enumerate(self.source["disks"], 1)]
        self.progress.add_total(sum(os.path.getsize(d["tmp"]) for _n, d in files))
        self.progress.set_phase("checksums of the VMDK disks")
        members, tar_format = ova_members(self.source, base, files)
        if tar_format != tarfile.USTAR_FORMAT:
            self.warnings.append("a VMDK is larger than 8 GiB, which ustar cannot hold: the OVA uses GNU tar size fields")
        self.progress.set_phase("packing %s" % art["name"])
        tmp = self._tmp(art["name"])
        art["sha256"] = write_tar(tmp, members, "tar", on_bytes=self.progress.advance, tar_format=tar_format)
        art["tmp"] = tmp
        self.remove([d["tmp"] for _n, d in files])

    def pack_archive(self):
        art = self.layout["artefacts"][0]
        disks = self.source["disks"]
        self.progress.add_total(sum(os.path.getsize(d["tmp"]) for d in disks))
        self.progress.set_phase("checksums of the disks")
        members = archive_members(self.source)
        self.progress.set_phase("packing %s" % art["name"])
        tmp = self._tmp(art["name"])
        art["sha256"] = write_tar(tmp, members, self.opts["format"], on_bytes=self.progress.advance)
        art["tmp"] = tmp
        self.remove([d["tmp"] for d in disks])

    def checksums(self):
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
            write_bytes(path, data)
        except (IOError, OSError) as exc:
            raise write_error(exc, path)

    def commit_files(self):
        """Rename everything into place, then write the record and drop what the old export had extra."""
        self.progress.set_phase("moving the files into place")
        mode = self.opts["mode"]
        for art in self.layout["artefacts"]:
            if art.get("tmp"):
                os.chmod(art["tmp"], mode)
                os.rename(art["tmp"], art["path"])
                self.temps.discard(art["tmp"])
            elif art.get("keep"):
                os.chmod(art["path"], mode)
            os.chmod(art["checksum_tmp"], mode)
            os.rename(art["checksum_tmp"], art["checksum_file"])
            self.temps.discard(art["checksum_tmp"])
        identity = self.identity
        if self.overlays and self.written_during == 0:
            identity = source_identity(self.source)  # nothing written meanwhile: the state now is the exported one
        elif self.overlays:
            identity = identity if self.identity_at_snapshot is None else self.identity_at_snapshot
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
                        consistency=consistency(self.opts, self.source)),
            options=export_options(self.opts), artefacts=artefacts, duration_seconds=round(time.time() - self.started, 1),
        )
        try:
            atomic_write(self.layout["record"], json.dumps(record, indent=2, sort_keys=True) + "\n", mode)
        except (IOError, OSError) as exc:
            raise write_error(exc, self.layout["record"])
        self.record = record
        old = self._old_record_names()
        obsolete = [n for n in old if n not in set(a["name"] for a in artefacts)]
        for name in obsolete:
            self.remove([os.path.join(self.layout["directory"], name),
                         os.path.join(self.layout["directory"], name + CHECKSUM_SUFFIX)])
        fsync_dir(self.layout["directory"])
        self.made_dir = False
        self.progress.finish(True)
        self._restore_signals()

    def _old_record_names(self):
        current = self.old_record
        if current is None:
            return []
        return [a.get("name") for a in current.get("artefacts") or [] if isinstance(a, dict) and plain_name(a.get("name"))]


# --- what goes into the archives ----------------------------------------------------------------


def ova_members(source, base, files):
    """``(members, tar format)`` of an OVA: OVF descriptor, manifest, the VMDKs ``files`` (``[(name, disk)]``)."""
    digests = {}
    for name, disk in files:
        digests[name] = sha256_file(disk["tmp"])
    bus_map = dict(virtio="virtio", sata="sata", scsi="scsi", ide="ide")
    vm = dict(
        name=source["name"], vcpus=source["vm"]["vcpus"], memory_mib=source["vm"]["memory_mib"],
        firmware=source["vm"]["firmware"], os_hint=source["os_hint"],
        disks=[dict(file=name, size=os.path.getsize(d["tmp"]), capacity=d["virtual_size"],
                    bus=bus_map.get(d["bus"], "sata")) for name, d in files],
        nics=[dict(network=n["network"], model=n["model"]) for n in source["nics"]],
    )
    ovf = _ovf.build_ovf(vm)
    ovf_name, mf_name = "%s.ovf" % base, "%s.mf" % base
    listing = dict([(ovf_name, hashlib.sha256(ovf).hexdigest())] + [(n, digests[n]) for n, _d in files])
    members = [(ovf_name, ovf), (mf_name, _ovf_tools.manifest(listing))] + [(n, d["tmp"]) for n, d in files]
    tar_format = tarfile.USTAR_FORMAT
    if any(os.path.getsize(d["tmp"]) > USTAR_MAX for _n, d in files):
        tar_format = tarfile.GNU_FORMAT
    return members, tar_format


def archive_members(source):
    """The members of the collection's own archive: manifest, domain XML, the converted qcow2 disks."""
    disks = source["disks"]
    entries = []
    for disk in disks:
        entries.append(dict(target=disk["target"], format="qcow2", virtual_size=disk["virtual_size"],
                            size=os.path.getsize(disk["tmp"]), sha256=sha256_file(disk["tmp"]),
                            bus=disk["bus"], device="disk"))
    manifest = _archive.build_manifest(source["vm"], entries)
    members = [(_archive.MANIFEST_NAME, manifest), (_archive.DOMAIN_XML_NAME, source["definition"].encode("utf-8"))]
    members += [(_archive.disk_member_name(d["target"], "qcow2"), d["tmp"]) for d in disks]
    return members
