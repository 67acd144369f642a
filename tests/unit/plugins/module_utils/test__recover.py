# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Recovery of a failed hypervisor: the store of kept definitions (atomic, checked, trusted only by its
permissions), vm_keep and vm_recover runs against libvirt's test driver, the probe, the refusals, and
the plan of what starts where (placement over the survivors)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.virtops.libvirt.plugins.filter import recover_plan as filter_module
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._recover import probe as _probe
from ansible_collections.virtops.libvirt.plugins.module_utils._recover import store as _store
from ansible_collections.virtops.libvirt.plugins.module_utils._recover.keep import KeepResource
from ansible_collections.virtops.libvirt.plugins.module_utils._recover.plan import recover_plan
from ansible_collections.virtops.libvirt.plugins.module_utils._recover.recover import RecoverResource, refuse_unless_down
from ansible_collections.virtops.libvirt.tests.unit.plugins.filter.test_placement import host, vm

UUID1 = "4f0c1a52-8e7d-4c1b-9a55-2b1f0e6c7d31"
UUID2 = "9b8c6a1e-0d3f-4e57-8a2b-6c7d8e9f0a1b"
DOWN_URI = "qemu:///system?socket=/nonexistent/virtops-recover-test/libvirt-sock"


def domain_xml(name, uuid, memory_kib=65536, metadata=None):
    meta = ""
    if metadata:
        meta = ('<metadata><v:vm xmlns:v="https://virtops.dev/xmlns/libvirt/1.0">%s</v:vm></metadata>'
                % "".join('<v:meta key="%s">%s</v:meta>' % kv for kv in metadata.items()))
    return ("<domain type='test'><name>%s</name><uuid>%s</uuid>%s<memory unit='KiB'>%d</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64'>hvm</type></os></domain>" % (name, uuid, meta, memory_kib))


def entry(name, text, active=True, autostart=False, pool="shared", uuid=UUID1):
    sha = _store.sha256_text(text)
    return dict(uuid=uuid, file=_store.file_name(name, sha), sha256=sha, active=active, autostart=autostart, pool=pool)


# --- the store -------------------------------------------------------------------------------------

def test_store_round_trip_modes_and_atomic_replacement(tmp_path):
    path = str(tmp_path / "kvm2")
    text = domain_xml("web1", UUID1)
    _store.write_store(path, {"web1": entry("web1", text)}, {"web1": text}, None)
    assert oct(os.stat(path).st_mode & 0o777) == "0o700"
    entries = _store.read_index(path, required=True)
    assert oct(os.stat(os.path.join(path, entries["web1"]["file"])).st_mode & 0o777) == "0o600"
    back, summary = _store.read_definition(path, "web1", entries["web1"])
    assert back == text and summary["uuid"] == UUID1 and summary["memory"] == 64

    # a changed definition gets a new file; the old one goes once the new index is in place
    text2 = domain_xml("web1", UUID1, memory_kib=131072)
    _store.write_store(path, {"web1": entry("web1", text2)}, {"web1": text2}, entries)
    assert sorted(os.listdir(path)) == sorted(["index.json", entry("web1", text2)["file"]])


def test_store_failure_before_the_index_leaves_the_old_store(tmp_path, monkeypatch):
    path = str(tmp_path / "kvm2")
    text = domain_xml("web1", UUID1)
    _store.write_store(path, {"web1": entry("web1", text)}, {"web1": text}, None)
    before = sorted(os.listdir(path))
    real = _store.atomic_write

    def failing(target, data, mode=0o600):
        if target.endswith("index.json"):
            raise OSError(28, "No space left on device")
        return real(target, data, mode=mode)

    monkeypatch.setattr(_store, "atomic_write", failing)
    text2 = domain_xml("db1", UUID2)
    with pytest.raises(OSError):
        _store.write_store(path, {"web1": entry("web1", text), "db1": entry("db1", text2, uuid=UUID2)},
                           {"web1": text, "db1": text2}, _store.read_index(path))
    assert sorted(os.listdir(path)) == before
    assert list(_store.read_index(path)) == ["web1"]


