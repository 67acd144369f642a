# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The volume model and resource against libvirt's test driver, qemu-img and real files."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import hashlib
import lzma
import os
import subprocess

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import retry_busy
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.disks import disk_users
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume import VolumeResource
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_source import (
    decompress_file,
    detect_compression,
    parse_checksum,
    verify_checksum,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_info import gather_volume_info
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import parse_volume_xml, validate_name
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_write import (
    build_volume_xml,
    normal_capacity,
)

MiB = 1024 ** 2
POOL = "default-pool"


@pytest.fixture(autouse=True)
def clean_pool(test_conn):
    """test:///default is shared within the process while connections or objects live: start and end empty."""

    def clean():
        pool = test_conn.storagePoolLookupByName(POOL)
        if not pool.isActive():
            pool.create(0)
        for vol in pool.listAllVolumes(0):
            vol.delete(0)
        for name in test_conn.listDefinedDomains():
            if name.startswith("user"):
                test_conn.lookupByName(name).undefine()

    clean()
    yield
    clean()


def run_argv(argv, **_kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def params(**kw):
    base = dict(
        uri="test:///default", name="v1.qcow2", pool=POOL, state="present", capacity=None, format=None,
        preallocation=None, source=None, source_format=None, checksum=None, validate_certs=True, timeout=60,
        backing_volume=None, clone_from=None, allow_shrink=False, force=False, wipe=False,
    )
    base.update(kw)
    return base


def run(conn, check=False, diff=True, **kw):
    ctx = Context(conn=conn, params=params(**kw), check_mode=check, diff=diff, run_command=run_argv)
    return reconcile(VolumeResource(ctx), check_mode=check, want_diff=diff)


def four_times(conn, **kw):
    results = [run(conn, check=c, **kw) for c in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[0]["actions"] == results[1]["actions"]
    return results


def validate_xml(tmp_path, node):
    path = tmp_path / "vol.xml"
    path.write_text(_xml.to_string(node))
    proc = subprocess.run(["virt-xml-validate", str(path), "storagevol"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()


# --- names, checksums, sizes ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["disk.qcow2", "web-1_root.img", "a.b.c", "ünïcode.raw"])
def test_good_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "  ", "../x", "a/../b", "..", ".", "sub/dir", "/abs", "a\nb", "tab\tname",
                                  "nul\x00", "del\x7f", "back\\slash", "x" * 256])
def test_bad_names(name):
    with pytest.raises(InvalidInputError):
        validate_name(name)


def test_parse_checksum():
    digest = hashlib.sha256(b"x").hexdigest()
    assert parse_checksum("sha256:" + digest.upper()) == ("sha256", digest)


@pytest.mark.parametrize("text", ["", "sha256", "md5:" + "0" * 32, "sha256:abc", "sha256:" + "g" * 64, "sha1:" + "0" * 64])
def test_bad_checksums(text):
    with pytest.raises(InvalidInputError):
        parse_checksum(text)


@pytest.mark.parametrize("cap,fmt,expected", [(1000, "qcow2", 1024), (1000, "raw", 1000), (MiB, "qcow2", MiB), (None, "raw", None)])
def test_normal_capacity(cap, fmt, expected):
    assert normal_capacity(cap, fmt) == expected


# --- files ------------------------------------------------------------------------------------


def test_checksum_and_decompression_of_real_files(tmp_path):
    payload = os.urandom(300000)
    plain = tmp_path / "img"
    plain.write_bytes(payload)
    with gzip.open(str(tmp_path / "img.gz"), "wb") as handle:
        handle.write(payload)
    with lzma.open(str(tmp_path / "img.xz"), "wb") as handle:
        handle.write(payload)
    assert detect_compression(str(plain)) is None
    assert detect_compression(str(tmp_path / "img.gz")) == "gzip"
    assert detect_compression(str(tmp_path / "img.xz")) == "xz"
    for name, kind in (("img.gz", "gzip"), ("img.xz", "xz")):
        out = tmp_path / (name + ".out")
        decompress_file(str(tmp_path / name), str(out), kind)
        assert out.read_bytes() == payload
    good = "sha256:" + hashlib.sha256(payload).hexdigest()
    assert verify_checksum(str(plain), good) == good.split(":")[1]
    with pytest.raises(InvalidInputError, match="checksum mismatch"):
        verify_checksum(str(plain), "sha256:" + "0" * 64)


def test_corrupt_gzip_is_invalid_input(tmp_path):
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(InvalidInputError, match="cannot decompress"):
        decompress_file(str(bad), str(tmp_path / "out"), "gzip")


# --- XML --------------------------------------------------------------------------------------


def test_empty_volume_xml_validates(tmp_path):
    node = build_volume_xml("a.qcow2", 64 * MiB, "qcow2", allocation=0)
    validate_xml(tmp_path, node)
    model = parse_volume_xml(_xml.to_string(node))
    assert model["name"] == "a.qcow2" and model["capacity"] == 64 * MiB and model["format"] == "qcow2"
    assert model["allocation"] == 0 and model["backing_path"] is None
    # qcow2 version 3, which holds the dirty bitmaps of incremental backups; raw has no such thing
    assert node.findtext("target/compat") == "1.1"
    assert build_volume_xml("r.raw", MiB, "raw").find("target/compat") is None


def test_overlay_xml_validates_and_escapes(tmp_path):
    node = build_volume_xml("o<&'\".qcow2", MiB, "qcow2", backing_path="/p/base <1>.qcow2", backing_format="qcow2")
    validate_xml(tmp_path, node)
    model = parse_volume_xml(_xml.to_string(node))
    assert model["name"] == "o<&'\".qcow2"
    assert model["backing_path"] == "/p/base <1>.qcow2" and model["backing_format"] == "qcow2"


def test_parse_libvirt_xml(test_conn):
    pool = test_conn.storagePoolLookupByName(POOL)
    vol = pool.createXML(_xml.to_string(build_volume_xml("r.raw", 2 * MiB, "raw")), 0)
    model = parse_volume_xml(vol.XMLDesc(0))
    assert model == dict(name="r.raw", type="file", key="/default-pool/r.raw", path="/default-pool/r.raw", format="raw",
                         capacity=2 * MiB, allocation=model["allocation"], backing_path=None, backing_format=None,
                         physical=None, mtime=None, encrypted=False, encryption=None)


# --- the resource against the test driver -----------------------------------------------------


def test_empty_qcow2_four_times(test_conn):
    results = four_times(test_conn, capacity="1000")
    assert results[0]["diff"]["before"] == {"state": "absent"}
    assert results[0]["diff"]["after"] == dict(state="present", name="v1.qcow2", pool=POOL, path="/default-pool/v1.qcow2",
                                               type="file", format="qcow2", capacity=1024)
    assert results[0]["volume"]["capacity"] == 1024  # predicted in check mode, as libvirt will round
    assert results[1]["volume"]["capacity"] == 1024 and results[1]["volume"]["format"] == "qcow2"
    assert results[3]["volume"] == results[1]["volume"]
    assert test_conn.storagePoolLookupByName(POOL).listVolumes() == ["v1.qcow2"]


@pytest.mark.parametrize("given, shown", [
    (dict(capacity="1M", format="raw"), dict(format="raw", capacity=MiB)),
    (dict(source="{tmp}/base.img", source_format="raw"), dict(format="raw")),
    (dict(clone_from="base.raw"), dict(format="raw", clone_from="base.raw")),
], ids=["capacity", "source", "clone"])
def test_diff_of_a_new_volume_shows_what_it_will_be(test_conn, tmp_path, given, shown):
    """Not ``after: {}``: a new volume's diff names it, its pool, path and what is known of it."""
    (tmp_path / "base.img").write_bytes(b"\0" * 4096)
    if given.get("clone_from"):
        test_conn.storagePoolLookupByName(POOL).createXML(_xml.to_string(build_volume_xml("base.raw", MiB, "raw")), 0)
    given = dict((k, v.format(tmp=tmp_path)) for k, v in given.items())
    result = run(test_conn, check=True, **given)
    expected = dict(state="present", name="v1.qcow2", pool=POOL, path="/default-pool/v1.qcow2", type="file")
    assert result["diff"] == dict(before={"state": "absent"}, after=dict(expected, **shown),
                                  before_header=result["diff"]["before_header"], after_header=result["diff"]["after_header"])
    assert "v1.qcow2" not in test_conn.storagePoolLookupByName(POOL).listVolumes()


def test_check_mode_changes_nothing(test_conn):
    result = run(test_conn, check=True, capacity="1M", format="raw")
    assert result["changed"] and result["volume"]["path"] == "/default-pool/v1.qcow2"
    assert test_conn.storagePoolLookupByName(POOL).listVolumes() == []


def test_full_preallocation(test_conn):
    run(test_conn, name="full.raw", capacity="4M", format="raw", preallocation="full")
    vol = test_conn.storagePoolLookupByName(POOL).storageVolLookupByName("full.raw")
    assert parse_volume_xml(vol.XMLDesc(0))["allocation"] == 4 * MiB


def test_capacity_required_for_empty(test_conn):
    with pytest.raises(InvalidInputError, match="capacity is required"):
        run(test_conn)


@pytest.mark.parametrize("kw,match", [
    (dict(capacity="12 parsecs"), "capacity"),
    (dict(capacity="0"), "greater than zero"),
    (dict(name="../etc/passwd", capacity="1M"), "separator"),
    (dict(name="a..b", capacity="1M"), "'..'"),
    (dict(name="a/b", capacity="1M"), "separator"),
    (dict(name="a\nb", capacity="1M"), "control"),
    (dict(backing_volume="../x"), "backing_volume"),
    (dict(backing_volume="v1.qcow2"), "own backing"),
    (dict(backing_volume="b", format="raw"), "always qcow2"),
    (dict(capacity="1M", format="raw", preallocation="metadata"), "qcow2"),
    (dict(source="/x", checksum="sha256:12"), "hex digest"),
])
def test_bad_input(test_conn, kw, match):
    with pytest.raises(InvalidInputError, match=match):
        run(test_conn, **kw)
    assert test_conn.storagePoolLookupByName(POOL).listVolumes() == []


def test_unknown_pool(test_conn):
    with pytest.raises(NotFoundError, match="no-such-pool"):
        run(test_conn, pool="no-such-pool", capacity="1M")


def test_inactive_pool(test_conn):
    test_conn.storagePoolLookupByName(POOL).destroy()
    with pytest.raises(ConflictError, match="not active"):
        run(test_conn, capacity="1M")


def test_format_conflict_and_shrink_refused(test_conn):
    run(test_conn, capacity="2M")
    with pytest.raises(ConflictError, match="not converted"):
        run(test_conn, format="raw")
    with pytest.raises(InvalidInputError, match="allow_shrink"):
        run(test_conn, capacity="1M")
    with pytest.raises(InvalidInputError, match="allow_shrink"):
        run(test_conn, check=True, capacity="1M")
    # growing is planned (the test driver cannot resize, so only in check mode)
    result = run(test_conn, check=True, capacity="3M")
    assert result["changed"] and result["actions"] == ["grow volume 'v1.qcow2' from 2097152 to 3145728 bytes"]
    assert result["diff"] == dict(before={"capacity": 2 * MiB}, after={"capacity": 3 * MiB},
                                  before_header="volume v1.qcow2", after_header="volume v1.qcow2")
    assert result["volume"]["capacity"] == 3 * MiB
    shrink = run(test_conn, check=True, capacity="1M", allow_shrink=True)
    assert shrink["actions"] == ["shrink volume 'v1.qcow2' from 2097152 to 1048576 bytes"]


def test_linked_clone_and_dependants(test_conn):
    run(test_conn, name="base.qcow2", capacity="8M")
    results = four_times(test_conn, name="top.qcow2", backing_volume="base.qcow2")
    vol = results[1]["volume"]
    assert vol["backing_volume"] == "base.qcow2" and vol["format"] == "qcow2" and vol["capacity"] == 8 * MiB
    assert vol["backing_chain"] == [dict(path="/default-pool/base.qcow2", format="qcow2", pool=POOL, volume="base.qcow2")]
    with pytest.raises(ConflictError) as err:
        run(test_conn, name="base.qcow2", state="absent")
    assert err.value.details["dependants"] == [POOL + "/top.qcow2"]
    with pytest.raises(ConflictError, match="backing volume"):
        run(test_conn, name="top.qcow2", backing_volume="other.qcow2")
    forced = four_times(test_conn, name="base.qcow2", state="absent", force=True)
    assert forced[1]["volume"] is None
    assert any("top.qcow2" in w for w in forced[1]["warnings"])
    assert test_conn.storagePoolLookupByName(POOL).listVolumes() == ["top.qcow2"]


def test_linked_clone_needs_existing_base(test_conn):
    with pytest.raises(NotFoundError, match="nope"):
        run(test_conn, name="top.qcow2", backing_volume="nope")


def test_full_clone(test_conn):
    run(test_conn, name="src.raw", capacity="4M", format="raw")
    results = four_times(test_conn, name="copy.raw", clone_from="src.raw")
    assert results[1]["volume"]["format"] == "raw" and results[1]["volume"]["capacity"] == 4 * MiB
    assert results[1]["volume"]["backing_chain"] == []
    with pytest.raises(InvalidInputError, match="smaller"):
        run(test_conn, name="small.raw", clone_from="src.raw", capacity="1M")


def test_absent_four_times_and_wipe_planned(test_conn):
    run(test_conn, capacity="1M")
    planned = run(test_conn, check=True, state="absent", wipe=True)
    assert planned["actions"] == ["wipe volume 'v1.qcow2'", "delete volume 'v1.qcow2' from pool 'default-pool'"]
    results = four_times(test_conn, state="absent")
    assert results[0]["diff"]["after"] == {"state": "absent"}
    assert results[0]["diff"]["before"]["capacity"] == MiB


def test_failed_step_undoes_creation(test_conn, tmp_path):
    """The source step after the volume exists fails (the test driver cannot upload): no volume is left."""
    image = tmp_path / "img.qcow2"
    assert run_argv(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "1M"])[0] == 0
    with pytest.raises(Exception) as err:
        run(test_conn, source=str(image))
    assert "upload" in str(err.value)
    assert test_conn.storagePoolLookupByName(POOL).listVolumes() == []


def test_wrong_checksum_leaves_nothing(test_conn, tmp_path):
    image = tmp_path / "img.qcow2"
    assert run_argv(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "1M"])[0] == 0
    before = set(os.listdir(os.environ.get("TMPDIR", "/tmp")))
    with pytest.raises(InvalidInputError, match="checksum mismatch"):
        run(test_conn, source=str(image), checksum="sha256:" + "0" * 64)
    after = set(os.listdir(os.environ.get("TMPDIR", "/tmp")))
    assert not [n for n in after - before if n.startswith("virtops-volume-")]
    assert test_conn.storagePoolLookupByName(POOL).listVolumes() == []


def test_source_with_backing_file_refused(test_conn, tmp_path):
    base = tmp_path / "base.qcow2"
    top = tmp_path / "top.qcow2"
    run_argv(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "1M"])
    run_argv(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(top)])
    with pytest.raises(InvalidInputError, match="backing file"):
        run(test_conn, source=str(top))


