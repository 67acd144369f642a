# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt secrets: XML (checked by libvirt's schema), the value fingerprint, and reconcile runs.

libvirt's test driver has no secret driver: the runs use a small stand-in that behaves like libvirt's
(a private secret's value cannot be read; ``private`` cannot change), next to the test driver's real
domains for the usage guard.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import subprocess
import uuid as _uuid

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._secret.model import (
    fingerprint,
    matches,
    model_from_xml,
    secret_xml,
    split_description,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._secret.resource import SecretResource

VALUE = "s3cr3t-passphrase-17"


@pytest.mark.parametrize("usage_type, usage_id", [("volume", "/var/lib/libvirt/images/enc.qcow2"), ("ceph", "client.libvirt"),
                                                  ("iscsi", "iqn.2026-12.dev.virtops:t1"), ("tls", "tls1"), ("vtpm", "vm1 tpm")])
def test_secret_xml_passes_libvirt_schema_and_reads_back(tmp_path, usage_type, usage_id):
    model = dict(usage_type=usage_type, usage_id=usage_id, description="d", private=True, ephemeral=False)
    mark = fingerprint(b"x")
    path = tmp_path / "s.xml"
    path.write_text(secret_xml(model, str(_uuid.uuid4()), mark))
    proc = subprocess.run(["virt-xml-validate", str(path), "secret"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    back = model_from_xml(path.read_text())
    assert dict((k, back[k]) for k in model) == model and back["_mark"] == mark


def test_fingerprint_matches_only_its_value_and_is_salted():
    one, two = fingerprint(VALUE.encode()), fingerprint(VALUE.encode())
    assert one != two and VALUE not in one
    assert matches(VALUE.encode(), one) and matches(VALUE.encode(), two)
    assert not matches(b"other", one) and not matches(VALUE.encode(), None)
    assert split_description("Ceph key " + one) == ("Ceph key", one)
    assert split_description(one) == (None, one)
    assert split_description("plain") == ("plain", None)


class _Secret:
    def __init__(self, store, uuid):
        self.store, self.uuid = store, uuid

    def XMLDesc(self, flags=0):
        return self.store.xml[self.uuid]

    def UUIDString(self):
        return self.uuid

    def value(self, flags=0):
        if model_from_xml(self.store.xml[self.uuid])["private"]:
            raise libvirt.libvirtError("Invalid secret: secret is private")
        if self.uuid not in self.store.values:
            raise libvirt.libvirtError("secret has no value")
        return self.store.values[self.uuid]

    def setValue(self, value, flags):
        self.store.values[self.uuid] = value
        self.store.sets += 1

    def undefine(self):  # libvirt's virSecret.undefine() takes no flags
        del self.store.xml[self.uuid]
        self.store.values.pop(self.uuid, None)


def _not_found():
    err = libvirt.libvirtError("Secret not found")
    err.err = (libvirt.VIR_ERR_NO_SECRET, 0, "not found", 0, None, None, None, 0, 0)
    return err


class SecretConn:
    def __init__(self, conn):
        self.conn, self.xml, self.values, self.sets = conn, {}, {}, 0

    def __getattr__(self, name):
        return getattr(self.conn, name)

    def secretLookupByUUIDString(self, uuid):
        if uuid not in self.xml:
            raise _not_found()
        return _Secret(self, uuid)

    def secretLookupByUsage(self, usage_type, usage_id):
        for uuid, text in self.xml.items():
            if model_from_xml(text)["usage_id"] == usage_id:
                return _Secret(self, uuid)
        raise _not_found()

    def secretDefineXML(self, text, flags=0):
        root = _xml.parse(text)
        uuid = _xml.find_text(root, "uuid")
        if uuid is None:
            uuid = str(_uuid.uuid4())
            root.insert(0, _xml.element("uuid", uuid))
        elif uuid in self.xml and model_from_xml(self.xml[uuid])["private"] != (root.get("private") == "yes"):
            raise libvirt.libvirtError("internal error: cannot change private flag on existing secret")
        self.xml[uuid] = _xml.to_string(root)
        return _Secret(self, uuid)


@pytest.fixture
def sconn(test_conn):
    yield SecretConn(test_conn)
    try:
        dom = test_conn.lookupByName("sf-enc")
        dom.undefine()
    except libvirt.libvirtError:
        pass


def run(conn, check=False, **params):
    params.setdefault("usage_type", "volume")
    params.setdefault("usage_id", "/var/lib/libvirt/images/enc.qcow2")
    params.setdefault("state", "present")
    params.setdefault("update_value", "when_changed")
    ctx = Context(conn=conn, params=params, check_mode=check, diff=True)
    result = reconcile(SecretResource(ctx), check_mode=check, want_diff=True)
    assert VALUE not in json.dumps(result) and "changed-value-2" not in json.dumps(result)
    return result


@pytest.mark.parametrize("private", [True, False])
def test_set_change_and_remove_value_idempotent(sconn, private):
    params = dict(value=VALUE, private=private, description="LUKS key of enc")
    assert run(sconn, check=True, **params)["changed"] is True and not sconn.xml
    result = run(sconn, **params)
    assert result["changed"] is True and result["value_changed"] is True
    uuid = result["secret"]["uuid"]
    assert sconn.values[uuid] == VALUE.encode()
    assert run(sconn, check=True, **params)["changed"] is False
    assert run(sconn, **params)["changed"] is False
    assert sconn.sets == 1
    # a new value: changed, shown as (changed) only
    params["value"] = "changed-value-2"
    result = run(sconn, check=True, **params)
    assert result["changed"] is True and result["diff"]["after"]["value"] == "(changed)"
    assert sconn.values[uuid] == VALUE.encode()
    result = run(sconn, **params)
    assert result["changed"] is True and sconn.values[uuid] == b"changed-value-2"
    assert run(sconn, **params)["changed"] is False
    assert model_from_xml(sconn.xml[uuid])["description"] == "LUKS key of enc"
    assert ("virtops-value" in sconn.xml[uuid]) is private
    # on_create: not set again; always: set every time
    other = params.copy()
    other["value"], other["update_value"] = "x-other", "on_create"
    assert run(sconn, **other)["changed"] is False
    assert run(sconn, update_value="always", **params)["changed"] is True
    # removed
    assert run(sconn, state="absent")["changed"] is True and not sconn.xml
    assert run(sconn, state="absent")["changed"] is False


def test_private_flag_and_usage_are_not_changed(sconn):
    run(sconn, value=VALUE)
    with pytest.raises(ConflictError, match="private=True: libvirt does not change that"):
        run(sconn, value=VALUE, private=False)
    with pytest.raises(InvalidInputError, match="absolute path"):
        run(sconn, usage_id="enc.qcow2")
    with pytest.raises(InvalidInputError, match="not valid base64"):
        run(sconn, value="***", value_encoding="base64")
    assert run(sconn, value="YWJj", value_encoding="base64", update_value="always")["changed"] is True
    assert list(sconn.values.values()) == [b"abc"]


def test_secret_in_use_by_a_vm_disk_is_not_removed(sconn, test_conn):
    uuid = run(sconn, value=VALUE)["secret"]["uuid"]
    test_conn.defineXML("""<domain type='test'><name>sf-enc</name><memory>65536</memory><os><type>hvm</type></os>
      <devices><disk type='file' device='disk'><source file='/var/lib/libvirt/images/enc.qcow2'>
      <encryption format='luks'><secret type='passphrase' uuid='%s'/></encryption></source>
      <target dev='vdb' bus='virtio'/></disk></devices></domain>""" % uuid)
    with pytest.raises(ConflictError) as info:
        run(sconn, state="absent")
    assert "is used by VM sf-enc (stopped: disk vdb)" in info.value.msg and uuid in info.value.msg
    assert VALUE not in info.value.msg and uuid in sconn.xml
    assert run(sconn, state="absent", force=True)["changed"] is True and not sconn.xml
