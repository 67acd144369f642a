# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_info against libvirt's test driver: filters, the merged facts, XML, and no password anywhere."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import libvirt
import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import codec_write as _codec_write
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import normalize as _normalize

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import addresses as _addresses
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import runtime_facts as _runtime

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import info as _vm_info

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.info import gather_vm_info

PASSWORD = "Pw9xQz7k"
WEB = "vinfo-u-web"
DB = "vinfo-u-db"


def _define(conn, name, **params):
    """A domain built the way the vm module builds one (model, creation defaults, build_xml)."""
    model = _normalize.normalize(dict(memory=64, **params))
    _normalize.assign_targets(model)
    model = _normalize.with_creation_defaults(model)
    model["virt_type"] = "test"
    return conn.defineXML(_xml.to_string(_codec_write.build_xml(name, model)))


def _remove(dom):
    try:
        dom.isActive()
    except libvirt.libvirtError:
        return  # already gone
    if dom.isActive():
        dom.destroy()
    dom.undefineFlags(getattr(libvirt, "VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA", 1))


@pytest.fixture
def vms(test_conn):
    """Two VMs of our own next to the driver's running 'test': web (running) and db (stopped, one snapshot)."""
    web = _define(test_conn, WEB, tags=["web", "prod"], metadata=dict(role="web"),
                  graphics=dict(type="vnc", password=PASSWORD, port=-1),
                  disks=[dict(path="/guest/web.qcow2", format="qcow2")],
                  interfaces=[dict(network="default", mac="52:54:00:aa:00:01")])
    web.create()
    db = _define(test_conn, DB, tags=["db", "prod"], vcpus=2, disks=[dict(path="/guest/db.qcow2", format="qcow2")])
    db.snapshotCreateXML("<domainsnapshot><name>before</name></domainsnapshot>", 0)
    yield dict(web=web, db=db)
    for dom in (web, db):
        _remove(dom)


def gather(conn, **params):
    return gather_vm_info(Context(conn=conn, params=params))


def names(result):
    return [vm["name"] for vm in result["vms"]]


# --- filters ----------------------------------------------------------------------------------


@pytest.mark.parametrize("params, expected", [
    (dict(), ["test", DB, WEB]),
    (dict(name=WEB), [WEB]),
    (dict(name_pattern="vinfo-u-*"), [DB, WEB]),
    (dict(name_pattern="vinfo-u-w?b"), [WEB]),
    (dict(name_pattern="vinfo-u-[d]*"), [DB]),
    (dict(name_pattern="VINFO-U-*"), []),
    (dict(name_pattern="nothing-like-it"), []),
    (dict(state=["running"]), ["test", WEB]),
    (dict(state=["stopped"]), [DB]),
    (dict(state=["stopped", "running"]), ["test", DB, WEB]),
    (dict(state=["paused"]), []),
    (dict(tags=["prod"]), [DB, WEB]),
    (dict(tags=["prod", "web"]), [WEB]),
    (dict(tags=["web", "db"]), []),
    (dict(tags=[]), ["test", DB, WEB]),
    (dict(name_pattern="vinfo-*", state=["running"], tags=["prod"]), [WEB]),
    (dict(name=DB, state=["running"]), []),
    (dict(name=DB, tags=["web"]), []),
])
def test_filters(test_conn, vms, params, expected):
    result = gather(test_conn, **params)
    assert result["changed"] is False
    assert names(result) == expected


def test_paused_filter(test_conn, vms):
    vms["web"].suspend()
    assert names(gather(test_conn, state=["paused"])) == [WEB]
    assert gather(test_conn, name=WEB)["vms"][0]["state"] == "paused"
    assert gather(test_conn, name=WEB)["vms"][0]["reason"] == "user"


def test_a_missing_name_fails_like_network_info(test_conn, vms):
    with pytest.raises(NotFoundError) as info:
        gather(test_conn, name="vinfo-u-nosuch")
    assert "VM 'vinfo-u-nosuch' does not exist" in info.value.msg
    assert WEB in info.value.msg  # the existing VMs are listed
    assert info.value.to_fail_kwargs()["vms"] == []
    assert info.value.to_fail_kwargs()["error_kind"] == "not_found"