def test_missing_source_file(test_conn, tmp_path):
    with pytest.raises(NotFoundError):
        run(test_conn, source=str(tmp_path / "nope.qcow2"))
    with pytest.raises(InvalidInputError, match="http"):
        run(test_conn, source="ftp://127.0.0.1/x")


# --- facts ------------------------------------------------------------------------------------


def test_volume_info_and_users(test_conn):
    pool = test_conn.storagePoolLookupByName(POOL)
    pool.createXML(_xml.to_string(build_volume_xml("diskimage1", MiB, "raw")), 0)
    # the test driver's domain 'test' has a disk /guest/diskimage1; point a new domain at our volume
    dom = _xml.parse(test_conn.lookupByName("test").XMLDesc(0))
    dom.find("name").text = "user1"
    dom.remove(dom.find("uuid"))
    dom.find("devices/disk/source").set("file", "/default-pool/diskimage1")
    test_conn.defineXML(_xml.to_string(dom))
    info = gather_volume_info(Context(conn=test_conn, params=dict(pool=POOL, name=None)))
    assert [v["name"] for v in info["volumes"]] == ["diskimage1"]
    assert info["volumes"][0]["used_by"] == [dict(domain="user1", active=False, target="vda")]
    one = gather_volume_info(Context(conn=test_conn, params=dict(pool=POOL, name="missing")))
    assert one == dict(changed=False, volumes=[])
    users = disk_users(test_conn)
    assert dict(domain="test", active=True, target="vda", device="disk", path="/guest/diskimage1", pool=None,
                volume=None) in users


