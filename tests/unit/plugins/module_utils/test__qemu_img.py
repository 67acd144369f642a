# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The qemu-img wrapper against the real qemu-img."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

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
