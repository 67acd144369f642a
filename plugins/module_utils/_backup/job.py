# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``backup``: libvirt's backup API in push mode, for running VMs.

``virDomainBackupBegin`` with a ``<domainbackup>`` (one qcow2 target file per disk, made beforehand and
reused: ``VIR_DOMAIN_BACKUP_BEGIN_REUSE_EXTERNAL``, so that an incremental target carries its parent's file
as backing file in its header) and a ``<domaincheckpoint>`` (a persistent dirty bitmap per disk, named
``virtops-backup-<point>-<repository tag>``).  ``<incremental>`` names the checkpoint of the parent point (as
its manifest records it): QEMU then copies only the clusters written since.  The point in time is the instant the job starts; with ``quiesce`` the
guest file systems are frozen through the guest agent around that instant only (libvirt 9.0 has no
quiesce flag for backups).  The job is polled until it ends; a failure or an interruption aborts it and
deletes the checkpoint that this run created, so nothing stays attached to the VM.

Checkpoints of a VM can only be deleted while it runs (libvirt: "cannot delete checkpoint for inactive
domain"), and QEMU refuses to revert to an internal snapshot while the disks carry dirty bitmaps ("Device
has active dirty bitmaps").
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, OperationTimeoutError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag

CHECKPOINT_PREFIX = "virtops-backup-"
_REUSE_EXTERNAL = flag("VIR_DOMAIN_BACKUP_BEGIN_REUSE_EXTERNAL", 1)
_STATS_COMPLETED = flag("VIR_DOMAIN_JOB_STATS_COMPLETED", 1)
_JOB_NONE = flag("VIR_DOMAIN_JOB_NONE", 0)
_OPERATION_BACKUP = flag("VIR_DOMAIN_JOB_OPERATION_BACKUP", 9)


def checkpoint_name(point, repository):
    """``virtops-backup-<point>-<8 hex digits of the repository's path>``: checkpoints belong to the VM, points to a
    repository; two repositories with a point of the same name must not share (or collide on) a checkpoint."""
    return "%s%s-%s" % (CHECKPOINT_PREFIX, point, repository_tag(repository))


def repository_tag(repository):
    return hashlib.sha256(os.path.normpath(os.path.abspath(repository)).encode("utf-8")).hexdigest()[:8]


def of_repository(name, repository):
    """Whether checkpoint ``name`` was made by a point of ``repository``."""
    return name.startswith(CHECKPOINT_PREFIX) and name.endswith("-" + repository_tag(repository))


def backup_xml(targets, others, incremental=None):
    """``<domainbackup>`` in push mode: ``targets`` [(disk target, file)], ``others`` the disks left out."""
    root = _xml.element("domainbackup", attrs=dict(mode="push"))
    if incremental:
        _xml.sub(root, "incremental", incremental)
    disks = _xml.sub(root, "disks")
    for target, path in targets:
        disk = _xml.sub(disks, "disk", attrs=dict(name=target, backup="yes", type="file"))
        _xml.sub(disk, "target", attrs=dict(file=path))
        _xml.sub(disk, "driver", attrs=dict(type="qcow2"))
    for target in others:
        _xml.sub(disks, "disk", attrs=dict(name=target, backup="no"))
    return _xml.to_string(root, pretty=False)


def checkpoint_xml(name, targets, others):
    root = _xml.element("domaincheckpoint")
    _xml.sub(root, "name", name)
    _xml.sub(root, "description", "made by virtops.libvirt backup; deleted when a newer point has its own")
    disks = _xml.sub(root, "disks")
    for target in targets:
        _xml.sub(disks, "disk", attrs=dict(name=target, checkpoint="bitmap"))
    for target in others:
        _xml.sub(disks, "disk", attrs=dict(name=target, checkpoint="no"))
    return _xml.to_string(root, pretty=False)


def checkpoint_names(dom):
    """Names of the VM's checkpoints (an empty list where the driver has none)."""
    try:
        return sorted(cp.getName() for cp in dom.listAllCheckpoints(0))
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in (flag("VIR_ERR_NO_SUPPORT", 3), flag("VIR_ERR_OPERATION_UNSUPPORTED", 84)):
            return []
        with libvirt_errors("listing the checkpoints of VM '%s'" % dom.name()):
            raise


def delete_checkpoint(dom, name):
    """Delete checkpoint ``name`` if it is there."""
    try:
        cp = dom.checkpointLookupByName(name, 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == flag("VIR_ERR_NO_DOMAIN_CHECKPOINT", 103):
            return False
        with libvirt_errors("looking up checkpoint %s of VM '%s'" % (name, dom.name())):
            raise
    with libvirt_errors("deleting checkpoint %s of VM '%s'" % (name, dom.name())):
        cp.delete(0)
    return True


def job_active(dom):
    try:
        stats = dom.jobStats(0)
    except libvirt.libvirtError:
        return False
    return stats.get("type", _JOB_NONE) != _JOB_NONE


def abort_job(dom):
    """Abort the VM's running job, if any (the undo of a backup job)."""
    if job_active(dom):
        try:
            dom.abortJob()
        except libvirt.libvirtError:
            pass
        deadline = time.monotonic() + 30
        while job_active(dom) and time.monotonic() < deadline:
            time.sleep(0.2)


def _agent_hint(text):
    low = text.lower()
    if "agent" in low or "freeze" in low:
        return ": quiesce needs qemu-guest-agent running in the guest and an org.qemu.guest_agent.0 channel " \
               "(or set quiesce=false)"
    return ""


def begin(dom, xml, cp_xml, quiesce):
    """Start the push backup (freezing the guest file systems around its start when ``quiesce``)."""
    frozen = False
    if quiesce:
        try:
            dom.fsFreeze(None, 0)
            frozen = True
        except libvirt.libvirtError as exc:
            text = " ".join((exc.get_error_message() or str(exc)).split())
            raise BackendError("freezing the file systems of VM '%s' failed: %s%s" % (dom.name(), text, _agent_hint(text)),
                               libvirt_error_code=exc.get_error_code())
    try:
        with libvirt_errors("starting the backup job of VM '%s'" % dom.name()):
            dom.backupBegin(xml, cp_xml, _REUSE_EXTERNAL)
    finally:
        if frozen:
            try:
                dom.fsThaw(None, 0)
            except libvirt.libvirtError as exc:
                raise BackendError("thawing the file systems of VM '%s' failed: %s" % (dom.name(), exc))


def wait(dom, on_bytes=None, timeout=None, sleep=time.sleep, clock=time.monotonic):
    """Wait for the backup job to end; ``on_bytes(done, total)`` while it runs.  A failed job raises."""
    deadline = None if not timeout else clock() + timeout
    # a small incremental job ends within milliseconds: poll fast first, then every 0.1 s (a query of the job costs
    # about a millisecond; polling every 0.5 s made a 3 s full point wait 0.25 s more on average)
    delay = 0.02
    while True:
        try:
            stats = dom.jobStats(0)
        except libvirt.libvirtError as exc:
            raise BackendError("reading the backup job of VM '%s' failed: %s" % (dom.name(), exc))
        if stats.get("type", _JOB_NONE) == _JOB_NONE:
            break
        if on_bytes is not None:
            done = stats.get("disk_processed", stats.get("data_processed"))
            total = stats.get("disk_total", stats.get("data_total"))
            if done is not None and total:
                on_bytes(int(done), int(total))
        if deadline is not None and clock() > deadline:
            raise OperationTimeoutError("the backup job of VM '%s' did not end within %s s" % (dom.name(), timeout))
        sleep(delay)
        delay = min(delay * 2, 0.1)
    with libvirt_errors("reading the finished backup job of VM '%s'" % dom.name()):
        done = dom.jobStats(_STATS_COMPLETED)
    if done.get("operation") not in (None, _OPERATION_BACKUP):
        raise BackendError("the backup job of VM '%s' vanished (the last job libvirt reports is another one)" % dom.name())
    failed = done.get("type") in (flag("VIR_DOMAIN_JOB_FAILED", 4), flag("VIR_DOMAIN_JOB_CANCELLED", 5))
    if failed or not done.get("success", True) or done.get("errmsg"):
        raise BackendError("the backup job of VM '%s' failed: %s" % (dom.name(), done.get("errmsg") or "no message"))
    return done
