# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the ``snapshot`` module decides before it changes anything: the definition of a new
snapshot (memory, overlay files, flags) after checking it can be made, and whether (and in which
order) existing snapshots can be deleted.

``model`` is the VM's model (``_domain.model.model_from_xml``); ``snapshots`` the facts of all its
snapshots (``view.list_snapshots``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot.view import build_snapshot_xml

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import dependants


def creation(conn, params, vm_name, model, current):
    """(memory, XML, flags) for the new snapshot ``params["name"]``, after checking it can be made."""
    p = params
    active = current["active"]
    disk_only = bool(p.get("disk_only"))
    memory = p.get("memory")
    if memory is None:
        memory = active and not disk_only
    if memory and not active:
        raise ConflictError("memory: VM %s is %s, so there is no memory state to save; leave memory unset or false"
                            % (vm_name, current["vm_state"]))
    if active and not memory and not disk_only:
        raise InvalidInputError("memory: an internal snapshot of a running VM always includes its memory; for a "
                                "snapshot of the disks alone use disk_only: true (an external snapshot)")
    if p.get("quiesce") and not active:
        raise ConflictError("quiesce: VM %s is %s; only a running guest's agent can quiesce" % (vm_name, current["vm_state"]))
    writable = [d for d in model["disks"] if not d.get("readonly")]
    if not writable:
        raise ConflictError("VM %s has no writable disk to snapshot" % vm_name)
    flags = 0
    if disk_only:
        disks = []
        for disk in model["disks"]:
            if disk.get("readonly"):
                disks.append(dict(name=disk["target"], snapshot="no"))
                continue
            if not disk.get("path"):
                raise InvalidInputError("disk_only: disk %s of VM %s is not a file, so it cannot get an overlay file"
                                        % (disk["target"], vm_name))
            disks.append(dict(name=disk["target"], snapshot="external", file=overlay_path(conn, vm_name, p["name"], disk)))
        for cdrom in model.get("cdroms") or []:
            disks.append(dict(name=cdrom["target"], snapshot="no"))
        flags |= flag("VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY", 16) | flag("VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC", 128)
        if p.get("quiesce"):
            flags |= flag("VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE", 64)
    else:
        for disk in writable:
            if (disk.get("format") or "raw") != "qcow2":
                raise InvalidInputError(
                    "VM %s: disk %s (%s) is %s; internal snapshots need every writable disk in qcow2 "
                    "(use disk_only: true for an external snapshot)"
                    % (vm_name, disk["target"], disk.get("path") or "no file", disk.get("format") or "raw"))
        disks = None
    return memory, build_snapshot_xml(p["name"], p.get("description"), memory=memory, disks=disks), flags


def refuse_revert_with_checkpoints(conn, vm_name, name):
    """A VM with checkpoints (backup's persistent dirty bitmaps) cannot go back to an internal snapshot:
    QEMU 7.2 refuses ("Device has active dirty bitmaps") and the VM is left stopped."""
    try:
        names = sorted(cp.getName() for cp in conn.lookupByName(vm_name).listAllCheckpoints(0))
    except libvirt.libvirtError:
        return  # a driver without checkpoints
    if names:
        raise ConflictError("VM %s has checkpoint(s) %s (made by backups): QEMU refuses to revert to the internal "
                            "snapshot %s while the disks carry their dirty bitmaps, and stops the VM. Delete the "
                            "checkpoints while the VM runs (virsh checkpoint-delete), or restore a backup point with "
                            "backup_restore" % (vm_name, ", ".join(names), name), checkpoints=names)


def overlay_path(conn, vm_name, name, disk):
    """The overlay file of ``disk`` in the disk-only snapshot ``name``, beside the disk's file."""
    directory = disk["path"].rsplit("/", 1)[0] if "/" in disk["path"] else "."
    path = "%s/%s-%s.%s.qcow2" % (directory, vm_name, disk["target"], name)
    if _path_in_use(conn, path):
        raise ConflictError("disk_only: the overlay file %s for disk %s already exists" % (path, disk["target"]))
    return path


def _path_in_use(conn, path):
    try:
        conn.storageVolLookupByPath(path)
        return True
    except libvirt.libvirtError:
        return False


def depth(facts, snapshots):
    """How many ancestors the snapshot ``facts`` has."""
    by_name = dict((f["name"], f) for f in snapshots)
    level, parent = 0, facts["parent"]
    while parent in by_name:
        level, parent = level + 1, by_name[parent]["parent"]
    return level


def descends_from(facts, ancestor, snapshots):
    by_name = dict((f["name"], f) for f in snapshots)
    parent = facts["parent"]
    while parent:
        if parent == ancestor:
            return True
        parent = by_name[parent]["parent"] if parent in by_name else None
    return False


def unmergeable(facts, current, vm_name):
    """Why libvirt cannot delete (merge) this external snapshot now, or None.

    Found on libvirt 9.0: an external snapshot that has child snapshots is merged while the VM
    runs (a block commit), but of a stopped VM it fails with libvirt's internal "could not find
    base disk source in disk source chain".  Leaves (no children) are deleted in either state.
    """
    if not facts["external"] or not facts["children"] or current["active"]:
        return None
    return ("it is an external (disk_only) snapshot with child snapshots (%s) and VM %s is %s; libvirt merges such a "
            "snapshot into the file below only while the VM runs: start the VM and run the task again"
            % (", ".join(facts["children"]), vm_name, current["vm_state"]))


def check_deletable(conn, vm_name, facts, model, snapshots):
    """An external snapshot's deletion writes its overlay into the file below: that file must
    not be the backing file of anything but this VM's own chain."""
    if not facts["external"]:
        return
    own = set(d.get("path") for d in model["disks"])
    own.update(d["file"] for f in snapshots for d in f["disks"] if d.get("file"))
    for disk in facts["disks"]:
        if not disk.get("file"):
            continue
        base = _backing_of(conn, disk["file"])
        if base is None:
            continue
        others = [v for v in dependants(conn, base) if not _is_own(conn, v, own)]
        if others:
            raise ConflictError(
                "snapshot %s of VM %s: deleting it merges %s into %s, which is also the backing file of %s; "
                "remove those first (for example linked clones made from this snapshot)"
                % (facts["name"], vm_name, disk["file"], base, ", ".join(others)))


def _backing_of(conn, path):
    try:
        vol = conn.storageVolLookupByPath(path)
        root = _xml.parse(vol.XMLDesc(0))
    except libvirt.libvirtError:
        return None
    return _xml.find_text(root, "backingStore/path")


def _is_own(conn, pool_volume, own_paths):
    pool_name, vol_name = pool_volume.split("/", 1)
    try:
        path = conn.storagePoolLookupByName(pool_name).storageVolLookupByName(vol_name).path()
    except libvirt.libvirtError:
        return False
    return path in own_paths
