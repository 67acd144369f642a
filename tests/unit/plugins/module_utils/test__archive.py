# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The archive layout and the safe, streaming tar reader (_archive), with archives built by tarfile."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive as _archive
from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive_read as _archive_read
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError

needs_zstd = pytest.mark.skipif(shutil.which("zstd") is None, reason="the zstd command is not installed")

DISK = b"QFI\xfb" + b"\x00" * 4092 + b"data" * 1024


def manifest_bytes(disk=DISK, **changes):
    entry = dict(target="vda", format="qcow2", virtual_size=1 << 30, size=len(disk),
                 sha256=hashlib.sha256(disk).hexdigest(), bus="virtio", device="disk")
    entry.update(changes)
    return _archive.build_manifest(dict(name="vm1", uuid="5f9c4b1e-1c7b-4e0e-9a6e-1f2d3c4b5a69", vcpus=1, memory_mib=512,
                                        firmware="bios", arch="x86_64"), [entry], created="2024-01-01T00:00:00Z")


def add(tar, name, data=b"", **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def write_tar(path, members, mode="w"):
    with tarfile.open(str(path), mode, format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            add(tar, *member[:2], **(member[2] if len(member) > 2 else {}))
    return str(path)


def own_members(disk=DISK):
    return [(_archive.MANIFEST_NAME, manifest_bytes(disk)), (_archive.DOMAIN_XML_NAME, b"<domain/>"),
            ("disks/vda.qcow2", disk)]


def zstd(path):
    subprocess.check_call(["zstd", "-q", "-f", "--rm", str(path), "-o", str(path) + ".zst"])
    return str(path) + ".zst"


def test_constants():
    assert _archive.ARCHIVE_FORMATS == ("tar", "tar.gz", "tar.zst")
    assert _archive.disk_member_name("vdb", "raw") == "disks/vdb.raw"
    assert _archive.FORMAT_VERSION == 1


@pytest.mark.parametrize("name, fmt", [("a.tar", "tar"), ("A.TAR.GZ", "tar.gz"), ("x.tgz", "tar.gz"),
                                       ("x.tar.zst", "tar.zst"), ("x.tzst", "tar.zst"), ("x.ova", None)])
def test_format_for_path(name, fmt):
    assert _archive.archive_format_for_path(name) == fmt


def test_manifest_round_trip():
    data = json.loads(manifest_bytes().decode())
    assert data["disks"][0]["file"] == "disks/vda.qcow2"
    assert _archive.load_manifest(manifest_bytes())["vm"]["name"] == "vm1"


@pytest.mark.parametrize("change, message", [
    (dict(format_version=2), "newer than this collection"),
    (dict(format_version="1"), "format_version is missing"),
    (dict(vm={}), "vm.name"),
    (dict(domain_xml="../domain.xml"), "domain_xml"),
    (dict(disks={}), "must be a list"),
    (dict(disks=[dict(target="../vda")]), "not a disk target"),
    (dict(disks=[dict(target="vda", format="iso")]), "format must be"),
    (dict(disks=[dict(target="vda", format="raw", file="/etc/shadow")]), "file must be"),
    (dict(disks=[dict(target="vda", format="raw", file="disks/vda.raw", virtual_size=0)]), "virtual_size"),
    (dict(disks=[dict(target="vda", format="raw", file="disks/vda.raw", virtual_size=1, size=True)]), "size"),
    (dict(disks=[dict(target="vda", format="raw", file="disks/vda.raw", virtual_size=1, size=1, sha256="x")]), "sha256"),
])
def test_manifest_refuses(change, message):
    data = json.loads(manifest_bytes().decode())
    data.update(change)
    with pytest.raises(InvalidInputError, match=message):
        _archive.load_manifest(json.dumps(data).encode())


def test_manifest_duplicate_target():
    data = json.loads(manifest_bytes().decode())
    data["disks"].append(dict(data["disks"][0]))
    with pytest.raises(InvalidInputError, match="twice"):
        _archive.load_manifest(json.dumps(data).encode())
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        _archive.load_manifest(b"{")


@pytest.mark.parametrize("compress", ["tar", "tar.gz", pytest.param("tar.zst", marks=needs_zstd)])
def test_stream_reads_every_format(tmp_path, compress):
    path = write_tar(tmp_path / "a.tar", own_members(), mode="w:gz" if compress == "tar.gz" else "w")
    if compress == "tar.zst":
        path = zstd(path)
    assert _archive.detect_format(path) == compress
    seen = []
    with _archive_read.ArchiveStream(path) as stream:
        for name, size, fileobj in stream.members():
            if name == "disks/vda.qcow2":
                digest = _archive_read.copy_member(fileobj, str(tmp_path / "out"), size, name, declared_size=len(DISK))
                assert digest == hashlib.sha256(DISK).hexdigest()
            else:
                _archive_read.read_small(fileobj, size, name)
            seen.append(name)
    assert seen == [_archive.MANIFEST_NAME, _archive.DOMAIN_XML_NAME, "disks/vda.qcow2"]
    assert (tmp_path / "out").read_bytes() == DISK
    if compress == "tar":
        assert _archive_read.scan(path) == [(n, len(d)) for n, d in own_members()]


def test_detect_format_refuses(tmp_path):
    (tmp_path / "x").write_bytes(b"PK\x03\x04" + b"\x00" * 600)
    with pytest.raises(InvalidInputError, match="not a tar archive"):
        _archive.detect_format(str(tmp_path / "x"))
    with pytest.raises(InvalidInputError, match="cannot read"):
        _archive.detect_format(str(tmp_path / "missing"))


HOSTILE = [
    ("absolute", [("/etc/cron.d/evil", b"x")], "absolute path"),
    ("dotdot", [("disks/../../evil", b"x")], "'..' component"),
    ("symlink", [("disks/vda.qcow2", b"", dict(type=tarfile.SYMTYPE, linkname="/etc/shadow"))], "symbolic link"),
    ("hardlink", [("disks/vda.qcow2", b"", dict(type=tarfile.LNKTYPE, linkname="/etc/shadow"))], "hard link"),
    ("device", [("dev", b"", dict(type=tarfile.CHRTYPE, devmajor=1, devminor=3))], "device file"),
    ("fifo", [("fifo", b"", dict(type=tarfile.FIFOTYPE))], "FIFO"),
    ("duplicate", [("a", b"1"), ("./a", b"2")], "twice"),
    ("backslash", [("..\\evil", b"x")], "not a plain relative path"),
]


@pytest.mark.parametrize("members, message", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
@pytest.mark.parametrize("compress", ["tar", "tar.gz"])
def test_hostile_members_refused(tmp_path, members, message, compress):
    path = write_tar(tmp_path / "h.tar", members, mode="w:gz" if compress == "tar.gz" else "w")
    with pytest.raises(InvalidInputError, match=message):
        with _archive_read.ArchiveStream(path) as stream:
            for name, size, fileobj in stream.members():
                _archive_read.read_small(fileobj, size, name)
    if compress == "tar":
        with pytest.raises(InvalidInputError, match=message):
            _archive_read.scan(path)
    assert sorted(os.listdir(str(tmp_path))) == ["h.tar"], "nothing was written beside the archive"


def test_directory_entries_skipped(tmp_path):
    path = write_tar(tmp_path / "d.tar", [("disks", b"", dict(type=tarfile.DIRTYPE)), ("disks/a", b"1")])
    with _archive_read.ArchiveStream(path) as stream:
        assert [m[0] for m in stream.members()] == ["disks/a"]


def test_copy_member_size_checks(tmp_path):
    with pytest.raises(InvalidInputError, match="archive declares 5"):
        _archive_read.copy_member(io.BytesIO(b"123456"), str(tmp_path / "a"), 6, "m", declared_size=5)
    assert not (tmp_path / "a").exists(), "refused before anything was written"
    with pytest.raises(InvalidInputError, match="more than the 6 bytes"):
        _archive_read.copy_member(io.BytesIO(b"1234567"), str(tmp_path / "b"), 6, "m")
    with pytest.raises(InvalidInputError, match="truncated"):
        _archive_read.copy_member(io.BytesIO(b"12"), str(tmp_path / "c"), 6, "m")
    assert os.listdir(str(tmp_path)) == [], "no partial file is left"
    (tmp_path / "d").write_bytes(b"")
    with pytest.raises(OSError):  # never writes through an existing file (or a planted link)
        _archive_read.copy_member(io.BytesIO(b"1"), str(tmp_path / "d"), 1, "m")


def test_read_small_limits():
    with pytest.raises(InvalidInputError, match="at most 4"):
        _archive_read.read_small(io.BytesIO(b"12345"), 5, "m", limit=4)
    with pytest.raises(InvalidInputError, match="not the 9"):
        _archive_read.read_small(io.BytesIO(b"12345"), 9, "m")


def test_truncated_archive(tmp_path):
    path = write_tar(tmp_path / "t.tar", own_members(disk=DISK * 64))
    data = open(path, "rb").read()
    with open(path, "wb") as handle:
        handle.write(data[:len(data) // 2])
    with pytest.raises(InvalidInputError, match="truncated"):
        with _archive_read.ArchiveStream(path) as stream:
            for name, size, fileobj in stream.members():
                if name.startswith("disks/"):
                    _archive_read.copy_member(fileobj, str(tmp_path / "out"), size, name)


@needs_zstd
def test_corrupt_zstd(tmp_path):
    path = zstd(write_tar(tmp_path / "c.tar", own_members(disk=os.urandom(300000))))
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    data[len(data) // 2 + 1] ^= 0xFF
    with open(path, "wb") as handle:
        handle.write(bytes(data))
    with pytest.raises(InvalidInputError):
        with _archive_read.ArchiveStream(path) as stream:
            for name, size, fileobj in stream.members():
                _archive_read.copy_member(fileobj, str(tmp_path / name.replace("/", "_")), size, name)


def test_scratch_dir_removed(tmp_path):
    with pytest.raises(RuntimeError):
        with _archive_read.scratch_dir(str(tmp_path)) as scratch:
            open(os.path.join(scratch, "x"), "w").close()
            raise RuntimeError("boom")
    assert os.listdir(str(tmp_path)) == []
