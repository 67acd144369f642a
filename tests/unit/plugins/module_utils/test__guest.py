# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run-time facts of domains: states, addresses, waiting, guest agent, uptime.

Against libvirt's test driver where it can answer; small fakes only for what it cannot do
(guest agent replies, agent/ARP failures, a disk whose file is gone).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import subprocess
import threading
import time

import libvirt
import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import addresses as _addresses
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import agent as _agent
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import states as _states

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    InvalidInputError,
    OperationTimeoutError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.address_wait import wait_for_addresses
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.addresses import domain_ip_summary, interface_addresses
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.agent import agent_command, guest_exec
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.runtime_facts import (
    console_facts,
    disk_sizes,
    graphics_facts,
    process_uptime,
    qemu_pid_file,
    runtime_facts,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.states import state_names, state_of

DOMAIN_XML = """
<domain type='test'>
  <name>%(name)s</name>
  <memory unit='MiB'>64</memory>
  <os><type>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><source file='/guest/%(name)s.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>
    <interface type='network'><mac address='52:54:00:00:00:01'/><source network='default'/></interface>
    <interface type='network'><mac address='52:54:00:00:00:02'/><source network='default'/></interface>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <graphics type='vnc' port='5907' autoport='no' listen='127.0.0.1'/>
  </devices>
</domain>
"""
MAC1 = "52:54:00:00:00:01"
MAC2 = "52:54:00:00:00:02"


@pytest.fixture
def dom(test_conn):
    """A running domain of our own on the test driver, with two NICs; removed afterwards."""
    domain = test_conn.defineXML(DOMAIN_XML % dict(name="guest-unit"))
    domain.create()
    yield domain
    if domain.isActive():
        domain.destroy()
    domain.undefine()


def lv_error(code_name, message):
    """A libvirtError carrying the code and text libvirt would set."""
    exc = libvirt.libvirtError(message)
    exc.err = (getattr(libvirt, code_name), 0, message, 2, None, None, None, 0, 0)
    return exc


class FakeClock:
    """``clock`` and ``sleep`` for the polling loops: sleeping advances time, nothing waits."""

    def __init__(self, on_sleep=None):
        self.now = 1000.0
        self.sleeps = []
        self.on_sleep = on_sleep

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))


# ------------------------------------------------------------------------------ states ---

def _reason_constants():
    """Every reason constant libvirt-python defines, as (state name, reason name, state, reason)."""
    out = []
    for state_name, _reasons in _states._STATE_TABLE:
        prefix = "VIR_DOMAIN_%s_" % state_name
        for const in dir(libvirt):
            if not const.startswith(prefix):
                continue
            reason = const[len(prefix):]
            if state_name == "SHUTDOWN" and reason not in ("UNKNOWN", "USER"):
                continue  # VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN, ...: flags of shutdownFlags(), not reasons
            if state_name == "PMSUSPENDED" and reason.startswith("DISK_"):
                continue  # virDomainPMSuspendedDiskReason: not what dom.state() returns
            if state_name == "RUNNING" and reason == "LAST":
                continue
            out.append((state_name.lower(), reason.lower(), getattr(libvirt, "VIR_DOMAIN_" + state_name),
                        getattr(libvirt, const)))
    return out


@pytest.mark.parametrize("state_name, reason_name, state, reason", _reason_constants(),
                         ids=["%s-%s" % r[:2] for r in _reason_constants()])
def test_every_libvirt_reason_has_its_name(state_name, reason_name, state, reason):
    assert state_names(state, reason) == (state_name, reason_name)


@pytest.mark.parametrize("numbers, names", [
    ((1, 1), ("running", "booted")),
    ((3, 1), ("paused", "user")),
    ((5, 2), ("shutoff", "destroyed")),
    ((4, 1), ("shutdown", "user")),
    ((7, 0), ("pmsuspended", "unknown")),
    ((1, 999), ("running", "unknown")),  # a reason a newer libvirt may add
    ((42, 0), ("unknown", "unknown")),
])
def test_state_names(numbers, names):
    assert state_names(*numbers) == names


def test_state_of_follows_lifecycle(dom):
    steps = [
        (lambda: None, ("running", "booted")),
        (dom.suspend, ("paused", "user")),
        (dom.resume, ("running", "unpaused")),
        (dom.shutdown, ("shutoff", "shutdown")),
        (dom.create, ("running", "booted")),
        (dom.destroy, ("shutoff", "destroyed")),
    ]
    for action, expected in steps:
        action()
        assert state_of(dom) == expected


# --------------------------------------------------------------------------- addresses ---

def ipv4(address, prefix=24):
    return dict(addr=address, prefix=prefix, type=libvirt.VIR_IP_ADDR_TYPE_IPV4)


def ipv6(address, prefix=64):
    return dict(addr=address, prefix=prefix, type=libvirt.VIR_IP_ADDR_TYPE_IPV6)