def test_volume_info_used_by_counts_every_use(test_conn):
    """used_by is the shared answer of _core/usage: a VM's kernel file counts, not only its disks."""
    pool = test_conn.storagePoolLookupByName(POOL)
    pool.createXML(_xml.to_string(build_volume_xml("vmlinuz", MiB, "raw")), 0)
    dom = _xml.parse(test_conn.lookupByName("test").XMLDesc(0))
    dom.find("name").text = "user2"
    dom.remove(dom.find("uuid"))
    _xml.sub(dom.find("os"), "kernel", "/default-pool/vmlinuz")
    test_conn.defineXML(_xml.to_string(dom))
    info = gather_volume_info(Context(conn=test_conn, params=dict(pool=POOL, name="vmlinuz")))
    assert info["volumes"][0]["used_by"] == [dict(domain="user2", active=False, target=None)]


def test_retry_busy_retries_only_busy_errors():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise libvirt.libvirtError("storage pool 'p' has asynchronous jobs running.")
        return "ok"

    assert retry_busy(flaky, "refreshing", sleep=lambda _s: None) == "ok" and len(calls) == 3

    def broken():
        raise libvirt.libvirtError("something else entirely")

    with pytest.raises(Exception) as err:
        retry_busy(broken, "refreshing", sleep=lambda _s: None)
    assert "refreshing" in str(err.value)


