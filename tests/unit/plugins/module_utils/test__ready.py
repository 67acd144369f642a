# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Readiness (``vm``'s ``wait_for``: agent, cloud-init) and guest facts (``vm_info``'s ``guest_info``).

The cloud-init files and the guest info are what the lab's Debian guest (cloud-init 22.4.2) really
gave (guest_agent_lab.json); the guest agent itself is a scripted stand-in for libvirt_qemu, on a
domain of libvirt's test driver, which has no agent.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os

import libvirt
import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    InvalidInputError,
    OperationTimeoutError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import agent as _agent
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import ready as _ready
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.seed import INSTANCE_ID_FILE, SeedDevice
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.guest_facts import guest_facts, shape_guest_info
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.vm import VmResource
from ansible_collections.virtops.libvirt.plugins.modules.vm import ARGUMENT_SPEC

with open(os.path.join(os.path.dirname(__file__), "guest_agent_lab.json")) as _handle:
    LAB = json.load(_handle)

DOMAIN_XML = """
<domain type='test'>
  <name>%s</name>
  <memory unit='MiB'>64</memory>
  <os><type>hvm</type></os>
  <devices><channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel></devices>
</domain>
"""


def lv_error(code_name, message):
    exc = libvirt.libvirtError(message)
    exc.err = (getattr(libvirt, code_name), 0, message, 2, None, None, None, 0, 0)
    return exc


NOT_CONNECTED = ("VIR_ERR_AGENT_UNRESPONSIVE", "Guest agent is not responding: QEMU guest agent is not connected")
NOT_CONFIGURED = ("VIR_ERR_ARGUMENT_UNSUPPORTED", "argument unsupported: QEMU guest agent is not configured")
NO_FILE = ("VIR_ERR_INTERNAL_ERROR", "internal error: unable to execute QEMU agent command 'guest-file-open': failed "
           "to open file '/run/cloud-init/result.json' (mode: 'r'): No such file or directory")


class Clock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.01)


class Guest:
    """A stand-in for libvirt_qemu that answers like the lab guest's agent: files from ``files``
    (path -> bytes, or a function of the time), ``guest-ping`` after ``connect_after`` pings."""

    def __init__(self, files=None, connect_after=0, clock=None):
        self.files = files or {}
        self.connect_after = connect_after
        self.clock = clock
        self.requests = []
        self.handles = {}

    def _content(self, path):
        value = self.files.get(path)
        return value(self.clock.now) if callable(value) else value

    def qemuAgentCommand(self, dom, cmd, timeout, flags):
        request = json.loads(cmd)
        name, args = request["execute"], request.get("arguments") or {}
        self.requests.append(name)
        if name == "guest-ping":
            if self.requests.count("guest-ping") <= self.connect_after:
                raise lv_error(*NOT_CONNECTED)
            return json.dumps({"return": {}})
        if name == "guest-file-open":
            data = self._content(args["path"])
            if data is None:
                raise lv_error(*NO_FILE)
            handle = len(self.handles) + 1
            self.handles[handle] = [data, 0]
            return json.dumps({"return": handle})
        if name == "guest-file-seek":
            entry = self.handles[args["handle"]]
            entry[1] = len(entry[0]) + args["offset"] if args["whence"] == "end" else args["offset"]
            return json.dumps({"return": {"position": entry[1], "eof": False}})
        if name == "guest-file-read":
            entry = self.handles[args["handle"]]
            chunk = entry[0][entry[1]:entry[1] + args["count"]]
            entry[1] += len(chunk)
            return json.dumps({"return": {"count": len(chunk), "buf-b64": base64.b64encode(chunk).decode(),
                                          "eof": entry[1] >= len(entry[0])}})
        if name == "guest-file-close":
            del self.handles[args["handle"]]
            return json.dumps({"return": {}})
        raise AssertionError("unexpected agent command %s" % name)


def as_file(obj):
    return json.dumps(obj).encode()


