# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``export`` of a running VM: a temporary disk-only snapshot (qcow2 overlays), and merging it back
(an active block commit and a pivot while the VM runs, ``qemu-img commit`` when it stopped meanwhile).
An overlay left behind by a killed task (its name says ``.virtops-export-<pid>.qcow2``) is found here."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, ConflictError, VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_vm
from ansible_collections.virtops.libvirt.plugins.module_utils._export.params import OVERLAY_MARK, pid_alive

_OVERLAY_RE = re.compile(re.escape(OVERLAY_MARK) + r"(\d+)\.qcow2$")
_XML_INACTIVE = flag("VIR_DOMAIN_XML_INACTIVE", 2)
_XML_SECURE = flag("VIR_DOMAIN_XML_SECURE", 1)


def leftover_overlay(disk, own_pid):
    """The pid in the name of a temporary overlay the disk currently runs on, or None."""
    match = _OVERLAY_RE.search(os.path.basename(disk["path"] or ""))
    if match is None:
        return None
    pid = int(match.group(1))
    return pid if pid != own_pid else None


def _live_backing(root, target):
    """Path and format of the image right below the top one of disk ``target`` in a live XML, or None."""
    for node in root.findall("devices/disk"):
        if _xml.find_attr(node, "target", "dev") != target:
            continue
        store = node.find("backingStore")
        if store is not None and store.find("source") is not None:
            src = store.find("source")
            return dict(path=src.get("file") or src.get("dev"), format=_xml.find_attr(store, "format", "type"))
    return None


def _overlay_base(qemu, path):
    info = qemu.info(path, fmt="qcow2")
    base = info.get("full-backing-filename") or info.get("backing-filename")
    if not base:
        raise BackendError("%s looks like a temporary export overlay but has no backing file" % path)
    return dict(path=base, format=info.get("backing-filename-format"))


def find_leftovers(qemu, live_root, disks, what):
    """Temporary overlays of an export whose process is gone, that ``disks`` still run on.

    Each disk is pointed at the image below its overlay (what the merge leaves); returns the
    overlays as dicts target, overlay, base, base_format.  An overlay of a live export is a conflict.
    """
    found = []
    for disk in disks:
        pid = leftover_overlay(disk, os.getpid())
        if pid is None:
            continue
        if pid_alive(pid):
            raise ConflictError("%s is being exported by another task (pid %d): disk %s runs on its temporary overlay %s"
                                % (what, pid, disk["target"], disk["path"]))
        base = _live_backing(live_root, disk["target"]) if live_root is not None else None
        if base is None or not base["path"]:
            base = _overlay_base(qemu, disk["path"])
        found.append(dict(target=disk["target"], overlay=disk["path"], base=base["path"], base_format=base["format"]))
        disk["path"], disk["format"] = base["path"], base["format"]
    return found


def build_snapshot_xml(name, overlays, other_targets):
    """``<domainsnapshot>`` for a disk-only snapshot: ``overlays`` is ``[(target, overlay path)]``;
    ``other_targets`` (CD-ROMs, read-only disks...) are left out of it (``snapshot='no'``)."""
    root = _xml.element("domainsnapshot")
    _xml.sub(root, "name", name)
    _xml.sub(root, "description", "temporary: made by virtops.libvirt export, merged back when it is done")
    _xml.sub(root, "memory", attrs={"snapshot": "no"})
    disks = _xml.sub(root, "disks")
    for target, overlay in overlays:
        node = _xml.sub(disks, "disk", attrs={"name": target, "snapshot": "external", "type": "file"})
        _xml.sub(node, "driver", attrs={"type": "qcow2"})
        _xml.sub(node, "source", attrs={"file": overlay})
    for target in other_targets:
        _xml.sub(disks, "disk", attrs={"name": target, "snapshot": "no"})
    return _xml.to_string(root, pretty=False)


def overlay_path(base, target, overlay_dir, fallback_dir, pid=None):
    directory = overlay_dir or (os.path.dirname(base) if os.path.isfile(base) else fallback_dir)
    stem = os.path.basename(base) if os.path.isfile(base) else target
    return os.path.join(directory, ".%s%s%d.qcow2" % (stem, OVERLAY_MARK, pid or os.getpid()))


def _live_source(dom, target):
    with libvirt_errors("reading the live definition of VM '%s'" % dom.name()):
        root = _xml.parse(dom.XMLDesc(0), "domain XML")
    for node in root.findall("devices/disk"):
        if _xml.find_attr(node, "target", "dev") == target:
            src = node.find("source")
            return src.get("file") or src.get("dev") if src is not None else None
    return None


def error_text(exc):
    return " ".join(str(exc.get_error_message() or exc).split())


