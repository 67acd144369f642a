# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The migration job: libvirt's flags and parameters, the job run in a thread and followed (and
aborted on ``timeout``) through ``jobStats``, and the volume streams of an offline storage copy.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, translate_libvirt_error
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, OperationTimeoutError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import human_size
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_write import build_volume_xml, volume_stream

MIB = 1024 * 1024
_STREAM_CHUNK = 4 * MIB
#: how long to wait for libvirt to end an aborted migration job
_ABORT_GRACE = 120.0


# --- migration flags and parameters -------------------------------------------------------------


def live_flags(opts, mode, source_persistent, copy):
    """Flags of the peer-to-peer migration of a running VM."""
    flags = flag("VIR_MIGRATE_PEER2PEER") | flag("VIR_MIGRATE_ABORT_ON_ERROR")
    if mode == "live":
        flags |= flag("VIR_MIGRATE_LIVE")
    if opts["persistent"]:
        flags |= flag("VIR_MIGRATE_PERSIST_DEST")
    if opts["undefine_source"] and source_persistent:
        flags |= flag("VIR_MIGRATE_UNDEFINE_SOURCE")
    if copy:
        flags |= flag("VIR_MIGRATE_NON_SHARED_INC" if opts["copy_storage"] == "incremental"
                      else "VIR_MIGRATE_NON_SHARED_DISK")
    if opts["auto_converge"]:
        flags |= flag("VIR_MIGRATE_AUTO_CONVERGE")
    if opts["compressed"]:
        flags |= flag("VIR_MIGRATE_COMPRESSED")
    if opts["tls"]:
        flags |= flag("VIR_MIGRATE_TLS")
    if opts["unsafe"]:
        flags |= flag("VIR_MIGRATE_UNSAFE")
    return flags


def live_params(opts, copy_targets):
    """Typed parameters of the migration: data URI, bandwidth and the disks to copy."""
    params = {}
    if opts["migration_uri"]:
        params[libvirt.VIR_MIGRATE_PARAM_URI] = opts["migration_uri"]
    if opts["bandwidth"]:
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = int(opts["bandwidth"])
    if copy_targets:
        params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = list(copy_targets)
    return params


def offline_flags(opts):
    flags = flag("VIR_MIGRATE_OFFLINE") | flag("VIR_MIGRATE_PERSIST_DEST")
    if opts["undefine_source"]:
        flags |= flag("VIR_MIGRATE_UNDEFINE_SOURCE")
    return flags


# --- the migration job ----------------------------------------------------------------------------

#: job statistics kept in the results (libvirt's names)
_JOB_KEYS = (
    "time_elapsed", "downtime", "setup_time", "data_total", "data_processed", "data_remaining",
    "memory_total", "memory_processed", "memory_remaining", "memory_bps", "memory_dirty_rate",
    "memory_iteration", "disk_total", "disk_processed", "disk_remaining", "disk_bps",
)


def job_view(stats):
    """The interesting part of ``virDomainGetJobStats``' dict."""
    return dict((k, stats[k]) for k in _JOB_KEYS if k in (stats or {}))


def merge_job_stats(last, completed):
    """The statistics of a finished job: libvirt's completed-job numbers, with the disk numbers of the
    last progress report where the completed ones leave them out (libvirt 9.0 reports disk_total 0)."""
    job = job_view(last)
    for key, value in job_view(completed).items():
        if value or not key.startswith("disk_") or key not in job:
            job[key] = value
    return job


def _progress(stats):
    if not stats or not stats.get("data_total"):
        return "no progress reported"
    return "%s of %s transferred, %s remaining" % (
        human_size(stats.get("data_processed", 0)), human_size(stats["data_total"]),
        human_size(stats.get("data_remaining", 0)))


