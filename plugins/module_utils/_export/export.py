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

import hashlib
import os
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive as _archive

from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import ABSENT, DifferenceTracker
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.filemode import file_modes, mode_text
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_vm
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Outcome, Resource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import human_size
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import guard_replace
from ansible_collections.virtops.libvirt.plugins.module_utils._export.layout import artefacts_intact, plan_layout, read_record, stale_temporaries
from ansible_collections.virtops.libvirt.plugins.module_utils._export.params import DISK_FORMATS, check_params
from ansible_collections.virtops.libvirt.plugins.module_utils._export.run import (
    ExportRun,
    compress,
    consistency,
    disk_format,
    disk_what,
    export_options,
    owner_what,
    snapshot_disks,
    what,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._export.source import read_vm, read_volume, source_identity
from ansible_collections.virtops.libvirt.plugins.module_utils._export.writers import compressor_argv, free_bytes
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import lookup_pool, lookup_volume
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.fs import sha256_file
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.progress import Progress
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.qemu_img import QemuImg


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

    @property
    def name(self):
        return self.opts["name"]

    @property
    def qemu(self):
        if self._qemu is None:
            self._qemu = QemuImg.of(self.ctx)
        return self._qemu

    # --- read / desired / compare -------------------------------------------------------------

    def _missing_source(self):
        """The error of a source VM, pool or volume that is not there (None when it is)."""
        opts, conn = self.opts, self.ctx.conn
        if opts["kind"] == "vm":
            if find_vm(conn, opts["name"]) is None:
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

    def desired(self, current):
        if self.source is None:  # assumed (check mode)
            return dict(options=export_options(self.opts))
        return dict(
            options=export_options(self.opts),
            source_identity=self.identity[0],
            artefacts=sorted(a["name"] for a in self.layout["artefacts"]),
            intact=True,
            mode=mode_text(self.opts["mode"]),
        )

    def compare(self, current, desired):
        tracker = DifferenceTracker()
        if current is None:
            tracker.add(("state",), ABSENT, "present")
            return tracker
        if not current["recorded"]:
            if not self.opts["force"]:
                raise ConflictError(
                    "%s already exist(s) in %s but was not written by this module (no record %s): set force=true to "
                    "overwrite" % (", ".join(current["existing"]), self.layout["directory"],
                                   os.path.basename(self.layout["record"])),
                    existing=current["existing"])
            tracker.add(("force",), False, True)
            return tracker
        tracker.add_if_different(("options",), current["options"], desired["options"])
        tracker.add_if_different(("source_identity",), current["source_identity"], desired["source_identity"])
        tracker.add_if_different(("artefacts",), current["artefacts"], desired["artefacts"])
        tracker.add_if_different(("intact",), current["intact"], True)
        if current["mode"] != desired["mode"]:
            tracker.add(("mode",), current["mode"], desired["mode"])
        if self.opts["force"] and not tracker:
            tracker.add(("force",), False, True)
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
            return None
        outcome = Outcome(reason=reason_of(current, diff), run=None)
        if diff.paths == ["mode"]:
            self._plan_mode(plan)
            return outcome
        opts, source, layout = self.opts, self.source, self.layout
        if source is None:  # assumed (check mode)
            plan.add("export %s to %s (%s)" % (what(self.opts), opts["dest"], opts["format"]))
            return outcome
        run = outcome.values["run"] = ExportRun(self.ctx, self.qemu, opts, source, layout, self.identity, self.record,
                                                self.progress, self.started)
        guard_replace(self.ctx, [p for a in layout["artefacts"] for p in (a["path"], a["checksum_file"])]
                      + [layout["record"]], [p for d in source["disks"] for p in d["chain"]], what(self.opts))
        estimate = sum(d["data"] for d in source["disks"])
        free = free_bytes(layout["directory"] if not layout["create_dir"] else os.path.dirname(layout["directory"]))
        if free is not None and free < estimate:
            plan.warn("%s has %s free; the export may need up to %s (the allocated data of the source)"
                      % (layout["directory"], human_size(free), human_size(estimate)))
        if opts["quiesce"] and not source["active"]:
            plan.warn("quiesce applies to running VMs only: %s is read as it is" % what(self.opts))
        if opts["format"] in _archive.ARCHIVE_FORMATS:
            compressor_argv(opts["format"])  # a missing zstd is known before anything is read
        plan.add("start the export of %s to %s (%s)%s" % (what(self.opts), layout["directory"], opts["format"],
                                                          ", creating the directory" if layout["create_dir"] else ""),
                 run.guard(run.start), run.cleanup)
        stale = stale_temporaries(layout["directory"])
        if stale:
            plan.add("remove %d leftover temporary file(s) of an interrupted export: %s"
                     % (len(stale), ", ".join(os.path.basename(p) for p in stale)),
                     run.guard(lambda: run.remove(stale)))
        if source["leftovers"]:
            plan.add("merge the temporary overlay(s) %s of an interrupted export back"
                     % ", ".join(e["overlay"] for e in source["leftovers"]),
                     run.guard(run.merge_leftovers))
        if snapshot_disks(self.source):
            targets = ", ".join(d["target"] for d in snapshot_disks(self.source))
            plan.add("take a temporary disk-only snapshot of %s of running %s%s" % (
                targets, owner_what(self.opts, self.source), " (file systems quiesced by the guest agent)" if opts["quiesce"] else ""),
                run.guard(run.snapshot), run.merge_back)
        out_fmt = disk_format(self.opts)
        for disk in source["disks"]:
            plan.add("convert %s (%s of data, %s virtual) to %s%s" % (
                disk_what(self.opts, disk), human_size(disk["data"]), human_size(disk["virtual_size"]), out_fmt,
                " (compressed)" if compress(self.opts) else ""), run.guard(run.converter(disk)))
        if opts["verify"]:
            plan.add("compare the converted disks with their source", run.guard(run.verify))
        if snapshot_disks(self.source):
            plan.add("merge the temporary snapshot back into the disks of %s" % owner_what(self.opts, self.source),
                     run.guard(run.merge_back))
        if opts["format"] == "ova":
            plan.add("pack %s (OVF descriptor, manifest, %d VMDK disk(s))" % (layout["artefacts"][0]["name"],
                                                                              len(source["disks"])),
                     run.guard(run.pack_ova))
        elif opts["format"] in _archive.ARCHIVE_FORMATS:
            tool = {"tar.zst": "zstd -T0", "tar.gz": "pigz" if _archive.find_tool("pigz") else "gzip (Python)"}.get(opts["format"])
            plan.add("pack %s (manifest, domain.xml, %d qcow2 disk(s))%s" % (
                layout["artefacts"][0]["name"], len(source["disks"]), " with %s" % tool if tool else ""),
                run.guard(run.pack_archive))
        plan.add("compute SHA-256 checksums", run.guard(run.checksums))
        plan.add("move %s into place in %s" % (", ".join(a["name"] for a in layout["artefacts"]), layout["directory"]),
                 run.guard(run.commit_files))
        return outcome

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

    # --- results -------------------------------------------------------------------------------

    def refresh(self):
        record = read_record(self.layout["record"]) if self.layout is not None else None
        return self._view_of_record(record) if record is not None else None

    def predict(self, current, desired):
        return None

    def result(self, state, outcome):
        layout, source = self.layout, self.source
        reason = outcome.values.get("reason")
        run = outcome.values.get("run")
        if source is None:  # assumed (check mode)
            return dict(format=self.opts["format"], directory=None, record=None, artefacts=[], total_size=None,
                        estimated_size=None, source=dict(kind=self.opts["kind"], name=self.opts["name"],
                                                         pool=self.opts["pool"]),
                        consistency=None, reason=reason, duration=round(time.time() - self.started, 2),
                        created=None, progress_file=self.opts["progress_file"])
        record = run.record if run is not None and run.record is not None else self.record
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
            consistency=consistency(self.opts, self.source) if predicted or reason else (record.get("source") or {}).get("consistency"),
            reason=reason,
            duration=round(time.time() - self.started, 2),
            created=(record or {}).get("created") if not predicted else None,
            progress_file=self.opts["progress_file"],
            mode=mode_text(self.opts["mode"]),
        )
        if run is not None and run.warnings:
            out["warnings"] = list(run.warnings)
        return out


_REASONS = dict(options="options changed", source_identity="the source changed", artefacts="other artefacts",
                intact="an artefact was changed or removed", mode="file mode", force="force")


def reason_of(current, diff):
    """Why an export runs (again), from what ``compare`` found."""
    if current is None:
        return "no export yet"
    if not current["recorded"]:
        return "force (files without a record)"
    return ", ".join(_REASONS[path] for path in diff.paths) or None
