# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``vm`` resource's disks as asked for, resolved: pools, volumes (made when missing), paths,
trusted formats, CD-ROM media and network interfaces.

A disk given by pool and volume gets the volume's path; a missing volume with a size (or a
backing volume) becomes one more volume the plan creates (:mod:`.volumes`).  The format a disk
is used with is never libvirt's probe of its content (:func:`DiskResolver.trusted_format`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.compare import by_target
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import trust as _trust
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_network
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.qemu_img import QemuImg
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.disks import disk_users
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_write import build_volume_xml
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import (
    backing_chain,
    lookup_volume,
    parse_volume_xml,
    volume_path,
    volume_xml,
)


class DiskResolver:
    """Resolves the disks, CD-ROMs and interfaces of a desired model of VM ``vm`` (a VmResource)."""

    def __init__(self, vm):
        self.vm = vm
        self.ctx = vm.ctx
        self._users = None
        self._trusted = {}

    def _disk_users(self):
        if self._users is None:
            self._users = disk_users(self.ctx.conn)
        return self._users

    def resolve_disks(self, model, current, volumes):
        """Paths, formats and volumes of ``model``'s disks; volumes to make go to ``volumes`` (:class:`.volumes.NewVolumes`)."""
        have_disks = by_target((current or {}).get("disks"))
        for disk in model.get("disks") or []:
            what = "disks[%s]" % disk["target"]
            if disk.get("path") is None and not disk.get("volume"):
                have = have_disks.get(disk["target"])
                if have is not None and disk.get("pool") is None:
                    disk["path"] = have["path"]  # the existing disk at this target stays
                else:
                    disk["pool"] = disk.get("pool") or "default"
                    disk["volume"] = "%s-%s.%s" % (self.vm.name, disk["target"], "img" if disk.get("format") == "raw" else "qcow2")
            if disk.get("volume"):
                disk["pool"] = disk.get("pool") or "default"
                self._resolve_volume(disk, what, have_disks, volumes)
            else:
                disk["format"] = self.format_of_path(disk["path"], have_disks.get(disk["target"]), disk.get("format"), what)
            if not disk.get("readonly"):
                self.check_not_shared(disk, what, current)

    def _resolve_volume(self, disk, what, have_disks, volumes):
        pool = self.vm._pool(disk["pool"], what)
        vol = lookup_volume(pool, disk["volume"]) if pool is not None else None
        if vol is not None:
            info = parse_volume_xml(volume_xml(vol))
            disk["path"] = info["path"]
            disk["format"] = self.trusted_format(what, disk.get("format"), have_disks.get(disk["target"]), model=info,
                                                 encrypted=bool(disk.get("encryption")))
            return
        if disk.get("encryption") is not None:
            if pool is not None:  # else the pool is assumed already
                self.ctx.assume(NotFoundError("%s: encrypted volume %r does not exist in pool %r: create it first with the "
                                              "volume module (encryption)" % (what, disk["volume"], disk["pool"])))
            disk["path"] = volume_path(pool, disk["volume"]) if pool is not None else None
            disk["format"] = disk.get("format") or "qcow2"
            return
        if disk.get("size") is None and not disk.get("backing_volume"):
            if pool is not None:  # else the pool is assumed already
                self.ctx.assume(NotFoundError("%s: volume %r does not exist in pool %r; give size (or backing_volume) to "
                                              "create it" % (what, disk["volume"], disk["pool"])))
            disk["format"] = disk.get("format") or "qcow2"
            disk["path"] = volume_path(pool, disk["volume"]) if pool is not None else None
            if disk["path"]:
                self.vm.paths_made.add(disk["path"])  # assumed above: the start check need not say it again
            return
        backing_path = backing_format = None
        size = disk.get("size") or 0
        if disk.get("backing_volume"):
            bpool_name = disk.get("backing_pool") or disk["pool"]
            bpool = self.vm._pool(bpool_name, what)
            bvol = lookup_volume(bpool, disk["backing_volume"]) if bpool is not None else None
            if bvol is None and bpool is not None:
                self.ctx.assume(NotFoundError("%s: backing_volume %r does not exist in pool %r"
                                              % (what, disk["backing_volume"], bpool_name)))
            if bvol is not None:
                base = parse_volume_xml(volume_xml(bvol))
                # the base's recorded (or checked) format: a base recorded raw stays raw below the overlay
                base_format = self.trusted_format("%s: backing_volume %s" % (what, disk["backing_volume"]), None, None,
                                                  model=base, disk_formats=False)
            else:  # check mode: an earlier task makes it
                base, base_format = dict(path=None, format=None, capacity=size), None
            backing_path, backing_format = base["path"], base_format
            if disk.get("size") is not None and disk["size"] < base["capacity"]:
                raise InvalidInputError("%s: size %d is smaller than backing volume %r (%d bytes)"
                                        % (what, disk["size"], disk["backing_volume"], base["capacity"]))
            size = max(size, base["capacity"] or 0)
            if disk.get("format") not in (None, "qcow2"):
                raise InvalidInputError("%s: a linked clone (backing_volume) is qcow2, not %s" % (what, disk["format"]))
            disk["format"] = "qcow2"
        disk["format"] = disk.get("format") or "qcow2"
        if disk["format"] == "qcow2":
            size = -(-size // 65536) * 65536
        disk["size"] = size
        disk["path"] = volume_path(pool, disk["volume"]) if pool is not None else None
        xml = build_volume_xml(disk["volume"], size, disk["format"], allocation=0,
                               backing_path=backing_path, backing_format=backing_format)
        label = "create %s volume %s in pool %s" % (disk["format"], disk["volume"], disk["pool"])
        if disk.get("backing_volume"):  # also in check mode, when an earlier item or task makes the base
            label += " on backing volume %s" % disk["backing_volume"]
        volumes.add(disk["pool"], xml, label)

    def format_of_path(self, path, have, declared=None, what=None):
        """The format of a disk given by path (see :meth:`trusted_format`)."""
        try:
            vol = self.ctx.conn.storageVolLookupByPath(path)
        except libvirt.libvirtError:
            vol = None
        if vol is not None:
            return self.trusted_format(what or "disk %s" % path, declared, have, model=parse_volume_xml(volume_xml(vol)))
        return self.trusted_format(what or "disk %s" % path, declared, have, path=path)

    def trusted_format(self, what, declared, have, model=None, path=None, disk_formats=True, encrypted=False):
        """The format a disk is used with: the user's declaration, else the VM's own definition, else the
        collection's record, else libvirt's report; an image that is newly attached passes the image-trust
        check (``_trust``).  ``model``: libvirt's report of a volume; ``path``: a file of no pool."""
        where = model["path"] if model is not None else path
        if have is not None and have.get("path") == where and have.get("format") and declared in (None, have["format"]):
            return have["format"]  # already a disk of this VM as it is: nothing new is attached
        qemu_img = QemuImg(run=self.ctx.run_command)
        if model is not None and declared is None and not encrypted:
            fmt = self.trusted_volume(model, what)["format"]
        elif model is not None:
            fmt = _trust.trusted_volume(self.ctx.conn, self.ctx.uri, model, qemu_img, what, declared=declared,
                                        chain=lambda: backing_chain(self.ctx.conn, model), encrypted=encrypted)["format"]
        else:
            local = _record.local_path(self.ctx.uri, path)
            rec = _record.read_record(local) if local else None
            if rec is not None and declared not in (None, rec["format"]):
                raise InvalidInputError("%s is recorded as a %s image (made by this collection), not %s"
                                        % (what, rec["format"], declared))
            fmt = declared or (rec or {}).get("format")
            if fmt is None:
                raise InvalidInputError("disk %s is not a volume of any libvirt storage pool: give its format (qcow2 or raw)"
                                        % path)
            if local is not None and not (rec is not None and fmt == "raw"):
                _trust.check_image(qemu_img, local, fmt, what, backing=_trust.pool_member(self.ctx.conn),
                                   said="recorded" if rec is not None else "declared")
        if disk_formats and fmt not in _domain.DISK_FORMATS:
            raise InvalidInputError("%s is a %s image: VM disks are %s; convert it first (volume with source and format)"
                                    % (what, fmt, " or ".join(_domain.DISK_FORMATS)))
        return fmt

    def trusted_volume(self, model, what=None):
        """``_trust.trusted_volume`` of a pool volume (remembered per path for this run)."""
        if model["path"] not in self._trusted:
            self._trusted[model["path"]] = _trust.trusted_volume(
                self.ctx.conn, self.ctx.uri, model, QemuImg(run=self.ctx.run_command), what or "volume %s" % model["path"],
                chain=lambda: backing_chain(self.ctx.conn, model))
        return self._trusted[model["path"]]

    def check_not_shared(self, disk, what, current):
        """A writable disk this run would attach must not be another VM's disk.  A disk the VM has already
        (writable) was checked when it was attached: not asking again spares a read of every VM's XML
        per VM, which made a task of n unchanged VMs cost O(n^2)."""
        if any(have.get("path") == disk.get("path") and not have.get("readonly")
               for have in (current or {}).get("disks") or ()):
            return
        skip = (self.vm.name, (current or {}).get("_rename_from"))
        for user in self._disk_users():
            if user["domain"] in skip or user["device"] != "disk":
                continue
            if user["path"] and user["path"] == disk.get("path"):
                raise ConflictError("%s: %s is already a disk of VM %r; a writable disk cannot be shared (give readonly: true)"
                                    % (what, disk["path"], user["domain"]))

    def resolve_cdroms(self, model):
        for cdrom in model.get("cdroms") or []:
            if cdrom.get("volume"):
                what = "cdroms[%s]" % cdrom["target"]
                pool = self.vm._pool(cdrom["pool"], what)
                vol = lookup_volume(pool, cdrom["volume"]) if pool is not None else None
                if vol is None:
                    if pool is not None:
                        self.ctx.assume(NotFoundError("%s: volume %r does not exist in pool %r"
                                                      % (what, cdrom["volume"], cdrom["pool"])))
                    continue  # check mode: the definition names the pool volume
                cdrom["path"] = parse_volume_xml(volume_xml(vol))["path"]

    def check_interfaces(self, model):
        for index, nic in enumerate(model.get("interfaces") or []):
            what = "interfaces[%d]" % index
            if nic["type"] == "network":
                net = find_network(self.ctx.conn, nic["source"])
                if net is None:
                    self.ctx.assume(NotFoundError("%s: libvirt network %r does not exist" % (what, nic["source"])))
            elif nic["type"] in ("bridge", "direct"):
                try:
                    self.ctx.conn.interfaceLookupByName(nic["source"])
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() == libvirt.VIR_ERR_NO_INTERFACE:
                        self.ctx.assume(NotFoundError("%s: the host has no interface %r" % (what, nic["source"])))
                        continue
                    self.ctx.warn("could not check that host interface %r exists (%s)" % (nic["source"], " ".join(str(exc).split())))
