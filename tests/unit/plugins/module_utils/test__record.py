# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Volume records in user.virtops: written, read, kept only for files this node sees."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record


@pytest.mark.parametrize("source, expected", [
    ("https://user:pw@Example.COM/img/a.qcow2?X-Signature=abc#frag", "https://example.com/img/a.qcow2"),
    ("http://host:8080/a.raw", "http://host:8080/a.raw"),
    ("HTTP://token@host", "http://host"),
    ("/srv/images/a.qcow2", "/srv/images/a.qcow2"),
    ("volume:default/base.qcow2", "volume:default/base.qcow2"),
    (None, None),
])
def test_redact_source(source, expected):
    assert _record.redact_source(source) == expected


def test_signed_urls_are_the_same_source():
    assert _record.source_id("https://h/a.img?sig=1") == _record.source_id("https://u:p@h/a.img?sig=2")
    assert _record.source_id("https://h/a.img") != _record.source_id("https://h/b.img")


def test_write_read_round_trip(tmp_path):
    path = str(tmp_path / "vol")
    open(path, "wb").close()
    assert _record.read_record(path) is None
    rec = _record.new_record("raw", "volume", source="https://u:secret@h/a.raw?t=1", checksum="sha256:" + "a" * 64,
                             complete=False)
    assert _record.write_record(path, rec)
    back = _record.read_record(path)
    assert back == rec and back["complete"] is False and back["filler"]["pid"] == os.getpid()
    assert "secret" not in repr(os.getxattr(path, _record.XATTR)) and back["source"] == "https://h/a.raw"
    assert _record.write_record(path, dict(rec, complete=True, filler=None))
    assert _record.read_record(path)["complete"] is True


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"v": 2, "format": "raw"}', b'{"v": 1}', b"\xff\xfe"])
def test_bad_records_are_no_records(tmp_path, raw):
    path = str(tmp_path / "vol")
    open(path, "wb").close()
    os.setxattr(path, _record.XATTR, raw)
    assert _record.read_record(path) is None


def test_long_sources_are_shortened_and_huge_records_refused(tmp_path):
    rec = _record.new_record("raw", "volume", source="https://h/" + "x" * 5000)
    assert len(rec["source"]) < 400 and rec["source_sha256"] == _record.source_id("https://h/" + "x" * 5000)
    with pytest.raises(ValueError):
        _record.write_record(str(tmp_path), dict(rec, extra="y" * 5000))


def test_no_record_where_xattrs_are_not_kept(tmp_path):
    assert _record.write_record(str(tmp_path / "missing"), _record.new_record("raw", "volume")) is False
    assert _record.write_record("/proc/version", _record.new_record("raw", "volume")) is False
    assert _record.read_record("/proc/version") is None


def _model(path, **kw):
    st = os.stat(path)
    base = dict(path=path, type="file", physical=st.st_size,
                mtime="%d.%09d" % (st.st_mtime_ns // 10 ** 9, st.st_mtime_ns % 10 ** 9))
    base.update(kw)
    return base


@pytest.mark.parametrize("uri, kw, seen", [
    ("qemu:///system", {}, True),
    ("qemu:///system?socket=/run/x", {}, True),
    ("qemu+ssh://host/system", {}, False),  # the file is on another host
    ("qemu+tcp://10.0.0.1/system", {}, False),
    ("qemu:///system", dict(mtime="1.000000001"), False),  # a namesake: another file at that path
    ("qemu:///system", dict(physical=1), False),
    ("qemu:///system", dict(type="block"), False),
    ("qemu:///system", dict(mtime=None, physical=None), True),  # nothing to compare (old libvirt)
])
def test_local_file(tmp_path, uri, kw, seen):
    path = str(tmp_path / "vol")
    with open(path, "wb") as handle:
        handle.write(b"x" * 1000)
    assert _record.local_file(uri, _model(path, **kw)) == (path if seen else None)


def test_local_file_missing_or_a_directory(tmp_path):
    assert _record.local_file("qemu:///system", dict(path=str(tmp_path / "nope"), type="file")) is None
    assert _record.local_file("qemu:///system", dict(path=str(tmp_path), type="file")) is None
    assert _record.local_path("qemu:///system", str(tmp_path)) is None


def test_filler_state():
    me = _record.new_record("raw", "volume", source="/x", complete=False)
    assert _record.filler_state(me) == "alive"
    dead = dict(me, filler=dict(me["filler"], start=me["filler"]["start"] + 1))  # the pid was reused since
    assert _record.filler_state(dead) == "dead"
    rebooted = dict(me, filler=dict(me["filler"], boot="another-boot"))
    assert _record.filler_state(rebooted) == "dead"
    gone = dict(me, filler=dict(me["filler"], pid=2 ** 22 + 7))
    assert _record.filler_state(gone) == "dead"
    other = dict(me, filler=dict(me["filler"], host=socket.gethostname() + "-other"))
    assert _record.filler_state(other) == "elsewhere"