DONE = {_ready.RESULT_JSON: as_file(LAB["done"]["result"]), _ready.STATUS_JSON: as_file(LAB["done"]["status"])}
FAILED = {_ready.RESULT_JSON: as_file(LAB["failed"]["result"]), _ready.STATUS_JSON: as_file(LAB["failed"]["status"]),
          _ready.OUTPUT_LOG: ("\n".join(["x"] * 50 + LAB["failed"]["output_tail"]) + "\n").encode()}


@pytest.fixture
def dom(test_conn):
    domain = test_conn.defineXML(DOMAIN_XML % "u-ready")
    domain.create()
    yield domain
    if domain.isActive():
        domain.destroy()
    domain.undefine()


@pytest.fixture
def guest(monkeypatch):
    def install(**kwargs):
        fake = Guest(**kwargs)
        monkeypatch.setattr(_agent, "libvirt_qemu", fake)
        return fake
    return install


# ---------------------------------------------------------------------------- conditions ---

@pytest.mark.parametrize("wait_for, wait_for_ip, expected", [
    (None, False, ()),
    (None, True, ("ip",)),
    (["cloud_init", "agent"], False, ("agent", "cloud_init")),
    (["ip", "cloud_init"], True, ("cloud_init", "ip")),
])
def test_conditions_are_ordered_and_wait_for_ip_is_ip(wait_for, wait_for_ip, expected):
    assert _ready.conditions(wait_for, wait_for_ip) == expected


def test_conditions_refuse_unknown_words():
    with pytest.raises(InvalidInputError, match="wait_for: booted is not one of agent, cloud_init, ip"):
        _ready.conditions(["agent", "booted"])


# --------------------------------------------------------------------- cloud-init state ---

def test_parse_cloud_init_done_as_the_lab_guest_wrote_it():
    state = _ready.parse_cloud_init(LAB["done"]["result"], LAB["done"]["status"])
    assert state["status"] == "done" and state["finished"] and state["errors"] == []
    assert state["datasource"] == "DataSourceNoCloud [seed=/dev/sr0][dsmode=net]"
    assert sorted(state["stages"]) == ["init", "init-local", "modules-config", "modules-final"]  # modules-init never ran


def test_parse_cloud_init_failed_runcmd_is_an_error_with_cloud_inits_message():
    state = _ready.parse_cloud_init(LAB["failed"]["result"], LAB["failed"]["status"])
    assert state["status"] == "error"
    assert state["errors"] == ["('scripts-user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))"]
    assert state["stages"]["modules-final"]["errors"] == state["errors"]


def test_parse_cloud_init_while_it_runs_and_before():
    status = json.loads(json.dumps(LAB["done"]["status"]))
    status["v1"]["modules-final"] = {"errors": [], "start": 5.0, "finished": None}
    status["v1"]["stage"] = "modules-final"
    running = _ready.parse_cloud_init(None, status)
    assert (running["status"], running["stage"], running["finished"]) == ("running", "modules-final", False)
    assert _ready.parse_cloud_init(None, None)["status"] == "not started"
    assert _ready.parse_cloud_init(None, None, disabled=True)["status"] == "disabled"


def test_parse_cloud_init_stage_errors_count_before_result_and_recoverable_errors_are_kept():
    status = {"v1": {"init": {"start": 1, "finished": 2, "errors": ["boom"]},
                     "recoverable_errors": {"WARNING": ["deprecated key"]}}}
    state = _ready.parse_cloud_init({"v1": {"datasource": "ds", "errors": []}}, status)
    assert state["status"] == "error" and state["errors"] == ["init: boom"]
    assert state["recoverable_errors"] == {"WARNING": ["deprecated key"]}


