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
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, ConflictError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._core import usage as _usage
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import volume_fill
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


def test_existing_volume_whose_secret_libvirt_no_longer_reports(conn):
    """After a pool refresh libvirt reports <encryption format='luks'> without the secret: the volume is kept,
    not a conflict."""
    root = build_volume_xml("enc.qcow2", 16 << 20, "qcow2")
    root.find("target").append(_xml.element("encryption", attrs={"format": "luks"}))
    conn.storagePoolLookupByName(POOL).createXML(_xml.to_string(root), 0)
    for check in (True, False):
        result = run(conn, check=check, encryption=dict(format="luks", secret=UUID))
        assert result["changed"] is False and result["actions"] == []


def test_an_encrypted_volume_records_its_secret(conn, monkeypatch):
    written = []
    monkeypatch.setattr(_record, "local_file", lambda uri, model: model["path"])  # the test driver makes no files
    monkeypatch.setattr(_record, "write_record", lambda path, rec: written.append((path, rec)) or True)
    run(conn, encryption=dict(format="luks", secret=USAGE))
    assert [(path, rec["secret"]) for path, rec in written] == [("/default-pool/enc.qcow2", UUID)]


def test_the_secret_of_a_volume_libvirt_no_longer_names_is_read_from_its_record(conn, tmp_path, monkeypatch):
    """libvirt 9 drops the <secret> of a LUKS volume at a pool refresh: "who uses this secret" still finds
    the volume, through the record the volume module wrote when it made it."""
    root = build_volume_xml("enc.qcow2", 16 << 20, "qcow2")
    root.find("target").append(_xml.element("encryption", attrs={"format": "luks"}))
    conn.storagePoolLookupByName(POOL).createXML(_xml.to_string(root), 0)
    local = tmp_path / "enc.qcow2"
    local.write_bytes(b"")
    assert _record.write_record(str(local), dict(_record.new_record("qcow2", "volume"), secret=UUID))
    monkeypatch.setattr(_record, "local_path", lambda uri, path: str(local) if path == "/default-pool/enc.qcow2" else None)
    assert _usage.Usage(conn).secret_users(UUID)[1] == ["default-pool/enc.qcow2"]
    assert _usage.Usage(conn).secret_users("0b9d5a5e-5d43-4f0a-9d0e-3f1c0f9a2b11")[1] == []
    _record.write_record(str(local), _record.new_record("qcow2", "volume"))  # made by something else: no secret known
    assert _usage.Usage(conn).secret_users(UUID)[1] == []


def test_existing_volume_with_another_secret_is_a_conflict(conn):
    root = build_volume_xml("enc.qcow2", 16 << 20, "qcow2")
    root.find("target").append(encryption_element("0b9d5a5e-5d43-4f0a-9d0e-3f1c0f9a2b11"))
    conn.storagePoolLookupByName(POOL).createXML(_xml.to_string(root), 0)
    with pytest.raises(ConflictError, match="is encrypted with secret 0b9d5a5e-5d43-4f0a-9d0e-3f1c0f9a2b11, not"):
        run(conn, encryption=dict(format="luks", secret=UUID))


def test_existing_volume_is_not_encrypted_afterwards(conn):
    run(conn)
    with pytest.raises(ConflictError, match="exists without encryption"):
        run(conn, encryption=dict(format="luks", secret=UUID))


# --- QEMU's failed pbkdf benchmark (QEMU < 9.2.1): the creation is tried again ----------------------------

FLAKE = ("internal error: Child process (/usr/bin/qemu-img create -f luks ...) unexpected exit status 1: "
         "qemu-img: /var/lib/libvirt/images/enc.qcow2: Unable to get accurate CPU usage")


class FlakyPool:
    """The test driver's pool whose first ``failures`` creations fail with ``message`` (libvirt's words); with
    ``leftover``, a failed attempt leaves a volume of that name behind, as a file a refresh would find."""

    def __init__(self, pool, failures, message, leftover=False):
        self.pool, self.failures, self.message, self.leftover = pool, failures, message, leftover
        self.attempts = 0

    def __getattr__(self, name):
        return getattr(self.pool, name)

    def createXML(self, text, flags=0):
        self.attempts += 1
        if self.attempts <= self.failures:
            if self.leftover:
                self.pool.createXML(build_volume_text("enc.qcow2"), 0)
            err = libvirt.libvirtError(self.message)
            err.err = (libvirt.VIR_ERR_INTERNAL_ERROR, 0, self.message, 2, None, None, None, 0, 0)
            raise err
        return self.pool.createXML(text, flags)


def build_volume_text(name):
    return _xml.to_string(build_volume_xml(name, 1 << 20, "raw"), pretty=False)


class FlakyConn(SecretLookups):
    def __init__(self, conn, pool):
        SecretLookups.__init__(self, conn)
        self.pool = pool

    def storagePoolLookupByName(self, name):
        return self.pool if name == POOL else self.conn.storagePoolLookupByName(name)


@pytest.fixture
def no_pause(monkeypatch):
    monkeypatch.setattr(volume_fill, "PBKDF_PAUSE_SECONDS", 0)


@pytest.mark.parametrize("leftover", [False, True])
def test_failed_pbkdf_benchmark_is_tried_again(conn, no_pause, leftover):
    pool = FlakyPool(conn.conn.storagePoolLookupByName(POOL), 2, FLAKE, leftover=leftover)
    result = run(FlakyConn(conn.conn, pool), encryption=dict(format="luks", secret=UUID))
    assert result["changed"] is True
    assert pool.attempts == 3
    vols = conn.storagePoolLookupByName(POOL).listAllVolumes(0)
    assert [v.name() for v in vols] == ["enc.qcow2"]
    assert encryption_of(_xml.parse(vols[0].XMLDesc(0))) == dict(format="luks", secret=UUID)


def test_failed_pbkdf_benchmark_gives_up_after_the_attempts(conn, no_pause):
    pool = FlakyPool(conn.conn.storagePoolLookupByName(POOL), 99, FLAKE, leftover=True)
    with pytest.raises(BackendError, match="Unable to get accurate CPU usage"):
        run(FlakyConn(conn.conn, pool), encryption=dict(format="luks", secret=UUID))
    assert pool.attempts == volume_fill.PBKDF_ATTEMPTS
    assert not conn.storagePoolLookupByName(POOL).listAllVolumes(0)  # the last attempt's leftover is undone too


@pytest.mark.parametrize("message", [
    "internal error: Child process (/usr/bin/qemu-img create ...) unexpected exit status 1: qemu-img: No space left on device",
    "internal error: storage pool 'default-pool' CPU usage unknown",
])
def test_other_creation_errors_are_not_tried_again(conn, no_pause, message):
    pool = FlakyPool(conn.conn.storagePoolLookupByName(POOL), 1, message)
    with pytest.raises(BackendError, match="creating volume 'enc.qcow2'"):
        run(FlakyConn(conn.conn, pool), encryption=dict(format="luks", secret=UUID))
    assert pool.attempts == 1
    assert not conn.storagePoolLookupByName(POOL).listAllVolumes(0)
