# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How the ``volume`` resource makes a volume: empty, as a linked clone (a qcow2 overlay on
``backing_volume``), as a full clone (``clone_from``) or from a source image (a local file or an
http(s) URL, checksum-verified and transparently decompressed), and how it makes one again whose
fill did not complete or came from other content.

Source images are prepared in a private temporary directory on the managed node and only then turned
into a volume (``vol-create`` plus a libvirt upload stream, which also works for remote hypervisors);
a failure on the way deletes the volume and the temporary files again.  Every image that enters passes
the image-trust check (:mod:`.trust`); every volume made carries a record (:mod:`.record`) of its format
and of what went into it.

:class:`CreateSteps` and :class:`SourceSteps` are the halves of :class:`.volume.VolumeResource` that
plan a creation; they use its ``params``, ``pool``, ``capacity``, ``_work`` and ``_record``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._storage.encryption_xml import encryption_element
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_encryption import secret_uuid
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import trust as _trust
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_source import (
    check_source_path,
    decompress_file,
    detect_compression,
    download,
    file_digest,
    is_url,
    parse_checksum,
    same_checksum,
    verify_checksum,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import (
    backing_chain,
    dependants,
    lookup_volume,
    model_and_record,
    parse_volume_xml,
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

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    VirtopsError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import refresh_pool, retry_busy


VOLUME_FORMATS = ("qcow2", "raw")
#: how long a run waits for another task that is filling the same volume
FILL_WAIT_SECONDS = 600
#: QEMU before 9.2.1 times its LUKS key derivation and now and then fails its own benchmark (qemu-img
#: create: "Unable to get accurate CPU usage", about one creation in four on a busy host): libvirt's
#: creation of an encrypted volume fails with that message, and the same creation tried again succeeds
PBKDF_FLAKE = "unable to get accurate cpu usage"
PBKDF_ATTEMPTS = 6
PBKDF_PAUSE_SECONDS = 0.5


def pbkdf_flake(exc):
    """Whether a failed volume creation (a translated error) is QEMU's failed pbkdf benchmark."""
    return PBKDF_FLAKE in (exc.msg or "").lower()


class CreateSteps:
    """Planning the creation of a volume: empty, linked clone, full clone."""

    # --- what the new volume is --------------------------------------------------------------

    def _new_format(self):
        p = self.params
        if p.get("format"):
            return p["format"]
        if p.get("backing_volume"):
            return "qcow2"
        if p.get("clone_from"):
            src = self._clone_source()
            if src is not None and src["format"] in VOLUME_FORMATS:
                return src["format"]
        if p.get("source") and p.get("source_format") in VOLUME_FORMATS:
            return p["source_format"]
        return "qcow2" if not p.get("source") else None  # a source keeps its probed format when it is raw or qcow2

    def _fill_source(self):
        """What goes into the new volume, as its record names it: the source, or the volume it copies."""
        p = self.params
        if p.get("source"):
            return p["source"]
        if p.get("clone_from"):
            return "volume:%s/%s" % (p["pool"], p["clone_from"])
        return None

    def _new_record(self, fmt, backing_format=None, checksum=None):
        source = self._fill_source()
        return _record.new_record(fmt, "volume", backing_format=backing_format, source=source,
                                  checksum=checksum or self.params.get("checksum"), complete=source is None)

    def _create_flags(self):
        if self.params.get("preallocation") == "metadata":
            return flag("VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA", 1)
        return 0

    # --- creating it, also when another task does at once ------------------------------------

    def _create_xml(self, xml, what, rec, from_vol=None):
        """Create the volume (a copy of ``from_vol``) and record ``rec`` on it.  When another task created
        it at the same time, wait for that task and use its volume if it is what this task makes."""
        text = _xml.to_string(xml, pretty=False)

        def create():
            if from_vol is not None:
                return self.pool.createXMLFrom(text, from_vol, 0)
            return self.pool.createXML(text, self._create_flags())

        for _attempt in range(2):
            self._work["ours"] = True  # the undo deletes the volume of this name (partial step)
            try:
                vol = self._create_retrying_pbkdf(create, what)
            except ConflictError as exc:
                if not exists_already(exc):
                    raise
                self._work["ours"] = False
                vol = self._adopt(rec)
                if vol is None:
                    continue  # the other task gave up and removed it: make it here
                self._work["adopted"] = vol
                return vol
            self._work["vol"] = vol
            model = parse_volume_xml(volume_xml(vol))
            self._work["record_path"] = _record.local_file(self.ctx.uri, model)
            self._work["record"] = rec
            record_fill(self._work["record_path"], rec, complete=False)
            return vol
        raise ConflictError("volume %r is created and removed again by another task at the same time" % self.name)

    def _create_retrying_pbkdf(self, create, what, sleep=time.sleep):
        """``create()`` (through :func:`retry_busy`), tried again while QEMU fails its key-derivation
        benchmark (:data:`PBKDF_FLAKE`); what a failed attempt left in the pool (a volume of this name,
        seen after a refresh) is deleted first.  Other errors, and the last attempt's, are raised."""
        attempt = 1
        while True:
            try:
                return retry_busy(create, what)
            except VirtopsError as exc:
                if attempt >= PBKDF_ATTEMPTS or not pbkdf_flake(exc):
                    raise
            # the name was this task's while the creation ran (another task's would have been refused)
            refresh_pool(self.pool)
            delete_by_name(self.ctx.conn, self.params["pool"], self.name)
            attempt += 1
            sleep(PBKDF_PAUSE_SECONDS)

    def _adopt(self, rec, sleep=time.sleep, clock=time.monotonic):
        """The volume was created by another task since this run read the pool: wait while that task fills
        it; None when it went away again, else the volume when it is what this task makes."""
        deadline = clock() + FILL_WAIT_SECONDS
        grace = clock() + 5  # the other task records the volume right after creating it
        while True:
            vol = lookup_volume(self.pool, self.name)
            if vol is None:
                return None
            model, theirs = model_and_record(vol, self.ctx.uri)
            seen = _record.local_file(self.ctx.uri, model) is not None
            busy = theirs is not None and not theirs.get("complete") and _record.filler_state(theirs) == "alive"
            if (busy or (theirs is None and seen and clock() < grace)) and clock() < deadline:
                sleep(0.5)
                continue
            break
        if theirs is None:
            fmt = model["format"]
        elif not theirs.get("complete"):
            raise ConflictError("volume %r was created at the same time by another task, which did not finish filling "
                                "it; run this task again to make it anew" % self.name)
        else:
            fmt = theirs["format"]
            if theirs.get("source_sha256") != rec.get("source_sha256") or (
                    self.params.get("checksum") and not same_checksum(self.params["checksum"], theirs.get("checksum"))):
                raise ConflictError("volume %r was created at the same time by another task from %s, not from %s"
                                    % (self.name, theirs.get("source") or "nothing", rec.get("source") or "nothing"))
        if rec.get("format") not in (None, fmt):
            raise ConflictError("volume %r was created at the same time by another task as %s, not %s"
                                % (self.name, fmt, rec["format"]))
        self.ctx.warn("volume %r was created at the same time by another task; this task uses it as it is" % self.name)
        return vol

    def _delete_created(self):
        """Undo of a creation (also of one that broke off): by name, through the current connection.
        Nothing is forgotten before the deletion succeeded: the plan may run this undo again."""
        if self._work.get("ours"):
            delete_by_name(self.ctx.conn, self.params["pool"], self.name)
        self._work.pop("ours", None)
        self._work.pop("vol", None)

    # --- plans -------------------------------------------------------------------------------

    def _plan_create(self, plan):
        p = self.params
        if p.get("source"):
            self._plan_from_source(plan)
        elif p.get("backing_volume"):
            self._plan_linked_clone(plan)
        elif p.get("clone_from"):
            self._plan_full_clone(plan)
        else:
            if self._need_capacity:
                raise InvalidInputError("capacity is required to create the empty volume %r" % self.name)
            fmt = self._new_format()
            size = normal_capacity(self.capacity, fmt)
            allocation = size if p.get("preallocation") == "full" else 0
            xml = build_volume_xml(self.name, size, fmt, allocation=allocation)
            label = "create empty %s volume %r of %d bytes in pool %r" % (fmt, self.name, size, p["pool"])
            rec = self._new_record(fmt)
            if p.get("encryption"):
                uuid = secret_uuid(self.ctx, p["encryption"]["secret"], "encryption.secret")
                xml.find("target").append(encryption_element(uuid or p["encryption"]["secret"], p["encryption"]["format"]))
                label = label.replace("create empty", "create empty LUKS-encrypted")
                rec["secret"] = uuid  # libvirt forgets it at the pool's next refresh; "who uses this secret" reads it here
            plan.add(label,
                     lambda: self._create_xml(xml, "creating volume %r" % self.name, rec),
                     self._delete_created, partial=True)

    def _base(self, key):
        """The volume ``key`` names and its model; (None, None) when it is assumed (check mode: an
        earlier task creates it, or its pool)."""
        name = self.params[key]
        if self.pool is None:
            return None, None
        vol = lookup_volume(self.pool, name)
        if vol is None:
            self.ctx.assume(NotFoundError("%s %r does not exist in pool %r" % (key, name, self.params["pool"])))
            return None, None
        model = parse_volume_xml(volume_xml(vol))
        trusted = _trust.trusted_volume(self.ctx.conn, self.ctx.uri, model, self._qemu_img(), "%s %r" % (key, name),
                                        chain=lambda: backing_chain(self.ctx.conn, model))
        return vol, dict(model, format=trusted["format"], checked=trusted["checked"])

    def _clone_source(self):
        """The volume ``clone_from`` names, checked: dict of its report with the trusted format (None when
        it is assumed in check mode)."""
        if "clone_source" not in self._work:
            self._work["clone_source"] = self._base("clone_from")
        return self._work["clone_source"][1]

    def _plan_linked_clone(self, plan):
        base_vol, base = self._base("backing_volume")
        if base_vol is None:
            plan.add("create volume %r as a qcow2 overlay on %r" % (self.name, self.params["backing_volume"]))
            return
        size = normal_capacity(max(self.capacity or 0, base["capacity"] or 0), "qcow2")
        if self.capacity is not None and self.capacity < base["capacity"]:
            raise InvalidInputError("capacity %d is smaller than backing volume %r (%d bytes)"
                                    % (self.capacity, base_vol.name(), base["capacity"]))
        # the base's trusted format, not libvirt's probe: a base recorded raw stays raw below the overlay
        xml = build_volume_xml(self.name, size, "qcow2", backing_path=base["path"], backing_format=base["format"])
        rec = self._new_record("qcow2", backing_format=base["format"])
        plan.add("create volume %r as a qcow2 overlay on %r" % (self.name, base_vol.name()),
                 lambda: self._create_xml(xml, "creating linked clone %r" % self.name, rec), self._delete_created,
                 partial=True)

    def _plan_full_clone(self, plan):
        self._clone_source()
        src_vol, src = self._work["clone_source"]
        if src_vol is None:
            plan.add("create volume %r as a full copy of %r" % (self.name, self.params["clone_from"]))
            return
        fmt = self._new_format()
        if self.capacity is not None and self.capacity < src["capacity"]:
            raise InvalidInputError("capacity %d is smaller than the volume %r it is cloned from (%d bytes)"
                                    % (self.capacity, src_vol.name(), src["capacity"]))
        xml = build_volume_xml(self.name, normal_capacity(src["capacity"], fmt), fmt, allocation=0)
        rec = self._new_record(fmt)
        if src["checked"] == "report":
            # libvirt copies with the format it probes: only when nothing else is known of the source
            plan.add("create volume %r as a full %s copy of %r" % (self.name, fmt, src_vol.name()),
                     lambda: self._create_xml(xml, "cloning volume %r" % src_vol.name(), rec, from_vol=src_vol),
                     self._delete_created, partial=True)
        else:
            plan.add("create volume %r in pool %r for a full %s copy of %r"
                     % (self.name, self.params["pool"], fmt, src_vol.name()),
                     lambda: self._create_xml(xml, "creating volume %r" % self.name, rec), self._delete_created,
                     partial=True)
            plan.add("copy volume %r (%s) into volume %r" % (src_vol.name(), src["format"], self.name),
                     lambda: self._copy_into(src["path"], src["format"], fmt))
        size = normal_capacity(self.capacity, fmt)
        if size is not None and size > src["capacity"]:
            plan.add("grow volume %r to %d bytes" % (self.name, size), lambda: self._resize(size, vol=self._work["vol"]))

    def _copy_into(self, src_path, src_fmt, fmt):
        """Fill the new volume with qemu-img, reading the source with its known format (``-f``)."""
        if self._work.get("adopted") is not None:
            return
        with libvirt_errors("reading the path of volume %r" % self.name):
            dst = self._work["vol"].path()
        self._qemu_img().convert(src_path, dst, fmt, src_fmt=src_fmt, target_exists=True)
        record_fill(self._work["record_path"], self._work["record"], complete=True)
        refresh_pool(self.pool)


class SourceSteps:
    """Planning a volume made from a source image, and making a volume again."""

    def _refill_reason(self, current, plan):
        """Why the existing volume must be made again from its source (None: it need not)."""
        rec, p = self._record, self.params
        if rec is None or not rec.get("source"):
            return None  # not filled by this collection, or no record is kept here
        wanted = self._fill_source()
        if not rec.get("complete"):
            if _record.filler_state(rec) == "elsewhere":
                raise ConflictError("volume %r is being filled from another host (%s), or that fill died: remove "
                                    "it (state=absent) to fill it again" % (self.name, rec["filler"].get("host")))
            reason = "its fill from %s did not complete" % rec["source"]
        elif wanted is not None and _record.source_id(wanted) != rec.get("source_sha256"):
            reason = "it was filled from %s, not from %s" % (rec["source"], _record.redact_source(wanted))
        elif p.get("checksum") and not same_checksum(p["checksum"], rec.get("checksum")):
            reason = "it was filled from content with checksum %s, not %s" % (rec.get("checksum"), p["checksum"])
        else:
            return None
        if wanted is None:
            plan.warn("volume %r is incomplete (%s): give source or clone_from to fill it again, or remove it"
                      % (self.name, reason))
            return None
        return reason

    def _plan_refill(self, current, reason, plan):
        users = sorted(set(u["domain"] for u in self._domain_users(current["path"])))
        deps = [d for d in dependants(self.ctx.conn, current["path"]) if d != "%s/%s" % (self.params["pool"], self.name)]
        if users or deps:
            raise ConflictError("volume %r must be made again (%s), but %s: give the new content another name"
                                % (self.name, reason, "VM(s) %s use it" % ", ".join(users) if users
                                   else "it is the backing file of %s" % ", ".join(deps)),
                                used_by=users, dependants=deps)
        label = "delete volume %r to make it again: %s" % (self.name, reason)

        def remove():
            delete_by_name(self.ctx.conn, self.params["pool"], self.name)

        if self.params.get("source"):
            self._plan_from_source(plan, replace=(label, remove))
        else:
            plan.add(label, remove)
            self._plan_create(plan)

    def _plan_from_source(self, plan, replace=None):
        p = self.params
        source = p["source"]
        if not is_url(source):
            if "://" in source:
                raise InvalidInputError("source must be a local path or an http(s) URL, not %r" % source)
            try:
                check_source_path(source)
            except NotFoundError as exc:
                self.ctx.assume(exc)  # an earlier task may download or build it
        what = "download %s" % source if is_url(source) else "read %s" % source
        if p.get("checksum"):
            what += " and verify its %s checksum" % parse_checksum(p["checksum"])[0]
        plan.add(what, self._prepare_source, self._remove_tmp)
        if replace is not None:
            plan.add(*replace)
        plan.add("create volume %r in pool %r from the image" % (self.name, p["pool"]), self._create_for_upload,
                 self._delete_created, partial=True)
        plan.add("upload the image into volume %r" % self.name, self._upload)
        if self.capacity is not None:
            plan.add("grow volume %r to the requested capacity" % self.name, self._grow_after_upload)
        plan.add("remove temporary files", self._remove_tmp)

    # --- the source image --------------------------------------------------------------------

    def _tmpdir(self):
        if "tmpdir" not in self._work:
            self._work["tmpdir"] = tempfile.mkdtemp(prefix="virtops-volume-")
        return self._work["tmpdir"]

    def _remove_tmp(self):
        tmpdir = self._work.pop("tmpdir", None)
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def _prepare_source(self):
        """Fetch, verify, decompress and convert the source into the temp dir; remember the result."""
        try:
            self._fetch_and_convert()
        except BaseException:
            self._remove_tmp()  # this step's own undo does not run when the step itself fails
            raise

    def _fetch_and_convert(self):
        p = self.params
        source = p["source"]
        if is_url(source):
            path = os.path.join(self._tmpdir(), "download")
            download(source, path, validate_certs=p.get("validate_certs", True), timeout=p.get("timeout") or 60)
        else:
            path = source
        if p.get("checksum"):
            verify_checksum(path, p["checksum"], what=source)
            checksum = "%s:%s" % parse_checksum(p["checksum"])
        else:
            checksum = "sha256:%s" % file_digest(path, "sha256")  # recorded: what went into the volume
        kind = detect_compression(path)
        if kind:
            plain = os.path.join(self._tmpdir(), "decompressed")
            decompress_file(path, plain, kind)
            path = plain
        qemu_img = self._qemu_img()
        facts = _trust.check_image(qemu_img, path, p.get("source_format"), "source image %s" % source)
        src_fmt = facts["format"]
        fmt = p.get("format") or (src_fmt if src_fmt in VOLUME_FORMATS else "qcow2")
        if src_fmt != fmt:
            converted = os.path.join(self._tmpdir(), "converted")
            qemu_img.convert(path, converted, fmt, src_fmt=src_fmt)
            path = converted
        vsize = facts["virtual_size"]
        if self.capacity is not None and normal_capacity(self.capacity, fmt) < vsize:
            raise InvalidInputError("capacity %d is smaller than the source image (%d bytes)" % (self.capacity, vsize))
        self._work.update(image=path, format=fmt, virtual_size=vsize, checksum=checksum)

    def _create_for_upload(self):
        image, fmt = self._work["image"], self._work["format"]
        # the upload overwrites the file from offset 0: the volume must hold every byte of the image file
        size = max(self._work["virtual_size"], os.path.getsize(image))
        xml = build_volume_xml(self.name, normal_capacity(size, fmt), fmt, allocation=0)
        self._create_xml(xml, "creating volume %r" % self.name, self._new_record(fmt, checksum=self._work["checksum"]))

    def _upload(self):
        if self._work.get("adopted") is not None:
            return  # another task made and filled it (see _adopt)
        vol = self._work["vol"]
        upload_file(self.ctx.conn, vol, self._work["image"], sparse=self._work["format"] == "raw")
        record_fill(self._work["record_path"], self._work["record"], complete=True)
        refresh_pool(self.pool)  # waits for libvirt's own refresh after the upload, then reads the new image

    def _grow_after_upload(self):
        vol = self._work.get("vol") or self._work["adopted"]
        size = normal_capacity(self.capacity, self._work["format"])
        current = parse_volume_xml(volume_xml(vol))["capacity"]
        if size > current:
            self._resize(size, vol=vol)