@pytest.mark.parametrize("params, text", [
    (dict(name=WEB, name_pattern="x*"), "mutually exclusive"),
    (dict(name="bad/name"), "/"),
    (dict(state=["shutoff"]), "state: 'shutoff' is not one of"),
    (dict(ip_source="dhcp"), "ip_source"),
    (dict(agent_timeout=0), "agent_timeout"),
])
def test_bad_input(test_conn, params, text):
    with pytest.raises(InvalidInputError) as info:
        gather(test_conn, **params)
    assert text in info.value.msg


def test_a_vm_removed_while_listing_is_left_out(test_conn, vms, monkeypatch):
    real = _runtime.runtime_facts

    def vanish(conn, dom, *rest):
        if dom.name() == DB:
            _remove(dom)
        return real(conn, dom, *rest)

    monkeypatch.setattr(_runtime, "runtime_facts", vanish)
    assert names(gather(test_conn, name_pattern="vinfo-u-*")) == [WEB]


# --- what one VM looks like -------------------------------------------------------------------


def test_running_vm_has_vm_shape_and_runtime_facts(test_conn, vms):
    vm = gather(test_conn, name=WEB)["vms"][0]
    # the vm module's view of the definition
    assert vm["uuid"] == vms["web"].UUIDString()
    assert vm["memory"] == 64 and vm["vcpus"] == 1
    assert vm["tags"] == ["prod", "web"] and vm["metadata"] == {"role": "web"}
    assert vm["graphics"] == {"type": "vnc", "listen": "127.0.0.1", "port": -1}
    assert vm["guest_agent"] is True and vm["rng"] is True
    # run-time facts at the top level
    assert (vm["state"], vm["reason"], vm["active"], vm["persistent"], vm["autostart"]) == \
        ("running", "booted", True, True, False)
    assert vm["id"] == vms["web"].ID()
    assert vm["cpu_time_ns"] > 0
    assert vm["snapshot_count"] == 0
    assert vm["uptime_seconds"] is None  # not a local qemu:// URI
    assert vm["console"] == {"type": "pty", "target": "serial", "path": None, "log_file": None}
    assert [d["type"] for d in vm["displays"]] == ["vnc"]
    # sizes in each disk, host device and addresses in each interface
    disk = vm["disks"][0]
    capacity, allocation, physical = vms["web"].blockInfo("vda", 0)[:3]
    assert (disk["target"], disk["path"], disk["size"], disk["allocation"], disk["physical"]) == \
        ("vda", "/guest/web.qcow2", capacity, allocation, physical)
    nic = vm["interfaces"][0]
    assert nic["mac"] == "52:54:00:aa:00:01"
    assert nic["target"] == "testnet0"
    assert nic["addresses"] and nic["addresses"][0]["type"] == "ipv4"
    assert vm["ip"] == nic["addresses"][0]["address"]
    assert vm["addresses"][0]["source"] == "lease"
    assert vm["address_error"] is None
    assert "xml" not in vm


def test_stopped_vm(test_conn, vms):
    vm = gather(test_conn, name=DB)["vms"][0]
    assert (vm["state"], vm["active"], vm["id"], vm["cpu_time_ns"], vm["uptime_seconds"]) == \
        ("stopped", False, None, None, None)
    assert vm["vcpus"] == 2
    assert vm["snapshot_count"] == 1
    assert vm["displays"] == [{"type": "vnc", "port": None, "tls_port": None, "listen": "127.0.0.1"}]
    assert vm["addresses"] == [] and vm["ip"] is None and vm["address_error"] is None
    assert vm["interfaces"] == []
    assert vm["disks"][0]["size"] is not None


def test_disks_name_their_pool_and_volume(test_conn):
    """A disk given by path that is a pool volume names them (as vm and the inventory do); a file of no
    pool, and an empty CD-ROM drive, name none."""
    vol = test_conn.storagePoolLookupByName("default-pool").createXML(
        "<volume><name>vinfo-u-vol.qcow2</name><capacity>1048576</capacity></volume>", 0)
    dom = _define(test_conn, "vinfo-u-vol", disks=[dict(path=vol.path(), format="qcow2"), dict(path="/guest/x.img", format="raw")],
                  cdroms=[dict(path=vol.path()), {}])
    try:
        vm = gather(test_conn, name="vinfo-u-vol")["vms"][0]
        assert [(d["pool"], d["volume"]) for d in vm["disks"]] == [("default-pool", "vinfo-u-vol.qcow2"), (None, None)]
        assert [(d["pool"], d["volume"]) for d in vm["cdroms"]] == [("default-pool", "vinfo-u-vol.qcow2"), (None, None)]
    finally:
        _remove(dom)
        vol.delete(0)