NORMALIZE = [
    ("loopback interface dropped",
     {"lo": dict(hwaddr="00:00:00:00:00:00", addrs=[ipv4("127.0.0.1", 8), ipv6("::1", 128)]),
      "eth0": dict(hwaddr="52:54:00:AA:00:01", addrs=[ipv4("10.0.0.5"), ipv6("fe80::1")])},
     [dict(mac="52:54:00:aa:00:01", name="eth0", source="agent", addresses=[
         dict(type="ipv4", address="10.0.0.5", prefix=24), dict(type="ipv6", address="fe80::1", prefix=64)])]),
    ("loopback addresses dropped elsewhere too",
     {"eth0": dict(hwaddr="52:54:00:aa:00:01", addrs=[ipv4("127.0.1.1", 8), ipv4("10.0.0.5")])},
     [dict(mac="52:54:00:aa:00:01", name="eth0", source="agent",
           addresses=[dict(type="ipv4", address="10.0.0.5", prefix=24)])]),
    ("no MAC: kept by name",
     {"wg0": dict(hwaddr=None, addrs=[ipv4("10.9.0.1")]),
      "tun0": dict(hwaddr="00:00:00:00:00:00", addrs=None)},
     [dict(mac=None, name="wg0", source="agent", addresses=[dict(type="ipv4", address="10.9.0.1", prefix=24)]),
      dict(mac=None, name="tun0", source="agent", addresses=[])]),
    ("same MAC twice (bridge in the guest): one entry, named after the one with addresses",
     {"eth0": dict(hwaddr="52:54:00:aa:00:01", addrs=[]),
      "br0": dict(hwaddr="52:54:00:aa:00:01", addrs=[ipv4("10.0.0.7")])},
     [dict(mac="52:54:00:aa:00:01", name="br0", source="agent",
           addresses=[dict(type="ipv4", address="10.0.0.7", prefix=24)])]),
    ("nothing", {}, []),
]


@pytest.mark.parametrize("label, raw, expected", NORMALIZE, ids=[n[0] for n in NORMALIZE])
def test_normalize(label, raw, expected):
    assert _addresses._normalize(raw, "agent") == expected


@pytest.mark.parametrize("source", ["lease", "agent", "arp", "any"])
def test_interface_addresses_from_test_driver(test_conn, dom, source):
    found = interface_addresses(test_conn, dom, source)
    assert [i["mac"] for i in found] == [MAC1, MAC2]
    expected_source = "agent" if source == "any" else source
    for item in found:
        assert item["source"] == expected_source
        assert item["addresses"] and item["addresses"][0]["type"] == "ipv4"
        assert isinstance(item["addresses"][0]["prefix"], int)


def test_interface_addresses_of_inactive_domain_is_empty(test_conn, dom):
    dom.destroy()
    assert interface_addresses(test_conn, dom, "any") == []


def test_interface_addresses_rejects_unknown_source(test_conn, dom):
    with pytest.raises(InvalidInputError, match="lease, agent, arp, any"):
        interface_addresses(test_conn, dom, "dhcp")


class FakeDom:
    """A running domain whose address sources answer from a script (for what the test driver cannot do)."""

    def __init__(self, replies, xml=None, name="fake", state=(1, 1)):
        self.replies = replies  # {source constant: raw dict or (code, message), or a list of them (one per call)}
        self.xml = xml or DOMAIN_XML % dict(name=name)
        self.active = state[0] != 5
        self._state = list(state)
        self._name = name
        self.calls = []

    def name(self):
        return self._name

    def UUIDString(self):
        return "00000000-0000-0000-0000-%012x" % id(self)

    def isActive(self):
        return self.active

    def state(self, flags=0):
        return self._state if self.active else [5, 1]

    def XMLDesc(self, flags=0):
        return self.xml

    def interfaceAddresses(self, source, flags=0):
        self.calls.append(source)
        reply = self.replies.get(source, {})
        if isinstance(reply, list):
            reply = reply.pop(0) if len(reply) > 1 else reply[0]
        if isinstance(reply, tuple):
            raise lv_error(*reply)
        if isinstance(reply, threading.Event):  # a hung agent: answers once the event is set
            reply.wait(10)
            return {}
        return reply


LEASE, AGENT, ARP = (libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
                     libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP)
# (code, message) as libvirt 9.0 reported them in the lab.  Exceptions are made fresh per use: a
# raised exception kept at module level would keep its traceback's frames, and with them the test
# driver connection (whose state then leaks into other tests).
NOT_CONNECTED = ("VIR_ERR_AGENT_UNRESPONSIVE", "Guest agent is not responding: QEMU guest agent is not connected")
NOT_CONFIGURED = ("VIR_ERR_ARGUMENT_UNSUPPORTED", "argument unsupported: QEMU guest agent is not configured")
NOT_AVAILABLE = ("VIR_ERR_AGENT_UNRESPONSIVE", "Guest agent is not responding: Guest agent not available for now")
ARP_BROKEN = ("VIR_ERR_INTERNAL_ERROR", "internal error: wrong nlmsg len")
NOT_RUNNING = ("VIR_ERR_OPERATION_INVALID", "Requested operation is not valid: domain is not running")