def test_store_refuses_tampered_and_untrusted_content(tmp_path):
    path = str(tmp_path / "kvm2")
    text = domain_xml("web1", UUID1)
    _store.write_store(path, {"web1": entry("web1", text)}, {"web1": text}, None)
    entries = _store.read_index(path)
    xml_path = os.path.join(path, entries["web1"]["file"])

    with open(xml_path, "w") as handle:
        handle.write(domain_xml("web1", UUID1, memory_kib=1))
    with pytest.raises(ConflictError, match="does not match its checksum"):
        _store.read_definition(path, "web1", entries["web1"])

    os.chmod(xml_path, 0o620)
    with pytest.raises(ConflictError, match="writable by group or others"):
        _store.read_definition(path, "web1", entries["web1"])

    os.chmod(path, 0o777)
    with pytest.raises(ConflictError, match="store directory .* writable by group or others"):
        _store.read_index(path)
    os.chmod(path, 0o700)

    index = os.path.join(path, "index.json")
    os.rename(index, index + ".real")
    os.symlink(index + ".real", index)
    with pytest.raises(ConflictError, match="not a regular file"):
        _store.read_index(path)


@pytest.mark.parametrize("vms, message", [
    ({"web1": {"uuid": UUID1, "sha256": "0" * 64, "file": "other.xml"}}, "names the file"),
    ({"web1": {"uuid": "nope", "sha256": "0" * 64, "file": "web1-0000000000000000.xml"}}, "valid uuid"),
    ({"a/b": {"uuid": UUID1, "sha256": "0" * 64, "file": "a/b-0000000000000000.xml"}}, "contains '/'"),
])
def test_store_refuses_bad_index_entries(tmp_path, vms, message):
    path = tmp_path / "kvm2"
    path.mkdir(mode=0o700)
    (path / "index.json").write_text(json.dumps(dict(format=1, vms=vms)))
    os.chmod(str(path / "index.json"), 0o600)
    with pytest.raises(InvalidInputError, match=message):
        _store.read_index(str(path))


def test_store_without_index(tmp_path):
    assert _store.read_index(str(tmp_path)) is None
    with pytest.raises(NotFoundError, match="no kept definitions at"):
        _store.read_index(str(tmp_path), required=True)


# --- the probe and the refusals ---------------------------------------------------------------------

def test_probe_answers_down_and_hanging():
    assert _probe.probe("test:///default", 5)[0] == _probe.ANSWERS
    answer, detail = _probe.probe(DOWN_URI, 5)
    assert answer == _probe.DOWN and "No such file" in detail

    answer, detail = _probe.probe("qemu+tcp://no-such-host.invalid/system", 10)
    assert answer == _probe.UNKNOWN, detail  # a name that does not resolve is not a dead host

    def hang(_uri, _out):
        time.sleep(3)

    started = time.monotonic()
    assert _probe.probe("qemu+tcp://10.255.255.1/system", 0.3, attempt=hang) == (_probe.DOWN, "no answer within 0.3 s")
    assert time.monotonic() - started < 2


def test_probe_refuses_a_driver_the_collection_does_not_manage():
    with pytest.raises(InvalidInputError, match="failed_uri"):
        _probe.probe("xen:///system", 1)


@pytest.mark.parametrize("fenced, answer, error, message", [
    (False, _probe.DOWN, InvalidInputError, "recovery of kvm2 refused: fencing is not confirmed"),
    (True, _probe.ANSWERS, ConflictError, "recovery of kvm2 refused: its libvirt answers at qemu\\+tls://kvm2/system"),
    (True, _probe.UNKNOWN, ConflictError, "recovery of kvm2 refused: cannot tell whether it is down"),
])
def test_refusals_name_the_host(fenced, answer, error, message):
    with pytest.raises(error, match=message):
        refuse_unless_down("kvm2", fenced, answer, "detail", "qemu+tls://kvm2/system")
    assert refuse_unless_down("kvm2", True, _probe.DOWN, "", "u") is None


# --- vm_keep and vm_recover on the test driver ------------------------------------------------------

def _run(resource_class, conn, params, check_mode=False):
    ctx = Context(conn=conn, params=params, check_mode=check_mode, diff=True, uri="test:///default")
    return reconcile(resource_class(ctx), check_mode=check_mode, want_diff=True)