# --- sources that are not image files, records, a volume made by two tasks at once -----------------


def test_directory_or_device_as_source(test_conn, tmp_path):
    with pytest.raises(InvalidInputError, match="is a directory, not an image file"):
        run(test_conn, source=str(tmp_path))
    with pytest.raises(InvalidInputError, match="not a regular file"):
        run(test_conn, source="/dev/null")
    assert test_conn.storagePoolLookupByName(POOL).listVolumes() == []


def test_hostile_source_refused_and_nothing_made(test_conn, tmp_path):
    image = tmp_path / "evil.raw"
    run_argv(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/hostname", "-F", "raw", str(image), "1M"])
    for source_format in ("raw", None, "qcow2"):
        with pytest.raises(InvalidInputError, match="image header|backing file"):
            run(test_conn, source=str(image), source_format=source_format, format="raw")
    assert test_conn.storagePoolLookupByName(POOL).listVolumes() == []


def _record_of(**kw):
    from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record
    rec = _record.new_record("raw", "volume", source=kw.pop("source", "https://h/a.raw"),
                             checksum=kw.pop("checksum", "sha256:" + "a" * 64), complete=kw.pop("complete", True))
    rec.update(kw)
    return rec


REFILLS = [
    ("complete-same", dict(), dict(source="https://h/a.raw"), None),
    ("signed-url-same", dict(), dict(source="https://u:p@h/a.raw?sig=2"), None),
    ("incomplete", dict(complete=False, filler=dict(host="h", boot="b", pid=1, start=1)), dict(source="https://h/a.raw"),
     "did not complete"),
    ("other-source", dict(), dict(source="https://h/b.raw"), "filled from https://h/a.raw, not from https://h/b.raw"),
    ("other-checksum", dict(), dict(source="https://h/a.raw", checksum="sha256:" + "b" * 64), "checksum"),
    ("other-algorithm", dict(), dict(source="https://h/a.raw", checksum="sha1:" + "a" * 40), "checksum"),
    ("same-checksum", dict(), dict(source="https://h/a.raw", checksum="SHA256:" + "A" * 64), None),
    ("clone-other", dict(source="volume:default-pool/x"), dict(clone_from="y"), "not from volume:default-pool/y"),
]


@pytest.mark.parametrize("rec, given, reason", [pytest.param(*r[1:], id=r[0]) for r in REFILLS])
def test_refill_reasons(test_conn, rec, given, reason, monkeypatch):
    from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Plan
    monkeypatch.setattr(_record.socket, "gethostname", lambda: "h")
    resource = VolumeResource(Context(conn=test_conn, params=params(**given), run_command=run_argv))
    resource._record = _record_of(**rec)
    got = resource._refill_reason(dict(path="/x"), Plan())
    assert (got is None) if reason is None else (reason in got)


def test_incomplete_without_source_is_a_warning(test_conn):
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Plan
    resource = VolumeResource(Context(conn=test_conn, params=params(capacity="1M"), run_command=run_argv))
    resource._record = _record_of(complete=False, filler=dict(host="elsewhere-but-dead", boot=None, pid=1, start=1))
    with pytest.raises(ConflictError, match="being filled from another host"):
        resource._refill_reason(dict(path="/x"), Plan())
    resource._record["filler"]["host"] = __import__("socket").gethostname()
    plan = Plan()
    assert resource._refill_reason(dict(path="/x"), plan) is None
    assert "incomplete" in plan.warnings[0]


def test_volume_created_by_another_task_meanwhile_is_used(test_conn):
    """Two tasks create the same volume: the one that loses the race uses the other's volume."""
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import DifferenceTracker
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Plan
    ctx = Context(conn=test_conn, params=params(capacity="1M"), run_command=run_argv)
    resource = VolumeResource(ctx)
    plan = Plan()
    current = resource.read()
    resource.plan(current, resource.desired(current), DifferenceTracker(), plan)
    assert run(test_conn, capacity="1M")["changed"]  # the other task
    plan.execute()
    assert "created at the same time by another task" in ctx.warnings[0]
    assert test_conn.storagePoolLookupByName(POOL).listVolumes() == ["v1.qcow2"]


def test_volume_of_another_format_created_meanwhile_is_a_conflict(test_conn):
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import DifferenceTracker
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Plan
    resource = VolumeResource(Context(conn=test_conn, params=params(capacity="1M"), run_command=run_argv))
    plan = Plan()
    current = resource.read()
    resource.plan(current, resource.desired(current), DifferenceTracker(), plan)
    assert run(test_conn, capacity="1M", format="raw")["changed"]
    with pytest.raises(ConflictError, match="as raw, not qcow2"):
        plan.execute()
    assert test_conn.storagePoolLookupByName(POOL).listVolumes() == ["v1.qcow2"]  # the other task's volume stays


class _DeadConn:
    """A connection whose daemon went away."""

    def __getattr__(self, name):
        def dead(*_args, **_kwargs):
            raise libvirt.libvirtError("internal error: client socket is closed")
        return dead


def test_undo_of_a_creation_runs_again_on_a_new_connection(test_conn):
    """The undo fails on the lost connection, keeps what it must delete, and deletes it on the new one."""
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import DifferenceTracker
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Plan
    ctx = Context(conn=test_conn, params=params(capacity="1M"), run_command=run_argv)
    resource = VolumeResource(ctx)

    def renew():
        ctx.conn = test_conn
        return True

    plan = Plan(reconnect=renew)
    current = resource.read()
    resource.plan(current, resource.desired(current), DifferenceTracker(), plan)

    def daemon_goes_away():
        ctx.conn = _DeadConn()
        raise BackendError("uploading: Cannot write data: Broken pipe")

    plan.add("upload", daemon_goes_away)
    with pytest.raises(BackendError, match="Broken pipe") as err:
        plan.execute()
    assert "rollback_errors" not in err.value.details
    assert test_conn.storagePoolLookupByName(POOL).listVolumes() == []