def test_any_merges_per_mac_first_source_with_an_address_wins(test_conn):
    fake = FakeDom({
        AGENT: {"lo": dict(hwaddr="00:00:00:00:00:00", addrs=[ipv4("127.0.0.1", 8)]),
                "eth0": dict(hwaddr=MAC1, addrs=[ipv4("10.0.0.5"), ipv6("fd00::5")]),
                "eth1": dict(hwaddr=MAC2, addrs=[])},
        LEASE: {"vnet0": dict(hwaddr=MAC1, addrs=[ipv4("10.0.0.99")]),
                "vnet1": dict(hwaddr=MAC2, addrs=[ipv4("10.0.1.6")])},
        ARP: ARP_BROKEN,
    })
    found = interface_addresses(test_conn, fake, "any")
    assert [(i["mac"], i["name"], i["source"]) for i in found] == [(MAC1, "eth0", "agent"), (MAC2, "vnet1", "lease")]
    assert [a["address"] for a in found[0]["addresses"]] == ["10.0.0.5", "fd00::5"]
    assert fake.calls == [AGENT, LEASE, ARP]


def test_any_skips_a_missing_agent(test_conn):
    fake = FakeDom({AGENT: NOT_CONFIGURED, LEASE: {"vnet0": dict(hwaddr=MAC1, addrs=[ipv4("10.0.0.9")])}, ARP: {}})
    found = interface_addresses(test_conn, fake, "any")
    assert [(i["mac"], i["source"]) for i in found] == [(MAC1, "lease")]


EXPLICIT_ERRORS = [
    ("agent", NOT_CONNECTED, BackendError, "is qemu-guest-agent running in the guest and does the VM have an "
                                           "org.qemu.guest_agent.0 channel"),
    ("agent", NOT_CONFIGURED, InvalidInputError, "has no guest agent channel"),
    ("agent", NOT_AVAILABLE, OperationTimeoutError, "did not answer"),
    ("arp", ARP_BROKEN, BackendError, "from source 'arp' failed: internal error: wrong nlmsg len"),
    ("lease", ("VIR_ERR_NO_SUPPORT", "this function is not supported by the connection driver"),
     InvalidInputError, "cannot read the addresses of VM 'fake' from source 'lease'"),
    ("lease", NOT_RUNNING, ConflictError, "is not running"),
]


@pytest.mark.parametrize("source, exc, error, text", EXPLICIT_ERRORS, ids=[e[1][1][:40] for e in EXPLICIT_ERRORS])
def test_explicit_source_errors_are_clear(test_conn, source, exc, error, text):
    fake = FakeDom({dict(lease=LEASE, agent=AGENT, arp=ARP)[source]: exc})
    with pytest.raises(error, match=text.replace("(", r"\(").replace(".", r"\.")) as info:
        interface_addresses(test_conn, fake, source)
    assert "\n" not in info.value.msg


def test_paused_domain_any_skips_the_agent_but_reads_leases(test_conn):
    # libvirt answers agent requests of a paused domain with "domain is not running"
    fake = FakeDom({AGENT: NOT_RUNNING, LEASE: {"vnet0": dict(hwaddr=MAC1, addrs=[ipv4("10.0.0.9")])}, ARP: {}},
                   state=(3, 1))
    assert [(i["mac"], i["source"]) for i in interface_addresses(test_conn, fake, "any")] == [(MAC1, "lease")]
    with pytest.raises(ConflictError, match="VM 'fake' is paused \\(user\\): its guest agent cannot answer"):
        interface_addresses(test_conn, fake, "agent")


def test_disconnected_agent_channel_is_not_asked(test_conn):
    xml = DOMAIN_XML.replace("<serial type='pty'>", "<channel type='unix'><target type='virtio' "
                             "name='org.qemu.guest_agent.0' state='disconnected'/></channel><serial type='pty'>")
    fake = FakeDom({LEASE: {"vnet0": dict(hwaddr=MAC1, addrs=[ipv4("10.0.0.9")])}}, xml=xml)
    assert [i["source"] for i in interface_addresses(test_conn, fake, "any")] == ["lease"]
    with pytest.raises(BackendError, match="is not connected"):
        interface_addresses(test_conn, fake, "agent")
    assert AGENT not in fake.calls