@pytest.fixture
def recoverable(test_conn):
    """A running VM 'rec-web' (anti-affinity group web) defined on the test driver; removed afterwards."""
    dom = test_conn.defineXML(domain_xml("rec-web", UUID1, metadata={"anti_affinity": "web"}))
    dom.create()
    yield test_conn
    for name in ("rec-web",):
        try:
            found = test_conn.lookupByName(name)
        except libvirt.libvirtError:
            continue
        if found.isActive():
            found.destroy()
        found.undefine()


def test_keep_check_apply_check_apply_and_state_changes(recoverable, tmp_path):
    params = dict(path=str(tmp_path / "lab2"))
    runs = [_run(KeepResource, recoverable, params, check_mode=c) for c in (True, False, True, False)]
    assert [r["changed"] for r in runs] == [True, True, False, False]
    assert runs[0]["vms"] == runs[1]["vms"]
    web = [v for v in runs[1]["vms"] if v["name"] == "rec-web"][0]
    assert web["uuid"] == UUID1 and web["active"] is True and len(web["definition"]) == 16
    assert runs[1]["diff"]["before"] == {"state": "absent"}
    entries = _store.read_index(params["path"], required=True)
    assert "rec-web" in entries and "test" in entries

    recoverable.lookupByName("rec-web").destroy()
    stopped = _run(KeepResource, recoverable, params)
    assert stopped["changed"] and "updated: rec-web" in stopped["actions"][0]
    assert stopped["diff"]["before"]["vms"]["rec-web"]["active"] is True
    assert stopped["diff"]["after"]["vms"]["rec-web"]["active"] is False


def test_recover_defines_and_starts_once(recoverable, tmp_path):
    path = str(tmp_path / "lab2")
    _run(KeepResource, recoverable, dict(path=path))
    dom = recoverable.lookupByName("rec-web")
    dom.destroy()
    dom.undefine()  # the "survivor" (the same test driver) no longer has it
    params = dict(failed_host="lab2", failed_uri=DOWN_URI, path=path, fenced=True, names=["rec-web"], probe_timeout=5)
    runs = [_run(RecoverResource, recoverable, params, check_mode=c) for c in (True, False, True, False)]
    assert [r["changed"] for r in runs] == [True, True, False, False]
    assert runs[0]["actions"] == runs[1]["actions"] == ["define rec-web from the definition kept of lab2", "start rec-web"]
    assert runs[0]["vms"] == runs[1]["vms"] == [dict(name="rec-web", state="running")]
    assert runs[1]["diff"]["before"] == {"vms": {"rec-web": "absent"}}
    assert "No such file" in runs[1]["probe"]
    kept = dict((k["name"], k) for k in runs[1]["kept"])
    assert kept["rec-web"]["anti_affinity"] == "web" and kept["rec-web"]["memory"] == 64
    found = recoverable.lookupByName("rec-web")
    assert found.UUIDString() == UUID1 and found.isActive()

    # stopped on the survivor since (a start that failed earlier): only started again
    found.destroy()
    again = _run(RecoverResource, recoverable, params)
    assert again["changed"] and again["actions"] == ["start rec-web"]


def test_recover_refuses_before_reading_anything(recoverable, tmp_path):
    params = dict(failed_host="lab2", failed_uri="test:///default", path=str(tmp_path / "none"), fenced=True, names=[])
    with pytest.raises(ConflictError, match="recovery of lab2 refused: its libvirt answers at test:///default"):
        _run(RecoverResource, recoverable, params, check_mode=True)
    with pytest.raises(InvalidInputError, match="fencing is not confirmed"):
        _run(RecoverResource, recoverable, dict(params, fenced=False, failed_uri=DOWN_URI))
    with pytest.raises(NotFoundError, match="no kept definitions at"):
        _run(RecoverResource, recoverable, dict(params, failed_uri=DOWN_URI))


