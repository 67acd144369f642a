# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``backup``: one run that writes a point: the steps its plan calls and their undo.

Everything is written into a temporary directory beside the points (``.<point>.virtops-tmp-<pid>``),
which becomes the point by one rename at the end, after the manifest.  A failure (a full repository
included), SIGTERM or SIGINT removes that directory, aborts a running backup job and deletes the
checkpoint this run created.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import threading
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._backup import job as _job
from ansible_collections.virtops.libvirt.plugins.module_utils._backup import repo as _repo
from ansible_collections.virtops.libvirt.plugins.module_utils._backup.params import QCOW2_COMPRESSION
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, CommandError, VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import human_size
from ansible_collections.virtops.libvirt.plugins.module_utils._export.writers import DestinationFullError, free_bytes, is_no_space, write_error
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.fs import atomic_write, fsync_dir, sha256_file
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.progress import run_with_percent
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.signalled import SignalledRun

FILE_MODE = 0o600
#: QEMU (another user on most hosts) must reach the target files while the job runs: search only
JOB_DIR_MODE = 0o711
DIR_MODE = 0o700


class BackupInterrupted(VirtopsError):
    kind = "interrupted"


class BackupRun(SignalledRun):
    """The state of one run: the temporary directory, the files written, the checkpoint made."""

    def __init__(self, ctx, qemu, opts, source, point, mode, parent, progress):
        self.ctx = ctx
        self.qemu = qemu
        self.opts = opts
        self.source = source
        self.point = point
        self.mode = mode
        self.parent = parent
        self.progress = progress
        self.tmp_dir = _repo.tmp_point_dir(opts["repository"], opts["vm"], point)
        self.final_dir = _repo.point_dir(opts["repository"], opts["vm"], point)
        self.checkpoint = _job.checkpoint_name(point, opts["repository"]) if source["active"] and source["qcow2"] else None
        #: the checkpoint of the parent point, as its manifest names it (set by the plan of an incremental point)
        self.parent_checkpoint = None
        self.checkpoint_made = False
        self.files = []
        self.manifest = None
        self.started = time.time()
        self.warnings = []
        self.removed_checkpoints = []
        #: the point is in place: a later step that fails (retention) must not take its checkpoint away
        self.committed = False

    def interrupted(self, signum):
        return BackupInterrupted("the backup was interrupted by signal %d; what it had made was removed" % signum)

    # --- the steps -----------------------------------------------------------------------------

    def start(self):
        self.catch_signals()
        vm_dir = _repo.vm_dir(self.opts["repository"], self.opts["vm"])
        try:
            if not os.path.isdir(self.opts["repository"]):
                os.makedirs(self.opts["repository"], DIR_MODE)
                os.chmod(self.opts["repository"], JOB_DIR_MODE if self.source["active"] else DIR_MODE)
            if not os.path.isdir(vm_dir):
                os.mkdir(vm_dir, DIR_MODE)
                os.chmod(vm_dir, JOB_DIR_MODE if self.source["active"] else DIR_MODE)
            os.mkdir(self.tmp_dir, DIR_MODE)
            if self.source["active"]:
                os.chmod(self.tmp_dir, JOB_DIR_MODE)
                os.chmod(vm_dir, os.stat(vm_dir).st_mode & 0o777 | 0o011)
        except OSError as exc:
            raise write_error(exc, self.tmp_dir)
        self.progress.add_total(sum(d["data"] for d in self.source["disks"]))
        self.progress.set_phase("starting")

    def cleanup(self):
        """The undo of the run: the temporary directory goes (a point already in place stays)."""
        _repo.remove_tree(self.tmp_dir)
        if self.committed:
            return
        self.progress.finish(False, str(self.error) if self.error is not None else "failed")
        self._restore_signals()

    def _disk_path(self, disk):
        return os.path.join(self.tmp_dir, _repo.disk_file(disk["target"]))

    def create_targets(self):
        """The qcow2 files the job writes into (an incremental one on its parent's file)."""
        for disk in self.source["disks"]:
            path = self._disk_path(disk)
            backing = None
            if self.mode == "incremental":
                backing = os.path.join("..", self.parent, _repo.disk_file(disk["target"]))
            try:
                self.qemu.create(path, "qcow2", size=disk["virtual_size"], backing_file=backing,
                                 backing_fmt="qcow2" if backing else None)
            except CommandError as exc:
                raise self._full_or(exc, "creating %s" % path, path, disk["data"])
            os.chmod(path, FILE_MODE)

    def job(self):
        dom = self.source["dom"]
        disks = self.source["disks"]
        targets = [(d["target"], self._disk_path(d)) for d in disks]
        others = self.source["others"]
        xml = _job.backup_xml(targets, others, self.parent_checkpoint if self.mode == "incremental" else None)
        cp_xml = _job.checkpoint_xml(self.checkpoint, [d["target"] for d in disks], others) if self.checkpoint else None
        self.progress.set_phase("backup job of %s (%s)" % (", ".join(d["target"] for d in disks), self.mode))
        base = self.progress.done
        self.checkpoint_made = bool(cp_xml)
        _job.begin(dom, xml, cp_xml, self.opts["quiesce"])

        def on_bytes(done, total):
            self.progress.done = base + int(sum(d["data"] for d in disks) * done / float(total))
            self.progress.write()

        try:
            _job.wait(dom, on_bytes, timeout=self.opts["timeout"])
        except BackendError as exc:
            if is_no_space(exc.msg):
                raise DestinationFullError("the repository %s is full: %s" % (self.opts["repository"], exc.msg),
                                           free_bytes=free_bytes(self.opts["repository"]))
            raise

    def undo_job(self):
        """Abort the job if it still runs and delete the checkpoint this run made."""
        dom = self.source["dom"]
        _job.abort_job(dom)
        if self.checkpoint_made and not self.committed:
            _job.delete_checkpoint(dom, self.checkpoint)
            self.checkpoint_made = False

    def convert(self):
        """A stopped VM: each disk with qemu-img convert (only allocated data is read)."""
        for disk in self.source["disks"]:
            path = self._disk_path(disk)
            argv = self._convert_argv(disk["path"], disk["format"], path)
            self._run_convert(argv, "disk %s" % disk["target"], path, disk["data"])
            os.chmod(path, FILE_MODE)

    def _convert_argv(self, src, src_fmt, dst, backing=None):
        compression = QCOW2_COMPRESSION.get(self.opts["compression"])
        options = dict(compression_type=compression) if compression else {}
        if backing:
            options.update(backing_file=backing, backing_fmt="qcow2")
        return self.qemu.convert_argv(src, dst, "qcow2", src_fmt, compress=bool(compression), options=options or None,
                                      threads=8, progress=True, force_share=False, out_of_order=not compression)

    def _run_convert(self, argv, what, dst, data):
        self.progress.set_phase("copying %s" % what)
        base = self.progress.done

        def on_percent(percent):
            self.progress.done = base + int(data * percent / 100.0)
            self.progress.write()

        rc, out, err = run_with_percent(argv, on_percent)
        if rc != 0:
            raise self._full_or(CommandError("qemu-img convert of %s failed (rc=%s): %s"
                                             % (what, rc, " ".join((err or out or "").split()) or "no output"),
                                             argv, rc, out, err), what, dst, data)

    def _full_or(self, exc, what, path, data):
        if is_no_space(exc.stderr or exc.msg):
            return DestinationFullError("the repository %s is full: %s stopped with '%s'; about %s of data had to be "
                                        "written" % (self.opts["repository"], what, " ".join((exc.stderr or "").split()),
                                                     human_size(data)),
                                        free_bytes=free_bytes(os.path.dirname(path)))
        return exc

    def compress(self):
        """A running VM's targets, which libvirt writes uncompressed: rewritten with compressed clusters
        (an incremental one keeps only its own clusters: qemu-img convert -B with its parent's file)."""
        for disk in self.source["disks"]:
            path = self._disk_path(disk)
            out = path + ".compressed"
            backing = os.path.join("..", self.parent, _repo.disk_file(disk["target"])) if self.mode == "incremental" else None
            argv = self._convert_argv(path, "qcow2", out, backing)
            self._run_convert(argv, "compressing disk %s" % disk["target"], out, os.path.getsize(path))
            os.chmod(out, FILE_MODE)
            os.rename(out, path)

    def write_definition(self):
        self.progress.set_phase("definition")
        self._write_small(_repo.DOMAIN_XML, self.source["definition"].encode("utf-8"), "definition")
        nvram = self.source.get("nvram")
        if nvram:
            target = os.path.join(self.tmp_dir, _repo.NVRAM)
            try:
                shutil.copyfile(nvram, target)
                os.chmod(target, FILE_MODE)
            except (IOError, OSError) as exc:
                raise write_error(exc, target)

    def _write_small(self, name, data, kind):
        path = os.path.join(self.tmp_dir, name)
        try:
            atomic_write(path, data, FILE_MODE)
        except (IOError, OSError) as exc:
            raise write_error(exc, path)

    def finish(self):
        """Checksums, the manifest, then the rename that makes the point."""
        self.progress.set_phase("checksums")
        files = [dict(name=os.path.basename(self._disk_path(disk)), kind="disk", target=disk["target"], format="qcow2",
                      virtual_size=disk["virtual_size"], source_format=disk["format"], source=disk["path"])
                 for disk in self.source["disks"]]
        files.append(dict(name=_repo.DOMAIN_XML, kind="definition", format="xml"))
        if self.source.get("nvram"):
            files.append(dict(name=_repo.NVRAM, kind="nvram", format="raw", source=self.source["nvram"]))
        for entry in files:
            entry["size"] = os.path.getsize(os.path.join(self.tmp_dir, entry["name"]))
            self.progress.add_total(entry["size"])
        # the checksums (one read of every file, from the page cache right after the copy) while qemu-img checks
        # the images' metadata: the two overlap instead of adding up
        hashing = Hashing(self.tmp_dir, files, self.progress.advance)
        hashing.start()
        try:
            for disk in self.source["disks"]:
                info = self.qemu.check(self._disk_path(disk), "qcow2")
                if not info.get("clean"):
                    raise BackendError("the backup of disk %s does not pass qemu-img check: %s"
                                       % (disk["target"], json.dumps(info, sort_keys=True)))
        finally:
            hashing.join()
        if hashing.error is not None:
            raise write_error(hashing.error, hashing.path) if isinstance(hashing.error, (IOError, OSError)) \
                else hashing.error
        now = time.time()
        self.manifest = dict(
            generator=_repo.GENERATOR, format_version=_repo.FORMAT_VERSION, point=self.point, created=_repo.iso(now),
            created_epoch=round(now, 3), started=_repo.iso(self.started), mode=self.mode, parent=self.parent,
            checkpoint=self.checkpoint, compression=self.opts["compression"],
            consistency=consistency(self.opts, self.source), vm=dict(name=self.source["name"], uuid=self.source["uuid"]),
            files=files, duration_seconds=round(now - self.started, 1),
        )
        self._write_small(_repo.MANIFEST, json.dumps(self.manifest, indent=2, sort_keys=True) + "\n", "manifest")
        self.progress.set_phase("moving the point into place")
        os.chmod(self.tmp_dir, DIR_MODE)
        if os.path.lexists(self.final_dir):
            raise BackendError("point %s appeared in %s while this run wrote it" % (self.point, self.final_dir))
        os.rename(self.tmp_dir, self.final_dir)
        self.committed = True
        fsync_dir(os.path.dirname(self.final_dir))
        self.progress.finish(True)
        self._restore_signals()

    def drop_old_checkpoints(self):
        """The checkpoints of older points of this repository: only the newest one is needed for the next
        incremental point (other repositories' checkpoints are theirs)."""
        dom = self.source["dom"]
        for name in _job.checkpoint_names(dom):
            if _job.of_repository(name, self.opts["repository"]) and name != self.checkpoint:
                try:
                    _job.delete_checkpoint(dom, name)
                    self.removed_checkpoints.append(name)
                except VirtopsError as exc:
                    self.warnings.append("the older checkpoint %s could not be deleted: %s" % (name, exc.msg))


class Hashing(threading.Thread):
    """The SHA-256 of each file of ``files`` (into its ``sha256``), in a thread of its own; ``error`` and ``path`` of
    a failure."""

    def __init__(self, directory, files, on_bytes):
        super(Hashing, self).__init__(name="virtops-backup-sha256")
        self.daemon = True
        self.directory = directory
        self.files = files
        self.on_bytes = on_bytes
        self.error = None
        self.path = None

    def run(self):
        for entry in self.files:
            self.path = os.path.join(self.directory, entry["name"])
            try:
                entry["sha256"] = sha256_file(self.path, on_bytes=self.on_bytes)
            except Exception as exc:  # pylint: disable=broad-except  # re-raised by the thread that waits
                self.error = exc
                return


def consistency(opts, source):
    if not source["active"]:
        return "stopped"
    return "backup job (quiesced)" if opts["quiesce"] else "backup job (crash-consistent)"
