# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A new ``vm`` as a clone (``clone_from``): the source VM's definition (or the one saved in its
snapshot, ``clone_snapshot``) with a new name, UUID and MACs, and its writable disks copied (``full``)
or as qcow2 overlays on the source's files (``linked``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import codec_devices as _codec_devices
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.options import DEFAULTS
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot import view as _snapshot
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors, uri_is_local
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_vm
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._host.facts import run_state
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.qemu_img import QemuImg
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import lookup_volume, parse_volume_xml, volume_path, volume_xml
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_write import build_volume_xml


class CloneSource:
    """The clone source of VM ``vm`` (a VmResource); ``info`` (xml, source, mode) once the desired
    model is a clone; the volumes the clone needs go to ``volumes`` (:class:`.volumes.NewVolumes`)."""

    def __init__(self, vm, volumes):
        self.vm = vm
        self.ctx = vm.ctx
        self.volumes = volumes
        self.info = None

    def source_vm(self):
        """The VM ``clone_from`` names; None when it is assumed (check mode: an earlier task makes it,
        and the prediction is a new VM from the options)."""
        source_name = self.vm.params["clone_from"]
        src = find_vm(self.ctx.conn, source_name)
        if src is None:
            self.ctx.assume(NotFoundError("clone_from: VM %r does not exist" % source_name))
        return src

    def template(self):
        """The facts of the template ``template`` names (:mod:`.._template.store`); None when it is
        assumed (check mode: an earlier task makes it)."""
        from ansible_collections.virtops.libvirt.plugins.module_utils._template import store as _store

        name = _store.validate_template_name(self.vm.params["template"], "template")
        pool_name = self.vm.params.get("template_pool") or "default"
        pool = self.vm._pool(pool_name, "template_pool")
        found = _store.find_template(_store.template_dir(self.ctx, pool, "template_pool"), name, pool_name) if pool else None
        if found is None and pool is not None:
            self.ctx.assume(NotFoundError("template: template %r does not exist in pool %r" % (name, pool_name)))
        return found

    def model(self, model, template=None):
        """The desired model of the clone: the user's options over the source's definition (the VM's,
        its snapshot's, or ``template``'s: the facts :meth:`template` returned)."""
        mode = self.vm.params.get("clone_mode") or DEFAULTS["clone_mode"]
        if template is not None:
            source_name, snapshot = "template %s" % template["name"], None
            root = copy.deepcopy(template["_domain"])
        else:
            source_name = self.vm.params["clone_from"]
            root, snapshot = self._source(self.source_vm(), source_name, mode)
        root.find("name").text = self.vm.name
        for path in ("uuid", "devices/interface/mac", "os/nvram", "devices/graphics", "metadata/{%s}snapshot" % _snapshot.REVERT_NS):
            _codec_devices._drop(root, path)
        base = _domain.model_from_xml(root)
        disks = []
        for disk in base["disks"]:
            if disk.get("readonly"):
                disks.append(disk)
                continue
            disks.append(self._clone_disk(source_name, disk, mode, snapshot))
        model = dict((k, v) for k, v in model.items() if v is not None)
        model.setdefault("disks", disks)
        if model.get("graphics") is None:
            model["graphics"] = dict(_domain.CREATION_DEFAULTS["graphics"])
        label = source_name if snapshot is None else "snapshot %s of %s" % (snapshot["name"], source_name)
        self.info = dict(xml=_xml.to_string(root), source=label, mode=mode)
        return model

    def _source(self, src, source_name, mode):
        """The definition to copy (the VM's, or the one saved in its snapshot) and the snapshot's facts."""
        snap_name = self.vm.params.get("clone_snapshot")
        if snap_name is None:
            if src.isActive():
                raise ConflictError("clone_from: VM %r is %s; stop it first (its disks must not change while they are copied), "
                                    "or clone from a snapshot (clone_snapshot)" % (source_name, run_state(src)))
            return _xml.parse(self.vm._inactive_xml(src), "domain XML of %s" % source_name), None
        _snapshot.validate_name(snap_name, "clone_snapshot")
        snap = _snapshot.lookup_snapshot(src, snap_name)
        if snap is None:
            raise NotFoundError("clone_snapshot: VM %r has no snapshot %r" % (source_name, snap_name))
        with libvirt_errors("reading snapshot %s of VM %s" % (snap_name, source_name)):
            facts = _snapshot.parse_snapshot_xml(snap.getXMLDesc(0))
        if facts["domain"] is None:
            raise ConflictError("clone_snapshot: snapshot %r of VM %r holds no VM definition to copy" % (snap_name, source_name))
        if not facts["external"]:
            if mode == "linked":
                raise InvalidInputError("clone_mode: a linked clone needs an external (disk_only) snapshot, whose files below "
                                        "the overlays stay unchanged; snapshot %r is internal: use clone_mode: full" % snap_name)
            if src.isActive():
                raise ConflictError("clone_snapshot: snapshot %r is internal (inside the disks of %s, which is %s); stop the VM "
                                    "first, its disks must not change while the snapshot is read from them"
                                    % (snap_name, source_name, run_state(src)))
            if not uri_is_local(self.ctx.uri):
                raise InvalidInputError("clone_snapshot: copying internal snapshot %r runs qemu-img on the hypervisor; run the "
                                        "task there with a local URI (qemu:///system), or use an external snapshot" % snap_name)
        return copy.deepcopy(facts["domain"]), facts

    def _clone_disk(self, source_name, disk, mode, snapshot=None):
        what = "clone_from: disk %s of %s" % (disk["target"], source_name)
        try:
            vol = self.ctx.conn.storageVolLookupByPath(disk["path"])
            pool = vol.storagePoolLookupByVolume()
        except libvirt.libvirtError:
            raise InvalidInputError("%s (%s) is not a volume of a libvirt storage pool, so it cannot be cloned" % (what, disk["path"]))
        info = parse_volume_xml(volume_xml(vol))
        ext = "qcow2" if mode == "linked" or info["format"] == "qcow2" else "img"
        new = dict(disk, pool=pool.name(), volume="%s-%s.%s" % (self.vm.name, disk["target"], ext), size=None)
        new["path"] = volume_path(pool, new["volume"])
        if lookup_volume(pool, new["volume"]) is not None:
            raise ConflictError("%s: volume %r already exists in pool %r" % (what, new["volume"], pool.name()))
        volumes = self.volumes
        if mode == "linked":
            new["format"] = "qcow2"
            xml = build_volume_xml(new["volume"], info["capacity"], "qcow2", allocation=0,
                                   backing_path=info["path"], backing_format=info["format"])
            volumes.add(pool.name(), xml, "create qcow2 volume %s in pool %s on backing file %s"
                        % (new["volume"], pool.name(), info["path"]))
        elif snapshot is not None and not snapshot["external"]:
            new["format"] = info["format"]
            xml = build_volume_xml(new["volume"], info["capacity"], info["format"], allocation=0)
            volumes.add(pool.name(), xml, "copy internal snapshot %s of volume %s to %s in pool %s"
                        % (snapshot["name"], info["name"], new["volume"], pool.name()), None,
                        self._snapshot_filler(info["path"], info["format"], snapshot["name"]))
        else:
            new["format"] = info["format"]
            xml = build_volume_xml(new["volume"], info["capacity"], info["format"], allocation=0)
            volumes.add(pool.name(), xml, "copy volume %s to %s in pool %s"
                        % (info["name"], new["volume"], pool.name()), vol)
        new["pool"] = new["volume"] = None  # resolved: the disk is its path from here on
        return new

    def _snapshot_filler(self, src_path, fmt, snapshot_name):
        """Writes internal snapshot ``snapshot_name`` of ``src_path`` into a new volume (qemu-img, on the hypervisor)."""

        def fill(vol):
            with libvirt_errors("reading the path of a new volume"):
                dst = vol.path()
            QemuImg(run=self.ctx.run_command).convert(src_path, dst, fmt, src_fmt=fmt, snapshot=snapshot_name, target_exists=True)

        return fill