def test_read_guest_file_missing_file_is_none_and_content_is_read_in_chunks(guest, dom):
    fake = guest(files={"/big": b"a" * 150000})
    assert _ready.read_guest_file(dom, "/nope") is None
    assert _ready.read_guest_file(dom, "/big") == b"a" * 150000
    assert fake.requests.count("guest-file-read") == 3 and fake.handles == {}
    assert _ready.read_guest_file(dom, "/big", limit=10, tail=True) == b"a" * 10


# ------------------------------------------------------------------------------ waiting ---

def test_wait_for_agent_keeps_waiting_while_it_is_not_connected(guest, dom):
    clock = Clock()
    fake = guest(connect_after=3)
    got = _ready.wait_ready(dom, ("agent",), 60, sleep=clock.sleep, clock=clock.clock)
    assert got["agent"] is True and fake.requests == ["guest-ping"] * 4
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_wait_for_agent_times_out_with_what_it_saw(guest, dom):
    clock = Clock()
    guest(connect_after=1000)
    with pytest.raises(OperationTimeoutError, match="timed out after 10 s waiting for its guest agent of VM 'u-ready'; "
                                                    "last answer: the guest agent of VM 'u-ready' is not connected"):
        _ready.wait_ready(dom, ("agent",), 10, sleep=clock.sleep, clock=clock.clock)


def test_wait_without_agent_channel_fails_at_once(monkeypatch, dom):
    class NoChannel:
        @staticmethod
        def qemuAgentCommand(*args):
            raise lv_error(*NOT_CONFIGURED)
    monkeypatch.setattr(_agent, "libvirt_qemu", NoChannel)
    clock = Clock()
    with pytest.raises(InvalidInputError, match="has no guest agent channel"):
        _ready.wait_ready(dom, ("agent",), 600, sleep=clock.sleep, clock=clock.clock)
    assert clock.sleeps == []


def test_wait_for_cloud_init_until_result_json_appears(guest, dom):
    clock = Clock()
    files = dict(DONE)
    files[_ready.RESULT_JSON] = lambda now: DONE[_ready.RESULT_JSON] if now > 105 else None
    guest(files=files, clock=clock)
    got = _ready.wait_ready(dom, ("cloud_init",), 60, sleep=clock.sleep, clock=clock.clock)
    assert got["agent"] is True and got["cloud_init"]["status"] == "done"
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_wait_for_cloud_init_that_failed_fails_with_its_messages_and_output(guest, dom):
    clock = Clock()
    guest(files=FAILED, clock=clock)
    with pytest.raises(BackendError, match=r"cloud-init failed in VM 'u-ready' \(datasource DataSourceNoCloud "
                                           r"\[seed=/dev/sr0\]\[dsmode=net\]\): \('scripts-user', RuntimeError\('Runparts: "
                                           r"1 failures \(runcmd\)") as info:
        _ready.wait_ready(dom, ("cloud_init",), 60, sleep=clock.sleep, clock=clock.clock)
    state = info.value.details["cloud_init"]
    assert state["status"] == "error" and "runcmd-was-here" in state["output"]
    assert len(state["output"]) == _ready.OUTPUT_LINES


def test_wait_for_cloud_init_disabled_fails_at_once(guest, dom):
    guest(files={_ready.DISABLED: b""})
    with pytest.raises(ConflictError, match="cloud-init is disabled in VM 'u-ready'"):
        _ready.wait_ready(dom, ("cloud_init",), 60, sleep=Clock().sleep)


def test_wait_for_cloud_init_times_out_saying_where_it_is(guest, dom):
    clock = Clock()
    status = json.loads(json.dumps(LAB["done"]["status"]))
    status["v1"]["stage"] = "modules-config"
    guest(files={_ready.STATUS_JSON: as_file(status)}, clock=clock)
    with pytest.raises(OperationTimeoutError, match="waiting for cloud-init to finish of VM 'u-ready'; cloud-init is "
                                                    "running \\(stage modules-config\\)"):
        _ready.wait_ready(dom, ("cloud_init",), 30, sleep=clock.sleep, clock=clock.clock)


