# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Snapshots: the XML model (checked with virt-xml-validate), and the snapshot resource run through
reconcile() against libvirt's test driver (test:///default), which keeps snapshots in memory.

The test driver does not look at disk files: it takes internal snapshots of any disk and cannot
make external ones, so disk-only snapshots are tested here up to the plan (check mode) and in the
lab integration target for real.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import shutil
import subprocess

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot import resource as _snapshot_resource
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot import view as _snapshot

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Plan, reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.modules.snapshot import ARGUMENT_SPEC

VM = "u-snap-vm"


def params(**given):
    result = ArgumentSpecValidator(ARGUMENT_SPEC).validate(given)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def run(conn, check=False, clock=None, **given):
    given.setdefault("vm", VM)
    ctx = Context(conn=conn, params=params(**given), check_mode=check, diff=True)
    resource = _snapshot_resource.SnapshotResource(ctx) if clock is None else _snapshot_resource.SnapshotResource(ctx, clock=clock)
    return reconcile(resource, check_mode=check, want_diff=True)


def domain_xml(name=VM, disk_format="qcow2", extra_disk=None):
    root = _xml.element("domain", attrs=dict(type="test"))
    _xml.sub(root, "name", name)
    _xml.sub(root, "memory", "131072")
    _xml.sub(root, "vcpu", "1")
    os_node = _xml.sub(root, "os")
    _xml.sub(os_node, "type", "hvm")
    devices = _xml.sub(root, "devices")
    disks = [("vda", disk_format, False)] + ([extra_disk] if extra_disk else [])
    for target, fmt, readonly in disks:
        disk = _xml.sub(devices, "disk", attrs=dict(type="file", device="disk"))
        _xml.sub(disk, "driver", attrs=dict(name="qemu", type=fmt))
        _xml.sub(disk, "source", attrs=dict(file="/var/lib/libvirt/images/%s-%s.%s" % (name, target, fmt)))
        _xml.sub(disk, "target", attrs=dict(dev=target, bus="virtio"))
        if readonly:
            _xml.sub(disk, "readonly")
    return _xml.to_string(root)


@pytest.fixture
def vm(test_conn):
    dom = test_conn.defineXML(domain_xml())
    yield dom
    try:
        for snap in dom.listAllSnapshots(0):
            snap.delete(0)
        if dom.isActive():
            dom.destroy()
        dom.undefine()
    except Exception:
        pass


def names(dom):
    return [f["name"] for f in _snapshot.list_snapshots(dom)]


# --- XML ------------------------------------------------------------------------------------------


def _validate(xml_text, tmp_path):
    if not shutil.which("virt-xml-validate"):
        pytest.skip("virt-xml-validate is not installed")
    path = tmp_path / "snap.xml"
    path.write_text(xml_text)
    proc = subprocess.run(["virt-xml-validate", str(path), "domainsnapshot"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(description="before <upgrade> & \"more\"", memory=True),
    dict(disks=[dict(name="vda", snapshot="external", file="/images/vm-vda.s1.qcow2"), dict(name="sda", snapshot="no")]),
])
def test_snapshot_xml_is_valid(kwargs, tmp_path):
    text = _xml.to_string(_snapshot.build_snapshot_xml("s1", **kwargs))
    _validate(text, tmp_path)
    facts = _snapshot.parse_snapshot_xml(text)
    assert facts["name"] == "s1"
    assert facts["description"] == (kwargs.get("description") or "")
    assert facts["memory"] is bool(kwargs.get("memory"))
    assert facts["external"] is bool(kwargs.get("disks"))


def test_parse_external_snapshot():
    text = """<domainsnapshot><name>e1</name><state>disk-snapshot</state><parent><name>i1</name></parent>
      <creationTime>1795440211</creationTime><memory snapshot='no'/>
      <disks><disk name='vda' snapshot='external' type='file'><driver type='qcow2'/><source file='/i/v.e1'/></disk>
      <disk name='sda' snapshot='no'/></disks></domainsnapshot>"""
    facts = _snapshot.parse_snapshot_xml(text)
    assert facts["parent"] == "i1"
    assert facts["disk_only"] and facts["external"] and not facts["memory"]
    assert facts["creation_time"] == "2026-11-23T13:23:31Z"
    assert facts["vm_state"] == "stopped"
    assert facts["disks"][0] == dict(name="vda", snapshot="external", file="/i/v.e1")


