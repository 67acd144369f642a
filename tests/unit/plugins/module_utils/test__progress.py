# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The progress file and the progress-reading command runner."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.progress import Progress, run_with_percent

MiB = 1024 ** 2


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_counts_rate_eta_and_never_goes_back(tmp_path):
    clock = Clock()
    path = str(tmp_path / "p.json")
    progress = Progress(path, interval=1.0, clock=clock, wall=lambda: 1700000000.0)
    progress.add_total(1000)
    progress.set_phase("converting disk vda")
    clock.now += 10
    progress.advance(250)
    doc = json.loads(open(path).read())
    assert doc["state"] == "running" and doc["phase"] == "converting disk vda"
    assert (doc["bytes_done"], doc["bytes_total"], doc["percent"]) == (250, 1000, 25.0)
    assert doc["bytes_per_second"] == 25 and doc["eta_seconds"] == 30
    assert doc["started"] == "2023-11-14T22:13:20Z" and doc["pid"] == os.getpid()
    # the total grows (a pass became known): the percentage does not drop
    progress.add_total(1000)
    assert progress.snapshot()["percent"] == 25.0
    clock.now += 0.5
    progress.advance(100)  # within the interval: not written
    assert json.loads(open(path).read())["bytes_done"] == 250
    progress.finish(True)
    doc = json.loads(open(path).read())
    assert doc["state"] == "done" and doc["percent"] == 100.0 and doc["eta_seconds"] == 0
    assert doc["bytes_done"] == doc["bytes_total"] == 2000
    assert os.listdir(str(tmp_path)) == ["p.json"]  # no temporary file left behind


def test_failure_is_written_with_its_message(tmp_path):
    path = str(tmp_path / "p.json")
    progress = Progress(path)
    progress.add_total(10)
    progress.finish(False, "the destination is full")
    doc = json.loads(open(path).read())
    assert doc["state"] == "failed" and doc["message"] == "the destination is full"
    assert doc["phase"].startswith("failed")


def test_without_a_path_nothing_is_written(tmp_path):
    progress = Progress(None)
    progress.add_total(5)
    progress.advance(5)
    progress.finish(True)
    assert progress.snapshot()["percent"] == 100.0
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("path", ["relative.json", "/nonexistent-dir-virtops/p.json"])
def test_bad_paths(path):
    with pytest.raises(InvalidInputError):
        Progress(path)


def test_an_unwritable_progress_file_does_not_fail_the_work(tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    progress = Progress(str(directory / "p.json"))
    os.rmdir(str(directory))  # the directory vanished: writing fails quietly
    progress.set_phase("x")
    progress.finish(True)


def test_run_with_percent_reads_qemu_img_progress(tmp_path):
    src = str(tmp_path / "s.raw")
    with open(src, "wb") as handle:
        handle.write(b"\x01" * (8 * MiB))
    seen = []
    rc, out, err = run_with_percent(["qemu-img", "convert", "-p", "-f", "raw", "-O", "qcow2", src,
                                     str(tmp_path / "d.qcow2")], seen.append)
    assert rc == 0, err
    assert seen and seen == sorted(seen) and seen[-1] == 100.0
    assert "100.00/100%" in out  # only the last progress line is kept


def test_run_with_percent_reports_failure_and_stderr(tmp_path):
    rc, _out, err = run_with_percent(["qemu-img", "convert", "-p", "-O", "qcow2", str(tmp_path / "missing"),
                                      str(tmp_path / "d.qcow2")], lambda p: None)
    assert rc != 0 and "missing" in err


def test_run_with_percent_kills_the_command_when_interrupted(tmp_path):
    script = tmp_path / "slow.sh"
    marker = tmp_path / "pid"
    script.write_text("#!/bin/sh\necho $$ > %s\nprintf '    (1.00/100%%%%)\\r'\nexec sleep 30\n" % marker)
    os.chmod(str(script), 0o755)

    def explode(_percent):
        raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_with_percent([str(script)], explode)
    assert time.monotonic() - started < 20  # interrupted at the first progress line, not at the end
    pid = int(marker.read_text())
    with pytest.raises(OSError):
        os.kill(pid, 0)


def test_run_with_percent_cannot_start():
    with pytest.raises(BackendError, match="cannot start"):
        run_with_percent(["/nonexistent/virtops-binary"], lambda p: None)
