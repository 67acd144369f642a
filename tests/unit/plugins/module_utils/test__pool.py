# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pool model <-> XML, validation, and full reconcile runs against libvirt's test driver."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.pool import PoolResource
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.pool_model import (
    apply_model,
    model_from_xml,
    normalize_mode,
    normalize_permissions,
    normalize_source,
    SOURCE_KEYS,
    validate_name,
    xml_from_model,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.pool_view import gather_pool_info
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context

VIRT_XML_VALIDATE = "/usr/bin/virt-xml-validate"
#: libvirt 9 names the pool schema "storagepool" ("pool" is not accepted by its virt-xml-validate)
SCHEMA = "storagepool"


def model(pool_type, path=None, source=None, permissions=None):
    return dict(type=pool_type, path=path, source=normalize_source(source), permissions=normalize_permissions(permissions))


TYPED_MODELS = [
    ("dir", model("dir", "/srv/images", permissions=dict(owner=107, group=107, mode="711"))),
    ("fs", model("fs", "/mnt/fs1", source=dict(devices=["/dev/vdb"], format="ext4"))),
    ("netfs", model("netfs", "/mnt/nfs1", source=dict(host="nfs.example.com", dir="/exports/vm", format="nfs"))),
    ("logical", model("logical", source=dict(name="vg_vms", devices=["/dev/vdc", "/dev/vdd"], format="lvm2"))),
    ("logical-with-path", model("logical", "/dev/vg2", source=dict(name="vg2"))),
]


# ------------------------------------------------------------------------------ XML <-> model ---

@pytest.mark.parametrize("label, pool_model", TYPED_MODELS, ids=[t[0] for t in TYPED_MODELS])
def test_generated_xml_passes_libvirt_schema(tmp_path, label, pool_model):
    path = tmp_path / ("%s.xml" % label)
    path.write_text(_xml.to_string(xml_from_model("p-" + label, pool_model, uuid="2f5b8d52-7a5e-4e43-9c1c-5f7c0c0e8f11")))
    proc = subprocess.run([VIRT_XML_VALIDATE, str(path), SCHEMA], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_oracle_can_fail(tmp_path):
    """The validator really rejects a broken pool (an fs pool without its device)."""
    path = tmp_path / "bad.xml"
    path.write_text(_xml.to_string(xml_from_model("bad", model("fs", "/mnt/x"))))
    proc = subprocess.run([VIRT_XML_VALIDATE, str(path), SCHEMA], capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "fails to validate" in proc.stdout + proc.stderr


@pytest.mark.parametrize("label, pool_model", TYPED_MODELS, ids=[t[0] for t in TYPED_MODELS])
def test_model_xml_round_trip(label, pool_model):
    back = model_from_xml(_xml.to_string(xml_from_model("p", pool_model)))
    for key in ("type", "path", "permissions"):
        assert back[key] == pool_model[key], key
    assert back["source"] == (pool_model["source"] or dict.fromkeys(SOURCE_KEYS))


def test_model_from_libvirt_xml_reads_what_libvirt_writes():
    text = """<pool type='dir'><name>x</name><uuid>u</uuid><capacity unit='bytes'>1</capacity>
      <source></source><target><path>/a</path><permissions><mode>0755</mode><owner>-1</owner>
      <group>0</group></permissions></target></pool>"""
    got = model_from_xml(text)
    assert got["type"] == "dir" and got["path"] == "/a"
    assert got["permissions"] == {"owner": None, "group": 0, "mode": "0755"}
    assert got["source"]["devices"] is None


def test_apply_model_changes_only_what_is_specified():
    root = _xml.parse("""<pool type='netfs'><name>n</name><uuid>abc</uuid><capacity>5</capacity>
      <source><host name='old'/><dir path='/old'/><format type='nfs'/></source>
      <target><path>/mnt/n</path><permissions><mode>0700</mode><owner>0</owner></permissions></target></pool>""")
    apply_model(root, dict(type=None, path=None, source=dict(host="new", dir=None, devices=None, name=None, format=None),
                           permissions=dict(owner=None, group=5, mode=None)))
    got = model_from_xml(root)
    assert got["source"]["host"] == "new" and got["source"]["dir"] == "/old" and got["source"]["format"] == "nfs"
    assert got["permissions"] == {"owner": 0, "group": 5, "mode": "0700"}
    assert got["path"] == "/mnt/n"
    assert _xml.find_text(root, "uuid") == "abc"
    assert root.find("capacity") is None


@pytest.mark.parametrize("wanted, have, expected", [
    ("<pool type='iscsi'><source><host name='a'/></source></pool>",
     "<pool type='iscsi'><name>x</name><uuid>u</uuid><source><host name='a' port='3260'/></source></pool>", True),
    ("<pool type='iscsi'><source><host name='b'/></source></pool>",
     "<pool type='iscsi'><source><host name='a'/></source></pool>", False),
    ("<pool type='iscsi'><target><path>/dev/x</path></target></pool>",
     "<pool type='iscsi'><target><path>/dev/y</path></target></pool>", False),
    ("<pool type='disk'></pool>", "<pool type='iscsi'></pool>", False),
    ("<pool type='x'><source><device path='/a'/><device path='/b'/></source></pool>",
     "<pool type='x'><source><device path='/a'/><device path='/b'/></source></pool>", True),
    ("<pool type='x'><source><device path='/b'/><device path='/a'/></source></pool>",
     "<pool type='x'><source><device path='/a'/><device path='/b'/></source></pool>", False),
])
def test_xml_subset(wanted, have, expected):
    assert _xml.xml_subset(_xml.parse(wanted), _xml.parse(have)) is expected


# -------------------------------------------------------------------------------- validation ---

@pytest.mark.parametrize("name, message", [
    ("", "must not be empty"),
    ("   ", "must not be empty"),
    ("a/b", "contains '/'"),
    ("a\nb", "control characters"),
    ("a\x7fb", "control characters"),
    ("x" * 129, "at most 128"),
    ("..", "not a usable pool name"),
    (" lead", "not a usable pool name"),
    (None, "must not be empty"),
])
def test_bad_names(name, message):
    with pytest.raises(InvalidInputError, match=message):
        validate_name(name)


@pytest.mark.parametrize("name", ["default", "vm-images_2", "x" * 128, "pool with space", "ünïcode"])
def test_good_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("value, expected", [("755", "0755"), ("0711", "0711"), (750, "0750")])
def test_mode_normalised(value, expected):
    assert normalize_mode(value) == expected


@pytest.mark.parametrize("value", ["rwx", "0999", "07555", "-1"])
def test_bad_modes(value):
    with pytest.raises(InvalidInputError, match="not an octal mode"):
        normalize_mode(value)


# -------------------------------------------------------------------------- reconcile runs ---

def run(conn, check=False, diff=True, **params):
    params.setdefault("state", "active")
    params.setdefault("build", True)
    ctx = Context(conn=conn, params=params, check_mode=check, diff=diff)
    return reconcile(PoolResource(ctx), check_mode=check, want_diff=diff)


def four_times(conn, **params):
    return [run(conn, check=check, **params) for check in (True, False, True, False)]


def names(conn):
    return sorted(p.name() for p in conn.listAllStoragePools(0))


def test_create_check_apply_check_apply(test_conn):
    params = dict(name="p1", type="dir", path="/tmp/virtops-unit-p1", autostart=True, permissions=dict(mode="0750", owner=0))
    check1, apply1, check2, apply2 = four_times(test_conn, **params)
    assert check1["changed"] and apply1["changed"]
    assert not check2["changed"] and not apply2["changed"]
    assert check1["actions"] == apply1["actions"] == [
        "define storage pool p1", "build storage pool p1", "set autostart of storage pool p1 to true", "start storage pool p1",
    ]
    assert check1["pool"]["uuid"] is None and check1["pool"]["state"] == "active"
    assert check1["diff"]["before"] == {"state": "absent"}
    assert check1["diff"]["after"] == {"type": "dir", "path": "/tmp/virtops-unit-p1", "autostart": True, "state": "active",
                                       "permissions": {"mode": "0750", "owner": 0}}
    pool = test_conn.storagePoolLookupByName("p1")
    assert pool.isActive() and pool.autostart()
    assert apply2["pool"]["uuid"] == pool.UUIDString()
    assert apply2["pool"]["path"] == "/tmp/virtops-unit-p1" and apply2["pool"]["volume_count"] == 0
    assert apply2["restart_required"] is False
    doc = _xml.parse(pool.XMLDesc(0))
    assert _xml.find_text(doc, "target/permissions/mode") == "0750"


def test_check_mode_changes_nothing(test_conn):
    run(test_conn, check=True, name="p2", path="/tmp/virtops-unit-p2")
    assert "p2" not in names(test_conn)


def test_unspecified_fields_are_not_compared(test_conn):
    """default-pool has no permissions, autostart off: not giving them must not be a change."""
    result = run(test_conn, name="default-pool")
    assert result["changed"] is False
    assert result["pool"]["path"] == "/default-pool"


def test_state_transitions(test_conn):
    run(test_conn, name="p3", path="/tmp/virtops-unit-p3")
    stop = four_times(test_conn, name="p3", state="inactive")
    assert [r["changed"] for r in stop] == [True, True, False, False]
    assert not test_conn.storagePoolLookupByName("p3").isActive()
    present = run(test_conn, name="p3", state="present")
    assert present["changed"] is False and present["pool"]["state"] == "inactive"
    start = four_times(test_conn, name="p3", state="active")
    assert [r["changed"] for r in start] == [True, True, False, False]
    assert start[1]["actions"] == ["build storage pool p3", "start storage pool p3"]
    assert test_conn.storagePoolLookupByName("p3").isActive()


def test_new_pool_with_state_present_is_defined_not_started(test_conn):
    result = run(test_conn, name="p4", path="/tmp/virtops-unit-p4", state="present", build=False)
    assert result["actions"] == ["define storage pool p4"]
    assert not test_conn.storagePoolLookupByName("p4").isActive()


def test_redefine_inactive_pool_keeps_uuid(test_conn):
    run(test_conn, name="p5", path="/tmp/virtops-unit-p5", state="inactive")
    uuid = test_conn.storagePoolLookupByName("p5").UUIDString()
    results = four_times(test_conn, name="p5", path="/tmp/virtops-unit-p5b", state="inactive")
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[1]["actions"] == ["redefine storage pool p5"]
    assert results[1]["restart_required"] is False
    assert results[0]["diff"]["before"] == {"path": "/tmp/virtops-unit-p5", "state": "inactive"}
    assert results[0]["diff"]["after"] == {"path": "/tmp/virtops-unit-p5b", "state": "inactive"}
    pool = test_conn.storagePoolLookupByName("p5")
    assert pool.UUIDString() == uuid
    assert _xml.find_text(_xml.parse(pool.XMLDesc(0)), "target/path") == "/tmp/virtops-unit-p5b"


def test_definition_change_on_active_pool_needs_restart(test_conn):
    run(test_conn, name="p6", path="/tmp/virtops-unit-p6")
    saved = run(test_conn, name="p6", path="/tmp/virtops-unit-p6b")
    assert saved["changed"] is True
    assert saved["actions"] == ["redefine storage pool p6"]
    assert saved["restart_required"] is True
    assert "restarted" in saved["warnings"][0]
    restarted = run(test_conn, check=True, name="p6", path="/tmp/virtops-unit-p6b", restart=True)
    assert restarted["restart_required"] is False
    assert restarted["actions"] == [
        "redefine storage pool p6", "stop storage pool p6 to apply its new definition", "build storage pool p6", "start storage pool p6",
    ]


def test_autostart_toggle(test_conn):
    run(test_conn, name="p7", path="/tmp/virtops-unit-p7", autostart=True)
    results = four_times(test_conn, name="p7", autostart=False)
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[1]["actions"] == ["set autostart of storage pool p7 to false"]
    assert results[0]["diff"]["before"] == {"autostart": True, "state": "active"}
    assert not test_conn.storagePoolLookupByName("p7").autostart()


def test_type_change_is_refused(test_conn):
    with pytest.raises(ConflictError, match="type of a pool cannot be changed"):
        run(test_conn, name="default-pool", type="netfs", source=dict(host="h", dir="/x"))


def test_absent_with_volumes_refused_then_purged(test_conn):
    run(test_conn, name="p8", path="/tmp/virtops-unit-p8")
    pool = test_conn.storagePoolLookupByName("p8")
    pool.createXML("<volume><name>disk1.img</name><capacity>1048576</capacity></volume>", 0)
    with pytest.raises(ConflictError, match=r"still holds 1 volume\(s\) \(disk1.img\).*purge: true") as info:
        run(test_conn, name="p8", state="absent")
    assert info.value.details["volumes"] == ["disk1.img"]
    assert pool.listVolumes() == ["disk1.img"]
    # check mode predicts the removal: an earlier task (or item of apply) may remove the volumes
    predicted = run(test_conn, check=True, name="p8", state="absent")
    assert predicted["changed"] and predicted["actions"] == ["stop storage pool p8", "undefine storage pool p8"]
    assert "still holds 1 volume(s)" in predicted["assumptions"][0]
    assert pool.listVolumes() == ["disk1.img"] and "p8" in names(test_conn)

    results = four_times(test_conn, name="p8", state="absent", purge=True)
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[1]["actions"] == [
        "delete volume disk1.img of storage pool p8",
        "stop storage pool p8",
        "delete the storage of pool p8 (its target directory / volume group)",
        "undefine storage pool p8",
    ]
    assert results[0]["diff"]["before"]["volumes"] == ["disk1.img"]
    assert results[3]["pool"] == {"name": "p8", "state": "absent"}
    assert "p8" not in names(test_conn)


def test_absent_without_volumes(test_conn):
    run(test_conn, name="p9", path="/tmp/virtops-unit-p9")
    results = four_times(test_conn, name="p9", state="absent")
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[1]["actions"] == ["stop storage pool p9", "undefine storage pool p9"]


def test_failed_run_undoes_what_it_created(test_conn):
    """The test driver refuses the no-overwrite build of an fs pool: the define before it is undone."""
    with pytest.raises(InvalidInputError) as info:
        run(test_conn, name="p10", type="fs", path="/mnt/p10", source=dict(devices=["/dev/vdz"]))
    assert info.value.details["failed_step"] == "build storage pool p10"
    assert "building storage pool 'p10'" in info.value.msg
    assert "p10" not in names(test_conn)
    assert "rollback_errors" not in info.value.details


@pytest.mark.parametrize("params, message", [
    (dict(type="dir", path="/x", source=dict(host="h")), "source.host is not used by dir pools"),
    (dict(type="fs", path="/x"), "source.devices is required to create an fs pool"),
    (dict(type="fs", path="/x", source=dict(devices=["/dev/a", "/dev/b"])), "exactly one device"),
    (dict(type="netfs", path="/x", source=dict(host="h")), "source.host and source.dir are required"),
    (dict(type="netfs", path="/x", source=dict(host="h", dir="/e", format="ext4")), "'ext4' is not a format of netfs pools"),
    (dict(type="logical", source=dict(devices=["dev/sdb"])), "must be an absolute path"),
    (dict(type="logical", source=dict(name="vg", host="h")), "source.host is not used by logical pools"),
    (dict(type="logical", path="/dev/other", source=dict(name="vg")), "/dev/<volume group>"),
    (dict(type="dir"), "path is required"),
    (dict(type="dir", path="rel"), "must be an absolute path"),
    (dict(type="dir", path="/x", permissions=dict(mode="rwx")), "not an octal mode"),
    (dict(type="dir", path="/x", permissions=dict(owner="root")), "not a numeric id"),
    (dict(type="dir", path="/x", source=dict(bogus=1)), "unknown option"),
    (dict(type="zfs", path="/x"), "no first-class options"),
    (dict(xml="<pool type='dir'/>", path="/x"), "xml cannot be combined with path"),
    (dict(xml="<network/>"), "root element must be <pool>"),
    (dict(xml="<pool type='dir'><name>other</name></pool>"), "does not match name"),
    (dict(xml="<pool"), "not well-formed"),
    (dict(path="/x", state="running"), "state: 'running' is not one of"),
])
def test_bad_input_changes_nothing(test_conn, params, message):
    before = names(test_conn)
    with pytest.raises(InvalidInputError, match=message):
        run(test_conn, name="bad", **params)
    assert names(test_conn) == before


def test_bad_name_refused_before_anything(test_conn):
    with pytest.raises(InvalidInputError, match="contains '/'"):
        run(test_conn, name="a/b", path="/x")


def test_xml_passthrough(test_conn):
    text = "<pool type='dir'><target><path>/tmp/virtops-unit-xml</path></target></pool>"
    results = four_times(test_conn, name="px", xml=text, state="inactive")
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[0]["pool"]["type"] == "dir"
    pool = test_conn.storagePoolLookupByName("px")
    uuid = pool.UUIDString()
    changed = run(test_conn, name="px", xml=text.replace("virtops-unit-xml", "virtops-unit-xml2"), state="inactive")
    assert changed["actions"] == ["redefine storage pool px"]
    assert "virtops-unit-xml2" in changed["diff"]["after"]["xml"]
    pool = test_conn.storagePoolLookupByName("px")
    assert pool.UUIDString() == uuid
    assert _xml.find_text(_xml.parse(pool.XMLDesc(0)), "target/path") == "/tmp/virtops-unit-xml2"


def test_refresh_sees_volumes(test_conn):
    run(test_conn, name="pr", path="/tmp/virtops-unit-pr")
    test_conn.storagePoolLookupByName("pr").createXML("<volume><name>a</name><capacity>1</capacity></volume>", 0)
    assert run(test_conn, name="pr")["pool"]["volume_count"] == 1


# ----------------------------------------------------------------------------------- info ---

def info(conn, **params):
    return gather_pool_info(Context(conn=conn, params=params))


def test_info_all_and_one(test_conn):
    run(test_conn, name="pi", path="/tmp/virtops-unit-pi", state="inactive")
    every = info(test_conn)
    assert every["changed"] is False
    assert [p["name"] for p in every["pools"]] == ["default-pool", "pi"]
    default = every["pools"][0]
    assert default["type"] == "dir" and default["state"] == "active" and default["volume_count"] == 0
    assert default["capacity"] == 107374182400 and "volumes" not in default
    inactive = info(test_conn, name="pi", volumes=True)["pools"][0]
    assert inactive["state"] == "inactive" and inactive["volumes"] is None and inactive["volume_count"] is None


def test_info_volume_names(test_conn):
    pool = test_conn.storagePoolLookupByName("default-pool")
    for vol in ("b.img", "a.img"):
        pool.createXML(_xml.to_string(_xml.element("volume", children=[
            _xml.element("name", vol), _xml.element("capacity", 1024)])), 0)
    got = info(test_conn, name="default-pool", volumes=True)["pools"][0]
    assert got["volumes"] == ["a.img", "b.img"] and got["volume_count"] == 2


def test_info_unknown_name(test_conn):
    with pytest.raises(NotFoundError, match="Storage pool 'nope' does not exist; existing pools: default-pool"):
        info(test_conn, name="nope")


def test_info_bad_name(test_conn):
    with pytest.raises(InvalidInputError):
        info(test_conn, name="a/b")


class _Refusal(libvirt.libvirtError):
    def __init__(self, code, message):
        libvirt.libvirtError.__init__(self, message)
        self._code, self._message = code, message

    def get_error_code(self):
        return self._code

    def get_error_message(self):
        return self._message


class _BuildsLikeLibvirt:
    """The test driver's pool, with a build that makes the target directory before it looks at the
    device, as libvirt's fs backend does (then fails with ``error``, or succeeds); start may fail."""

    def __init__(self, pool, path, error=None, start_error=None):
        self.pool, self.path, self.error, self.start_error = pool, path, error, start_error

    def build(self, _flags):
        if not os.path.isdir(self.path):
            os.mkdir(self.path)
        if self.error is not None:
            raise self.error

    def create(self, _flags=0):
        if self.start_error is not None:
            raise self.start_error
        return self.pool.create(0)

    def __getattr__(self, name):
        return getattr(self.pool, name)


@pytest.mark.parametrize("case", ["build-fails", "already-built", "start-fails", "directory-was-there"])
def test_failed_fs_pool_removes_the_directory_it_made(test_conn, tmp_path, monkeypatch, case):
    path = str(tmp_path / "fsmount")
    if case == "directory-was-there":
        os.mkdir(path)
    build_error = {
        "build-fails": _Refusal(libvirt.VIR_ERR_INTERNAL_ERROR, "device /dev/vdz not found"),
        "already-built": _Refusal(libvirt.VIR_ERR_STORAGE_POOL_BUILT, "Storage pool already built: ext4 found"),
    }.get(case)
    start_error = _Refusal(libvirt.VIR_ERR_INTERNAL_ERROR, "cannot mount /dev/vdz") if case != "build-fails" else None
    real_lookup = PoolResource._lookup

    def lookup(resource):
        pool = real_lookup(resource)
        return _BuildsLikeLibvirt(pool, path, build_error, start_error) if pool is not None else None

    monkeypatch.setattr(PoolResource, "_lookup", lookup)
    with pytest.raises(Exception) as info:
        run(test_conn, name="p-fsdir", type="fs", path=path, source=dict(devices=["/dev/vdz"]))
    assert "vdz" in str(info.value)
    assert "p-fsdir" not in names(test_conn)
    assert os.path.isdir(path) == (case == "directory-was-there")
    assert "rollback_errors" not in getattr(info.value, "details", {})