@pytest.mark.parametrize("name", ["", "-x", ".x", "a/b", "a b", "x" * 101, "é"])
def test_bad_names(name):
    with pytest.raises(InvalidInputError):
        _snapshot.validate_name(name)


def test_tree():
    facts = [
        dict(name="a", parent=None, current=False, children=["b", "c"]),
        dict(name="b", parent="a", current=False, children=[]),
        dict(name="c", parent="a", current=True, children=["d"]),
        dict(name="d", parent="c", current=False, children=[]),
        dict(name="z", parent=None, current=False, children=[]),
    ]
    tree = _snapshot.snapshot_tree(facts)
    assert [t["name"] for t in tree] == ["a", "z"]
    assert [c["name"] for c in tree[0]["children"]] == ["b", "c"]
    assert tree[0]["children"][1]["children"][0]["name"] == "d"
    assert tree[0]["children"][1]["current"] is True


# --- the resource ---------------------------------------------------------------------------------


def test_create_four_runs_stopped_vm(test_conn, vm):
    first = run(test_conn, check=True, name="s1", description="one")
    assert first["changed"] and names(vm) == []
    assert first["snapshot"]["name"] == "s1"
    assert first["diff"]["before"]["snapshot"] == "absent"
    assert first["diff"]["after"]["snapshot"] == dict(name="s1", description="one")
    applied = run(test_conn, name="s1", description="one")
    assert applied["changed"] and names(vm) == ["s1"]
    assert applied["snapshot"]["memory"] is False and applied["snapshot"]["current"] is True
    assert applied["actions"] == ["create internal disk snapshot s1 of VM %s" % VM]
    assert not run(test_conn, check=True, name="s1", description="one")["changed"]
    again = run(test_conn, name="s1", description="one")
    assert not again["changed"] and again["diff"]["before"] == again["diff"]["after"]


def test_running_vm_gets_memory_snapshot(test_conn, vm):
    vm.create()
    result = run(test_conn, name="m1")
    assert result["changed"]
    assert result["snapshot"]["memory"] is True and result["snapshot"]["vm_state"] == "running"


def test_description_updated_in_place(test_conn, vm):
    run(test_conn, name="s1", description="one")
    created = _snapshot.list_snapshots(vm)[0]["created"]
    result = run(test_conn, name="s1", description="two")
    assert result["changed"] and result["snapshot"]["description"] == "two"
    facts = _snapshot.list_snapshots(vm)[0]
    assert facts["description"] == "two" and facts["created"] == created and facts["current"]


def test_memory_snapshot_of_stopped_vm_fails(test_conn, vm):
    with pytest.raises(ConflictError, match="no memory state"):
        run(test_conn, name="s1", memory=True)
    assert names(vm) == []


def test_running_vm_without_memory_needs_disk_only(test_conn, vm):
    vm.create()
    with pytest.raises(InvalidInputError, match="disk_only"):
        run(test_conn, name="s1", memory=False)


def test_raw_disk_named(test_conn):
    dom = test_conn.defineXML(domain_xml("u-snap-raw", extra_disk=("vdb", "raw", False)))
    try:
        with pytest.raises(InvalidInputError, match=r"disk vdb \(/var/lib/libvirt/images/u-snap-raw-vdb.raw\) is raw"):
            run(test_conn, vm="u-snap-raw", name="s1")
        assert names(dom) == []
    finally:
        dom.undefine()


def test_readonly_raw_disk_is_left_out(test_conn):
    dom = test_conn.defineXML(domain_xml("u-snap-ro", extra_disk=("vdb", "raw", True)))
    try:
        assert run(test_conn, vm="u-snap-ro", name="s1")["changed"]
    finally:
        for snap in dom.listAllSnapshots(0):
            snap.delete(0)
        dom.undefine()