def active_commit(dom, target, sleep=time.sleep, clock=time.monotonic, stall_timeout=600):
    """Merge the top image of disk ``target`` of the running ``dom`` into the image below it and pivot.

    ``SHALLOW`` keeps the rest of the chain (a linked clone's base) untouched.  The pivot is retried
    until libvirt says the job is ready; a job that makes no progress for ``stall_timeout`` seconds
    is an error (the overlay is then still in use and the next run retries the merge).
    """
    name = dom.name()
    flags = flag("VIR_DOMAIN_BLOCK_COMMIT_ACTIVE", 4) | flag("VIR_DOMAIN_BLOCK_COMMIT_SHALLOW", 1)
    with libvirt_errors("merging the temporary overlay of disk %s of VM '%s' back" % (target, name)):
        dom.blockCommit(target, None, None, 0, flags)
    last_cur, last_move = -1, clock()
    while True:
        try:
            info = dom.blockJobInfo(target, 0)
        except libvirt.libvirtError as exc:
            raise BackendError("watching the merge of disk %s of VM '%s' failed: %s" % (target, name, error_text(exc)))
        if not info:
            raise BackendError("the merge of disk %s of VM '%s' ended without a pivot (was it cancelled?)" % (target, name))
        cur, end = int(info.get("cur", 0)), int(info.get("end", 0))
        if cur != last_cur:
            last_cur, last_move = cur, clock()
        if cur == end:
            try:
                dom.blockJobAbort(target, flag("VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT", 2))
                break
            except libvirt.libvirtError as exc:
                if "not ready" not in error_text(exc).lower() and \
                        exc.get_error_code() != flag("VIR_ERR_BLOCK_COPY_ACTIVE", -1):
                    raise BackendError("switching disk %s of VM '%s' back to its image failed: %s"
                                       % (target, name, error_text(exc)))
        if clock() - last_move > stall_timeout:
            raise BackendError("the merge of disk %s of VM '%s' made no progress for %d s" % (target, name, stall_timeout))
        sleep(0.2)
    deadline = clock() + 120
    while clock() < deadline:
        try:
            if not dom.blockJobInfo(target, 0):
                return
        except libvirt.libvirtError:
            return
        sleep(0.1)


def _repoint_definition(conn, dom, entries, saved_xml):
    """Make the persistent definition use the original images again, if it still names an overlay."""
    if dom is None or not dom.isPersistent():
        return
    with libvirt_errors("reading the definition of VM '%s'" % dom.name()):
        text = dom.XMLDesc(_XML_INACTIVE | _XML_SECURE)
    overlays = set(e["overlay"] for e in entries)
    root = _xml.parse(text, "domain XML")
    touched = False
    for node in root.findall("devices/disk"):
        src = node.find("source")
        if src is None or src.get("file") not in overlays:
            continue
        entry = [e for e in entries if e["overlay"] == src.get("file")][0]
        if saved_xml is not None:
            root = _xml.parse(saved_xml, "domain XML")
            touched = True
            break
        src.set("file", entry["base"])
        store = node.find("backingStore")
        if store is not None:
            node.remove(store)
        driver = node.find("driver")
        if driver is not None and entry.get("base_format"):
            driver.set("type", entry["base_format"])
        touched = True
    if touched:
        with libvirt_errors("restoring the definition of VM '%s'" % dom.name()):
            conn.defineXML(_xml.to_string(root, pretty=False))


def _written(qemu, overlay):
    """Bytes the guest wrote into an overlay (1 when that cannot be told: assume something)."""
    try:
        return qemu.data_bytes(overlay, "qcow2", top_only=True)
    except VirtopsError:
        return 1


def merge_overlays(conn, qemu, dom_name, entries, saved_xml=None, sleep=time.sleep, clock=time.monotonic):
    """Merge every temporary overlay of ``entries`` (dicts target, overlay, base, base_format) back
    and delete it: online (active commit + pivot) while the VM runs on it, offline (qemu-img commit)
    when the VM was stopped or removed meanwhile.  Returns the bytes the guest wrote meanwhile.

    Keeps going after a failure and raises one BackendError naming every overlay still in place.
    """
    dom = find_vm(conn, dom_name)
    problems = []
    written = 0
    for entry in entries:
        if entry.get("merged"):
            continue
        try:
            active = dom is not None and bool(dom.isActive())
            if active and _live_source(dom, entry["target"]) == entry["overlay"]:
                active_commit(dom, entry["target"], sleep=sleep, clock=clock)
                written += _written(qemu, entry["overlay"])  # an active commit leaves the overlay as it was
            elif os.path.exists(entry["overlay"]) and not active:
                written += _written(qemu, entry["overlay"])  # qemu-img commit empties it
                qemu.commit(entry["overlay"])
            elif active and os.path.exists(entry["overlay"]):
                raise ConflictError("disk %s of VM '%s' no longer runs on the temporary overlay %s (another snapshot "
                                    "was taken on top of it?): it cannot be merged safely"
                                    % (entry["target"], dom_name, entry["overlay"]))
            if os.path.exists(entry["overlay"]):
                os.unlink(entry["overlay"])
            entry["merged"] = True
        except (VirtopsError, OSError, libvirt.libvirtError) as exc:
            problems.append("disk %s (%s): %s" % (entry["target"], entry["overlay"], exc))
    try:
        _repoint_definition(conn, dom, entries, saved_xml)
    except VirtopsError as exc:
        problems.append("definition: %s" % exc)
    if problems:
        raise BackendError(
            "the temporary snapshot of VM '%s' could not be fully merged back: %s. The VM keeps working on the "
            "overlay; run the export again (it merges leftovers first) or merge each disk with 'virsh blockcommit %s "
            "TARGET --active --shallow --pivot'" % (dom_name, "; ".join(problems), dom_name),
            overlays=[e["overlay"] for e in entries if not e.get("merged")],
        )
    return written