def run_job(dom, start, what, timeout=None, poll=1.0, clock=time.monotonic, grace=_ABORT_GRACE):
    """Run ``start()`` (a blocking libvirt migration call on ``dom``) in a thread.

    The caller's thread follows the job with ``dom.jobStats()`` every ``poll`` seconds and aborts
    it (``dom.abortJob()``) once ``timeout`` seconds have passed.  Returns ``(seconds, last job
    statistics)``; an aborted job raises :class:`OperationTimeoutError`, a failed one the translated
    libvirt error.
    """
    outcome = {}

    def target():
        try:
            outcome["result"] = start()
        except Exception as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="virtops-migrate")
    thread.daemon = True
    began = clock()
    thread.start()
    last = {}
    aborted_at = None
    while True:
        thread.join(poll)
        if not thread.is_alive():
            break
        try:
            stats = dom.jobStats(0)
        except libvirt.libvirtError:
            stats = None
        if stats and stats.get("type"):
            last = stats
        now = clock()
        if timeout and aborted_at is None and now - began > timeout:
            aborted_at = now
            try:
                dom.abortJob()
            except libvirt.libvirtError:
                pass  # the job ended on its own meanwhile; the outcome says how
        if aborted_at is not None and now - aborted_at > grace:
            raise OperationTimeoutError(
                "%s did not finish within %s s and libvirt did not end the job %d s after it was asked to "
                "abort it (%s): check the VM on both hosts" % (what, timeout, grace, _progress(last)),
                job=job_view(last))
    seconds = clock() - began
    error = outcome.get("error")
    if error is None:
        return seconds, last
    if aborted_at is not None:
        raise OperationTimeoutError(
            "%s did not finish within %s s and was aborted (%s); the VM stays on the source"
            % (what, timeout, _progress(last)), job=job_view(last))
    if libvirt is not None and isinstance(error, libvirt.libvirtError):
        raise translate_libvirt_error(error, what)
    raise error


# --- volume streams (offline storage copy) --------------------------------------------------------


def _send_all(stream, data):
    view = memoryview(data)
    while len(view):
        sent = stream.send(view.tobytes())
        if sent is None or sent < 0:
            raise BackendError("libvirt refused the data of a volume upload stream (send returned %r)" % sent)
        view = view[sent:]


def pump(down, up, sparse, chunk=_STREAM_CHUNK):
    """Copy what stream ``down`` receives into stream ``up`` (holes stay holes when ``sparse``).
    Returns the number of data bytes sent."""
    total = 0
    recv_flags = flag("VIR_STREAM_RECV_STOP_AT_HOLE") if sparse else 0
    while True:
        got = down.recvFlags(chunk, recv_flags) if sparse else down.recv(chunk)
        if got == -3:  # a hole starts here
            up.sendHole(down.recvHole(0), 0)
            continue
        if isinstance(got, int):
            raise BackendError("a volume download stream returned %r (it must be blocking)" % got)
        if not got:
            return total
        _send_all(up, got)
        total += len(got)


def copy_volume_data(src_conn, src_vol, dst_conn, dst_vol, fmt):
    """Stream the bytes of ``src_vol`` (on the source) into ``dst_vol`` (on the destination)."""
    sparse = fmt == "raw"
    stream_flag = flag("VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM") if sparse else 0
    upload_flag = flag("VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM") if sparse else 0
    name = src_vol.name()
    with volume_stream(src_conn, "downloading volume %r from the source" % name) as down:
        with volume_stream(dst_conn, "uploading volume %r to the destination" % name) as up:
            src_vol.download(down, 0, 0, stream_flag)
            dst_vol.upload(up, 0, 0, upload_flag)
            return pump(down, up, sparse)


def destination_volume_xml(disk, offline):
    """The ``<volume>`` the module creates on the destination for ``disk`` (a :class:`DiskPlan`).

    For a live migration it is the image libvirt copies into: same format and size, no preallocation
    (libvirt's own pre-creation preallocates qcow2 metadata, which made a 2 GiB image take 2 GiB at
    once), and for ``incremental`` an overlay on the same backing file.  For an offline copy it is the
    file the volume stream then fills as it is: empty for qcow2, sparse at full size for raw.  In a
    pool without image formats (a logical pool) the volume has no ``<format>``.
    """
    if offline:
        full = disk.format == "raw" or not disk.formatted
        xml = build_volume_xml(disk.name, disk.capacity if full else 0, "raw", allocation=0)
    else:
        xml = build_volume_xml(disk.name, disk.capacity, disk.format, allocation=0,
                               backing_path=disk.backing_path, backing_format=disk.backing_format)
    if not disk.formatted:
        target = xml.find("target")
        target.remove(target.find("format"))
    return xml
