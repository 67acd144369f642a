# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The migrate module's logic: parameters, the decision table, what is read from domain XML, the
migration flags, the job follower (timeout and abort), the volume stream pump, the CPU and memory
pre-checks, and whole runs against libvirt's test driver.

What cannot be tested here, and why: libvirt's test driver migrates nothing (no peer-to-peer, no
offline migration), reports no host UUID, and implements neither CPU comparison nor node memory
statistics nor job statistics; its ``getFreeMemory`` is 0.  So the CPU and memory pre-checks and the
job follower run against small stand-ins that record the calls libvirt would get, and the test
driver serves the parts it really implements: finding the VM on two hypervisors (two private test
driver instances, from two node files), the decision, the offline pre-checks, check mode and diff.
Real migrations, storage copies and undo are tested by the lab integration target ``migrate``.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import subprocess
import threading

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtops.libvirt.plugins.module_utils._migrate import decide as _decide
from ansible_collections.virtops.libvirt.plugins.module_utils._migrate import disks as _disks
from ansible_collections.virtops.libvirt.plugins.module_utils._migrate import job as _job
from ansible_collections.virtops.libvirt.plugins.module_utils._migrate import prechecks as _prechecks
from ansible_collections.virtops.libvirt.plugins.module_utils._migrate import resource as _resource

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection, libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    ConnectionFailedError,
    InvalidInputError,
    NotFoundError,
    OperationTimeoutError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.modules.migrate import ARGUMENT_SPEC

SRC_URI = "qemu+ssh://kvm1/system"
DST_URI = "qemu+ssh://kvm2/system"


def module_params(**given):
    given.setdefault("name", "web1")
    given.setdefault("dest_uri", DST_URI)
    result = ArgumentSpecValidator(ARGUMENT_SPEC).validate(given)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def opts(**given):
    given.setdefault("uri", SRC_URI)
    return _decide.normalize(module_params(**given))


# --- parameters -----------------------------------------------------------------------------------


def test_defaults():
    o = opts()
    assert o["peer_uri"] == DST_URI
    assert o["live"] is True and o["persistent"] is True and o["undefine_source"] is True
    assert o["copy_storage"] == "none" and o["reserve_memory"] == 0
    assert o["bandwidth"] is None and o["timeout"] is None and o["migration_uri"] is None


def test_peer_and_migration_uri_kept():
    o = opts(peer_uri="qemu+tcp://10.0.0.12/system", migration_uri=" tcp://10.0.0.12 ")
    assert o["peer_uri"] == "qemu+tcp://10.0.0.12/system"
    assert o["migration_uri"] == "tcp://10.0.0.12"


@pytest.mark.parametrize("given, message", [
    (dict(dest_uri=SRC_URI), "is the source URI"),
    (dict(dest_uri="  "), "dest_uri: the destination hypervisor's URI is required"),
    (dict(name="bad/name"), "VM"),
    (dict(migration_uri="10.0.0.12"), "migration_uri: '10.0.0.12' is not a URI"),
    (dict(bandwidth=0), "bandwidth: must be an integer of at least 1"),
    (dict(max_downtime=-5), "max_downtime: must be an integer of at least 1"),
    (dict(timeout=0), "timeout: must be a positive number of seconds, got 0"),
    (dict(dest_uri="xen:///system"), "dest_uri: 'xen:///system' is a URI of libvirt's 'xen' driver"),
    (dict(peer_uri="vbox:///session"), "peer_uri: 'vbox:///session' is a URI of libvirt's 'vbox' driver"),
    (dict(reserve_memory=-1), "reserve_memory: must be an integer of at least 0"),
    (dict(remove_source_storage=True, copy_storage="all", undefine_source=False),
     "remove_source_storage: the source keeps the VM's definition"),
    (dict(remove_source_storage=True), "only disks copied by copy_storage are removed"),
])
def test_bad_parameters(given, message):
    with pytest.raises(InvalidInputError) as err:
        opts(**given)
    assert message in err.value.msg


# --- the decision table ---------------------------------------------------------------------------

RUNNING = dict(uuid="u1", state="running", active=True, persistent=True)
TRANSIENT = dict(uuid="u1", state="running", active=True, persistent=False)
STOPPED = dict(uuid="u1", state="stopped", active=False, persistent=True)
OTHER = dict(uuid="u2", state="stopped", active=False, persistent=True)