def test_a_hung_agent_is_abandoned_after_agent_timeout(test_conn):
    answer = threading.Event()
    fake = FakeDom({AGENT: answer, LEASE: {"vnet0": dict(hwaddr=MAC1, addrs=[ipv4("10.0.0.9")])}})
    try:
        with pytest.raises(OperationTimeoutError, match="did not answer the request for its network interfaces within 0.2 s"):
            interface_addresses(test_conn, fake, "agent", agent_timeout=0.2)
        # 'any' goes on with the other sources, and sends no second request while the first is pending
        found = interface_addresses(test_conn, fake, "any", agent_timeout=0.2)
        assert [i["source"] for i in found] == ["lease"]
        assert fake.calls.count(AGENT) == 1
    finally:
        answer.set()
    _addresses._PENDING_AGENT[fake.UUIDString()].join(5)
    fake.replies[AGENT] = {"eth0": dict(hwaddr=MAC1, addrs=[ipv4("10.0.0.5")])}
    assert [i["source"] for i in interface_addresses(test_conn, fake, "any")] == ["agent"]
    assert fake.UUIDString() not in _addresses._PENDING_AGENT


def test_lease_source_covers_bridge_interfaces_on_a_libvirt_network(test_conn):
    xml = DOMAIN_XML.replace("<interface type='network'><mac address='52:54:00:00:00:02'/><source network='default'/>",
                             "<interface type='bridge'><mac address='52:54:00:00:00:02'/><source bridge='virbr9'/>")

    class Network:
        def bridgeName(self):
            return "virbr9"

        def isActive(self):
            return True

        def DHCPLeases(self, mac=None, flags=0):
            return [dict(mac=MAC2.upper(), ipaddr="192.168.9.20", prefix=24, iface="virbr9", type=0,
                         hostname="g", clientid=None, expirytime=0)]

    class Conn:
        def listAllNetworks(self, flags=0):
            return [Network()]

    fake = FakeDom({LEASE: {"vnet0": dict(hwaddr=MAC1, addrs=[ipv4("192.168.9.10")])}}, xml=xml)
    found = interface_addresses(Conn(), fake, "lease")
    assert [(i["mac"], i["name"], i["addresses"][0]["address"]) for i in found] == [
        (MAC1, "vnet0", "192.168.9.10"), (MAC2, "virbr9", "192.168.9.20")]


# ----------------------------------------------------------------------------- waiting ---

def test_wait_returns_at_once_when_every_nic_has_an_address(test_conn, dom):
    clock = FakeClock()
    found = wait_for_addresses(test_conn, dom, sleep=clock.sleep, clock=clock.clock)
    assert [i["mac"] for i in found] == [MAC1, MAC2]
    assert clock.sleeps == []


def test_wait_times_out_with_growing_interval_and_says_what_it_saw(test_conn, dom):
    clock = FakeClock()
    with pytest.raises(OperationTimeoutError) as info:
        wait_for_addresses(test_conn, dom, source="lease", timeout=20, macs=[MAC1, "52:54:00:00:00:99"],
                           sleep=clock.sleep, clock=clock.clock)
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 2.5]
    msg = info.value.msg
    assert info.value.kind == "timeout"
    assert "VM 'guest-unit'" in msg and "source lease" in msg and "20 s" in msg
    assert "52:54:00:00:00:99: no address (missing ipv4)" in msg
    assert MAC1 + ": 192.168.122." in msg
    assert info.value.details["missing"] == ["52:54:00:00:00:99"]


def test_wait_for_ipv6_ignores_ipv4_and_link_local(test_conn):
    fake = FakeDom({LEASE: {"vnet0": dict(hwaddr=MAC1, addrs=[ipv4("10.0.0.5"), ipv6("fe80::5")])}})
    clock = FakeClock()
    with pytest.raises(OperationTimeoutError, match="missing ipv6"):
        wait_for_addresses(test_conn, fake, source="lease", family="ipv6", macs=[MAC1], timeout=3,
                           sleep=clock.sleep, clock=clock.clock)
    found = wait_for_addresses(test_conn, fake, source="lease", family="any", macs=[MAC1.upper()],
                               sleep=clock.sleep, clock=clock.clock)
    assert found[0]["mac"] == MAC1


def test_wait_keeps_waiting_while_the_agent_connects(test_conn):
    fake = FakeDom({AGENT: [NOT_CONNECTED, NOT_CONNECTED, {"eth0": dict(hwaddr=MAC1, addrs=[ipv4("10.0.0.5")])}]})
    clock = FakeClock()
    found = wait_for_addresses(test_conn, fake, source="agent", macs=[MAC1], sleep=clock.sleep, clock=clock.clock)
    assert found[0]["addresses"][0]["address"] == "10.0.0.5"
    assert clock.sleeps == [0.5, 1.0]