def test_disk_only_plan_names_overlays(test_conn, vm):
    result = run(test_conn, check=True, name="d1", disk_only=True)
    assert result["actions"] == ["create external disk-only snapshot d1 of VM %s" % VM]
    resource = _snapshot_resource.SnapshotResource(Context(conn=test_conn, params=params(vm=VM, name="d1", disk_only=True)))
    current = resource.read()
    _memory, root, flags = resource._creation(current)
    disk = root.find("disks/disk")
    assert disk.get("snapshot") == "external"
    assert disk.find("source").get("file") == "/var/lib/libvirt/images/%s-vda.d1.qcow2" % VM
    assert flags & 16  # VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY


@pytest.mark.parametrize("given, message", [
    (dict(name="s1", memory=True, disk_only=True), "exclude each other"),
    (dict(name="s1", quiesce=True), "disk_only"),
    (dict(state="absent"), "name: required"),
    (dict(name="s1", revert_state="running"), "only used with state=reverted"),
    (dict(max_age="soon"), "not a duration"),
    (dict(keep_last=-1), "0 or more"),
    (dict(name="s1", state="absent", keep_last=1), "not with state=absent"),
    (dict(name="bad/name"), "not a valid snapshot name"),
])
def test_bad_input(test_conn, vm, given, message):
    with pytest.raises(InvalidInputError, match=message):
        run(test_conn, **given)
    assert names(vm) == []


def test_unknown_vm(test_conn):
    with pytest.raises(NotFoundError, match="VM 'u-snap-nope' does not exist"):
        run(test_conn, vm="u-snap-nope", name="s1")


def test_revert(test_conn, vm):
    run(test_conn, name="s1")
    vm.create()
    run(test_conn, name="s2")
    assert _snapshot.list_snapshots(vm)[1]["current"]
    check = run(test_conn, check=True, name="s1", state="reverted")
    assert check["changed"] and check["current"] == "s1" and check["vm_state"] == "stopped"
    assert vm.isActive()
    result = run(test_conn, name="s1", state="reverted")
    assert result["changed"] and result["current"] == "s1" and result["vm_state"] == "stopped"
    assert not vm.isActive()
    assert not run(test_conn, check=True, name="s1", state="reverted")["changed"]
    assert not run(test_conn, name="s1", state="reverted")["changed"]
    # another run state is a change again; then idempotent in it
    assert run(test_conn, name="s1", state="reverted", revert_state="running")["changed"]
    assert vm.isActive()
    assert not run(test_conn, name="s1", state="reverted", revert_state="running")["changed"]
    # a VM that was stopped by hand is no longer "at" the running state
    vm.destroy()
    assert run(test_conn, name="s1", state="reverted", revert_state="running")["changed"]


def test_revert_unknown_snapshot(test_conn, vm):
    run(test_conn, name="s1")
    with pytest.raises(NotFoundError, match=r"no snapshot 'nope' to revert to \(it has: s1\)"):
        run(test_conn, name="nope", state="reverted")


def test_absent_and_children(test_conn, vm):
    for name in ("a", "b", "c"):
        run(test_conn, name=name)
    assert not run(test_conn, name="zz", state="absent")["changed"]
    check = run(test_conn, check=True, name="b", state="absent", children=True)
    assert check["changed"] and check["deleted"] == ["b", "c"] and names(vm) == ["a", "b", "c"]
    result = run(test_conn, name="b", state="absent", children=True)
    assert result["deleted"] == ["b", "c"] and names(vm) == ["a"]
    assert result["snapshot"] is None
    assert not run(test_conn, name="b", state="absent")["changed"]


def test_absent_without_children_keeps_them(test_conn, vm):
    for name in ("a", "b", "c"):
        run(test_conn, name=name)
    result = run(test_conn, name="b", state="absent")
    assert result["deleted"] == ["b"] and names(vm) == ["a", "c"]


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def _make(conn, vm, names_):
    for name in names_:
        run(conn, name=name)


