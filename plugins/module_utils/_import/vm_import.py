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

import os
import shutil
import tempfile

from ansible_collections.virtops.libvirt.plugins.module_utils._domain.options import DEFAULTS as VM_DEFAULTS
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import normalize as _normalize

from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import ABSENT, DifferenceTracker
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import refresh_pool, retry_busy
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Outcome, Plan, Resource
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.checks import check_host_limits
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.vm import VmResource
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.view import vm_view
from ansible_collections.virtops.libvirt.plugins.module_utils._host.capabilities import host_limits
from ansible_collections.virtops.libvirt.plugins.module_utils._import.definition import archive_xml, model_params
from ansible_collections.virtops.libvirt.plugins.module_utils._import.extract import extract, verify_files
from ansible_collections.virtops.libvirt.plugins.module_utils._import.source import (
    FILE_POOL_TYPES,
    TARGET_FORMATS,
    assign_targets,
    inspect_image,
    load_disks,
    load_source,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.disks import disk_users, users_of
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import (
    lookup_pool_or_assume,
    lookup_volume,
    model_and_record,
    parse_volume_xml,
    volume_path,
    volume_xml,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_write import (
    build_volume_xml,
    delete_by_name,
    exists_already,
    normal_capacity,
    record_fill,
    upload_file,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.qemu_img import QemuImg


class ImportRun:
    """What one import plans and does: the pool and format of the new volumes, the volumes (dicts per
    disk: target, volume, path, format, source_format, capacity, disk), the VM it defines (``new``) and
    the VM it replaces (``old``), and its scratch directory."""

    def __init__(self, ctx, source, qemu, pool_name):
        self.ctx = ctx
        self.source = source
        self.qemu = qemu
        self.pool_name = pool_name
        self.pool = None
        self.pool_type = None
        self.format = None
        self.volumes = []
        self.new = None
        self.new_desired = None
        self.old = None
        self.scratch_dir = None

    def scratch(self):
        if self.scratch_dir is None:
            parent = self.ctx.params.get("tmp_dir")
            if parent and not os.path.isdir(parent):
                raise NotFoundError("tmp_dir: %s is not a directory" % parent)
            self.scratch_dir = tempfile.mkdtemp(prefix="virtops-import-", dir=parent)
        return self.scratch_dir

    def remove_scratch(self):
        scratch, self.scratch_dir = self.scratch_dir, None
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)

    def prepare(self):
        """Read the source and verify everything; disks of archives land in the scratch directory."""
        try:
            src = self.source
            if src.kind in ("archive", "ova"):
                extract(src, self.scratch())
            elif src.kind == "ovf":
                verify_files(src)
            for vol in self.volumes:
                disk = vol["disk"]
                if not disk.get("inspected"):
                    what = "disk %s (%s)" % (disk["target"], disk.get("member") or disk["path"])
                    fmt, vsize = inspect_image(self.qemu, disk["local"], disk["format"], what)
                    disk["format"], disk["virtual_size"] = fmt, vsize
                    vol["source_format"] = fmt
                vol["capacity"] = normal_capacity(max(disk["virtual_size"], vol["capacity"] or 0), vol["format"])
        except BaseException:
            self.remove_scratch()  # this step's own undo does not run when the step itself fails
            raise

    def image_for_upload(self, vol):
        """The file to upload into ``vol``: the source itself, or a conversion in the scratch directory."""
        disk = vol["disk"]
        local = disk.get("local") or disk["path"]
        src_fmt = disk["format"]
        if src_fmt == vol["format"]:
            return local
        out = os.path.join(self.scratch(), "%s.%s" % (vol["target"], vol["format"]))
        self.qemu.convert(local, out, vol["format"], src_fmt=src_fmt, threads=4)
        if local != disk.get("path"):
            os.unlink(local)  # the extracted copy is not needed any more: keep the scratch space small
            disk["local"] = None
        return out

    def record_of(self, vol):
        """The record of a volume this import fills: what went into it and whether that finished."""
        disk, src = vol["disk"], self.source
        source = "%s#%s" % (src.path, disk["member"]) if src.path and disk.get("member") else disk.get("local") or disk["path"]
        digest = disk.get("actual_digest")
        return _record.new_record(vol["format"], "vm_import", source=source,
                                  checksum="%s:%s" % digest if digest else None, complete=False)

    def make_volume(self, vol):
        def call():
            image = self.image_for_upload(vol)
            size = max(vol["capacity"], os.path.getsize(image))
            xml = build_volume_xml(vol["volume"], normal_capacity(size, vol["format"]), vol["format"], allocation=0)
            text = _xml.to_string(xml, pretty=False)
            vol["ours"] = True  # a partial step: the undo deletes the volume also when this step broke off
            try:
                created = retry_busy(lambda: self.pool.createXML(text, 0), "creating volume %r" % vol["volume"])
            except ConflictError as exc:
                if exists_already(exc):
                    vol["ours"] = False  # another task's volume
                raise
            rec = self.record_of(vol)
            path = _record.local_file(self.ctx.uri, parse_volume_xml(volume_xml(created)))
            record_fill(path, rec, complete=False)
            upload_file(self.ctx.conn, created, image, sparse=vol["format"] == "raw")
            record_fill(path, rec, complete=True)
            refresh_pool(self.pool)
            if image != vol["disk"].get("path"):
                os.unlink(image)
            with libvirt_errors("reading volume %r" % vol["volume"]):
                vol["path"] = created.path()

        return call

    def delete_volume(self, vol):
        """Undo: by name, through the current connection (a new one after libvirtd restarted)."""
        def call():
            if vol.get("ours"):
                delete_by_name(self.ctx.conn, self.pool_name, vol["volume"])
            vol.pop("ours", None)  # only now: the plan may run this undo again after a reconnect

        return call

    def disks_view(self):
        return [dict(target=v["target"], pool=v["pool"], volume=v["volume"], path=v["path"], format=v["format"],
                     source_format=v["source_format"], capacity=v["capacity"]) for v in self.volumes]


class ImportResource(Resource):
    kind = "vm_import"
    #: the run of one import (``backup_restore`` brings its own, which flattens a backup chain first)
    run_class = ImportRun

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
        self._qemu = None
        self._run = None  # the planned import, for predict, refresh and diff_views (result takes it from the Outcome)

    # --- helpers -------------------------------------------------------------------------------

    @property
    def name(self):
        return self._vm_name or self.params.get("name")

    def _vm(self, **params):
        base = dict(VM_DEFAULTS, name=self.name, state="present")  # the vm module's defaults, from its option table
        base.update(params)
        return VmResource(self.ctx.child(base))

    def _qemu_img(self):
        if self._qemu is None:
            self._qemu = QemuImg.of(self.ctx)
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

    def _source_view(self):
        return self.source.view() if self.source is not None else None

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
        self._run = None
        if current is not None and not desired["force"]:
            if desired["state"] == "running":
                plan.include(self._vm(state="running"))
            return Outcome(source=self._source_view(), run=None)
        src = self._load()
        run = self._run = self.run_class(self.ctx, src, self._qemu_img(), self._pool_name())
        self._resolve_pool(run)
        old_steps, old_owned = None, []
        if current is not None:
            run.old = self._vm(state="absent", remove_storage=True, force=True)
            old_plan = Plan()
            old_outcome = run.old.plan(run.old.read(), None, DifferenceTracker(), old_plan)
            old_steps, old_owned = old_plan, _removed_volumes(run.old, old_outcome)
            for text in old_plan.warnings:
                plan.warn(text)
        if src.kind in ("ova", "ovf"):
            self._final_buses(src)
        self._plan_volumes(run, old_owned)
        self._prepare_definition(run, src, desired)

        what = "read and verify %s" % (src.path if src.path else "%d disk image(s)" % len(src.disks))
        plan.add(what, run.prepare, run.remove_scratch)
        if old_steps is not None:
            for step in old_steps.steps:
                plan.add("replace: %s" % step.description, step.action, step.undo)
        for vol in run.volumes:
            if vol.get("leftover"):
                plan.add("delete volume %s in pool %s, left by an earlier import of %s that failed"
                         % (vol["volume"], self._pool_name(), self.name),
                         lambda vol=vol: delete_by_name(self.ctx.conn, self._pool_name(), vol["volume"]))
            label = "create %s volume %s in pool %s from disk %s (%s%s)" % (
                vol["format"], vol["volume"], self._pool_name(), vol["target"], vol["source_format"],
                ", converted" if vol["source_format"] != vol["format"] else "")
            plan.add(label, run.make_volume(vol), run.delete_volume(vol), partial=True)
        run.new.plan(None, run.new_desired, DifferenceTracker(), plan)
        plan.add("remove temporary files", run.remove_scratch)
        return Outcome(source=src.view(), run=run)

    def _pool_name(self):
        return self.params.get("pool") or "default"

    def _resolve_pool(self, run):
        run.pool = lookup_pool_or_assume(self.ctx, self._pool_name(), "pool")
        if run.pool is not None:
            with libvirt_errors("reading storage pool %r" % self._pool_name()):
                run.pool_type = _xml.parse(run.pool.XMLDesc(0), "pool XML").get("type")
        fmt = self.params.get("disk_format")
        if fmt is None:
            fmt = "qcow2" if run.pool_type in FILE_POOL_TYPES else "raw"
        elif fmt == "qcow2" and run.pool_type not in FILE_POOL_TYPES:
            raise InvalidInputError("disk_format: pool %r (type %s) holds raw block volumes, not qcow2"
                                    % (self._pool_name(), run.pool_type))
        run.format = fmt

    def _final_buses(self, src):
        """Buses of OVF disks on this host (``disk_bus``, or IDE as SATA: q35 has no IDE) and their targets."""
        override = self.params.get("disk_bus")
        for disk in src.disks:
            bus = override or disk.get("bus") or "virtio"
            disk["bus"] = "sata" if bus == "ide" and not override else bus
            disk["target"] = None
        assign_targets(src.disks)

    def _plan_volumes(self, run, old_owned):
        ext = "qcow2" if run.format == "qcow2" else "img"
        for disk in run.source.disks:
            name = "%s-%s.%s" % (self.name, disk["target"], ext)
            path = volume_path(run.pool, name) if run.pool is not None else None
            existing = lookup_volume(run.pool, name) if run.pool is not None else None
            leftover = existing is not None and path not in old_owned and self._leftover(existing, name)
            if existing is not None and path not in old_owned and not leftover:
                raise ConflictError("volume %s already exists in pool %s and is not a disk of the VM being replaced: "
                                    "remove it or import under another name" % (name, self._pool_name()))
            run.volumes.append(dict(target=disk["target"], volume=name, path=path, format=run.format,
                                    source_format=disk["format"] or "probed",
                                    capacity=normal_capacity(disk["virtual_size"], run.format),
                                    disk=disk, pool=self._pool_name(), leftover=leftover))

    def _leftover(self, vol, name):
        """Whether ``vol`` was made by an import that failed and could not be undone: its record says
        vm_import made it, and no VM uses it."""
        model, rec = model_and_record(vol, self.ctx.uri)
        if rec is None or rec.get("made_by") != "vm_import":
            return False
        return not users_of(disk_users(self.ctx.conn), self._pool_name(), name, model["path"])

    def _prepare_definition(self, run, src, desired):
        state = "running" if desired["state"] == "running" else "present"
        if src.kind == "archive":
            run.new = self._vm(state=state, xml=archive_xml(self.ctx, self.name, src, run.volumes))
        else:
            run.new = self._vm(state=state, **model_params(self.ctx, src, run.volumes))
        run.new.paths_made.update(v["path"] for v in run.volumes)
        run.new_desired = run.new.desired(None)

    # --- results -------------------------------------------------------------------------------

    def predict(self, current, desired):
        if self._run is None:  # an existing VM, only (maybe) started
            out = dict(current)
            out["vm"] = dict(current["vm"], state="running")
            return out
        model = self._run.new.predict(None, self._run.new_desired)
        return dict(vm=vm_view(model), replaced=current is not None)

    def refresh(self):
        current = self._vm().read()
        if current is None:
            raise BackendError("VM %r is not there after the import" % self.name)
        return dict(vm=vm_view(current), replaced=self._run is not None and self._run.old is not None)

    def result(self, state, outcome):
        run = outcome.values.get("run")
        return dict(vm=state["vm"] if state else None, replaced=bool(state and state.get("replaced")),
                    disks=run.disks_view() if run is not None else [], source=outcome.values.get("source"))

    def diff_views(self, current, desired):
        before = dict(name=self.name, state="absent" if current is None else "present")
        after = dict(name=self.name, state="present")
        if self._run is not None:
            after.update(state="imported" if current is None else "replaced",
                         source=self.source.view(), volumes=[v["volume"] for v in self._run.volumes])
        elif current is not None and desired["state"] == "running":
            before["run_state"] = current["vm"]["state"]
            after["run_state"] = "running"
        return before, after


def _removed_volumes(vm, outcome):
    """The paths an absent plan of ``vm`` deletes: from its Outcome, or (while VmResource still keeps
    them on itself) from the resource."""
    if outcome is not None and outcome.removed_volumes:
        return list(outcome.removed_volumes)
    return list(getattr(vm, "removed_volumes", None) or [])