def test_wait_keeps_waiting_while_the_domain_is_paused(test_conn):
    fake = FakeDom({AGENT: [NOT_RUNNING, {"eth0": dict(hwaddr=MAC1, addrs=[ipv4("10.0.0.5")])}]}, state=(3, 1))
    clock = FakeClock()
    found = wait_for_addresses(test_conn, fake, source="agent", macs=[MAC1], sleep=clock.sleep, clock=clock.clock)
    assert found[0]["source"] == "agent" and clock.sleeps == [0.5]


def test_wait_fails_at_once_without_an_agent_channel(test_conn):
    fake = FakeDom({AGENT: NOT_CONFIGURED})
    clock = FakeClock()
    with pytest.raises(InvalidInputError, match="org.qemu.guest_agent.0"):
        wait_for_addresses(test_conn, fake, source="agent", sleep=clock.sleep, clock=clock.clock)
    assert clock.sleeps == []


def test_wait_timeout_mentions_failing_sources(test_conn):
    fake = FakeDom({AGENT: NOT_CONNECTED, LEASE: {}, ARP: ARP_BROKEN})
    clock = FakeClock()
    with pytest.raises(OperationTimeoutError) as info:
        wait_for_addresses(test_conn, fake, timeout=1, sleep=clock.sleep, clock=clock.clock)
    assert "agent: the guest agent of VM 'fake' is not connected" in info.value.msg
    assert "arp: " in info.value.msg


def test_wait_fails_at_once_when_the_domain_stops(test_conn, dom):
    clock = FakeClock(on_sleep=lambda n: dom.destroy() if n == 2 else None)
    with pytest.raises(ConflictError, match="VM 'guest-unit' stopped \\(shutoff, destroyed\\) while waiting"):
        wait_for_addresses(test_conn, dom, macs=["52:54:00:00:00:99"], sleep=clock.sleep, clock=clock.clock)
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize("kwargs, error, text", [
    (dict(family="ipv5"), InvalidInputError, "ipv4, ipv6, any"),
    (dict(source="dns"), InvalidInputError, "lease, agent, arp, any"),
    (dict(timeout=-1), InvalidInputError, "negative"),
    (dict(timeout="soon"), InvalidInputError, "number of seconds"),
    (dict(macs=["not-a-mac"]), InvalidInputError, "is not a MAC address"),
])
def test_wait_rejects_bad_arguments(test_conn, dom, kwargs, error, text):
    with pytest.raises(error, match=text):
        wait_for_addresses(test_conn, dom, **kwargs)


def test_wait_on_a_stopped_domain_fails_at_once(test_conn, dom):
    dom.destroy()
    with pytest.raises(ConflictError, match="is not running \\(shutoff, destroyed\\)"):
        wait_for_addresses(test_conn, dom)


def test_wait_on_a_domain_without_nics(test_conn):
    fake = FakeDom({}, xml="<domain><name>x</name><devices/></domain>")
    with pytest.raises(InvalidInputError, match="has no network interface"):
        wait_for_addresses(test_conn, fake)


@pytest.mark.parametrize("interfaces, macs, ip", [
    ([], None, None),
    ([dict(mac=MAC1, addresses=[dict(type="ipv6", address="fd00::1", prefix=64)])], None, None),
    ([dict(mac=MAC1, addresses=[dict(type="ipv4", address="169.254.3.3", prefix=16),
                                dict(type="ipv4", address="10.0.0.5", prefix=24)])], None, "10.0.0.5"),
    ([dict(mac="02:42:00:00:00:01", name="docker0", addresses=[dict(type="ipv4", address="172.17.0.1", prefix=16)]),
      dict(mac=MAC1, addresses=[dict(type="ipv4", address="10.0.0.5", prefix=24)])], None, "172.17.0.1"),
    ([dict(mac="02:42:00:00:00:01", name="docker0", addresses=[dict(type="ipv4", address="172.17.0.1", prefix=16)]),
      dict(mac=MAC1, addresses=[dict(type="ipv4", address="10.0.0.5", prefix=24)])], [MAC2, MAC1.upper()], "10.0.0.5"),
])
def test_domain_ip_summary(interfaces, macs, ip):
    assert domain_ip_summary(interfaces, macs) == ip


# ------------------------------------------------------------------------- guest agent ---

class FakeAgent:
    """Stands in for the libvirt_qemu module: answers agent commands from a script."""

    def __init__(self, answers):
        self.answers = answers  # list of reply strings / dicts / exceptions, consumed in order
        self.requests = []

    def qemuAgentCommand(self, dom, cmd, timeout, flags):
        self.requests.append((json.loads(cmd), timeout))
        answer = self.answers.pop(0)
        if isinstance(answer, tuple):
            raise lv_error(*answer)
        return answer if isinstance(answer, str) else json.dumps(answer)


@pytest.fixture
def agent(monkeypatch):
    def install(*answers):
        fake = FakeAgent(list(answers))
        monkeypatch.setattr(_agent, "libvirt_qemu", fake)
        return fake
    return install


