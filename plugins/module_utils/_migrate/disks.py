# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The disks of a VM to migrate: read from its definition, located on the destination, and planned
(present there, or copied by ``copy_storage`` into a destination pool with enough space).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import refresh_pool
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import human_size
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import lookup_volume, parse_volume_xml, pool_target_path, volume_path

#: formats the module can pre-create on the destination for a storage copy
_COPY_FORMATS = ("qcow2", "raw")
#: pool types whose volumes carry an image format (elsewhere a volume is a raw block device)
_FORMATTED_POOLS = ("dir", "fs", "netfs")


def domain_disks(root):
    """Disks of a domain definition: dicts target, device, type, path, pool, volume, format,
    readonly, shareable, backing (the paths of the backing chain the live XML shows, nearest first)."""
    disks = []
    for disk in root.findall("devices/disk"):
        src = disk.find("source")
        kind = disk.get("type") or "file"
        entry = dict(
            target=_xml.find_attr(disk, "target", "dev"),
            device=disk.get("device") or "disk",
            type=kind,
            path=None,
            pool=None,
            volume=None,
            format=_xml.find_attr(disk, "driver", "type"),
            readonly=disk.find("readonly") is not None,
            shareable=disk.find("shareable") is not None,
            backing=[],
        )
        if src is not None:
            if kind == "file":
                entry["path"] = src.get("file")
            elif kind == "block":
                entry["path"] = src.get("dev")
            elif kind == "volume":
                entry["pool"], entry["volume"] = src.get("pool"), src.get("volume")
            elif kind == "network":
                entry["path"] = "%s:%s" % (src.get("protocol"), src.get("name"))
        node = disk.find("backingStore")
        while node is not None and node.find("source") is not None:
            bsrc = node.find("source")
            entry["backing"].append(dict(path=bsrc.get("file") or bsrc.get("dev"),
                                         format=_xml.find_attr(node, "format", "type")))
            node = node.find("backingStore")
        disks.append(entry)
    return disks


def _norm_dir(path):
    return os.path.normpath(path) if path else path


class DiskPlan:
    """One disk (or backing file) of the VM: where it is on the destination and what happens to it."""

    __slots__ = ("target", "path", "name", "pool", "pool_name", "format", "formatted", "capacity", "allocation",
                 "backing_path", "backing_format", "action", "note", "source_vol")

    def __init__(self, target, path, **kwargs):
        self.target = target
        self.path = path
        for key in self.__slots__[2:]:
            setattr(self, key, kwargs.get(key))

    def view(self):
        return dict(target=self.target, path=self.path, action=self.action, pool=self.pool_name,
                    format=self.format, capacity=self.capacity, note=self.note)


def _raise(error):
    raise error