def test_wait_on_a_stopped_vm_is_a_conflict(guest, dom):
    dom.destroy()
    guest()
    with pytest.raises(ConflictError, match="is not running"):
        _ready.wait_ready(dom, ("agent",), 60)


# ------------------------------------------------- cloud_init.detach waits the same way ---

class _SeededVm:
    """What SeedDevice needs of its VmResource for the detach wait."""

    def __init__(self, dom):
        self.dom, self.name, self.ctx = dom, dom.name(), None

    def _lookup(self):
        return self.dom


def detach_wait(dom, instance_id, clock, timeout=60):
    return SeedDevice(_SeededVm(dom))._wait_cloud_init(instance_id, timeout, sleep=clock.sleep, clock=clock.clock)


def test_detach_waits_for_cloud_init_through_the_agent_then_checks_the_instance(guest, dom):
    clock = Clock()
    files = dict(DONE)
    files[_ready.RESULT_JSON] = lambda now: DONE[_ready.RESULT_JSON] if now > 103 else None
    files[INSTANCE_ID_FILE] = b"iid-seed-1\n"
    fake = guest(files=files, clock=clock, connect_after=1)
    detach_wait(dom, "iid-seed-1", clock)()
    assert "guest-exec" not in fake.requests and fake.requests.count("guest-ping") == 2
    with pytest.raises(ConflictError, match=r"cloud_init.detach: VM u-ready runs cloud-init instance 'iid-seed-1', "
                                            r"not 'iid-seed-2' of its seed"):
        detach_wait(dom, "iid-seed-2", clock)()


def test_detach_of_a_seed_whose_cloud_init_failed_still_detaches_it(guest, dom):
    guest(files=dict(FAILED, **{INSTANCE_ID_FILE: b"iid-x"}), clock=Clock())
    detach_wait(dom, "iid-x", Clock())()  # cloud-init read the seed: its runcmd's failure is not the seed's


def test_detach_wait_times_out_with_the_option_named(guest, dom):
    clock = Clock()
    guest(files={_ready.STATUS_JSON: DONE[_ready.STATUS_JSON]}, clock=clock)
    with pytest.raises(OperationTimeoutError, match=r"^cloud_init.detach: timed out after 30 s waiting for cloud-init"):
        detach_wait(dom, "iid-x", clock, timeout=30)()


# ---------------------------------------------------------------------- the vm module ---

def vm_run(conn, check=False, **given):
    params = ArgumentSpecValidator(ARGUMENT_SPEC).validate(given)
    assert not params.error_messages, params.error_messages
    ctx = Context(conn=conn, params=params.validated_parameters, check_mode=check, diff=False)
    return reconcile(VmResource(ctx), check_mode=check, want_diff=False)


@pytest.fixture
def vm_name(test_conn):
    name = "u-ready-vm"
    yield name
    dom = test_conn.lookupByName(name) if name in [d.name() for d in test_conn.listAllDomains(0)] else None
    if dom is not None:
        if dom.isActive():
            dom.destroy()
        dom.undefine()


def test_vm_check_mode_does_not_wait_for_a_vm_it_would_start(test_conn, vm_name, guest):
    fake = guest(files=DONE)
    result = vm_run(test_conn, check=True, name=vm_name, memory="64", wait_for=["agent", "cloud_init"])
    assert result["changed"] and result["ready"] is None and fake.requests == []


def test_vm_waits_after_starting_and_a_ready_vm_returns_at_once_unchanged(test_conn, vm_name, guest):
    guest(files=DONE)
    first = vm_run(test_conn, name=vm_name, memory="64", guest_agent=True, wait_for=["cloud_init", "agent"])
    assert first["changed"] and first["ready"]["conditions"] == ["agent", "cloud_init"]
    assert first["ready"]["agent"] and first["ready"]["cloud_init"]["status"] == "done"
    for check in (True, False):  # a running VM is waited for in check mode too: reading changes nothing
        again = vm_run(test_conn, check=check, name=vm_name, memory="64", guest_agent=True, wait_for=["agent", "cloud_init"])
        assert not again["changed"] and again["ready"]["cloud_init"]["status"] == "done"