@pytest.mark.parametrize("src, dst, given, action, mode", [
    (None, RUNNING, {}, "none", None),
    (None, STOPPED, {}, "none", None),
    (RUNNING, None, {}, "migrate", "live"),
    (TRANSIENT, None, {}, "migrate", "live"),
    (RUNNING, None, dict(live=False), "migrate", "paused"),
    (STOPPED, None, {}, "migrate", "offline"),
    (STOPPED, None, dict(live=False), "migrate", "offline"),
    (RUNNING, STOPPED, {}, "migrate", "live"),            # a stale stopped definition on the destination
    (STOPPED, RUNNING, {}, "undefine_source", None),      # moved, the source kept its definition
    (STOPPED, RUNNING, dict(undefine_source=False), "none", None),
    (STOPPED, STOPPED, dict(undefine_source=False), "none", None),
])
def test_decide(src, dst, given, action, mode):
    decision = _decide.decide("web1", src, dst, opts(**given))
    assert (decision.action, decision.mode) == (action, mode)


@pytest.mark.parametrize("src, dst, given, error, message", [
    (None, None, {}, NotFoundError, "VM 'web1' exists neither on the source (qemu+ssh://kvm1/system) nor on the "
                                    "destination (qemu+ssh://kvm2/system)"),
    (RUNNING, OTHER, {}, ConflictError, "name clash: the destination has another VM named 'web1' (UUID u2"),
    (STOPPED, OTHER, {}, ConflictError, "name clash"),
    (RUNNING, dict(RUNNING), {}, ConflictError, "is running on both the source and the destination"),
    (STOPPED, STOPPED, {}, ConflictError, "defined and stopped on both"),
    (STOPPED, None, dict(persistent=False), InvalidInputError, "persistent: false needs a running VM"),
])
def test_decide_refuses(src, dst, given, error, message):
    with pytest.raises(error) as err:
        _decide.decide("web1", src, dst, opts(**given))
    assert message in err.value.msg


# --- domain XML -----------------------------------------------------------------------------------

DOMAIN_XML = """
<domain type='kvm'>
  <name>web1</name>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <cpu mode='custom' match='exact'><model fallback='forbid'>Skylake-Client</model></cpu>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/web1.qcow2' index='2'/>
      <backingStore type='file' index='3'>
        <format type='qcow2'/>
        <source file='/var/lib/libvirt/images/base.qcow2'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='raw'/>
      <source pool='data' volume='web1-data'/>
      <target dev='vdb' bus='virtio'/>
      <shareable/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw'/>
      <source dev='/dev/vg0/web1-logs'/>
      <target dev='vdc' bus='virtio'/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='rbd' name='pool/image'/>
      <target dev='vdd' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/isos/seed.iso'/>
      <target dev='sdb' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:00:00:01'/>
      <source network='default'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:00:00:02'/>
      <source bridge='br0'/>
    </interface>
  </devices>
</domain>
"""


def test_domain_disks():
    disks = dict((d["target"], d) for d in _disks.domain_disks(_xml.parse(DOMAIN_XML)))
    assert disks["vda"]["path"] == "/var/lib/libvirt/images/web1.qcow2"
    assert disks["vda"]["format"] == "qcow2"
    assert disks["vda"]["backing"] == [dict(path="/var/lib/libvirt/images/base.qcow2", format="qcow2")]
    assert (disks["vdb"]["type"], disks["vdb"]["pool"], disks["vdb"]["volume"]) == ("volume", "data", "web1-data")
    assert disks["vdb"]["shareable"] and not disks["vdb"]["readonly"]
    assert (disks["vdc"]["type"], disks["vdc"]["path"]) == ("block", "/dev/vg0/web1-logs")
    assert disks["vdd"]["path"] == "rbd:pool/image"
    assert disks["sda"]["path"] is None and disks["sda"]["readonly"]
    assert (disks["sdb"]["device"], disks["sdb"]["path"]) == ("cdrom", "/isos/seed.iso")


def test_networks_and_platform():
    root = _xml.parse(DOMAIN_XML)
    assert _prechecks.domain_networks(root) == [("52:54:00:00:00:01", "default")]
    assert _prechecks.guest_platform(root) == dict(virt_type="kvm", arch="x86_64", machine="pc-q35-7.2",
                                                   emulator="/usr/bin/qemu-system-x86_64")


def _plan(**kwargs):
    kwargs.setdefault("formatted", True)
    kwargs.setdefault("name", "web1.qcow2")
    return _disks.DiskPlan("vda", "/var/lib/libvirt/images/web1.qcow2", **kwargs)


