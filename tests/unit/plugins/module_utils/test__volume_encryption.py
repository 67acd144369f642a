# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""LUKS-encrypted volumes: the volume XML (libvirt's schema), and volume runs against the test driver.

The test driver has no secrets: a stand-in answers the secret lookups, the rest is the real test driver.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import subprocess

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume import VolumeResource
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.encryption_xml import encryption_element, encryption_of
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_write import build_volume_xml

POOL = "default-pool"
UUID = "17b0fd0a-f348-4e4b-9747-c72259d3cc74"
USAGE = "/default-pool/enc.qcow2"


class _Secret:
    def UUIDString(self):
        return UUID


class SecretLookups:
    def __init__(self, conn):
        self.conn = conn

    def __getattr__(self, name):
        return getattr(self.conn, name)

    def secretLookupByUUIDString(self, uuid):
        if uuid != UUID:
            raise _missing()
        return _Secret()

    def secretLookupByUsage(self, usage_type, usage_id):
        if usage_type != libvirt.VIR_SECRET_USAGE_TYPE_VOLUME or usage_id != USAGE:
            raise _missing()
        return _Secret()


def _missing():
    err = libvirt.libvirtError("Secret not found")
    err.err = (libvirt.VIR_ERR_NO_SECRET, 0, "not found", 0, None, None, None, 0, 0)
    return err


@pytest.fixture
def conn(test_conn):
    def clean():
        for vol in test_conn.storagePoolLookupByName(POOL).listAllVolumes(0):
            vol.delete(0)
    clean()
    yield SecretLookups(test_conn)
    clean()


def run(conn, check=False, **kw):
    params = dict(uri="test:///default", name="enc.qcow2", pool=POOL, state="present", capacity="16M", format=None,
                  preallocation=None, source=None, source_format=None, checksum=None, validate_certs=True, timeout=60,
                  backing_volume=None, clone_from=None, allow_shrink=False, force=False, wipe=False, encryption=None)
    params.update(kw)
    ctx = Context(conn=conn, params=params, check_mode=check, diff=True, run_command=None)
    return reconcile(VolumeResource(ctx), check_mode=check, want_diff=True)


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_encrypted_volume_xml_passes_libvirt_schema(tmp_path, fmt):
    root = build_volume_xml("enc", 16 << 20, fmt)
    root.find("target").append(encryption_element(UUID))
    path = tmp_path / "v.xml"
    path.write_text(_xml.to_string(root))
    proc = subprocess.run(["virt-xml-validate", str(path), "storagevol"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert encryption_of(root) == dict(format="luks", secret=UUID)


@pytest.mark.parametrize("secret", [UUID, USAGE])
def test_create_encrypted_volume_four_times(conn, secret):
    enc = dict(format="luks", secret=secret)
    results = [run(conn, check=c, encryption=enc) for c in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[1]["actions"] == ["create empty LUKS-encrypted qcow2 volume 'enc.qcow2' of 16777216 bytes in pool 'default-pool'"]
    assert results[0]["diff"]["after"]["encryption"] == enc
    vol = conn.storagePoolLookupByName(POOL).storageVolLookupByName("enc.qcow2")
    assert encryption_of(_xml.parse(vol.XMLDesc(0))) == dict(format="luks", secret=UUID)
    assert results[3]["volume"]["encryption"] == dict(format="luks", secret=UUID)


def test_missing_secret_refused_assumed_in_check_mode(conn):
    enc = dict(format="luks", secret="/default-pool/other.qcow2")
    with pytest.raises(NotFoundError, match="no secret of usage volume '/default-pool/other.qcow2'"):
        run(conn, encryption=enc)
    assert run(conn, check=True, encryption=enc)["changed"] is True
    assert not conn.storagePoolLookupByName(POOL).listAllVolumes(0)


def test_existing_volume_is_not_encrypted_afterwards(conn):
    run(conn)
    with pytest.raises(ConflictError, match="exists without encryption"):
        run(conn, encryption=dict(format="luks", secret=UUID))