def test_keep_last_counts_the_new_one(test_conn, vm):
    _make(test_conn, vm, ["n1", "n2", "n3"])
    check = run(test_conn, check=True, name="n4", keep_last=2)
    assert check["deleted"] == ["n1", "n2"] and names(vm) == ["n1", "n2", "n3"]
    result = run(test_conn, name="n4", keep_last=2)
    assert result["deleted"] == ["n1", "n2"] and names(vm) == ["n3", "n4"]
    again = run(test_conn, name="n4", keep_last=2)
    assert not again["changed"] and again["deleted"] == []


def test_deletions_are_decided_in_desired_and_reported_by_the_outcome(test_conn, vm):
    """The contract: desired(current) names the snapshots that go; plan's Outcome reports them."""
    _make(test_conn, vm, ["n1", "n2", "n3"])
    resource = _snapshot_resource.SnapshotResource(Context(conn=test_conn, params=params(vm=VM, keep_last=1)))
    current = resource.read()
    desired = resource.desired(current)
    assert desired["delete"] == ["n1", "n2"] and desired["kept"] == []
    plan = Plan()
    outcome = resource.plan(current, desired, resource.compare(current, desired), plan)
    assert outcome.values == dict(deleted=["n1", "n2"])
    assert plan.descriptions == ["delete snapshot n1 of VM %s (retention)" % VM, "delete snapshot n2 of VM %s (retention)" % VM]
    assert resource.predict(current, desired)["snapshots"] == ["n3"]
    assert names(vm) == ["n1", "n2", "n3"]  # nothing ran


def test_retention_pattern_and_current(test_conn, vm):
    _make(test_conn, vm, ["keep-me", "nightly-1", "nightly-2"])
    # nightly-2 is current: kept (with a warning) unless prune_current
    result = run(test_conn, keep_last=0, retention_pattern="nightly-*")
    assert result["deleted"] == ["nightly-1"] and names(vm) == ["keep-me", "nightly-2"]
    assert "current snapshot" in result["warnings"][0]
    result = run(test_conn, keep_last=0, retention_pattern="nightly-*", prune_current=True)
    assert result["deleted"] == ["nightly-2"] and names(vm) == ["keep-me"]


def test_max_age(test_conn, vm):
    _make(test_conn, vm, ["old", "new"])
    created = dict((f["name"], f["created"]) for f in _snapshot.list_snapshots(vm))
    # two days after the snapshots: a 1d limit deletes both but the current one
    later = Clock(max(created.values()) + 2 * 86400)
    result = run(test_conn, clock=later, max_age="1d")
    assert result["deleted"] == ["old"] and names(vm) == ["new"]
    # with keep_last as well, a snapshot that either rule keeps stays
    _make(test_conn, vm, ["newer"])
    result = run(test_conn, clock=Clock(later.now + 3 * 86400), max_age="1d", keep_last=5)
    assert result["deleted"] == [] and not result["changed"]


def test_snapshot_count(test_conn, vm):
    assert _snapshot.snapshot_count(vm) == 0
    _make(test_conn, vm, ["c1", "c2"])
    assert _snapshot.snapshot_count(vm) == 2


def test_snapshot_info(test_conn, vm):
    _make(test_conn, vm, ["a", "b"])
    ctx = Context(conn=test_conn, params=dict(vm=VM, name=None))
    info = _snapshot.gather_snapshot_info(ctx)
    assert info["count"] == 2 and info["current"] == "b"
    assert [s["name"] for s in info["snapshots"]] == ["a", "b"]
    assert info["tree"][0]["name"] == "a" and info["tree"][0]["children"][0]["name"] == "b"
    assert info["snapshots"][0]["children"] == ["b"] and info["snapshots"][1]["parent"] == "a"
    one = _snapshot.gather_snapshot_info(Context(conn=test_conn, params=dict(vm=VM, name="b")))
    assert [s["name"] for s in one["snapshots"]] == ["b"] and one["count"] == 2
    with pytest.raises(NotFoundError, match="has no snapshot 'c'"):
        _snapshot.gather_snapshot_info(Context(conn=test_conn, params=dict(vm=VM, name="c")))


# --- external snapshots with children (what libvirt 9.0 can merge) -------------------------------
# The test driver cannot make external snapshots, but keeps the metadata of ones redefined into it;
# it merges nothing, so these tests are about the plan (and the order of the deletions).  The lab's
# snapshot target deletes real ones.