@pytest.mark.parametrize("disk, offline, fmt, capacity, backing", [
    (_plan(format="qcow2", capacity=2 << 30), False, "qcow2", 2 << 30, None),
    (_plan(format="qcow2", capacity=2 << 30, backing_path="/b/base.qcow2", backing_format="qcow2"), False,
     "qcow2", 2 << 30, "/b/base.qcow2"),
    (_plan(format="raw", capacity=1 << 30), False, "raw", 1 << 30, None),
    # offline: the stream brings the file as it is
    (_plan(format="qcow2", capacity=2 << 30, backing_path="/b/base.qcow2"), True, "raw", 0, None),
    (_plan(format="raw", capacity=1 << 30), True, "raw", 1 << 30, None),
    # a pool without formats (logical): no <format>, full size
    (_plan(format="raw", capacity=1 << 30, formatted=False), False, None, 1 << 30, None),
    (_plan(format="raw", capacity=1 << 30, formatted=False), True, None, 1 << 30, None),
])
def test_destination_volume_xml(tmp_path, disk, offline, fmt, capacity, backing):
    node = _job.destination_volume_xml(disk, offline)
    assert _xml.find_attr(node, "target/format", "type") == fmt
    assert int(_xml.find_text(node, "capacity")) == capacity
    assert _xml.find_text(node, "allocation") == "0"
    assert _xml.find_text(node, "backingStore/path") == backing
    path = tmp_path / "vol.xml"
    path.write_text(_xml.to_string(node))
    proc = subprocess.run(["virt-xml-validate", str(path), "storagevol"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=False)
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()


# --- flags and parameters ---------------------------------------------------------------------------

BASE = libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_ABORT_ON_ERROR


@pytest.mark.parametrize("given, mode, persistent, copy, expected", [
    ({}, "live", True, False,
     BASE | libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE),
    ({}, "paused", True, False, BASE | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE),
    ({}, "live", False, False, BASE | libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST),
    (dict(persistent=False, undefine_source=False), "live", True, False, BASE | libvirt.VIR_MIGRATE_LIVE),
    (dict(copy_storage="all", persistent=False, undefine_source=False), "live", True, True,
     BASE | libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_NON_SHARED_DISK),
    (dict(copy_storage="incremental", persistent=False, undefine_source=False), "live", True, True,
     BASE | libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_NON_SHARED_INC),
    (dict(copy_storage="all", persistent=False, undefine_source=False), "live", True, False,
     BASE | libvirt.VIR_MIGRATE_LIVE),  # nothing to copy (all disks shared or read-only)
    (dict(auto_converge=True, compressed=True, tls=True, persistent=False, undefine_source=False), "live", True,
     False, BASE | libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_AUTO_CONVERGE | libvirt.VIR_MIGRATE_COMPRESSED
     | libvirt.VIR_MIGRATE_TLS),
    (dict(unsafe=True, persistent=False, undefine_source=False), "live", True, False,
     BASE | libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_UNSAFE),
])
def test_live_flags(given, mode, persistent, copy, expected):
    assert _job.live_flags(opts(**given), mode, persistent, copy) == expected


def test_live_params():
    assert _job.live_params(opts(), []) == {}
    assert _job.live_params(opts(migration_uri="tcp://10.0.0.12", bandwidth=200), ["vda", "vdb"]) == {
        libvirt.VIR_MIGRATE_PARAM_URI: "tcp://10.0.0.12",
        libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 200,
        libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS: ["vda", "vdb"],
    }


def test_offline_flags():
    off = libvirt.VIR_MIGRATE_OFFLINE | libvirt.VIR_MIGRATE_PERSIST_DEST
    assert _job.offline_flags(opts()) == off | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    assert _job.offline_flags(opts(undefine_source=False)) == off


def test_merge_job_stats():
    last = dict(type=2, data_total=100, data_remaining=40, disk_total=80, disk_processed=60, foo=1)
    completed = dict(type=3, data_total=120, data_remaining=0, disk_total=0, disk_processed=0, downtime=12)
    assert _job.merge_job_stats(last, completed) == dict(
        data_total=120, data_remaining=0, disk_total=80, disk_processed=60, downtime=12)


# --- the job follower -------------------------------------------------------------------------------


def libvirt_error(code, message):
    exc = libvirt.libvirtError(message)
    exc.err = (code, 0, message, 2, "", None, None, 0, 0)
    return exc


class FakeJobDomain:
    """A domain whose migration (``start``) blocks until it finishes on its own or is aborted."""

    def __init__(self, finishes_after=None):
        self.finishes_after = finishes_after
        self.aborted = threading.Event()
        self.polls = 0
        self.abort_calls = 0

    def migrate(self):
        if self.aborted.wait(self.finishes_after):
            raise libvirt_error(libvirt.VIR_ERR_OPERATION_ABORTED,
                                "operation aborted: migration out: canceled by client")
        return "done"

    def jobStats(self, flags):
        self.polls += 1
        return dict(type=2, data_total=1000, data_processed=10 * self.polls, data_remaining=1000 - 10 * self.polls)

    def abortJob(self):
        self.abort_calls += 1
        self.aborted.set()


def test_job_finishes():
    dom = FakeJobDomain(finishes_after=0.3)
    seconds, last = _job.run_job(dom, dom.migrate, "migrating 'x'", timeout=30, poll=0.05)
    assert seconds >= 0.3
    assert dom.polls >= 1 and dom.abort_calls == 0
    assert last["data_total"] == 1000


def test_job_aborted_at_timeout():
    dom = FakeJobDomain(finishes_after=None)  # never finishes by itself
    with pytest.raises(OperationTimeoutError) as err:
        _job.run_job(dom, dom.migrate, "migrating 'x'", timeout=0.2, poll=0.05)
    assert dom.abort_calls == 1
    assert "did not finish within 0.2 s and was aborted" in err.value.msg
    assert "the VM stays on the source" in err.value.msg
    assert err.value.details["job"]["data_total"] == 1000


def test_job_failure_is_translated():
    def fail():
        raise libvirt_error(libvirt.VIR_ERR_SYSTEM_ERROR, "unable to connect to server at '10.0.0.99:16509'")

    dom = FakeJobDomain()
    with pytest.raises(BackendError) as err:
        _job.run_job(dom, fail, "migrating 'x'", timeout=None, poll=0.05)
    assert err.value.msg == "migrating 'x': unable to connect to server at '10.0.0.99:16509'"


def test_job_that_ignores_abort():
    class Stuck(FakeJobDomain):
        def abortJob(self):
            self.abort_calls += 1  # libvirt accepts the request, the job goes on

    dom = Stuck()
    with pytest.raises(OperationTimeoutError) as err:
        _job.run_job(dom, dom.migrate, "migrating 'x'", timeout=0.1, poll=0.05, grace=0.2)
    assert "did not end the job" in err.value.msg
    dom.aborted.set()  # let the thread end


# --- the stream pump --------------------------------------------------------------------------------


class FakeDown:
    def __init__(self, pieces):
        self.pieces = list(pieces)

    def recv(self, nbytes):
        return self.recvFlags(nbytes, 0)

    def recvFlags(self, nbytes, flags):
        if not self.pieces:
            return b""
        piece = self.pieces[0]
        if isinstance(piece, int):
            return -3
        self.pieces.pop(0)
        return piece

    def recvHole(self, flags):
        return self.pieces.pop(0)


class FakeUp:
    def __init__(self, max_send=3):
        self.max_send = max_send
        self.calls = []

    def send(self, data):
        part = data[:self.max_send]
        self.calls.append(("data", part))
        return len(part)

    def sendHole(self, length, flags):
        self.calls.append(("hole", length))


def test_pump_sends_data_and_holes():
    up = FakeUp(max_send=3)
    total = _job.pump(FakeDown([b"abcdefg", 4096, b"xy"]), up, sparse=True)
    assert total == 9
    assert up.calls == [("data", b"abc"), ("data", b"def"), ("data", b"g"), ("hole", 4096), ("data", b"xy")]


def test_pump_refuses_a_non_blocking_stream():
    class NonBlocking(FakeDown):
        def recvFlags(self, nbytes, flags):
            return -2

    with pytest.raises(BackendError):
        _job.pump(NonBlocking([]), FakeUp(), sparse=True)


# --- CPU and memory pre-checks, with a stand-in destination ---------------------------------------


class FakeDest:
    """Records the CPU comparisons asked of it; ``verdict`` is a result or a libvirtError to raise."""

    def __init__(self, verdict=libvirt.VIR_CPU_COMPARE_IDENTICAL, memory=None, info=None):
        self.verdict = verdict
        self.calls = []
        self.memory = memory or dict(total=8 << 20, free=2 << 20, buffers=0, cached=1 << 20)  # KiB
        self.info = info or ["x86_64", 8192, 4, 2000, 1, 1, 4, 1]

    def _answer(self, name, *args):
        self.calls.append((name,) + args)
        if isinstance(self.verdict, Exception):
            raise self.verdict
        return self.verdict

    def compareHypervisorCPU(self, *args):
        return self._answer("compareHypervisorCPU", *args)

    def compareCPU(self, *args):
        return self._answer("compareCPU", *args)

    def getMemoryStats(self, cell, flags):
        return self.memory

    def getInfo(self):
        return self.info


class FakeDomain:
    def __init__(self, xml, memory_kib=524288):
        self.xml = xml
        self.memory_kib = memory_kib

    def XMLDesc(self, flags):
        return self.xml

    def info(self):
        return [1, self.memory_kib, self.memory_kib, 1, 0]


HOST_CAPS = _xml.parse("<capabilities><host><uuid>h1</uuid><cpu><arch>x86_64</arch><model>EPYC</model>"
                       "<vendor>AMD</vendor></cpu></host></capabilities>")


def prechecks(xml, dest, mode="live", **given):
    return _prechecks.Prechecks(None, dest, FakeDomain(xml), opts(**given), mode)


def domain_with_cpu(cpu_xml, virt_type="kvm"):
    return DOMAIN_XML.replace("<domain type='kvm'>", "<domain type='%s'>" % virt_type).replace(
        "<cpu mode='custom' match='exact'><model fallback='forbid'>Skylake-Client</model></cpu>", cpu_xml)


def test_cpu_model_compared_on_the_destination():
    dest = FakeDest()
    checks = prechecks(DOMAIN_XML, dest)
    checks.check_cpu(HOST_CAPS)
    (call,) = dest.calls
    assert call[:5] == ("compareHypervisorCPU", "/usr/bin/qemu-system-x86_64", "x86_64", "pc-q35-7.2", "kvm")
    assert "<model fallback=\"forbid\">Skylake-Client</model>" in call[5]
    assert call[6] == libvirt.VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE
    assert checks.checks["cpu"] == "compatible: CPU model Skylake-Client"


def test_cpu_incompatible():
    dest = FakeDest(verdict=libvirt_error(libvirt.VIR_ERR_CPU_INCOMPATIBLE,
                                          "the CPU is incompatible with host CPU: Host CPU does not provide "
                                          "required features: avx512f"))
    with pytest.raises(ConflictError) as err:
        prechecks(DOMAIN_XML, dest).check_cpu(HOST_CAPS)
    assert err.value.msg == ("cpu: the destination cannot give VM 'web1' its CPU model Skylake-Client: the CPU is "
                             "incompatible with host CPU: Host CPU does not provide required features: avx512f")


def test_cpu_compare_unsupported_is_a_warning():
    dest = FakeDest(verdict=libvirt_error(libvirt.VIR_ERR_NO_SUPPORT, "this function is not supported"))
    checks = prechecks(DOMAIN_XML, dest)
    checks.check_cpu(HOST_CAPS)
    assert checks.checks["cpu"].startswith("not checked")
    assert checks.warnings and "cannot compare CPUs" in checks.warnings[0]


def test_host_passthrough_compares_the_source_host_cpu():
    dest = FakeDest(verdict=libvirt.VIR_CPU_COMPARE_SUPERSET)
    checks = prechecks(domain_with_cpu("<cpu mode='host-passthrough'/>"), dest)
    checks.check_cpu(HOST_CAPS)
    (call,) = dest.calls
    assert call[0] == "compareCPU" and "<model>EPYC</model>" in call[1]
    assert checks.checks["cpu"] == "compatible: host-passthrough, the source host's CPU EPYC"


@pytest.mark.parametrize("cpu_xml, virt_type, mode, expected", [
    ("", "kvm", "live", "not checked: the VM names no CPU model"),
    ("<cpu mode='custom'><topology sockets='1' cores='2' threads='1'/></cpu>", "kvm", "live",
     "not checked: the VM names no CPU model"),
    ("<cpu mode='host-model'/>", "kvm", "offline", "not checked: host-model"),
    ("<cpu mode='host-passthrough'/>", "kvm", "offline", "not checked: host-passthrough CPU of a stopped VM"),
    ("<cpu mode='maximum'/>", "qemu", "live", "not checked: maximum CPU of a TCG VM"),
])
def test_cpu_not_compared(cpu_xml, virt_type, mode, expected):
    dest = FakeDest()
    checks = prechecks(domain_with_cpu(cpu_xml, virt_type), dest, mode=mode)
    checks.check_cpu(HOST_CAPS)
    assert dest.calls == []
    assert checks.checks["cpu"].startswith(expected)


@pytest.mark.parametrize("mode, memory_mib, reserve, ok, text", [
    # available = free 2 GiB + cached 1 GiB = 3072 MiB; total 8192 MiB
    ("live", 2048, 0, True, "2048 MiB needed, 3072 MiB available on the destination"),
    ("live", 2048, 1024, True, "2048 MiB needed + 1024 MiB reserve, 3072 MiB available on the destination"),
    ("live", 2048, 1025, False, "memory: VM 'web1' uses 2048 MiB plus reserve_memory 1025 MiB, but the destination "
                                "has only 3072 MiB available"),
    ("live", 4096, 0, False, "memory: VM 'web1' uses 4096 MiB, but the destination has only 3072 MiB available"),
    ("offline", 4096, 0, True, "4096 MiB defined, 8192 MiB in total on the destination"),
    ("offline", 16384, 0, False, "memory: VM 'web1' is defined with 16384 MiB, more than the destination's 8192 MiB "
                                 "in total: it could never start there"),
])
def test_memory(mode, memory_mib, reserve, ok, text):
    checks = _prechecks.Prechecks(None, FakeDest(), FakeDomain(DOMAIN_XML, memory_mib * 1024),
                                  opts(reserve_memory=reserve), mode)
    if ok:
        checks.check_memory()
        assert checks.checks["memory"].startswith(text)
    else:
        with pytest.raises(ConflictError) as err:
            checks.check_memory()
        assert err.value.msg == text


# --- whole runs against two test driver instances ------------------------------------------------

NODE = """<node>
  <domain type='test'>
    <name>{name}</name>
    <uuid>{uuid}</uuid>
    <memory>262144</memory>
    <vcpu>1</vcpu>
    <os><type arch='i686'>hvm</type></os>
  </domain>
</node>
"""
UUID_A = "4f6c1a2e-0b7d-4c55-9b1e-0d7a3f1c2b01"
UUID_B = "4f6c1a2e-0b7d-4c55-9b1e-0d7a3f1c2b02"


@pytest.fixture
def hosts(tmp_path):
    """Two private test driver hypervisors; the source runs VM 'mig-run' and has VM 'mig-off' defined."""
    src_file, dst_file = tmp_path / "src.xml", tmp_path / "dst.xml"
    src_file.write_text(NODE.format(name="mig-run", uuid=UUID_A))
    dst_file.write_text(NODE.format(name="other", uuid=UUID_B))
    src_uri, dst_uri = "test://%s" % src_file, "test://%s" % dst_file
    src = Connection(src_uri)
    conn = src.open()
    conn.defineXML("<domain type='test'><name>mig-off</name><memory>131072</memory><vcpu>1</vcpu>"
                   "<os><type arch='i686'>hvm</type></os></domain>")
    yield dict(conn=conn, uri=src_uri, dest_uri=dst_uri, dst_file=dst_file)
    src.close()


def run(hosts, check=True, **given):
    given.setdefault("uri", hosts["uri"])
    given.setdefault("dest_uri", hosts["dest_uri"])
    ctx = Context(conn=hosts["conn"], params=module_params(**given), check_mode=check, diff=True)
    return _resource.run_migration(ctx)


def test_check_mode_offline(hosts):
    result = run(hosts, name="mig-off")
    assert result["changed"] is True and result["mode"] == "offline"
    assert result["actions"] == ["move the definition of the stopped VM 'mig-off' from %s to %s"
                                 % (hosts["uri"], hosts["dest_uri"])]
    assert result["checks"]["arch"] == "i686 guest, virt type test, machine default: offered by the destination"
    assert result["checks"]["memory"].startswith("128 MiB defined, 3072 MiB in total")
    assert result["checks"]["disks"] == {}
    assert result["diff"]["before"] == dict(source="stopped", destination="absent")
    assert result["diff"]["after"] == dict(source="absent", destination="stopped")
    assert result["vm"] == dict(host="destination", state="stopped", persistent=True)
    assert result["duration"] == 0.0 and result["job"] == {}
    # check mode moved nothing
    assert [d.name() for d in hosts["conn"].listAllDomains(0) if d.name() == "mig-off"] == ["mig-off"]


def test_check_mode_offline_keeping_the_source(hosts):
    result = run(hosts, name="mig-off", undefine_source=False)
    assert result["diff"]["after"] == dict(source="stopped", destination="stopped")
    assert result["actions"][0].endswith("(the source keeps it too)")


def test_offline_reserve_memory(hosts):
    with pytest.raises(ConflictError) as err:
        run(hosts, name="mig-off", reserve_memory=4096)
    assert err.value.msg.startswith("memory: VM 'mig-off' is defined with 128 MiB plus reserve_memory 4096 MiB, "
                                    "more than the destination's 3072 MiB in total")


def test_live_memory_check_uses_available_memory(hosts):
    # the test driver reports 0 bytes of free memory: a running VM never fits
    with pytest.raises(ConflictError) as err:
        run(hosts, name="mig-run")
    assert err.value.msg == "memory: VM 'mig-run' uses 256 MiB, but the destination has only 0 MiB available"


def test_unknown_vm(hosts):
    with pytest.raises(NotFoundError) as err:
        run(hosts, name="nope", check=False)
    assert err.value.msg.startswith("VM 'nope' exists neither on the source")
    # check mode: an earlier task of the play may create it
    result = run(hosts, name="nope")
    assert result["changed"] and result["actions"] == ["migrate VM 'nope' from %s to %s" % (hosts["uri"], hosts["dest_uri"])]
    assert result["assumptions"][0].startswith("check mode: VM 'nope' exists neither on the source")
    assert result["diff"]["after"] == dict(source="absent", destination="migrated")


def test_already_on_the_destination(hosts):
    result = run(hosts, name="other", check=False)
    assert result["changed"] is False and result["mode"] is None and result["actions"] == []
    assert result["vm"] == dict(host="destination", state="running", persistent=True)
    assert result["diff"]["before"] == result["diff"]["after"] == dict(source="absent", destination="running")


def test_name_clash(hosts):
    hosts["conn"].defineXML("<domain type='test'><name>other</name><memory>131072</memory><vcpu>1</vcpu>"
                            "<os><type arch='i686'>hvm</type></os></domain>")
    with pytest.raises(ConflictError) as err:
        run(hosts, name="other")
    assert err.value.msg.startswith("name clash: the destination has another VM named 'other' (UUID %s" % UUID_B)


def test_unreachable_destination(hosts, tmp_path):
    with pytest.raises(ConnectionFailedError) as err:
        run(hosts, name="mig-off", dest_uri="test://%s" % (tmp_path / "missing.xml"))
    assert err.value.msg.startswith("dest_uri: the destination hypervisor is not reachable: ")
    assert "'uri'" not in err.value.msg


def test_stopped_vm_cannot_go_transient(hosts):
    with pytest.raises(InvalidInputError):
        run(hosts, name="mig-off", persistent=False)


# --- platform and network pre-checks ---------------------------------------------------------------

DEST_CAPS = """<capabilities><host><uuid>h2</uuid><cpu><arch>x86_64</arch></cpu></host>
  <guest><os_type>hvm</os_type><arch name='x86_64'>
    <machine maxCpus='255'>pc-i440fx-7.2</machine><machine canonical='pc-i440fx-7.2' maxCpus='255'>pc</machine>
    <machine maxCpus='288'>pc-q35-7.2</machine><machine canonical='pc-q35-7.2' maxCpus='288'>q35</machine>
    <domain type='qemu'/>{kvm}
  </arch></guest></capabilities>"""


class FakePlatformDest:
    def __init__(self, error=None):
        self.error = error
        self.calls = []

    def getDomainCapabilities(self, *args):
        self.calls.append(args)
        if self.error is not None:
            raise self.error
        return "<domainCapabilities/>"


@pytest.mark.parametrize("caps, xml, error, message", [
    (DEST_CAPS.format(kvm="<domain type='kvm'/>"), DOMAIN_XML, None, None),
    (DEST_CAPS.format(kvm=""), DOMAIN_XML, None,
     "arch: the destination offers virt types qemu for x86_64 guests, not kvm (the VM's)"),
    (DEST_CAPS.format(kvm="<domain type='kvm'/>"), DOMAIN_XML.replace("pc-q35-7.2", "pc-q35-8.1"), None,
     "arch: the destination's QEMU has no machine type pc-q35-8.1 (the VM's)"),
    (DEST_CAPS.format(kvm="<domain type='kvm'/>"), DOMAIN_XML.replace("arch='x86_64'", "arch='aarch64'"), None,
     "arch: the destination cannot run aarch64 guests (it runs x86_64)"),
    (DEST_CAPS.format(kvm="<domain type='kvm'/>"), DOMAIN_XML,
     libvirt_error(libvirt.VIR_ERR_INTERNAL_ERROR, "Cannot find 'qemu-system-x86_64' binary"),
     "arch: the destination cannot run the VM's emulator /usr/bin/qemu-system-x86_64 for x86_64/kvm/pc-q35-7.2: "
     "Cannot find 'qemu-system-x86_64' binary"),
])
def test_platform(caps, xml, error, message):
    dest = FakePlatformDest(error)
    checks = _prechecks.Prechecks(None, dest, FakeDomain(xml), opts(), "live")
    if message is None:
        checks.check_platform(_xml.parse(caps))
        assert dest.calls == [("/usr/bin/qemu-system-x86_64", "x86_64", "pc-q35-7.2", "kvm", 0)]
        assert checks.checks["arch"] == "x86_64 guest, virt type kvm, machine pc-q35-7.2: offered by the destination"
    else:
        with pytest.raises(ConflictError) as err:
            checks.check_platform(_xml.parse(caps))
        assert err.value.msg.startswith(message)


@pytest.mark.parametrize("network, mode, message", [
    ("default", "live", None),
    ("nosuch", "offline", "networks: the destination has no network 'nosuch' (interface 52:54:00:00:00:01 of VM "
                          "'web1')"),
])
def test_networks_on_the_destination(test_conn, network, mode, message):
    xml = DOMAIN_XML.replace("<source network='default'/>", "<source network='%s'/>" % network)
    checks = _prechecks.Prechecks(None, test_conn, FakeDomain(xml), opts(), mode)
    if message is None:
        checks.check_networks()
        assert checks.checks["networks"] == "present on the destination: default"
    else:
        with pytest.raises(ConflictError) as err:
            checks.check_networks()
        assert err.value.msg == message
        # check mode: an earlier task may create the network on the destination
        warned = []
        checks.assume = Context(check_mode=True, warn=warned.append).assume
        checks.check_networks()
        assert len(warned) == 1 and message in warned[0]


def test_inactive_network_is_enough_for_a_stopped_vm_only(test_conn):
    net = test_conn.networkLookupByName("default")
    net.destroy()
    try:
        offline = _prechecks.Prechecks(None, test_conn, FakeDomain(DOMAIN_XML), opts(), "offline")
        offline.check_networks()
        live = _prechecks.Prechecks(None, test_conn, FakeDomain(DOMAIN_XML), opts(), "live")
        with pytest.raises(ConflictError) as err:
            live.check_networks()
        assert err.value.msg == ("networks: network 'default' (interface 52:54:00:00:00:01) is not active on the "
                                 "destination")
    finally:
        net.create()


@pytest.mark.parametrize("copy_storage", ["none", "all"])
def test_destination_pool_of_a_volume_disk_is_assumed_in_check_mode(test_conn, copy_storage):
    xml = ("<domain type='kvm'><name>web1</name><os><type arch='x86_64'>hvm</type></os><devices>"
           "<disk type='volume' device='disk'><driver name='qemu' type='raw'/><source pool='nosuch' volume='web1-data'/>"
           "<target dev='vdb' bus='virtio'/></disk></devices></domain>")
    checks = _prechecks.Prechecks(None, test_conn, FakeDomain(xml), opts(copy_storage=copy_storage), "offline")
    with pytest.raises(ConflictError) as err:
        checks.check_disks()
    assert err.value.msg == "disks: vdb: the destination has no active storage pool 'nosuch' (the disk is a volume of it)"
    # check mode: an earlier task (the hypervisor role on the destination) may create the pool
    warned = []
    checks = _prechecks.Prechecks(None, test_conn, FakeDomain(xml), opts(copy_storage=copy_storage), "offline")
    checks.assume = Context(check_mode=True, warn=warned.append).assume
    checks.check_disks()
    assert len(warned) == 1 and err.value.msg in warned[0]
    assert checks.checks["disks"]["vdb"] == "assumed: pool 'nosuch' is made on the destination by an earlier task"
