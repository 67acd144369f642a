# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""module_utils/_inventory: listing hypervisors (libvirt's test driver), concurrency and time limits."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import socket
import tempfile
import threading
import time

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._cluster import inventory as _inventory
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError

WEB = dict(name="web1", state="running", memory=512, vcpus=2, tags=["web", "prod"], metadata=dict(role="frontend"),
           interfaces=[dict(network="default", mac="52:54:00:00:01:01")],
           disks=[dict(path="/var/lib/virtops-test/web1.qcow2", format="qcow2")])
DB = dict(name="db1", state="stopped", memory=1024, vcpus=1, tags=["db"],
          interfaces=[dict(network="default", mac="52:54:00:00:01:02")])
BATCH = dict(name="batch1", state="paused", memory=256)
OPTIONS = dict(ip_source="lease")


def by_name(result):
    return dict((vm["name"], vm) for vm in result["vms"])


@pytest.fixture
def kvm1(make_node):
    return make_node("kvm1", domains=[WEB, DB, BATCH])


# --- one hypervisor ----------------------------------------------------------------------------


def test_list_hypervisor_reads_every_vm(kvm1):
    result = _inventory.list_hypervisor(kvm1, OPTIONS, name="kvm1")
    assert result["name"] == "kvm1"
    assert result["uri"] == kvm1
    assert result["hostname"]  # what libvirt says; the test driver gives the machine's name
    assert [vm["name"] for vm in result["vms"]] == ["batch1", "db1", "web1"]  # sorted
    vms = by_name(result)
    web, db, batch = vms["web1"], vms["db1"], vms["batch1"]
    assert (web["state"], web["active"], db["state"], db["active"], batch["state"], batch["active"]) == (
        "running", True, "stopped", False, "paused", True)
    assert (web["vcpus"], web["memory"], db["vcpus"], db["memory"]) == (2, 512, 1, 1024)
    assert web["tags"] == ["prod", "web"] and web["metadata"] == {"role": "frontend"}
    assert db["tags"] == ["db"] and db["metadata"] == {}
    assert web["arch"] == "x86_64" and web["virt_type"] == "test"
    assert web["persistent"] is True and web["autostart"] is False
    assert web["disks"] == [dict(target="vda", bus="virtio", path="/var/lib/virtops-test/web1.qcow2", pool=None,
                                 volume=None, format="qcow2")]  # a file of no pool
    assert web["macs"] == ["52:54:00:00:01:01"]
    assert db["macs"] == ["52:54:00:00:01:02"]
    # the test driver hands out a lease on the NIC's network for a running domain
    nic = web["interfaces"][0]
    assert (nic["type"], nic["source"], nic["mac"]) == ("network", "default", "52:54:00:00:01:01")
    assert nic["addresses"] and ipaddress.ip_address(nic["addresses"][0]["address"]) in ipaddress.ip_network("192.168.122.0/24")
    assert web["ip_addresses"] == [a["address"] for a in nic["addresses"]]
    assert web["ip"] == web["ip_addresses"][0]
    assert web["address_error"] is None
    # a stopped VM has no addresses, and nothing was asked
    assert db["ip_addresses"] == [] and db["ip"] is None and db["interfaces"][0]["addresses"] == []
    assert isinstance(result["seconds"], float)


def test_records_have_no_secret_and_are_plain_data(make_node):
    uri = make_node("kvm1", domains=[dict(name="vnc1", graphics=dict(type="vnc", password="Sekr3t12"))])
    result = _inventory.list_hypervisor(uri, OPTIONS, name="kvm1")
    assert "Sekr3t12" not in repr(result)
    import json
    assert json.loads(json.dumps(result)) == result  # what goes into the inventory cache


def test_ip_source_none_reads_no_addresses(kvm1):
    web = by_name(_inventory.list_hypervisor(kvm1, dict(ip_source="none"), name="kvm1"))["web1"]
    assert web["ip_addresses"] == [] and web["ip"] is None and web["interfaces"][0]["addresses"] == []


