# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The volumes a ``vm`` plan makes (new disks, copies and linked clones) and the disks it grows.

Each new volume is a plan step that carries the collection's record of its format (and of
whether its fill completed); its undo deletes it by name through the current connection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._domain.compare import by_target
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import refresh_pool, retry_busy
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.qemu_img import QemuImg
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import parse_volume_xml, volume_xml
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_write import delete_by_name, exists_already, record_fill


class NewVolumes:
    """The volumes VM ``vm`` (a VmResource) needs made: (pool name, volume XML, description[, source
    volume[, fill]]), added while the desired state is resolved, turned into steps by :meth:`plan`."""

    def __init__(self, vm):
        self.vm = vm
        self.ctx = vm.ctx
        self.items = []
        self._created = []  # (pool, volume) this run made, for the undo

    def add(self, pool_name, xml, label, source_vol=None, fill=None):
        self.items.append((pool_name, xml, label, source_vol, fill))

    def planned_names(self):
        """``{path: (pool, volume)}`` of the volumes this plan makes."""
        made = {}
        for item in self.items:
            name = _xml.find_text(item[1], "name")
            path = self.vm._volume_path(item[0], name)
            if path:
                made[path] = (item[0], name)
        return made

    def plan(self, plan):
        for pool_name, xml, label, source_vol, fill in self.items:
            source = label if fill is not None else None
            if source_vol is not None:
                # the copy reads the source with its known format; libvirt's copy (createXMLFrom) probes it,
                # so it is used only where nothing else is known (remote URI)
                model = parse_volume_xml(volume_xml(source_vol))
                source = "volume:%s" % model["path"]
                trusted = self.vm.disks.trusted_volume
                if trusted(model, "clone_from: volume %s" % model["path"])["checked"] != "report":
                    source_vol, fill = None, self._copy_filler(model["path"], trusted(model)["format"], xml)
            self._trust_backing(xml)
            plan.add(label, self._create_volume(pool_name, xml, source_vol, fill, source), undo=self._delete_created,
                     partial=True)

    def _trust_backing(self, xml):
        """A new overlay names its base with the base's trusted format, never libvirt's probe of it."""
        path = _xml.find_text(xml, "backingStore/path")
        if path is None:
            return
        try:
            base = self.ctx.conn.storageVolLookupByPath(path)
        except libvirt.libvirtError:
            return  # check mode: a base an earlier task makes (a real run found it while resolving)
        fmt = self.vm.disks.trusted_volume(parse_volume_xml(volume_xml(base)), "backing file %s" % path)["format"]
        node = xml.find("backingStore/format")
        if node is None:
            node = _xml.sub(xml.find("backingStore"), "format")
        node.set("type", fmt)

    def _copy_filler(self, src_path, src_fmt, xml):
        """Fills a new volume with a copy of ``src_path`` read as ``src_fmt`` (qemu-img on this node)."""
        fmt = _xml.find_attr(xml, "target/format", "type")

        def fill(vol):
            with libvirt_errors("reading the path of a new volume"):
                dst = vol.path()
            QemuImg(run=self.ctx.run_command).convert(src_path, dst, fmt, src_fmt=src_fmt, target_exists=True)

        return fill

    def _create_volume(self, pool_name, xml, source_vol=None, fill=None, source=None):
        """A step that creates a volume (a copy of ``source_vol``), then ``fill(vol)`` if given; the volume
        carries the collection's record of its format (and of whether the fill completed)."""
        text = _xml.to_string(xml, pretty=False)
        name = _xml.find_text(xml, "name")
        rec = _record.new_record(_xml.find_attr(xml, "target/format", "type"), "vm",
                                 backing_format=_xml.find_attr(xml, "backingStore/format", "type"),
                                 source=source, complete=fill is None)

        def create():
            pool = self.vm._pool(pool_name, "creating a volume")
            self._created.append((pool_name, name))  # the undo deletes it, also when the creation broke off
            try:
                if source_vol is not None:
                    vol = retry_busy(lambda: pool.createXMLFrom(text, source_vol, 0), "copying a volume into pool %r" % pool_name)
                else:
                    vol = retry_busy(lambda: pool.createXML(text, 0), "creating a volume in pool %r" % pool_name)
            except ConflictError as exc:
                if exists_already(exc):
                    self._created[-1] = None  # another task's volume: not this run's to delete
                raise
            path = _record.local_file(self.ctx.uri, parse_volume_xml(volume_xml(vol)))
            record_fill(path, rec, complete=False)
            if fill is not None:
                fill(vol)
                record_fill(path, rec, complete=True)

        return create

    def _delete_created(self):
        """Undo of a creation: by name, through the current connection (it may be a new one).  The entry
        is dropped only once the volume is gone: the plan may run this undo again after a reconnect."""
        item = self._created[-1] if self._created else None
        if item is not None:
            delete_by_name(self.ctx.conn, item[0], item[1])
        if self._created:
            self._created.pop()

    # --- growth ---------------------------------------------------------------------------------

    def plan_growth(self, current, desired, plan):
        have = by_target(current.get("disks"))
        for disk in desired.get("disks") or []:
            old = have.get(disk["target"])
            if old is None or disk.get("size") is None or old.get("size") is None:
                continue
            if disk["size"] < old["size"]:
                plan.warn("disk %s is %d bytes, more than size %d: disks are never shrunk" % (disk["target"], old["size"], disk["size"]))
            elif disk["size"] > old["size"]:
                live = " (live)" if current["active"] else ""
                plan.add("grow disk %s of VM %s from %d to %d bytes%s" % (disk["target"], self.vm.name, old["size"], disk["size"], live),
                         self._grow_disk(disk, current["active"]))

    def _grow_disk(self, disk, active):
        def call():
            if active:
                self.vm._call("growing disk %s of" % disk["target"], "blockResize", disk["target"], disk["size"],
                              libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)()
                return
            with libvirt_errors("growing disk %s (%s) of VM %r" % (disk["target"], disk["path"], self.vm.name)):
                vol = self.ctx.conn.storageVolLookupByPath(disk["path"])
                vol.resize(disk["size"], 0)
                refresh_pool(vol.storagePoolLookupByVolume())

        return call