def test_vm_whose_cloud_init_failed_fails_with_changed_true(test_conn, vm_name, guest):
    guest(files=FAILED)
    with pytest.raises(BackendError, match="cloud-init failed in VM 'u-ready-vm'") as info:
        vm_run(test_conn, name=vm_name, memory="64", guest_agent=True, wait_for=["cloud_init"])
    assert info.value.details["changed"] is True  # the VM was made and started: that stays
    assert test_conn.lookupByName(vm_name).isActive()


def test_vm_wait_for_needs_a_running_state(test_conn, vm_name):
    with pytest.raises(InvalidInputError, match="wait_for: a VM is waited for only when it runs"):
        vm_run(test_conn, name=vm_name, memory="64", state="stopped", wait_for=["agent"])


def test_vm_on_a_driver_without_agent_fails_clearly(test_conn, vm_name):
    with pytest.raises(InvalidInputError, match="no guest agent support"):
        vm_run(test_conn, name=vm_name, memory="64", wait_for=["agent"])


# ------------------------------------------------------------------------- guest facts ---

def test_shape_guest_info_of_the_lab_guest():
    facts = shape_guest_info(LAB["guest_info"])
    assert facts["hostname"] == "vagent-ci"
    assert facts["os"] == {"id": "debian", "name": "Debian GNU/Linux", "pretty_name": "Debian GNU/Linux 12 (bookworm)",
                           "version": "12 (bookworm)", "version_id": "12", "kernel_release": "6.1.0-50-amd64",
                           "kernel_version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-07-02)", "machine": "x86_64"}
    assert facts["timezone"] == {"name": "UTC", "offset": 0}
    assert facts["users"] == [{"name": "root", "login_time": 1796666463900}]
    assert facts["filesystems"] == [{"name": "vda", "mountpoint": "/", "fstype": "ext4", "total_bytes": 2002124800,
                                     "used_bytes": 682790912, "disks": [{"alias": "vda", "device": "/dev/vda"}]}]
    assert [d["name"] for d in facts["disks"]] == ["/dev/vda", "/dev/sr0"]
    assert facts["interfaces"] == [{"name": "lo", "mac": "00:00:00:00:00:00", "addresses": [
        {"address": "127.0.0.1", "prefix": 8, "type": "ipv4"}, {"address": "::1", "prefix": 128, "type": "ipv6"}]}]


def test_shape_guest_info_keeps_list_order_past_nine_and_fills_what_is_missing():
    flat = dict(("user.%d.name" % i, "u%d" % i) for i in range(12))
    facts = shape_guest_info(flat)
    assert [u["name"] for u in facts["users"]] == ["u%d" % i for i in range(12)]
    assert facts["filesystems"] == [] and facts["hostname"] is None and facts["os"] == {}


def test_guest_facts_without_agent_is_a_reason_not_a_failure(test_conn, dom):
    assert guest_facts(dom) == (None, "this libvirt driver has no guest agent support (only QEMU/KVM has): this function "
                                      "is not supported by the connection driver: virDomainGetGuestInfo")
    dom.destroy()
    assert guest_facts(dom) == (None, "VM 'u-ready' is not running")


def test_vm_info_guest_info_is_opt_in_and_never_fails(test_conn, dom):
    from ansible_collections.virtops.libvirt.plugins.module_utils._domain.info import gather_vm_info
    plain = gather_vm_info(Context(conn=test_conn, params=dict(name="u-ready", addresses=False)))["vms"][0]
    assert "guest" not in plain and "guest_error" not in plain
    asked = gather_vm_info(Context(conn=test_conn, params=dict(name="u-ready", addresses=False, guest_info=True)))["vms"][0]
    assert asked["guest"] is None and "no guest agent support" in asked["guest_error"]