def test_read_only_connection_lists_too(kvm1):
    result = _inventory.list_hypervisor(kvm1, dict(ip_source="lease", read_only=True), name="kvm1")
    assert sorted(by_name(result)) == ["batch1", "db1", "web1"]


@pytest.mark.parametrize("uri, name", [
    ("qemu+ssh://root@kvm7.example.com:2222/system", "kvm7.example.com"),
    ("qemu+tcp://10.0.0.5/system", "10.0.0.5"),
    ("qemu:///system", None),
    ("test:///default", None),
])
def test_name_from_uri(uri, name):
    assert _inventory.name_from_uri(uri) == name


def test_hypervisor_without_name_is_named_by_libvirt(kvm1):
    result = _inventory.list_hypervisor(kvm1, OPTIONS)
    assert result["name"] == result["hostname"]


class VanishingConnection(Connection):
    """A connection whose listing of every VM (``getAllDomainStats``, or ``listAllDomains(0)`` for a
    driver without it) is followed by the removal of one VM (a race with another user)."""

    def open(self):
        conn = super(VanishingConnection, self).open()
        real_stats, real_list = conn.getAllDomainStats, conn.listAllDomains

        def undefine(listed):
            conn.lookupByName("db1").undefine()
            return listed

        conn.getAllDomainStats = lambda stats, flags=0: undefine(real_stats(stats, flags))
        conn.listAllDomains = lambda flags=0: undefine(real_list(flags)) if flags == 0 else real_list(flags)
        return conn


def test_vm_removed_while_listing_is_left_out(kvm1):
    result = _inventory.list_hypervisor(kvm1, OPTIONS, name="kvm1", connection_class=VanishingConnection)
    assert sorted(by_name(result)) == ["batch1", "web1"]


def test_disks_name_their_pool_and_volume(make_node):
    """A disk given by path that is a pool volume names them (as vm and vm_info do)."""
    uri = make_node("kvm2", domains=[dict(WEB, disks=[dict(path="/var/lib/virtops-test/default/web1.qcow2", format="qcow2"),
                                                      dict(path="/srv/outside.img", format="raw")])],
                    volumes={"default": ["web1.qcow2"]})
    web = by_name(_inventory.list_hypervisor(uri, OPTIONS, name="kvm2"))["web1"]
    assert [(d["path"], d["pool"], d["volume"]) for d in web["disks"]] == [
        ("/var/lib/virtops-test/default/web1.qcow2", "default", "web1.qcow2"), ("/srv/outside.img", None, None)]


@pytest.mark.parametrize("options, message", [
    (dict(ip_source="dhcp"), "ip_source"),
    (dict(agent_timeout=-1), "agent_timeout: must be a positive number of seconds, got -1"),
    (dict(agent_timeout=0), "agent_timeout"),
    (dict(agent_timeout="5"), "agent_timeout"),
])
def test_bad_options(options, message):
    with pytest.raises(InvalidInputError, match=message):
        _inventory.check_options(options)


# --- ansible_host -------------------------------------------------------------------------------


def _vm(*addresses, **kwargs):
    nics = [dict(mac="52:54:00:00:00:%02x" % i, addresses=[dict(address=a, type="ipv6" if ":" in a else "ipv4")
                                                           for a in group])
            for i, group in enumerate(addresses)]
    vm = dict(interfaces=nics, ip=kwargs.get("ip"))
    return vm


