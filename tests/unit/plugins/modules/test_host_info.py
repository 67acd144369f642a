# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host_info module end to end in-process: argument parsing, the run, exit/fail JSON."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.virtops.libvirt.plugins.modules import host_info


def run_module(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            host_info.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def test_success_against_test_driver(capsys):
    rc, result = run_module(capsys, {"uri": "test:///default"})
    assert rc == 0
    assert result["changed"] is False
    assert result["host"]["domains"]["names"] == ["test"]


def test_check_mode_reads_too(capsys):
    rc, result = run_module(capsys, {"uri": "test:///default", "_ansible_check_mode": True})
    assert rc == 0 and result["host"]["cpu"]["count"] == 16


def test_unreachable_daemon_is_one_clear_line(capsys, tmp_path):
    uri = "qemu:///system?socket=%s" % (tmp_path / "sock")
    rc, result = run_module(capsys, {"uri": uri})
    assert rc == 1
    assert result["failed"] is True
    assert result["msg"].startswith("The libvirt daemon is not running at")
    assert "Traceback" not in json.dumps(result)
    assert result["error_kind"] == "connection"


def test_unknown_option_rejected(capsys):
    rc, result = run_module(capsys, {"uri": "test:///default", "bogus": 1})
    assert rc == 1 and "bogus" in result["msg"]