@pytest.mark.parametrize("timeout", [0, -1, True, "5"])
def test_agent_timeout_must_be_positive(test_conn, timeout):
    with pytest.raises(InvalidInputError, match="agent_timeout: must be a positive number of seconds"):
        gather(test_conn, agent_timeout=timeout)


def test_destroyed_reason(test_conn, vms):
    vms["web"].destroy()
    vm = gather(test_conn, name=WEB)["vms"][0]
    assert (vm["state"], vm["reason"]) == ("stopped", "destroyed")
    assert vm["interfaces"][0]["addresses"] == []


def test_addresses_can_be_left_out(test_conn, vms):
    vm = gather(test_conn, name=WEB, addresses=False)["vms"][0]
    assert "addresses" not in vm and "ip" not in vm and "address_error" not in vm
    assert "addresses" not in vm["interfaces"][0]


@pytest.mark.parametrize("source", ["lease", "agent", "arp", "any"])
def test_every_ip_source(test_conn, vms, source):
    vm = gather(test_conn, name=WEB, ip_source=source)["vms"][0]
    assert vm["ip"] is not None
    assert vm["addresses"][0]["source"] == ("agent" if source == "any" else source)


def test_an_address_source_that_fails_does_not_fail_the_task(test_conn, vms, monkeypatch):
    calls = []

    def broken(conn, dom, source="any", agent_timeout=None):
        calls.append((source, agent_timeout))
        raise BackendError("the guest agent of domain '%s' is not connected" % dom.name())

    monkeypatch.setattr(_addresses, "interface_addresses", broken)
    result = gather(test_conn, name_pattern="vinfo-u-*", ip_source="agent", agent_timeout=2)
    web = result["vms"][1]
    assert web["address_error"] == "the guest agent of domain '%s' is not connected" % WEB
    assert web["ip"] is None and web["interfaces"][0]["addresses"] == []
    assert calls == [("agent", 2)]  # only the running VM is asked, with the timeout given


def test_xml_option_returns_the_saved_definition_without_password(test_conn, vms):
    vm = gather(test_conn, name=WEB, xml=True)["vms"][0]
    root = _xml.parse(vm["xml"])
    assert root.findtext("name") == WEB
    assert root.find("devices/graphics").get("passwd") is None
    assert _domain.model_from_xml(root)["tags"] == ["prod", "web"]
    assert root.get("id") is None  # the saved definition, not the live one


def test_no_password_anywhere(test_conn, vms):
    assert PASSWORD in vms["web"].XMLDesc(getattr(libvirt, "VIR_DOMAIN_XML_SECURE", 1))  # it is set
    for params in (dict(), dict(name=WEB, xml=True), dict(xml=True, ip_source="any")):
        text = json.dumps(gather(test_conn, **params))
        assert PASSWORD not in text
        assert "passwd" not in text
        assert '"password"' not in text


def test_password_in_xml_is_removed_even_if_libvirt_returned_it():
    text = "<domain><name>x</name><devices><graphics type='spice' passwd='%s'/>" \
           "<graphics type='vnc' passwd='%s'/></devices></domain>" % (PASSWORD, PASSWORD)
    out = _vm_info._without_passwords(text, _xml.parse(text))
    assert PASSWORD not in out and "passwd" not in out
    assert len(_xml.parse(out).findall("devices/graphics")) == 2
    clean = "<domain><name>x</name></domain>"
    assert _vm_info._without_passwords(clean, _xml.parse(clean)) is clean


def test_transient_vm(test_conn):
    model = _normalize.with_creation_defaults(_normalize.normalize(dict(memory=64, tags=["tmp"])))
    model["virt_type"] = "test"
    dom = test_conn.createXML(_xml.to_string(_codec_write.build_xml("vinfo-u-transient", model)), 0)
    try:
        vm = gather(test_conn, name="vinfo-u-transient", xml=True)["vms"][0]
        assert (vm["persistent"], vm["state"], vm["tags"]) == (False, "running", ["tmp"])
        assert "vinfo-u-transient" in vm["xml"]
    finally:
        dom.destroy()