def test_agent_command_returns_the_return_value(agent, dom):
    fake = agent({"return": {"host-name": "web1"}})
    assert agent_command(dom, "guest-get-host-name") == {"host-name": "web1"}
    assert fake.requests == [({"execute": "guest-get-host-name"}, 10)]


def test_agent_command_passes_arguments(agent, dom):
    fake = agent({"return": {}})
    agent_command(dom, "guest-set-time", {"time": 1}, timeout=3)
    assert fake.requests == [({"execute": "guest-set-time", "arguments": {"time": 1}}, 3)]


AGENT_ERRORS = [
    (NOT_CONNECTED, BackendError, "is not connected: is qemu-guest-agent running"),
    (NOT_CONFIGURED, InvalidInputError, "has no guest agent channel"),
    (NOT_AVAILABLE, OperationTimeoutError, "did not answer guest agent command 'guest-ping' within 10 s"),
    (("VIR_ERR_INTERNAL_ERROR", "internal error: unable to execute QEMU agent command 'guest-nope': "
                                "The command guest-nope has not been found"),
     BackendError, "guest agent command 'guest-ping' failed in VM 'guest-unit': .*has not been found"),
    ("this is not json", BackendError, "not JSON"),
    ({"error": {"class": "GenericError", "desc": "boom"}}, BackendError, "failed in VM 'guest-unit': boom"),
]


@pytest.mark.parametrize("answer, error, text", AGENT_ERRORS, ids=[str(a[2])[:30] for a in AGENT_ERRORS])
def test_agent_command_errors(agent, dom, answer, error, text):
    agent(answer)
    with pytest.raises(error, match=text) as info:
        agent_command(dom, "guest-ping")
    assert "\n" not in info.value.msg


@pytest.mark.parametrize("action, text", [
    ("suspend", "VM 'guest-unit' is paused \\(user\\): its guest agent cannot answer guest agent command "
                "'guest-ping' until it runs again"),
    ("destroy", "VM 'guest-unit' is not running \\(shutoff, destroyed\\): guest agent command 'guest-ping' "
                "needs a running guest"),
])
def test_agent_command_on_a_domain_that_does_not_run(agent, dom, action, text):
    getattr(dom, action)()
    agent(NOT_RUNNING)  # what libvirt says in both cases
    with pytest.raises(ConflictError, match=text):
        agent_command(dom, "guest-ping")


def test_agent_command_on_the_test_driver_is_unsupported(dom):
    # real libvirt: only the QEMU driver has a guest agent
    with pytest.raises(InvalidInputError, match="no guest agent support"):
        agent_command(dom, "guest-ping")


@pytest.mark.parametrize("timeout", [0, -2, "x"])
def test_agent_command_timeout_must_be_positive(agent, dom, timeout):
    agent()
    with pytest.raises(InvalidInputError, match="timeout"):
        agent_command(dom, "guest-ping", timeout=timeout)


def b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def test_guest_exec_polls_until_exit_and_decodes(agent, dom):
    fake = agent({"return": {"pid": 42}},
                 {"return": {"exited": False}},
                 {"return": {"exited": False}},
                 {"return": {"exited": True, "exitcode": 3, "out-data": b64("héllo\n"), "err-data": b64("oops")}})
    clock = FakeClock()
    result = guest_exec(dom, "/bin/sh", ["-c", "cat; exit 3"], input_data="héllo\n", sleep=clock.sleep, clock=clock.clock)
    assert result == dict(exitcode=3, signal=None, stdout="héllo\n", stderr="oops", truncated=False)
    start = fake.requests[0][0]
    assert start == {"execute": "guest-exec", "arguments": {
        "path": "/bin/sh", "arg": ["-c", "cat; exit 3"], "capture-output": True, "input-data": b64("héllo\n")}}
    assert [r[0] for r in fake.requests[1:]] == [{"execute": "guest-exec-status", "arguments": {"pid": 42}}] * 3
    assert clock.sleeps == [0.1, 0.2]


def test_guest_exec_reports_a_signal_and_truncation(agent, dom):
    agent({"return": {"pid": 7}}, {"return": {"exited": True, "signal": 9, "out-truncated": True}})
    result = guest_exec(dom, "/bin/yes")
    assert result == dict(exitcode=None, signal=9, stdout="", stderr="", truncated=True)


def test_guest_exec_times_out(agent, dom):
    agent({"return": {"pid": 9}}, *([{"return": {"exited": False}}] * 10))
    clock = FakeClock()
    with pytest.raises(OperationTimeoutError, match="'/bin/sleep' \\(pid 9 in VM 'guest-unit'\\) did not finish within 1 s"):
        guest_exec(dom, "/bin/sleep", ["100"], timeout=1, sleep=clock.sleep, clock=clock.clock)
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.3])


