# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``backup_restore``: a point of a repository made into a VM, through ``vm_import``'s resource.

The point is chosen by name or as the newest point at or before a time.  Before anything is written,
every file of the point's chain is checked against its manifest (size and SHA-256) and passes the
image-trust check as qcow2 whose only backing file is the same disk's file of the parent point; then
each disk is flattened by ``qemu-img convert`` into the import's scratch directory, reading the chain
through a ``json:`` image name built from the manifests (each link a file of the chain, qcow2, the base
without backing file): no path or format written in an image header is followed.  The rest is the import
of ``vm_import``: new volumes in a pool (qcow2 or raw), the VM defined by the ``vm`` resource, everything
undone on failure, the scratch directory always removed.

The definition is the one the backup saved (the hypervisor's own, checked against its checksum): a VM
restored under another name gets a new UUID, new MAC addresses and fresh NVRAM (libvirt makes it from
the firmware's template); a VM restored under its own name keeps its UUID and MACs.  Disks that were not
backed up (CD-ROMs, read-only and shareable disks) stay as the definition names them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.virtops.libvirt.plugins.module_utils._backup import repo as _repo
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._import.source import Source
from ansible_collections.virtops.libvirt.plugins.module_utils._import.vm_import import ImportResource, ImportRun
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import trust as _trust
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.fs import sha256_file


def choose_point(points, name=None, before=None):
    """The point ``name``, or the newest point created at or before ``before`` (epoch), or the newest."""
    if not points:
        raise NotFoundError("the repository has no point of this VM")
    if name is not None:
        for point in points:
            if point["name"] == name:
                return point
        raise NotFoundError("point %r is not in the repository (its points: %s)" % (name, ", ".join(p["name"] for p in points)))
    if before is None:
        return points[-1]
    found = [p for p in points if (p["manifest"].get("created_epoch") or 0) <= before]
    if not found:
        raise NotFoundError("no point was made at or before %s (the oldest is %s, %s)" % (
            _repo.iso(before), points[0]["name"], points[0]["manifest"].get("created")))
    return found[-1]


def verify_chain(chain):
    """Every file of the chain against its manifest; CorruptedError naming each problem."""
    problems = []
    for link in chain:
        problems.extend("point %s: %s" % (link["name"], text) for text in _repo.check_point_files(link))
    if problems:
        raise _repo.CorruptedError("the backup cannot be restored, its files do not match their manifests: %s"
                                   % "; ".join(problems), problems=problems)


def load_backup_source(params):
    repository, vm = params.get("repository"), params.get("vm")
    if not repository or not os.path.isabs(repository):
        raise InvalidInputError("repository must be an absolute path, not %r" % (repository,))
    _domain.validate_name(vm)
    if params.get("point") is not None and params.get("before") is not None:
        raise InvalidInputError("give point or before, not both")
    before = _repo.parse_time(params["before"], "before") if params.get("before") is not None else None
    points, _broken = _repo.load_points(repository, vm)
    if not points:
        raise NotFoundError("repository %s has no point of VM '%s'" % (repository, vm))
    point = choose_point(points, params.get("point"), before)
    try:
        chain = _repo.chain_of(points, point["name"])
    except InvalidInputError as exc:
        raise _repo.CorruptedError("the backup cannot be restored: %s" % exc.msg)
    manifest = point["manifest"]
    definition = [f for f in manifest["files"] if isinstance(f, dict) and f.get("kind") == "definition"]
    if not definition:
        raise _repo.CorruptedError("point %s has no definition in its manifest" % point["name"])
    path = os.path.join(point["directory"], _repo.DOMAIN_XML)
    try:
        with open(path, "rb") as handle:
            data = handle.read(4 * 1024 * 1024)
    except (IOError, OSError) as exc:
        raise _repo.CorruptedError("point %s: %s cannot be read: %s" % (point["name"], _repo.DOMAIN_XML, exc))
    if sha256_file(path) != definition[0].get("sha256"):
        raise _repo.CorruptedError("point %s: %s does not match its SHA-256 checksum (corrupted)"
                                   % (point["name"], _repo.DOMAIN_XML))
    src = Source("backup", point["directory"])
    src.name = (manifest.get("vm") or {}).get("name") or vm
    src.domain_xml = data
    src.point = point
    src.chain = chain
    root = _xml.parse(data, "the saved definition")
    buses = dict((_xml.find_attr(n, "target", "dev"), _xml.find_attr(n, "target", "bus"))
                 for n in root.findall("devices/disk"))
    for entry in _repo.disk_files(manifest):
        src.disks.append(dict(target=entry["target"], bus=buses.get(entry["target"]), member=None, path=None,
                              format="qcow2", virtual_size=int(entry.get("virtual_size") or 0),
                              size=entry.get("size"), digest="sha256:%s" % entry.get("sha256")))
    return src


def restored_xml(text, name, keep_uuid, disks):
    """The saved definition for the restored VM: its name; a new UUID, MACs and NVRAM unless ``keep_uuid``;
    each backed-up disk (``disks``: target -> dict(path, format)) on its new volume."""
    root = _xml.parse(text, "the saved definition")
    node = root.find("name")
    node.text = name
    if not keep_uuid:
        for path in ("uuid", "devices/interface/mac", "os/nvram"):
            for found in root.findall(path):
                found.getparent().remove(found)
    for disk in root.findall("devices/disk"):
        target = _xml.find_attr(disk, "target", "dev")
        if target not in disks:
            continue
        new = disks[target]
        disk.set("type", "file")
        for child in disk.findall("source") + disk.findall("backingStore"):
            disk.remove(child)
        driver = disk.find("driver")
        if driver is None:
            driver = _xml.sub(disk, "driver", attrs=dict(name="qemu"))
        driver.set("type", new["format"])
        source = _xml.element("source", attrs=dict(file=new["path"]))
        disk.insert(list(disk).index(driver) + 1, source)
    return _xml.to_string(root)


class RestoreRun(ImportRun):
    """The import's run, whose first step also verifies the chain and flattens each disk."""

    def prepare(self):
        try:
            self.flatten()
        except BaseException:
            self.remove_scratch()
            raise
        super(RestoreRun, self).prepare()

    def flatten(self):
        src = self.source
        verify_chain(src.chain)
        for vol in self.volumes:
            disk = vol["disk"]
            target = disk["target"]
            files = [os.path.join(link["directory"], _repo.disk_file(target)) for link in src.chain]
            for index, path in enumerate(files):
                allowed = set(os.path.realpath(p) for p in files[:index])  # the same disk of the older points
                checked = _trust.check_image(self.qemu, path, "qcow2", what="point %s, disk %s" % (src.chain[index]["name"], target),
                                             backing=(lambda p, allowed=allowed: os.path.realpath(p) in allowed) if index else None,
                                             said="recorded")
                if checked["chain"] and checked["chain"][0]["format"] != "qcow2":
                    raise _repo.CorruptedError("point %s, disk %s: its backing file is not named as qcow2"
                                               % (src.chain[index]["name"], target))
            out = os.path.join(self.scratch(), "%s.%s" % (target, self.format))
            self.qemu.convert(_repo.chain_json(src.chain, target), out, self.format, threads=4)
            disk["local"] = out
            disk["format"] = self.format


class RestoreResource(ImportResource):
    kind = "backup_restore"
    run_class = RestoreRun

    def __init__(self, ctx):  # pylint: disable=super-init-not-called
        # not the import's __init__: its checks are about src and disks, which a restore has not
        self.ctx = ctx
        self.params = ctx.params
        if self.params.get("disk_format") not in (None, "qcow2", "raw"):
            raise InvalidInputError("disk_format must be qcow2 or raw")
        if not self.params.get("name"):
            self.params["name"] = self.params.get("vm")
        self.source = None
        self._vm_name = None
        self._qemu = None
        self._run = None

    def _load(self):
        if self.source is None:
            self.source = load_backup_source(self.params)
        return self.source

    def _prepare_definition(self, run, src, desired):
        state = "running" if desired["state"] == "running" else "present"
        archived_uuid = _xml.find_text(_xml.parse(src.domain_xml, "the saved definition"), "uuid")
        keep = self.name == src.name and archived_uuid is not None
        if keep:
            other = self._vm_by_uuid(archived_uuid)
            if other is not None and other != self.name:
                keep = False
                self.ctx.warn("UUID %s is used by VM %s: the restored VM gets a new UUID and new MAC addresses"
                              % (archived_uuid, other))
        disks = dict((v["target"], dict(path=v["path"], format=v["format"])) for v in run.volumes)
        run.new = self._vm(state=state, xml=restored_xml(src.domain_xml, self.name, keep, disks))
        run.new.paths_made.update(v["path"] for v in run.volumes)
        run.new_desired = run.new.desired(None)

    def _vm_by_uuid(self, uuid):
        try:
            return self.ctx.conn.lookupByUUIDString(uuid).name()
        except Exception:  # pylint: disable=broad-except
            return None

    def result(self, state, outcome):
        out = super(RestoreResource, self).result(state, outcome)
        src = self.source
        if src is not None:
            manifest = src.point["manifest"]
            out["point"] = dict(name=src.point["name"], created=manifest.get("created"), mode=manifest.get("mode"),
                                chain=[p["name"] for p in src.chain], vm=src.name, uuid=(manifest.get("vm") or {}).get("uuid"))
        else:
            out["point"] = None
        return out