def _redefine_external(dom, name, parent=None, created=1000):
    root = _snapshot.build_snapshot_xml(name, disks=[dict(name="vda", snapshot="external",
                                                          file="/var/lib/libvirt/images/%s-vda.%s.qcow2" % (VM, name))])
    _xml.sub(root, "state", "shutoff")
    _xml.sub(root, "creationTime", str(created))
    if parent:
        _xml.sub(_xml.sub(root, "parent"), "name", parent)
    root.append(_xml.parse(dom.XMLDesc(0)))
    dom.snapshotCreateXML(_xml.to_string(root), libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE)


@pytest.fixture
def chain(vm):
    """s1 <- s2 <- s3 (external, disk only), and s2 <- t3: a tree with s1 at the root."""
    for index, (name, parent) in enumerate([("s1", None), ("s2", "s1"), ("s3", "s2"), ("t3", "s2")]):
        _redefine_external(vm, name, parent, created=1000 + index)
    return vm


@pytest.fixture
def deletions(monkeypatch):
    """The names of the snapshots deleted, in order, with the flags of each call."""
    done = []
    real = libvirt.virDomainSnapshot.delete

    def delete(snap, flags=0):
        done.append((snap.getName(), flags))
        return real(snap, flags)

    monkeypatch.setattr(libvirt.virDomainSnapshot, "delete", delete)
    return done


@pytest.mark.parametrize("check", [True, False], ids=["check", "apply"])
@pytest.mark.parametrize("name, children", [("s1", "s2"), ("s2", "s3, t3")], ids=["root", "middle"])
def test_external_with_children_of_a_stopped_vm_is_refused(test_conn, chain, deletions, check, name, children):
    with pytest.raises(ConflictError) as info:
        run(test_conn, check=check, name=name, state="absent")
    assert info.value.msg == (
        "snapshot %s of VM %s cannot be deleted now: it is an external (disk_only) snapshot with child snapshots (%s) "
        "and VM %s is stopped; libvirt merges such a snapshot into the file below only while the VM runs: start the VM "
        "and run the task again; or delete it with children: true (its descendants go too)" % (name, VM, children, VM))
    assert deletions == [] and names(chain) == ["s1", "s2", "s3", "t3"]


def test_external_leaf_of_a_stopped_vm_is_deleted(test_conn, chain, deletions):
    result = run(test_conn, name="t3", state="absent")
    assert result["deleted"] == ["t3"] and deletions == [("t3", 0)] and names(chain) == ["s1", "s2", "s3"]


def test_external_with_children_of_a_running_vm_is_deleted(test_conn, chain, deletions):
    chain.create()
    result = run(test_conn, name="s2", state="absent")
    assert result["deleted"] == ["s2"] and deletions == [("s2", 0)]


@pytest.mark.parametrize("check", [True, False], ids=["check", "apply"])
def test_children_true_deletes_the_deepest_first_one_by_one(test_conn, chain, deletions, check):
    """libvirt 9.0 refuses VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN for external snapshots ("not supported"):
    each goes alone, a leaf when it goes."""
    result = run(test_conn, check=check, name="s1", state="absent", children=True)
    assert result["changed"] and result["deleted"] == ["s1", "s2", "s3", "t3"]
    if check:
        assert deletions == [] and names(chain) == ["s1", "s2", "s3", "t3"]
        return
    order = [n for n, _flags in deletions]
    assert set(order[:2]) == {"s3", "t3"} and order[2:] == ["s2", "s1"] and all(f == 0 for _n, f in deletions)
    assert names(chain) == []


def test_retention_keeps_external_snapshots_with_children_of_a_stopped_vm(test_conn, chain, deletions):
    result = run(test_conn, keep_last=1, retention_pattern="s*")
    assert result["deleted"] == [] and deletions == []
    assert [w.split(":")[0] for w in result["warnings"]] == [
        "kept snapshot s2 although the retention rules would delete it", "kept snapshot s1 although the retention rules "
        "would delete it"]
    assert "with child snapshots (s3, t3) and VM %s is stopped" % VM in result["warnings"][0]