def test_guest_exec_of_a_missing_program(agent, dom):
    agent(("VIR_ERR_INTERNAL_ERROR", "internal error: unable to execute QEMU agent command 'guest-exec': "
                                     "Failed to execute child process '/bin/nope' (No such file or directory)"))
    with pytest.raises(BackendError, match="guest agent command 'guest-exec' failed .*No such file"):
        guest_exec(dom, "/bin/nope")


# ----------------------------------------------------------------------- runtime facts ---

def test_runtime_facts_of_a_running_domain(test_conn, dom):
    facts = runtime_facts(test_conn, dom)
    assert facts["state"] == "running" and facts["reason"] == "booted"
    assert facts["active"] is True and facts["persistent"] is True and facts["autostart"] is False
    assert isinstance(facts["id"], int) and facts["id"] > 0
    assert isinstance(facts["cpu_time_ns"], int)
    assert facts["snapshot_count"] == 0
    assert facts["uptime_seconds"] is None  # test:/// is not a local QEMU: not knowable
    assert facts["graphics"] == [dict(type="vnc", port=5907, tls_port=None, listen="127.0.0.1")]
    assert facts["console"]["type"] == "pty" and facts["console"]["target"] == "serial"
    assert list(facts["disk_sizes"]) == ["vda"]  # the empty cdrom is skipped
    assert facts["disk_sizes"]["vda"]["capacity"] > 0


def test_runtime_facts_of_a_stopped_domain(test_conn, dom):
    dom.destroy()
    facts = runtime_facts(test_conn, dom)
    assert (facts["state"], facts["reason"], facts["active"]) == ("shutoff", "destroyed", False)
    assert facts["id"] is None and facts["cpu_time_ns"] is None and facts["uptime_seconds"] is None
    assert facts["graphics"][0]["port"] is None


def test_runtime_facts_count_snapshots(test_conn, dom):
    snap = dom.snapshotCreateXML("<domainsnapshot><name>s1</name></domainsnapshot>", 0)
    try:
        assert runtime_facts(test_conn, dom)["snapshot_count"] == 1
    finally:
        snap.delete(0)


def test_disk_sizes_of_a_missing_file_are_none():
    class Dom:
        def name(self):
            return "d"

        def blockInfo(self, target, flags=0):
            if target == "vdb":
                raise lv_error("VIR_ERR_SYSTEM_ERROR", "cannot stat file '/gone.qcow2': No such file or directory")
            return [10, 5, 6]

    root = _xml.parse("<domain><devices>"
                      "<disk type='file'><source file='/ok.qcow2'/><target dev='vda'/></disk>"
                      "<disk type='file'><source file='/gone.qcow2'/><target dev='vdb'/></disk>"
                      "<disk type='file' device='cdrom'><target dev='sda'/></disk>"
                      "<disk type='volume'><source pool='p' volume='v'/><target dev='vdc'/></disk>"
                      "</devices></domain>")
    assert disk_sizes(Dom(), root) == {
        "vda": dict(capacity=10, allocation=5, physical=6),
        "vdb": dict(capacity=None, allocation=None, physical=None),
        "vdc": dict(capacity=10, allocation=5, physical=6),
    }


GRAPHICS = [
    ("vnc running", "<graphics type='vnc' port='5900' autoport='yes' listen='0.0.0.0'><listen type='address' "
                    "address='0.0.0.0'/></graphics>", True, dict(type="vnc", port=5900, tls_port=None, listen="0.0.0.0")),
    ("vnc not running", "<graphics type='vnc' port='-1' autoport='yes'/>", False,
     dict(type="vnc", port=None, tls_port=None, listen=None)),
    ("spice tls", "<graphics type='spice' port='5901' tlsPort='5902'><listen type='network' address='10.0.0.1' "
                  "network='default'/></graphics>", True, dict(type="spice", port=5901, tls_port=5902, listen="10.0.0.1")),
    ("autoport before start", "<graphics type='spice' port='-1' tlsPort='-1' autoport='yes'/>", True,
     dict(type="spice", port=None, tls_port=None, listen=None)),
    ("vnc socket", "<graphics type='vnc'><listen type='socket' socket='/run/vnc.sock'/></graphics>", True,
     dict(type="vnc", port=None, tls_port=None, listen="/run/vnc.sock")),
]


@pytest.mark.parametrize("label, xml, active, expected", GRAPHICS, ids=[g[0] for g in GRAPHICS])
def test_graphics_facts(label, xml, active, expected):
    root = _xml.parse("<domain><devices>%s</devices></domain>" % xml)
    assert graphics_facts(root, active) == [expected]


