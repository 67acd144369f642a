# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The qemu-img wrapper against the real qemu-img."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import subprocess

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import CommandError, InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.qemu_img import QemuImg

MiB = 1024 ** 2


@pytest.fixture
def qemu_img():
    calls = []
    wrapper = QemuImg()
    real_run = wrapper._run

    def recording_run(argv):
        assert isinstance(argv, list)  # always argv lists, never a shell string
        calls.append(argv)
        return real_run(argv)

    wrapper._run = recording_run
    wrapper.calls = calls
    return wrapper


def test_version(qemu_img):
    assert qemu_img.version()[0].isdigit()


def test_create_info_resize_check(qemu_img, tmp_path):
    path = str(tmp_path / "a.qcow2")
    qemu_img.create(path, "qcow2", 64 * MiB)
    info = qemu_img.info(path)
    assert info["format"] == "qcow2" and info["virtual-size"] == 64 * MiB
    qemu_img.resize(path, 128 * MiB)
    assert qemu_img.info(path)["virtual-size"] == 128 * MiB
    report = qemu_img.check(path)
    assert report["clean"] is True and report["rc"] == 0


def test_backing_chain(qemu_img, tmp_path):
    base = str(tmp_path / "base.qcow2")
    top = str(tmp_path / "top.qcow2")
    qemu_img.create(base, "qcow2", 32 * MiB)
    qemu_img.create(top, "qcow2", backing_file=base, backing_fmt="qcow2")
    chain = qemu_img.info(top, backing_chain=True)
    assert [i["filename"] for i in chain] == [top, base]


def test_convert_with_progress_and_compare(qemu_img, tmp_path):
    src = str(tmp_path / "src.raw")
    with open(src, "wb") as handle:
        handle.write(b"\x5a" * (4 * MiB))
        handle.truncate(16 * MiB)
    dst = str(tmp_path / "dst.qcow2")
    seen = []
    qemu_img.convert(src, dst, "qcow2", src_fmt="raw", compress=True, progress=seen.append)
    assert seen and seen[-1] == 100.0
    assert seen == sorted(seen)
    assert qemu_img.compare(src, dst)
    vmdk = str(tmp_path / "dst.vmdk")
    qemu_img.convert(dst, vmdk, "vmdk", options={"subformat": "streamOptimized"})
    assert qemu_img.info(vmdk)["format"] == "vmdk"
    assert qemu_img.compare(src, vmdk)


def test_measure(qemu_img, tmp_path):
    src = str(tmp_path / "m.qcow2")
    qemu_img.create(src, "qcow2", 64 * MiB)
    data = qemu_img.measure(src, "raw")
    assert data["fully-allocated"] == 64 * MiB


def test_failure_carries_command_rc_and_stderr(qemu_img, tmp_path):
    missing = str(tmp_path / "missing.qcow2")
    with pytest.raises(CommandError) as err:
        qemu_img.info(missing)
    exc = err.value
    assert exc.rc != 0
    assert exc.cmd[0].endswith("qemu-img") and missing in exc.cmd
    assert "No such file" in exc.stderr
    assert exc.msg.startswith("qemu-img info failed")
    assert "\n" not in exc.msg
    kwargs = exc.to_fail_kwargs()
    assert kwargs["cmd"] == exc.cmd and kwargs["rc"] == exc.rc


def test_convert_failure_with_progress(qemu_img, tmp_path):
    with pytest.raises(CommandError):
        qemu_img.convert(str(tmp_path / "nope"), str(tmp_path / "out"), "raw", progress=lambda p: None)


@pytest.mark.parametrize("fmt", ["qcow3", "../raw", ""])
def test_bad_format_rejected_before_running(qemu_img, tmp_path, fmt):
    with pytest.raises(InvalidInputError):
        qemu_img.create(str(tmp_path / "x"), fmt or "bogus", MiB)
    assert qemu_img.calls == []


def test_option_values_with_commas_are_escaped(qemu_img):
    argv = qemu_img.convert_argv("a", "b", "qcow2", options={"compat": "1.1", "backing_file": "x,y"})
    assert argv[argv.index("-o") + 1] == "backing_file=x,,y,compat=1.1"


def qemu_io(path, fmt, command):
    subprocess.run(["qemu-io", "-f", fmt, "-c", command, path], check=True, stdout=subprocess.DEVNULL)


@pytest.fixture
def chain(qemu_img, tmp_path):
    """base.qcow2 (2 MiB of data at 0, 1 MiB at 8 MiB) under top.qcow2 (1 MiB at 4 MiB, 1 MiB over base at 0)."""
    base = str(tmp_path / "base.qcow2")
    top = str(tmp_path / "top.qcow2")
    qemu_img.create(base, "qcow2", 16 * MiB)
    qemu_io(base, "qcow2", "write -P 0x11 0 2M")
    qemu_io(base, "qcow2", "write -P 0x22 8M 1M")
    qemu_img.create(top, "qcow2", backing_file=base, backing_fmt="qcow2")
    qemu_io(top, "qcow2", "write -P 0x33 4M 1M")
    qemu_io(top, "qcow2", "write -P 0x44 0 1M")
    return base, top


def test_map_lists_the_extents_and_their_depth(qemu_img, chain):
    _base, top = chain
    extents = qemu_img.map(top, "qcow2")
    assert ["map", "-U", "-f", "qcow2", top, "--output=json"] == qemu_img.calls[-1][1:]
    assert sum(e["length"] for e in extents) == 16 * MiB  # the whole virtual disk, hole or data
    data = [(e["start"], e["length"], e["depth"]) for e in extents if e["data"]]
    assert (0, MiB, 0) in data and (4 * MiB, MiB, 0) in data and (8 * MiB, MiB, 1) in data


def test_data_bytes_of_the_chain_and_of_the_top_image(qemu_img, chain):
    base, top = chain
    assert qemu_img.data_bytes(top, "qcow2") == 4 * MiB  # 1 + 1 in top, 1 (the rest of base's 2) + 1 in base
    assert qemu_img.data_bytes(top, "qcow2", top_only=True) == 2 * MiB
    assert qemu_img.data_bytes(base) == 3 * MiB


def test_commit_merges_an_overlay_into_its_backing_file(qemu_img, chain, tmp_path):
    base, top = chain
    before = str(tmp_path / "before.raw")
    qemu_img.convert(top, before, "raw")
    qemu_img.commit(top)
    assert qemu_img.calls[-1][1:] == ["commit", "-q", "-f", "qcow2", top]
    assert qemu_img.data_bytes(top, "qcow2", top_only=True) == 0  # committed and emptied
    assert qemu_img.compare(base, before)


def test_commit_failure_is_a_command_error(qemu_img, tmp_path):
    lone = str(tmp_path / "lone.qcow2")
    qemu_img.create(lone, "qcow2", MiB)
    with pytest.raises(CommandError, match="qemu-img commit failed"):
        qemu_img.commit(lone)


def test_of_runs_through_the_context():
    calls = []

    class Ctx:
        @staticmethod
        def run_command(argv):
            calls.append(argv)
            return 0, "qemu-img version 9.9.9\n", ""

    assert QemuImg.of(Ctx()).version() == "9.9.9"
    assert calls and calls[0][1:] == ["--version"]
