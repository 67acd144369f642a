# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Moving a VM to another hypervisor (the ``migrate`` module).

The module holds two connections: the source (``uri``, opened by the runner) and the destination
(``dest_uri``, opened here).  One run:

1. checks that the two URIs are two hypervisors (host UUIDs), finds the VM on both and decides
   (:func:`decide`): nothing to do (the VM is already on the destination), a live migration of a
   running VM (peer to peer: the source libvirtd talks to ``peer_uri``), an offline move of a
   stopped one, or the removal of a stale source definition;
2. runs the pre-checks against the destination before anything moves (:class:`Prechecks`): guest
   arch, virt type, machine type and emulator, CPU model, memory, snapshots and saved state,
   networks, and every disk: present on the destination, or (``copy_storage``) copyable there;
3. plans the side effects, each with its undo: the destination volumes a storage copy needs are
   created by the module (and removed again if the migration fails), the maximum downtime is set
   (and restored), the live migration runs in a thread while the main thread follows the job
   (``jobStats``) and aborts it (``abortJob``) when ``timeout`` passes.

A stopped VM moves as its definition (libvirt's offline migration, driven over the module's own
two connections); its disks, when ``copy_storage`` asks for it, are copied through libvirt volume
streams first, since libvirt's offline migration does not copy storage.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import threading
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import (
    Connection,
    check_uri,
    libvirt,
    libvirt_errors,
    translate_libvirt_error,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.defined import lookup_or_none
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import ABSENT, DifferenceTracker
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.model import validate_name
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    ConnectionFailedError,
    InvalidInputError,
    NotFoundError,
    OperationTimeoutError,
    VirtopsError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._host.capabilities import guest_facts, memory_facts
from ansible_collections.virtops.libvirt.plugins.module_utils._host.facts import DOMAIN_STATES
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Resource, reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import human_size
from ansible_collections.virtops.libvirt.plugins.module_utils._core.timeouts import timeout_seconds
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume import (
    build_volume_xml,
    lookup_volume,
    parse_volume_xml,
    pool_target_path,
    refresh_pool,
    retry_busy,
    volume_path,
    volume_stream,
)

COPY_STORAGE = ("none", "all", "incremental")
MIB = 1024 * 1024

#: formats the module can pre-create on the destination for a storage copy
_COPY_FORMATS = ("qcow2", "raw")
#: pool types whose volumes carry an image format (elsewhere a volume is a raw block device)
_FORMATTED_POOLS = ("dir", "fs", "netfs")
_STREAM_CHUNK = 4 * MIB
#: how long to wait for libvirt to end an aborted migration job
_ABORT_GRACE = 120.0
_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def _flag(name, default=0):
    return getattr(libvirt, name, default) if libvirt is not None else default


# --- parameters ---------------------------------------------------------------------------------


def _non_negative(params, key, minimum):
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError("%s: must be an integer of at least %d, got %r" % (key, minimum, value))
    return value


def normalize(params):
    """The module parameters checked and completed (``peer_uri`` defaults to ``dest_uri``)."""
    validate_name(params.get("name"))
    uri = params.get("uri") or "qemu:///system"
    dest_uri = (params.get("dest_uri") or "").strip()
    if not dest_uri:
        raise InvalidInputError("dest_uri: the destination hypervisor's URI is required")
    if dest_uri == uri:
        raise InvalidInputError("dest_uri: %r is the source URI (uri) itself; name another hypervisor" % dest_uri)
    check_uri(dest_uri, "dest_uri")
    if (params.get("peer_uri") or "").strip():
        check_uri(params["peer_uri"].strip(), "peer_uri")
    copy_storage = params.get("copy_storage") or "none"
    if copy_storage not in COPY_STORAGE:
        raise InvalidInputError("copy_storage: %r is not one of %s" % (copy_storage, ", ".join(COPY_STORAGE)))
    migration_uri = params.get("migration_uri")
    if migration_uri is not None and not _SCHEME_RE.match(migration_uri.strip()):
        raise InvalidInputError("migration_uri: %r is not a URI such as tcp://10.0.0.12 or tcp://kvm2:49152"
                                % migration_uri)
    undefine_source = params.get("undefine_source", True) is not False
    remove_source_storage = bool(params.get("remove_source_storage"))
    if remove_source_storage and not undefine_source:
        raise InvalidInputError("remove_source_storage: the source keeps the VM's definition (undefine_source: "
                                "false), so its disks must stay too")
    if remove_source_storage and copy_storage == "none":
        raise InvalidInputError("remove_source_storage: only disks copied by copy_storage are removed; "
                                "with copy_storage: none the destination uses the same disks")
    return dict(
        name=params["name"],
        uri=uri,
        dest_uri=dest_uri,
        peer_uri=(params.get("peer_uri") or "").strip() or dest_uri,
        migration_uri=migration_uri.strip() if migration_uri else None,
        live=params.get("live", True) is not False,
        copy_storage=copy_storage,
        remove_source_storage=remove_source_storage,
        bandwidth=_non_negative(params, "bandwidth", 1),
        max_downtime=_non_negative(params, "max_downtime", 1),
        timeout=timeout_seconds(params.get("timeout"), "timeout"),
        auto_converge=bool(params.get("auto_converge")),
        compressed=bool(params.get("compressed")),
        tls=bool(params.get("tls")),
        unsafe=bool(params.get("unsafe")),
        persistent=params.get("persistent", True) is not False,
        undefine_source=undefine_source,
        reserve_memory=_non_negative(params, "reserve_memory", 0) or 0,
    )


# --- where the VM is, and what to do ------------------------------------------------------------


def find_domain(conn, name, where):
    return lookup_or_none(conn.lookupByName, name, libvirt.VIR_ERR_NO_DOMAIN, "VM on the %s" % where)


def summary(dom):
    """``dict(uuid, state, active, persistent)`` of a domain, or None."""
    if dom is None:
        return None
    with libvirt_errors("reading VM '%s'" % dom.name()):
        state = DOMAIN_STATES.get(dom.state()[0], "nostate")
        return dict(
            uuid=dom.UUIDString(),
            state={"shutoff": "stopped", "blocked": "running"}.get(state, state),
            active=bool(dom.isActive()),
            persistent=bool(dom.isPersistent()),
        )


class Decision:
    """What a run does: ``action`` is ``none``, ``migrate`` or ``undefine_source``."""

    __slots__ = ("action", "mode", "reason")

    def __init__(self, action, mode=None, reason=None):
        self.action = action
        self.mode = mode
        self.reason = reason

    def __repr__(self):
        return "Decision(%r, %r, %r)" % (self.action, self.mode, self.reason)


def decide(name, src, dst, opts):
    """The action for a VM found as ``src`` on the source and ``dst`` on the destination
    (:func:`summary` dicts or None).  Raises when the state is one the module must not touch."""
    if src is None and dst is None:
        raise NotFoundError("VM '%s' exists neither on the source (%s) nor on the destination (%s)"
                            % (name, opts["uri"], opts["dest_uri"]))
    if src is None:
        return Decision("none", reason="VM '%s' is already on the destination" % name)
    if dst is not None and dst["uuid"] != src["uuid"]:
        raise ConflictError("name clash: the destination has another VM named '%s' (UUID %s; the source's is %s): "
                            "rename or remove one of them" % (name, dst["uuid"], src["uuid"]))
    if dst is None:
        if src["active"]:
            return Decision("migrate", mode="live" if opts["live"] else "paused")
        if not opts["persistent"]:
            raise InvalidInputError("persistent: VM '%s' is stopped, and a stopped VM moves as its persistent "
                                    "definition; persistent: false needs a running VM" % name)
        return Decision("migrate", mode="offline")
    # the same VM (same UUID) on both hosts
    if src["active"] and dst["active"]:
        raise ConflictError("VM '%s' (UUID %s) is running on both the source and the destination: stop one of "
                            "them by hand" % (name, src["uuid"]))
    if src["active"]:
        # a stale definition on the destination: libvirt replaces it with the incoming VM
        return Decision("migrate", mode="live" if opts["live"] else "paused",
                        reason="the destination's stopped definition of VM '%s' is replaced" % name)
    if dst["active"]:
        if opts["undefine_source"] and src["persistent"]:
            return Decision("undefine_source", reason="VM '%s' runs on the destination; its stopped definition is "
                                                      "left on the source" % name)
        return Decision("none", reason="VM '%s' runs on the destination" % name)
    if opts["undefine_source"]:
        raise ConflictError("VM '%s' (UUID %s) is defined and stopped on both the source and the destination, so "
                            "which copy is current is unknown: undefine one of them, or set undefine_source: false "
                            "to keep both" % (name, src["uuid"]))
    return Decision("none", reason="VM '%s' is defined on both hosts (undefine_source: false)" % name)


# --- domain XML: what the pre-checks look at ----------------------------------------------------


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


def domain_networks(root):
    """``[(mac, network name)]`` of the interfaces attached to libvirt networks."""
    return [(_xml.find_attr(nic, "mac", "address"), _xml.find_attr(nic, "source", "network"))
            for nic in root.findall("devices/interface") if nic.get("type") == "network"]


def guest_platform(root):
    """``dict(virt_type, arch, machine, emulator)`` of a domain definition."""
    return dict(
        virt_type=root.get("type"),
        arch=_xml.find_attr(root, "os/type", "arch"),
        machine=_xml.find_attr(root, "os/type", "machine"),
        emulator=_xml.find_text(root, "devices/emulator"),
    )


def _message(exc):
    return " ".join(str(exc.get_error_message() or exc).split())


def _mib(num_bytes):
    return "%d MiB" % (int(num_bytes) // MIB)


def _norm_dir(path):
    return os.path.normpath(path) if path else path


# --- migration flags and parameters -------------------------------------------------------------


def live_flags(opts, mode, source_persistent, copy):
    """Flags of the peer-to-peer migration of a running VM."""
    flags = _flag("VIR_MIGRATE_PEER2PEER") | _flag("VIR_MIGRATE_ABORT_ON_ERROR")
    if mode == "live":
        flags |= _flag("VIR_MIGRATE_LIVE")
    if opts["persistent"]:
        flags |= _flag("VIR_MIGRATE_PERSIST_DEST")
    if opts["undefine_source"] and source_persistent:
        flags |= _flag("VIR_MIGRATE_UNDEFINE_SOURCE")
    if copy:
        flags |= _flag("VIR_MIGRATE_NON_SHARED_INC" if opts["copy_storage"] == "incremental"
                       else "VIR_MIGRATE_NON_SHARED_DISK")
    if opts["auto_converge"]:
        flags |= _flag("VIR_MIGRATE_AUTO_CONVERGE")
    if opts["compressed"]:
        flags |= _flag("VIR_MIGRATE_COMPRESSED")
    if opts["tls"]:
        flags |= _flag("VIR_MIGRATE_TLS")
    if opts["unsafe"]:
        flags |= _flag("VIR_MIGRATE_UNSAFE")
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
    flags = _flag("VIR_MIGRATE_OFFLINE") | _flag("VIR_MIGRATE_PERSIST_DEST")
    if opts["undefine_source"]:
        flags |= _flag("VIR_MIGRATE_UNDEFINE_SOURCE")
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
    recv_flags = _flag("VIR_STREAM_RECV_STOP_AT_HOLE") if sparse else 0
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
    stream_flag = _flag("VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM") if sparse else 0
    upload_flag = _flag("VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM") if sparse else 0
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


# --- pre-checks -----------------------------------------------------------------------------------


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


class Prechecks:
    """The checks against the destination, run before anything moves (in check mode too).

    Each check fills ``checks[name]`` with what it found or raises with a message that names the
    check; ``warnings`` collects what could not be verified.
    """

    def __init__(self, src, dst, dom, opts, mode):
        self.src = src
        self.dst = dst
        self.dom = dom
        self.opts = opts
        self.mode = mode
        self.live = mode != "offline"
        self.name = opts["name"]
        self.checks = {}
        self.warnings = []
        self.disks = []
        self._dst_pools = None
        #: what a check does with something an earlier task may create: raise it (check mode: Context.assume)
        self.assume = _raise
        flags = _flag("VIR_DOMAIN_XML_MIGRATABLE") | _flag("VIR_DOMAIN_XML_SECURE")
        if not self.live:
            flags |= _flag("VIR_DOMAIN_XML_INACTIVE")
        with libvirt_errors("reading the definition of VM '%s'" % self.name):
            self.root = _xml.parse(dom.XMLDesc(flags), "domain XML")
            self.info = dom.info()
            # the CPU the running guest really has (the migratable XML can carry a bare default model
            # that libvirt itself does not hold against the destination)
            live_cpu = _xml.parse(dom.XMLDesc(0), "domain XML").find("cpu") if self.live else None
        self.cpu = live_cpu if live_cpu is not None else self.root.find("cpu")

    def run(self, src_caps, dst_caps):
        self.check_platform(dst_caps)
        self.check_cpu(src_caps)
        self.check_memory()
        self.check_state()
        self.check_networks()
        self.check_disks()
        return self.checks

    # --- platform and CPU -------------------------------------------------------------------

    def check_platform(self, dst_caps):
        plat = guest_platform(self.root)
        arches, machines = guest_facts(dst_caps)
        arch, virt_type, machine = plat["arch"], plat["virt_type"], plat["machine"]
        if arch not in arches:
            raise ConflictError("arch: the destination cannot run %s guests (it runs %s)"
                                % (arch, ", ".join(sorted(arches)) or "none"))
        if virt_type not in arches[arch]:
            raise ConflictError("arch: the destination offers virt types %s for %s guests, not %s (the VM's)"
                                % (", ".join(arches[arch]) or "none", arch, virt_type))
        if machine and machines.get(arch) and machine not in machines[arch]:
            raise ConflictError("arch: the destination's QEMU has no machine type %s (the VM's); it has %s"
                                % (machine, ", ".join(machines[arch])))
        if plat["emulator"]:
            try:
                self.dst.getDomainCapabilities(plat["emulator"], arch, machine, virt_type, 0)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise ConflictError("arch: the destination cannot run the VM's emulator %s for %s/%s/%s: %s"
                                        % (plat["emulator"], arch, virt_type, machine,
                                           _message(exc)))
        self.checks["arch"] = "%s guest, virt type %s, machine %s: offered by the destination" % (
            arch, virt_type, machine or "default")

    def _compare(self, call, what):
        flag = _flag("VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE")
        try:
            result = call(flag)
        except libvirt.libvirtError as exc:
            code = exc.get_error_code()
            if code == libvirt.VIR_ERR_NO_SUPPORT:
                self.warnings.append("cpu: the destination's libvirt cannot compare CPUs; %s not checked" % what)
                return "not checked (the destination's libvirt cannot compare CPUs)"
            message = _message(exc)
            if code == _flag("VIR_ERR_CPU_INCOMPATIBLE", -1):
                raise ConflictError("cpu: the destination cannot give VM '%s' %s: %s" % (self.name, what, message))
            raise translate_libvirt_error(exc, "cpu: comparing %s with the destination's" % what)
        if result == _flag("VIR_CPU_COMPARE_INCOMPATIBLE", 0):
            raise ConflictError("cpu: the destination cannot give VM '%s' %s" % (self.name, what))
        return "compatible"

    def check_cpu(self, src_caps):
        cpu = self.cpu
        mode = cpu.get("mode", "custom") if cpu is not None else None
        plat = guest_platform(self.root)
        if cpu is None or (mode == "custom" and cpu.find("model") is None):
            self.checks["cpu"] = "not checked: the VM names no CPU model (the hypervisor's default)"
            return
        if mode == "custom":
            model = _xml.find_text(cpu, "model")
            text = _xml.to_string(cpu, pretty=False)
            verdict = self._compare(
                lambda flag: self.dst.compareHypervisorCPU(plat["emulator"], plat["arch"], plat["machine"],
                                                           plat["virt_type"], text, flag),
                "its CPU model %s" % model)
            self.checks["cpu"] = "%s: CPU model %s" % (verdict, model)
            return
        if mode == "host-model":  # only in an inactive definition: expanded when the VM starts
            self.checks["cpu"] = "not checked: host-model is worked out on the destination when the VM starts"
            return
        if not self.live or plat["virt_type"] != "kvm":
            self.checks["cpu"] = "not checked: %s CPU of a %s VM" % (mode, "stopped" if not self.live else "TCG")
            return
        host_cpu = src_caps.find("host/cpu")
        text = _xml.to_string(host_cpu, pretty=False)
        verdict = self._compare(lambda flag: self.dst.compareCPU(text, flag),
                                "the source host's CPU (%s, mode %s)" % (_xml.find_text(host_cpu, "model"), mode))
        self.checks["cpu"] = "%s: %s, the source host's CPU %s" % (verdict, mode, _xml.find_text(host_cpu, "model"))

    # --- memory and state -------------------------------------------------------------------

    def check_memory(self):
        with libvirt_errors("reading the destination's memory"):
            facts = memory_facts(self.dst, self.dst.getInfo())
        reserve = self.opts["reserve_memory"] * MIB
        if self.live:
            need = int(self.info[2]) * 1024
            have = facts["available"]
            if need + reserve > have:
                raise ConflictError(
                    "memory: VM '%s' uses %s%s, but the destination has only %s available"
                    % (self.name, _mib(need), " plus reserve_memory %s" % _mib(reserve) if reserve else "",
                       _mib(have)))
            self.checks["memory"] = "%s needed%s, %s available on the destination" % (
                _mib(need), " + %s reserve" % _mib(reserve) if reserve else "", _mib(have))
            return
        need = int(self.info[1]) * 1024
        if need + reserve > facts["total"]:
            raise ConflictError(
                "memory: VM '%s' is defined with %s%s, more than the destination's %s in total: it could never "
                "start there" % (self.name, _mib(need), " plus reserve_memory %s" % _mib(reserve) if reserve else "",
                                 _mib(facts["total"])))
        self.checks["memory"] = "%s defined%s, %s in total on the destination (a stopped VM uses none yet)" % (
            _mib(need), " + %s reserve" % _mib(reserve) if reserve else "", _mib(facts["total"]))

    def check_state(self):
        with libvirt_errors("reading the snapshots of VM '%s'" % self.name):
            snapshots = self.dom.snapshotNum(0)
            saved = bool(self.dom.hasManagedSaveImage(0)) if not self.live else False
        if snapshots:
            raise ConflictError("snapshots: VM '%s' has %d snapshot(s); libvirt does not migrate them (their metadata "
                                "stays behind): delete or export them first" % (self.name, snapshots))
        if saved:
            raise ConflictError("state: VM '%s' has a saved state (managed save) on the source that would be lost: "
                                "start it, or remove the saved state, first" % self.name)

    def check_networks(self):
        found = []
        for mac, network in domain_networks(self.root):
            if not network:
                continue
            net = lookup_or_none(self.dst.networkLookupByName, network, libvirt.VIR_ERR_NO_NETWORK,
                                 "network on the destination")
            if net is None:
                self.assume(ConflictError("networks: the destination has no network '%s' (interface %s of VM '%s')"
                                          % (network, mac, self.name)))
            elif self.live:
                with libvirt_errors("reading network '%s' on the destination" % network):
                    active = net.isActive()
                if not active:
                    self.assume(ConflictError("networks: network '%s' (interface %s) is not active on the destination"
                                              % (network, mac)))
            found.append(network)
        self.checks["networks"] = ("present on the destination: %s" % ", ".join(sorted(set(found)))
                                   if found else "no libvirt network interfaces")

    # --- disks ------------------------------------------------------------------------------

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


# --- the resource -----------------------------------------------------------------------------


def _raise(error):
    raise error


def _host_uuid(caps):
    return _xml.find_text(caps, "host/uuid")


class MigrationResource(Resource):
    """The VM's location: on the source (``uri``) or on the destination (``dest_uri``)."""

    kind = "VM"

    def __init__(self, ctx, dest_conn):
        super(MigrationResource, self).__init__(ctx)
        self.opts = normalize(ctx.params)
        self.src = ctx.conn
        self.dst = dest_conn
        self.decision = None
        self.checks = {}
        self.prechecks = None
        self.duration = 0.0
        self.job = {}
        self.created = []
        self._old_downtime = None
        self._began = None
        self._src_dom = None
        self._dst_dom = None

    # --- read / desired / compare -----------------------------------------------------------

    def _caps(self, conn, where):
        with libvirt_errors("reading the capabilities of the %s" % where):
            return _xml.parse(conn.getCapabilities(), "host capabilities")

    def read(self):
        self.src_caps = self._caps(self.src, "source")
        self.dst_caps = self._caps(self.dst, "destination")
        src_uuid, dst_uuid = _host_uuid(self.src_caps), _host_uuid(self.dst_caps)
        if src_uuid and src_uuid == dst_uuid:
            raise InvalidInputError("dest_uri: %s and %s are the same hypervisor (host UUID %s)"
                                    % (self.opts["uri"], self.opts["dest_uri"], src_uuid))
        self._src_dom = find_domain(self.src, self.name, "source")
        self._dst_dom = find_domain(self.dst, self.name, "destination")
        return dict(source=summary(self._src_dom), destination=summary(self._dst_dom))

    def desired(self, current):
        return dict(host="destination")

    def compare(self, current, desired):
        try:
            self.decision = decide(self.name, current["source"], current["destination"], self.opts)
        except NotFoundError as exc:  # on neither host: in check mode an earlier task may create it
            self.ctx.assume(exc)
            self.decision = Decision("migrate", reason="assumed")
        tracker = DifferenceTracker()
        if self.decision.action != "none":
            before, after = self._views(current)
            tracker.add(("source",), before["source"], after["source"])
            tracker.add(("destination",), before["destination"], after["destination"])
        return tracker

    def _views(self, current):
        def word(entry):
            return ABSENT if entry is None else entry["state"]

        before = dict(source=word(current["source"]), destination=word(current["destination"]))
        predicted = self.predict(current, None)
        return before, dict(source=word(predicted["source"]), destination=word(predicted["destination"]))

    def predict(self, current, desired):
        src, dst = current["source"], current["destination"]
        if self.decision is None or self.decision.action == "none":
            return current
        if self.decision.action == "undefine_source":
            return dict(source=None, destination=dst)
        if src is None:  # assumed (check mode): an earlier task creates the VM
            return dict(source=None, destination=dict(uuid=None, state="migrated", active=None,
                                                      persistent=self.opts["persistent"]))
        moved = dict(src)
        moved["persistent"] = self.opts["persistent"] or not src["active"]
        left = None
        if not self.opts["undefine_source"] and src["persistent"]:
            left = dict(src, state="stopped", active=False)
        return dict(source=left, destination=moved)

    def diff_views(self, current, desired):
        return self._views(current)

    # --- plan -------------------------------------------------------------------------------

    def plan(self, current, desired, diff, plan):
        decision = self.decision
        if decision.action == "none":
            return
        if decision.action == "undefine_source":
            plan.add("undefine the stopped definition of VM '%s' left on the source (it runs on the destination)"
                     % self.name, self._undefine_stale)
            return
        if self._src_dom is None:  # assumed (check mode)
            plan.add("migrate VM '%s' %s" % (self.name, self._where()))
            return
        checks = Prechecks(self.src, self.dst, self._src_dom, self.opts, decision.mode)
        checks.assume = self.ctx.assume
        self.prechecks = checks
        self.checks = checks.run(self.src_caps, self.dst_caps)
        for text in checks.warnings:
            plan.warn(text)
        if decision.reason:
            plan.warn(decision.reason)
        if decision.mode == "offline":
            self._plan_offline(checks, plan)
        else:
            self._plan_live(checks, current["source"], plan)
        if self.opts["remove_source_storage"]:
            for disk in checks.disks:
                if disk.action == "copy":
                    plan.add("delete the copied disk %s (%s) from the source" % (disk.target, disk.path),
                             self._remove_source(disk))

    def _where(self):
        return "from %s to %s" % (self.opts["uri"], self.opts["dest_uri"])

    def _plan_live(self, checks, source, plan):
        copies = [d for d in checks.disks if d.action == "copy"]
        for disk in copies:
            plan.add("create %s on the destination for the copy of disk %s (pool %s, %s, %d bytes%s)"
                     % (disk.path, disk.target, disk.pool_name, disk.format or "raw", disk.capacity or 0,
                        ", backing file %s" % disk.backing_path if disk.backing_path else ""),
                     self._create_volume(disk), self._delete_created(disk))
        if self.opts["max_downtime"]:
            plan.add("set the maximum downtime of VM '%s' to %d ms" % (self.name, self.opts["max_downtime"]),
                     self._set_downtime, self._restore_downtime)
        what = "live-migrate" if self.decision.mode == "live" else "migrate (paused while its memory is copied)"
        storage = " with copy_storage: %s" % self.opts["copy_storage"] if copies else ""
        plan.add("%s VM '%s' %s%s, peer to peer via %s" % (what, self.name, self._where(), storage,
                                                           self.opts["peer_uri"]),
                 self._migrate_live(source, [d.target for d in copies]))

    def _plan_offline(self, checks, plan):
        for disk in checks.disks:
            plan.add("copy %s (disk %s%s) to the destination (pool %s, %s, %d bytes)"
                     % (disk.path, disk.target, ", backing file" if disk.action == "copy-backing" else "",
                        disk.pool_name, disk.format or "raw", disk.allocation or 0),
                     self._copy_offline(disk), self._delete_created(disk))
        plan.add("move the definition of the stopped VM '%s' %s%s" % (
            self.name, self._where(), "" if self.opts["undefine_source"] else " (the source keeps it too)"),
            self._migrate_offline)

    # --- actions ----------------------------------------------------------------------------

    def _create_volume(self, disk, offline=False):
        """A plan action creating the destination volume of ``disk`` (see :func:`destination_volume_xml`)."""
        text = _xml.to_string(destination_volume_xml(disk, offline), pretty=False)

        def create():
            self._start_clock()
            vol = retry_busy(lambda: disk.pool.createXML(text, 0),
                             "creating %s on the destination (pool %s)" % (disk.path, disk.pool_name))
            self.created.append((disk, vol))
            return vol

        return create

    def _delete_created(self, disk):
        def delete():
            for index, (made, vol) in enumerate(self.created):
                if made is disk:
                    break
            else:
                return
            if find_domain(self.dst, self.name, "destination") is not None:
                raise ConflictError("%s was left on the destination: VM '%s' is there and may use it"
                                    % (disk.path, self.name))
            retry_busy(lambda: vol.delete(0), "deleting %s from the destination" % disk.path)
            del self.created[index]

        return delete

    def _copy_offline(self, disk):
        create = self._create_volume(disk, offline=True)
        delete = self._delete_created(disk)

        def copy():
            vol = create()
            try:
                copy_volume_data(self.src, disk.source_vol, self.dst, vol, disk.format or "raw")
                refresh_pool(disk.pool)
            except Exception:
                try:  # this step's own half-made volume: the plan's rollback undoes only finished steps
                    delete()
                except Exception as exc:
                    self.ctx.warn("the half-copied %s stays on the destination: %s" % (disk.path, exc))
                raise

        return copy

    def _start_clock(self):
        """Called by the first side effect: ``duration`` covers storage copies and the migration."""
        if self._began is None:
            self._began = time.monotonic()

    def _stop_clock(self):
        self.duration = time.monotonic() - self._began

    def _set_downtime(self):
        self._start_clock()
        with libvirt_errors("setting the maximum downtime of VM '%s'" % self.name):
            try:
                self._old_downtime = self._src_dom.migrateGetMaxDowntime(0)
            except (libvirt.libvirtError, AttributeError):
                self._old_downtime = None
            self._src_dom.migrateSetMaxDowntime(int(self.opts["max_downtime"]), 0)

    def _restore_downtime(self):
        if self._old_downtime:
            with libvirt_errors("restoring the maximum downtime of VM '%s'" % self.name):
                self._src_dom.migrateSetMaxDowntime(int(self._old_downtime), 0)

    def _migrate_live(self, source, copy_targets):
        def migrate():
            flags = live_flags(self.opts, self.decision.mode, source["persistent"], bool(copy_targets))
            params = live_params(self.opts, copy_targets)
            dom = self._src_dom
            what = "migrating VM '%s' %s, peer to peer via %s" % (self.name, self._where(), self.opts["peer_uri"])
            self._start_clock()
            try:
                _seconds, last = run_job(dom, lambda: dom.migrateToURI3(self.opts["peer_uri"], params, flags),
                                         what, timeout=self.opts["timeout"])
            except VirtopsError as exc:
                if exc.details.get("libvirt_error_code") == _flag("VIR_ERR_MIGRATE_UNSAFE", -1):
                    raise ConflictError(
                        "%s: libvirt refuses: %s. It calls a disk shared only on a network or cluster file "
                        "system; if both hosts really use the same file, set unsafe: true, otherwise use "
                        "copy_storage: all" % (what, exc.msg.split(": ")[-1]), **exc.details)
                raise
            self._stop_clock()
            completed = {}
            moved = find_domain(self.dst, self.name, "destination")
            if moved is not None:
                try:
                    completed = moved.jobStats(_flag("VIR_DOMAIN_JOB_STATS_COMPLETED"))
                except libvirt.libvirtError:
                    pass
            self.job = merge_job_stats(last, completed)

        return migrate

    def _migrate_offline(self):
        self._start_clock()
        with libvirt_errors("moving the definition of VM '%s' %s" % (self.name, self._where())):
            self._src_dom.migrate3(self.dst, {}, offline_flags(self.opts))
        self._stop_clock()

    def _undefine_stale(self):
        flags = _flag("VIR_DOMAIN_UNDEFINE_KEEP_NVRAM")
        with libvirt_errors("undefining the stale definition of VM '%s' on the source" % self.name):
            try:
                self._src_dom.undefineFlags(flags)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise
                self._src_dom.undefine()

    def _remove_source(self, disk):
        def remove():
            vol = disk.source_vol
            try:
                if vol is None:
                    vol = self.src.storageVolLookupByPath(disk.path)
                vol.delete(0)
            except libvirt.libvirtError as exc:
                self.ctx.warn("the copied disk %s stays on the source: deleting it failed: %s"
                              % (disk.path, _message(exc)))

        return remove

    # --- result -----------------------------------------------------------------------------

    def refresh(self):
        return dict(source=summary(find_domain(self.src, self.name, "source")),
                    destination=summary(find_domain(self.dst, self.name, "destination")))

    def result(self, state, outcome):
        decision = self.decision
        mode = decision.mode if decision is not None and decision.action == "migrate" else None
        dest = state["destination"] if state else None
        return dict(
            name=self.name,
            source=self.opts["uri"],
            destination=self.opts["dest_uri"],
            mode=mode,
            duration=round(self.duration, 3),
            checks=self.checks,
            storage=[d.view() for d in self.prechecks.disks] if self.prechecks is not None else [],
            job=self.job,
            vm=dict(host="destination" if dest else ("source" if state and state["source"] else None),
                    state=(dest or (state or {}).get("source") or {}).get("state"),
                    persistent=(dest or {}).get("persistent")),
        )


def run_migration(ctx):
    """The ``migrate`` module: the source connection is ``ctx.conn``; the destination is opened here."""
    opts = normalize(ctx.params)
    try:
        dest = Connection(opts["dest_uri"])
        conn = dest.open()
    except ConnectionFailedError as exc:
        raise ConnectionFailedError("dest_uri: the destination hypervisor is not reachable: %s"
                                    % exc.msg.replace("point 'uri' at", "point 'dest_uri' at"), **exc.details)
    try:
        return reconcile(MigrationResource(ctx, conn), check_mode=ctx.check_mode, want_diff=ctx.diff)
    finally:
        dest.close()