CONSOLES = [
    ("pty running", "<serial type='pty'><source path='/dev/pts/3'/><target port='0'/></serial>"
                    "<console type='pty' tty='/dev/pts/3'><source path='/dev/pts/3'/><target type='serial'/></console>",
     dict(type="pty", target="serial", path="/dev/pts/3", log_file=None)),
    ("pty with log", "<serial type='pty'><target type='isa-serial' port='0'/><log file='/var/log/s.log'/></serial>",
     dict(type="pty", target="isa-serial", path=None, log_file="/var/log/s.log")),
    ("file", "<console type='file'><source path='/var/log/c.log'/><target type='serial'/></console>",
     dict(type="file", target="serial", path="/var/log/c.log", log_file=None)),
    ("tcp", "<serial type='tcp'><source mode='bind' host='127.0.0.1' service='4555'/><target port='0'/></serial>",
     dict(type="tcp", target="serial", path="127.0.0.1:4555", log_file=None)),
    ("none", "", None),
]


@pytest.mark.parametrize("label, xml, expected", CONSOLES, ids=[c[0] for c in CONSOLES])
def test_console_facts(label, xml, expected):
    root = _xml.parse("<domain><devices>%s</devices></domain>" % xml)
    assert console_facts(root) == expected


# ---------------------------------------------------------------------------- uptime ---

PID_FILES = [
    ("qemu:///system", "/run/libvirt/qemu/web1.pid"),
    ("qemu+unix:///system", "/run/libvirt/qemu/web1.pid"),
    ("qemu:///system?socket=/var/tmp/virtops-lab/host1/run/libvirt-sock",
     "/var/tmp/virtops-lab/host1/run/qemu/web1.pid"),
    ("qemu:///system?socket=/run/libvirt/virtqemud-sock", "/run/libvirt/qemu/web1.pid"),
    ("qemu:///session?socket=/run/user/1000/libvirt/virtqemud-sock", "/run/user/1000/libvirt/qemu/run/web1.pid"),
    ("qemu+ssh://hv1/system", None),
    ("qemu+tcp://10.0.0.1/system", None),
    ("qemu://hv1/system", None),
    ("test:///default", None),
    ("xen:///system", None),
]


@pytest.mark.parametrize("uri, path", PID_FILES, ids=[p[0] for p in PID_FILES])
def test_qemu_pid_file(uri, path):
    assert qemu_pid_file(uri, "web1") == path


def test_session_pid_file_follows_xdg_runtime_dir(monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1234")
    assert qemu_pid_file("qemu:///session", "w") == "/run/user/1234/libvirt/qemu/run/w.pid"


UUID = "e32b299f-1e66-4e52-a900-5fda0a8f16bd"


def fake_proc(tmp_path, argv, start_ticks, boot_seconds, pid=4242):
    proc = tmp_path / "proc"
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    # comm may contain spaces and parentheses: starttime is the 20th field after the last ')'
    fields = ["S"] + ["0"] * 18 + [str(start_ticks)] + ["0"] * 10
    (proc / str(pid) / "stat").write_text("%d (qemu) (x) %s\n" % (pid, " ".join(fields)))
    (proc / "uptime").write_text("%s 123.00\n" % boot_seconds)
    pid_file = tmp_path / "web1.pid"
    pid_file.write_text(str(pid))
    return str(pid_file), str(proc)


@pytest.mark.parametrize("argv, expected", [
    (["/usr/bin/qemu-system-x86_64", "-name", "guest=web1", "-uuid", UUID], 5000 - 1000),
    (["/usr/bin/qemu-system-x86_64", "-uuid", UUID.upper()], 4000),
    (["/usr/bin/qemu-system-x86_64", "-uuid", "00000000-0000-0000-0000-000000000000"], None),  # another domain
    (["/usr/bin/sleep", "100"], None),  # the pid was reused
])
def test_process_uptime_from_proc(tmp_path, argv, expected):
    ticks = os.sysconf("SC_CLK_TCK")
    pid_file, proc = fake_proc(tmp_path, argv, start_ticks=1000 * ticks, boot_seconds=5000.4)
    assert process_uptime(pid_file, UUID, proc=proc) == expected


def test_process_uptime_without_pid_file(tmp_path):
    assert process_uptime(str(tmp_path / "none.pid"), UUID) is None


def test_process_uptime_of_a_real_process(tmp_path):
    # a real process carrying -uuid on its command line, read from the real /proc
    child = subprocess.Popen(["sh", "-c", "sleep 30; exit 0", "-uuid", UUID])
    try:
        cmdline = "/proc/%d/cmdline" % child.pid
        for _attempt in range(200):  # until the child has exec'd sh
            with open(cmdline, "rb") as handle:
                if b"-uuid" in handle.read():
                    break
            time.sleep(0.01)
        pid_file = tmp_path / "web1.pid"
        pid_file.write_text("%d\n" % child.pid)
        assert process_uptime(str(pid_file), UUID) in (0, 1)
        assert process_uptime(str(pid_file), UUID.replace("e", "f")) is None
    finally:
        child.kill()
        child.wait()