class DiskChecks:
    """The disk half of the pre-checks, a base of :class:`~.prechecks.Prechecks`: every disk of the VM
    is on the destination, or (``copy_storage``) can be copied there.  Fills ``checks["disks"]`` and
    ``disks`` (:class:`DiskPlan` of each copy).  ``Prechecks`` sets ``root``, the VM's definition.
    """

    def __init__(self, src, dst, dom, opts, mode):
        self.src = src
        self.dst = dst
        self.dom = dom
        self.opts = opts
        self.mode = mode
        self.live = mode != "offline"
        self.name = opts["name"]
        self.root = None
        self.checks = {}
        self.warnings = []
        self.disks = []
        self._dst_pools = None
        #: what a check does with something an earlier task may create: raise it (check mode: Context.assume)
        self.assume = _raise

    def _pools(self):
        """Active destination pools: ``[(pool, type, normalized target dir)]``."""
        if self._dst_pools is None:
            with libvirt_errors("listing the destination's storage pools"):
                pools = self.dst.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
            found = []
            for pool in pools:
                try:
                    kind = _xml.parse(pool.XMLDesc(0), "pool XML").get("type")
                    target = pool_target_path(pool)
                except (libvirt.libvirtError, NotFoundError):
                    continue
                found.append((pool, kind, _norm_dir(target)))
            self._dst_pools = found
        return self._dst_pools

    def _pool_for(self, path):
        directory = _norm_dir(os.path.dirname(path))
        for pool, kind, target in self._pools():
            if target and target == directory:
                return pool, kind
        return None, None

    def _pool_by_name(self, name, target):
        """The active destination pool ``name``; (None, None) when it is assumed (check mode: an earlier
        task of the play, the hypervisor role on the destination for one, makes it)."""
        for pool, kind, _target in self._pools():
            if pool.name() == name:
                return pool, kind
        self.assume(ConflictError("disks: %s: the destination has no active storage pool '%s' (the disk is a volume of "
                                  "it)" % (target, name)))
        return None, None

    def _locate(self, disk):
        """``(pool, kind, volume name, volume or None)`` of a disk on the destination; pool None when
        no destination pool covers it (or, for a disk given as a pool volume, the pool is assumed)."""
        if disk["type"] == "volume":
            pool, kind = self._pool_by_name(disk["pool"], disk["target"])
            if pool is None:
                return None, None, disk["volume"], None
            return pool, kind, disk["volume"], lookup_volume(pool, disk["volume"])
        pool, kind = self._pool_for(disk["path"])
        name = os.path.basename(disk["path"])
        if pool is None:
            return None, None, name, None
        return pool, kind, name, lookup_volume(pool, name)

    def _present(self, target, path, what, hint):
        """Check that ``path`` (a disk that is not copied, or a backing file) is on the destination."""
        pool, _kind = self._pool_for(path)
        if pool is None:
            self.warnings.append(
                "disks: %s: %s %s is not in a storage pool of the destination, so the module cannot check that it "
                "is there; the migration fails if it is not" % (target, what, path))
            return "not checked (no destination pool covers %s)" % os.path.dirname(path)
        if lookup_volume(pool, os.path.basename(path)) is None:
            raise ConflictError("disks: %s: %s %s is not on the destination (its pool '%s' has no such volume): %s"
                                % (target, what, path, pool.name(), hint))
        return "present on the destination (pool %s)" % pool.name()

    def _source_vol(self, disk):
        with libvirt_errors("looking up disk %s on the source" % disk["target"]):
            try:
                if disk["type"] == "volume":
                    return self.src.storagePoolLookupByName(disk["pool"]).storageVolLookupByName(disk["volume"])
                return self.src.storageVolLookupByPath(disk["path"])
            except libvirt.libvirtError as exc:
                if exc.get_error_code() in (libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_ERR_NO_STORAGE_POOL):
                    return None
                raise

    def _copied(self, disk):
        return (self.opts["copy_storage"] != "none" and disk["device"] == "disk" and not disk["readonly"]
                and not disk["shareable"] and disk["type"] in ("file", "block", "volume"))

    def check_disks(self):
        views = {}
        need = {}
        for disk in domain_disks(self.root):
            target = disk["target"]
            if disk["type"] == "network":
                views[target] = "network disk %s: shared by nature, not checked" % disk["path"]
                continue
            if disk["path"] is None and disk["volume"] is None:
                views[target] = "empty"
                continue
            if disk["type"] not in ("file", "block", "volume"):
                views[target] = "%s disk: not checked" % disk["type"]
                continue
            if self._copied(disk):
                views[target] = self._plan_copy(disk, need)
                continue
            if disk["type"] == "volume":
                pool, _kind, name, vol = self._locate(disk)
                if pool is None:
                    views[target] = "assumed: pool '%s' is made on the destination by an earlier task" % disk["pool"]
                    continue
                if vol is None:
                    raise ConflictError("disks: %s: volume '%s' is not in pool '%s' on the destination"
                                        % (target, name, pool.name()))
                views[target] = "present on the destination (pool %s)" % pool.name()
                continue
            why = ("read-only and shareable disks are not copied, so they must be on the destination"
                   if self.opts["copy_storage"] != "none" else
                   "the hosts do not share it: use copy_storage: all to copy it")
            views[target] = self._present(target, disk["path"], "disk", why)
        self._check_space(need)
        self.checks["disks"] = views

    def _source_size(self, disk, source_vol):
        """``(capacity, allocation)`` of a disk on the source, in bytes."""
        if self.live:
            with libvirt_errors("reading the size of disk %s" % disk["target"]):
                capacity, allocation, _physical = self.dom.blockInfo(disk["target"], 0)
            return capacity, allocation
        if source_vol is None:
            return None, None
        with libvirt_errors("reading the size of disk %s" % disk["target"]):
            _type, capacity, allocation = source_vol.info()
        return capacity, allocation

    def _plan_copy(self, disk, need):
        target = disk["target"]
        fmt = disk["format"] or "raw"
        incremental = self.opts["copy_storage"] == "incremental"
        if disk["type"] == "block":
            return self._present(target, disk["path"], "block device",
                                 "libvirt copies into an existing block device, it cannot create one")
        pool, kind, name, existing = self._locate(disk)
        where = disk["path"] or "%s/%s" % (disk["pool"], disk["volume"])
        if pool is None and disk["type"] == "volume":
            return "assumed: pool '%s' is made on the destination by an earlier task" % disk["pool"]
        if pool is None:
            self.assume(ConflictError(
                "disks: %s: no active storage pool on the destination has the directory %s, so the copy of %s "
                "cannot be created there: define one (virtops.libvirt.pool)" % (target, os.path.dirname(where), where)))
            return "assumed: a pool for %s is made on the destination by an earlier task" % os.path.dirname(where)
        if existing is not None:
            raise ConflictError(
                "disks: %s: %s already exists on the destination (pool %s); copy_storage would overwrite it. If the "
                "hosts share this storage use copy_storage: none, otherwise remove the stale copy"
                % (target, where, pool.name()))
        if fmt not in _COPY_FORMATS:
            raise ConflictError("disks: %s: the module copies qcow2 and raw disks, not %s" % (target, fmt))
        if kind not in _FORMATTED_POOLS and fmt != "raw":
            raise ConflictError("disks: %s: a %s image is copied into a directory pool, not into a %s pool"
                                % (target, fmt, kind))
        source_vol = self._source_vol(disk)
        if not self.live and source_vol is None:
            raise ConflictError(
                "disks: %s: %s is not in a storage pool of the source; a stopped VM's disks are copied as volumes "
                "through libvirt: define a pool for %s on the source" % (target, where, os.path.dirname(where)))
        chain = self._backing_chain(disk, source_vol)
        capacity, allocation = self._source_size(disk, source_vol)
        dest_path = disk["path"] if disk["type"] != "volume" else (volume_path(pool, name) or where)
        plan = DiskPlan(target, dest_path, name=name, pool=pool, pool_name=pool.name(), format=fmt,
                        formatted=kind in _FORMATTED_POOLS, capacity=capacity, allocation=allocation,
                        source_vol=source_vol, action="copy")
        if chain and incremental:
            # the copy is an overlay on the same backing file, which must be on the destination already
            plan.backing_path, plan.backing_format = chain[0]["path"], chain[0]["format"]
            for entry in chain:
                self._present(target, entry["path"], "backing file",
                              "copy_storage: incremental copies only the top image; use copy_storage: all")
            plan.note = "top image only; its backing chain is on the destination"
        elif chain and not self.live:
            plan.note = self._plan_backing_copies(disk, chain, need)
        elif chain:
            plan.note = "flattened: the copy holds the data of the whole backing chain"
        self.disks.append(plan)
        need.setdefault(pool.name(), [pool, 0])[1] += int(allocation or 0)
        return "copied to the destination (pool %s)%s" % (pool.name(), ": " + plan.note if plan.note else "")

    def _backing_chain(self, disk, source_vol):
        """Backing files of a disk on the source, nearest first: ``[dict(path, format)]``."""
        if disk["backing"]:
            return [b for b in disk["backing"] if b["path"]]
        chain = []
        vol = source_vol
        seen = set()
        while vol is not None:
            with libvirt_errors("reading volume %r on the source" % vol.name()):
                model = parse_volume_xml(vol.XMLDesc(0))
            path = model.get("backing_path")
            if not path or path in seen or len(chain) >= 32:
                break
            seen.add(path)
            chain.append(dict(path=path, format=model.get("backing_format"), vol=None))
            try:
                vol = self.src.storageVolLookupByPath(path)
            except libvirt.libvirtError:
                vol = None
            chain[-1]["vol"] = vol
        return chain

    def _plan_backing_copies(self, disk, chain, need):
        """Offline copy_storage: all: the backing files the destination lacks are copied too, as they are
        (down to the first one the destination has)."""
        copied, present = [], None
        for entry in chain:
            pool, kind = self._pool_for(entry["path"])
            if pool is None:
                raise ConflictError(
                    "disks: %s: backing file %s has no storage pool on the destination (directory %s) to be copied "
                    "into: define one, or use copy_storage: incremental if the destination has it"
                    % (disk["target"], entry["path"], os.path.dirname(entry["path"])))
            name = os.path.basename(entry["path"])
            if lookup_volume(pool, name) is not None:
                present = entry["path"]
                break
            fmt = entry["format"] or "raw"
            if fmt not in _COPY_FORMATS or (kind not in _FORMATTED_POOLS and fmt != "raw"):
                raise ConflictError("disks: %s: the module copies qcow2 images into directory pools and raw ones "
                                    "anywhere, not a %s image into a %s pool (%s)"
                                    % (disk["target"], fmt, kind, entry["path"]))
            src_vol = entry.get("vol") or self._source_vol(dict(type="file", path=entry["path"],
                                                                target=disk["target"]))
            if src_vol is None:
                raise ConflictError("disks: %s: backing file %s is in no storage pool of the source, so it cannot "
                                    "be streamed" % (disk["target"], entry["path"]))
            with libvirt_errors("reading the size of %s" % entry["path"]):
                _type, capacity, allocation = src_vol.info()
            self.disks.append(DiskPlan(
                disk["target"], entry["path"], name=name, pool=pool, pool_name=pool.name(), format=fmt,
                formatted=kind in _FORMATTED_POOLS, capacity=capacity, allocation=allocation, source_vol=src_vol,
                action="copy-backing", note="backing file of %s" % disk["target"]))
            need.setdefault(pool.name(), [pool, 0])[1] += int(allocation or 0)
            copied.append(entry["path"])
        parts = []
        if copied:
            parts.append("backing files copied too: %s" % ", ".join(copied))
        if present:
            parts.append("backing file %s is on the destination already" % present)
        return "; ".join(parts) or None

    def _check_space(self, need):
        for name, (pool, wanted) in sorted(need.items()):
            refresh_pool(pool)
            with libvirt_errors("reading pool '%s' on the destination" % name):
                available = pool.info()[3]
            if wanted > available:
                raise ConflictError("disks: pool '%s' on the destination has %s free; the copies need about %s"
                                    % (name, human_size(available), human_size(wanted)))