@pytest.mark.parametrize("vm, networks, expected", [
    (_vm(["10.1.0.5"], ip="10.1.0.5"), None, "10.1.0.5"),
    (_vm([], ip=None), None, None),
    (_vm(["fe80::1", "2001:db8::5"], ip=None), None, "2001:db8::5"),
    (_vm(["192.168.122.7"], ["10.20.0.9"], ip="192.168.122.7"), ["10.20.0.0/16"], "10.20.0.9"),
    (_vm(["192.168.122.7"], ["10.20.0.9"], ip="192.168.122.7"), ["10.99.0.0/16", "192.168.0.0/16"], "192.168.122.7"),
    (_vm(["192.168.122.7"], ip="192.168.122.7"), ["10.0.0.0/8"], None),
    (_vm(["2001:db8::5"], ["10.0.0.4"], ip="10.0.0.4"), ["2001:db8::/32", "10.0.0.0/8"], "2001:db8::5"),
])
def test_first_address(vm, networks, expected):
    nets = [ipaddress.ip_network(n) for n in networks] if networks else None
    assert _inventory.first_address(vm, nets) == expected


# --- several hypervisors, concurrency, time limits ----------------------------------------------


def test_gather_keeps_order_and_reports_failures(make_node, tmp_path):
    uri1 = make_node("kvm1", domains=[WEB])
    uri2 = make_node("kvm2", domains=[DB])
    missing = "qemu:///system?socket=%s" % (tmp_path / "nothing-here.sock")
    results = _inventory.gather([dict(uri=uri1, name="kvm1"), dict(uri=missing), dict(uri=uri2, name="kvm2")], OPTIONS)
    assert [r["name"] for r in results] == ["kvm1", None, "kvm2"]
    assert [sorted(by_name(r)) for r in results] == [["web1"], [], ["db1"]]
    assert results[1]["uri"] == missing
    assert "libvirt daemon is not running" in results[1]["error"]
    assert "error" not in results[0]


def test_run_concurrently_limits_workers_and_keeps_order():
    lock = threading.Lock()
    state = dict(now=0, most=0)

    def job(value):
        def run():
            with lock:
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])
            time.sleep(0.05)
            with lock:
                state["now"] -= 1
            if value == 3:
                raise ValueError("three")
            return value * 10
        return run

    outcomes = _inventory.run_concurrently([job(i) for i in range(6)], workers=2, timeout=30)
    assert outcomes[:3] == [("ok", 0), ("ok", 10), ("ok", 20)]
    assert outcomes[3][0] == "error" and str(outcomes[3][1]) == "three"
    assert outcomes[4:] == [("ok", 40), ("ok", 50)]
    assert state["most"] == 2


def test_run_concurrently_abandons_a_job_that_does_not_return():
    release = threading.Event()
    started = time.monotonic()
    try:
        outcomes = _inventory.run_concurrently([release.wait, lambda: "quick"], workers=2, timeout=1)
    finally:
        release.set()
    assert outcomes == [("timeout", 1), ("ok", "quick")]
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("workers, timeout", [(0, 5), (True, 5), (2, 0), (2, "5")])
def test_run_concurrently_checks_its_limits(workers, timeout):
    with pytest.raises(InvalidInputError):
        _inventory.run_concurrently([], workers=workers, timeout=timeout)


@pytest.fixture
def silent_socket():
    """A unix socket that accepts connections and never answers: a libvirtd that hangs."""
    directory = tempfile.mkdtemp(prefix="virtops-hang-")
    path = os.path.join(directory, "libvirt-sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    server.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except socket.timeout:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept)
    thread.daemon = True
    thread.start()
    yield path
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()  # the abandoned libvirt call gets EOF and its thread ends
    server.close()
    os.unlink(path)
    os.rmdir(directory)


def test_hypervisor_that_does_not_answer_times_out(make_node, silent_socket):
    uri1 = make_node("kvm1", domains=[WEB])
    hung = "qemu:///system?socket=%s" % silent_socket
    started = time.monotonic()
    results = _inventory.gather([dict(uri=hung, name="hung"), dict(uri=uri1, name="kvm1")], OPTIONS, timeout=2)
    elapsed = time.monotonic() - started
    assert results[0]["error"] == "no answer from %s within 2 s" % hung
    assert results[0]["vms"] == []
    assert sorted(by_name(results[1])) == ["web1"]
    assert elapsed < 15