def test_recover_refuses_unknown_names_and_another_vm_of_the_same_name(recoverable, tmp_path):
    path = str(tmp_path / "lab2")
    _run(KeepResource, recoverable, dict(path=path))
    params = dict(failed_host="lab2", failed_uri=DOWN_URI, path=path, fenced=True)
    with pytest.raises(NotFoundError, match="not among the kept definitions of lab2: ghost"):
        _run(RecoverResource, recoverable, dict(params, names=["ghost"]))
    dom = recoverable.lookupByName("rec-web")
    dom.destroy()
    dom.undefine()
    recoverable.defineXML(domain_xml("rec-web", UUID2))
    with pytest.raises(ConflictError, match="a different VM named rec-web"):
        _run(RecoverResource, recoverable, dict(params, names=["rec-web"]), check_mode=True)


# --- what starts where ------------------------------------------------------------------------------

def kept_vm(name, uuid, memory=1024, active=True, pool="shared", anti_affinity=None):
    return dict(name=name, uuid=uuid, vcpus=1, memory=memory, arch="x86_64", pool=pool, anti_affinity=anti_affinity,
                active=active, autostart=False)


def registered(**survivors):
    """The registered host_info and vm_info results of a task looped over the survivors."""
    hosts = dict(results=[dict(item=n, host=h) for n, (h, _v) in sorted(survivors.items())])
    vms = dict(results=[dict(item=n, vms=v) for n, (_h, v) in sorted(survivors.items())])
    return hosts, vms


def shared_host(**kwargs):
    return host(pools=(("default", 100), ("shared", 100)), **kwargs)


def test_plan_places_by_memory_pool_and_anti_affinity():
    kept = [kept_vm("web1", UUID1, anti_affinity="web"), kept_vm("web2", UUID2, anti_affinity="web"),
            kept_vm("db1", "11111111-2222-4333-8444-555555555555", memory=4096, active=False)]
    hosts, vms = registered(kvm1=(shared_host(), [vm("web3", metadata={"anti_affinity": "web"})]),
                            kvm3=(shared_host(), []), kvm4=(host(), []))
    with pytest.raises(ConflictError, match="web"):
        recover_plan(kept, hosts, vms)  # two web VMs, one survivor without a web VM and with the pool
    plan, _notes = recover_plan(kept[1:], hosts, vms)
    # db1 (largest first) where most memory is left; web2 not beside web3 (kvm1), kvm4 lacks the pool
    assert plan == [dict(name="db1", hypervisor="kvm3", state="stopped", action="define"),
                    dict(name="web2", hypervisor="kvm3", state="running", action="define and start")]
    plan, _notes = recover_plan(kept[1:], hosts, vms, include_stopped=False)
    assert [p["name"] for p in plan] == ["web2"]
    plan, _notes = recover_plan(kept, hosts, vms, exclude=["web1"])
    assert [p["name"] for p in plan] == ["db1", "web2"]


def test_plan_keeps_what_a_survivor_has_and_refuses_a_namesake():
    kept = [kept_vm("web1", UUID1), kept_vm("web2", UUID2)]
    have1 = dict(vm("web1"), uuid=UUID1)
    have2 = dict(vm("web2", state="stopped"), uuid=UUID2)
    hosts, vms = registered(kvm1=(shared_host(), [have1]), kvm3=(shared_host(), [have2]))
    plan, _notes = recover_plan(kept, hosts, vms)
    assert plan == [dict(name="web1", hypervisor="kvm1", state="running", action="none"),
                    dict(name="web2", hypervisor="kvm3", state="running", action="start")]
    hosts, vms = registered(kvm1=(shared_host(), [dict(vm("web1"), uuid=UUID2)]))
    with pytest.raises(ConflictError, match="kvm1 has a different VM named web1"):
        recover_plan(kept, hosts, vms)


def test_plan_filter_errors_are_filter_errors():
    recover = filter_module.FilterModule().filters()["recover_plan"]
    hosts, vms = registered(kvm1=(host(), []))
    with pytest.raises(AnsibleFilterError, match="no hypervisor can take"):
        recover([kept_vm("web1", UUID1)], hosts, vms)  # kvm1 lacks the shared pool
    with pytest.raises(AnsibleFilterError, match="registered results"):
        recover([kept_vm("web1", UUID1)], {"results": []}, vms)
    assert recover([kept_vm("web1", UUID1, pool=None)], hosts, vms)[0]["hypervisor"] == "kvm1"
