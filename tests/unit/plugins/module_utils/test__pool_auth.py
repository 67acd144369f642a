# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pools that authenticate with a libvirt secret: iscsi (CHAP) and rbd (Ceph).  Their XML against
libvirt's schema, reconcile runs against the test driver (define only: no iSCSI or Ceph server), and the
secret's removal refused while a pool names it.  The test driver has no secrets: test__secret's stand-in
answers the secret calls, the pools are the test driver's own."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import subprocess

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._secret.resource import SecretResource
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.pool import PoolResource
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.pool_model import (
    desired_model,
    model_from_xml,
    normalize_source,
    xml_from_model,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.pool_net import normalize_auth
from ansible_collections.virtops.libvirt.tests.unit.plugins.module_utils.test__secret import SecretConn

UUID = "5d0c8a4e-2b7f-4c39-9a53-0f2e61d4b7a1"
CHAP_USAGE = "iqn.2026-12.dev.virtops:chap"
IQN = "iqn.2026-12.dev.virtops:storage.t1"
INITIATOR = "iqn.2026-12.dev.virtops:host1"


def model(pool_type, path=None, source=None, auth=None):
    return dict(type=pool_type, path=path, source=normalize_source(source), permissions=None, auth=normalize_auth(auth))


MODELS = [
    ("iscsi", model("iscsi", "/dev/disk/by-path", dict(host="192.0.2.10", port=3260, iqn=IQN, initiator=INITIATOR),
                    dict(username="chapuser", secret=CHAP_USAGE))),
    ("iscsi-uuid", model("iscsi", "/dev/disk/by-path", dict(host="san.example.com", iqn=IQN), dict(username="u", secret=UUID))),
    ("iscsi-no-auth", model("iscsi", "/dev/disk/by-id", dict(host="192.0.2.10", iqn="iqn.2026-01.dev.virtops"))),
    ("rbd", model("rbd", None, dict(host="mon1.example.com", port=6789, name="vms"), dict(username="libvirt", secret=UUID))),
    ("rbd-usage", model("rbd", None, dict(host="192.0.2.20", name="vms"), dict(username="admin", secret="client.admin"))),
]


def validate(tmp_path, root):
    path = tmp_path / "pool.xml"
    path.write_text(_xml.to_string(root))
    return subprocess.run(["virt-xml-validate", str(path), "storagepool"], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("label, pool_model", MODELS, ids=[m[0] for m in MODELS])
def test_xml_passes_libvirt_schema_and_round_trips(tmp_path, label, pool_model):
    root = xml_from_model("p-" + label, pool_model, uuid="2f5b8d52-7a5e-4e43-9c1c-5f7c0c0e8f11")
    proc = validate(tmp_path, root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    back = model_from_xml(_xml.to_string(root))
    assert back["auth"] == pool_model["auth"]
    assert dict((k, v) for k, v in back["source"].items() if v is not None) == \
        dict((k, v) for k, v in pool_model["source"].items() if v is not None)
    if pool_model["auth"]:
        auth = root.find("source/auth")
        assert auth.get("type") == {"iscsi": "chap", "rbd": "ceph"}[pool_model["type"]]
        assert auth.find("secret").get("uuid" if pool_model["auth"]["secret"] == UUID else "usage") == pool_model["auth"]["secret"]


def test_schema_refuses_an_iscsi_pool_without_its_target(tmp_path):
    """The oracle can fail: an iscsi pool needs its device (the target IQN)."""
    proc = validate(tmp_path, xml_from_model("bad", model("iscsi", "/dev/disk/by-path", dict(host="192.0.2.10"))))
    assert proc.returncode != 0


@pytest.mark.parametrize("params, match", [
    (dict(type="dir", path="/srv/x", auth=dict(username="u", secret=UUID)), "auth is used by iscsi and rbd pools only"),
    (dict(type="iscsi", source=dict(host="192.0.2.10")), "source.host and source.iqn are required"),
    (dict(type="rbd", source=dict(name="vms")), "source.host and source.name are required"),
    (dict(type="rbd", path="/x", source=dict(host="m", name="vms")), "path is not used by rbd pools"),
    (dict(type="iscsi", source=dict(host="192.0.2.10", iqn="storage.t1")), "not an iSCSI qualified name"),
    (dict(type="iscsi", source=dict(host="192.0.2.10", iqn="iqn.2026-13.dev.virtops:t")), "not an iSCSI qualified name"),
    (dict(type="iscsi", source=dict(host="192.0.2.10", iqn=IQN, initiator="eui.02004567A425678D")), "source.initiator"),
    (dict(type="iscsi", source=dict(host="192.0.2.10", iqn=IQN, port=70000)), "1-65535"),
    (dict(type="iscsi", source=dict(port=3260, iqn=IQN)), "source.port needs source.host"),
    (dict(type="iscsi", source=dict(host="192.0.2.10", iqn=IQN, dir="/x")), "source.dir is not used by iscsi pools"),
    (dict(type="iscsi", source=dict(host="192.0.2.10", iqn=IQN), auth=dict(username=" ", secret=UUID)), "auth.username"),
])
def test_bad_input(params, match):
    with pytest.raises(InvalidInputError, match=match):
        desired_model(params, "present", None, None)


def test_iscsi_path_defaults_to_by_path_only_when_created():
    params = dict(type="iscsi", source=dict(host="192.0.2.10", iqn=IQN))
    assert desired_model(params, "present", None, None)["path"] == "/dev/disk/by-path"
    assert desired_model(params, "present", dict(type="iscsi"), None)["path"] is None


# --- runs against the test driver -------------------------------------------------------------


@pytest.fixture
def sconn(test_conn):
    conn = SecretConn(test_conn)
    yield conn
    for name in ("pa-iscsi", "pa-rbd"):
        try:
            test_conn.storagePoolLookupByName(name).undefine()
        except libvirt.libvirtError:
            pass


def secret(conn, usage_type, usage_id):
    """A secret in the stand-in, made by the secret resource itself."""
    params = dict(usage_type=usage_type, usage_id=usage_id, state="present", update_value="when_changed", value="v-1")
    result = reconcile(SecretResource(Context(conn=conn, params=params)))
    return result["secret"]["uuid"]


def run(conn, check=False, **params):
    params.setdefault("state", "present")
    params.setdefault("build", True)
    ctx = Context(conn=conn, params=params, check_mode=check, diff=True)
    return reconcile(PoolResource(ctx), check_mode=check, want_diff=True)


ISCSI = dict(name="pa-iscsi", type="iscsi", source=dict(host="192.0.2.10", port=3260, iqn=IQN),
             auth=dict(username="chapuser", secret=CHAP_USAGE))


def iscsi_with(username, secret_ref):
    params = dict(ISCSI)
    params["auth"] = dict(username=username, secret=secret_ref)
    return params


def test_iscsi_pool_with_chap_four_times_then_changed(sconn, test_conn):
    secret(sconn, "iscsi", CHAP_USAGE)
    results = [run(sconn, check=c, **ISCSI) for c in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[1]["actions"] == ["define storage pool pa-iscsi", "build storage pool pa-iscsi"]
    assert results[0]["diff"]["after"]["auth"] == dict(username="chapuser", secret=CHAP_USAGE)
    root = _xml.parse(test_conn.storagePoolLookupByName("pa-iscsi").XMLDesc(0))
    assert root.find("source/auth").get("type") == "chap" and root.find("source/auth/secret").get("usage") == CHAP_USAGE
    assert root.find("source/device").get("path") == IQN and _xml.find_text(root, "target/path") == "/dev/disk/by-path"
    # a new user name: one redefinition, the rest kept
    changed = iscsi_with("other", CHAP_USAGE)
    result = run(sconn, **changed)
    assert result["changed"] is True and result["actions"] == ["redefine storage pool pa-iscsi"]
    assert result["diff"]["before"]["auth"]["username"] == "chapuser" and result["diff"]["after"]["auth"]["username"] == "other"
    root = _xml.parse(test_conn.storagePoolLookupByName("pa-iscsi").XMLDesc(0))
    assert len(root.findall("source/auth")) == 1 and root.find("source/auth").get("username") == "other"
    assert root.find("source/host").get("port") == "3260"
    assert run(sconn, **changed)["changed"] is False


def test_rbd_pool_with_ceph_secret_by_uuid(sconn, test_conn):
    uuid = secret(sconn, "ceph", "client.libvirt")
    params = dict(name="pa-rbd", type="rbd", source=dict(host="mon1.example.com", name="vms"), auth=dict(username="libvirt", secret=uuid))
    assert [run(sconn, check=c, **params)["changed"] for c in (True, False, True, False)] == [True, True, False, False]
    root = _xml.parse(test_conn.storagePoolLookupByName("pa-rbd").XMLDesc(0))
    assert root.find("source/auth").get("type") == "ceph" and root.find("source/auth/secret").get("uuid") == uuid
    assert root.find("target") is None


def test_missing_secret_refused_and_assumed_in_check_mode(sconn, test_conn):
    with pytest.raises(NotFoundError, match="auth.secret: libvirt has no secret of usage iscsi 'iqn.2026-12.dev.virtops:chap'"):
        run(sconn, **ISCSI)
    assert "pa-iscsi" not in [p.name() for p in test_conn.listAllStoragePools(0)]
    assert run(sconn, check=True, **ISCSI)["changed"] is True


def test_secret_named_by_a_pool_is_not_removed(sconn, test_conn):
    uuid = secret(sconn, "iscsi", CHAP_USAGE)
    run(sconn, **ISCSI)  # names the secret by its usage
    params = dict(usage_type="iscsi", usage_id=CHAP_USAGE, state="absent")
    with pytest.raises(ConflictError) as info:
        reconcile(SecretResource(Context(conn=sconn, params=params)))
    assert "authenticates storage pool(s) pa-iscsi" in info.value.msg
    assert info.value.details["pools"] == ["pa-iscsi"] and uuid in sconn.xml
    # by UUID too
    run(sconn, **iscsi_with("chapuser", uuid))
    with pytest.raises(ConflictError, match="pa-iscsi"):
        reconcile(SecretResource(Context(conn=sconn, params=params)))
    test_conn.storagePoolLookupByName("pa-iscsi").undefine()
    result = reconcile(SecretResource(Context(conn=sconn, params=params)))
    assert result["changed"] is True and not sconn.xml
    assert "v-1" not in json.dumps(result)
