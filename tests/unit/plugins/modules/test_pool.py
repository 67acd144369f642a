# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pool and pool_info modules end to end in-process: argument parsing, the run, exit/fail JSON.

Each module run opens its own test:///default connection (a fresh copy of the test driver's
objects), so multi-run scenarios live in test__pool.py; here one run per case.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.virtops.libvirt.plugins.modules import pool, pool_info


def run_module(capsys, module, args):
    args = dict(args, uri="test:///default")
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            module.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def test_create_dir_pool(capsys):
    rc, result = run_module(capsys, pool, {"name": "m1", "path": "/tmp/virtops-unit-m1", "autostart": True})
    assert rc == 0, result
    assert result["changed"] is True
    assert result["pool"]["state"] == "active" and result["pool"]["autostart"] is True
    assert result["pool"]["type"] == "dir" and len(result["pool"]["uuid"]) == 36
    assert result["restart_required"] is False


def test_existing_pool_unchanged_with_diff(capsys):
    rc, result = run_module(capsys, pool, {"name": "default-pool", "_ansible_diff": True})
    assert rc == 0 and result["changed"] is False
    assert result["diff"]["before"] == result["diff"]["after"] == {"state": "active"}


def test_check_mode(capsys):
    rc, result = run_module(capsys, pool, {"name": "m2", "path": "/tmp/x", "_ansible_check_mode": True})
    assert rc == 0 and result["changed"] is True and result["pool"]["uuid"] is None


def test_bad_name_is_one_clear_line(capsys):
    rc, result = run_module(capsys, pool, {"name": "a/b", "path": "/tmp/x"})
    assert rc == 1 and result["failed"] is True
    assert result["error_kind"] == "invalid_input"
    assert result["msg"] == "name: 'a/b' contains '/', which a pool name cannot contain"


def test_unknown_type_refused_by_argument_spec(capsys):
    rc, result = run_module(capsys, pool, {"name": "m3", "type": "zfs", "path": "/tmp/x"})
    assert rc == 1 and "type" in result["msg"] and "zfs" in result["msg"]


def test_xml_excludes_typed_options(capsys):
    rc, result = run_module(capsys, pool, {"name": "m4", "path": "/tmp/x", "xml": "<pool type='dir'/>"})
    assert rc == 1 and "mutually exclusive" in result["msg"]


def test_absent_with_purge_of_default_pool(capsys):
    rc, result = run_module(capsys, pool, {"name": "default-pool", "state": "absent", "purge": True})
    assert rc == 0 and result["changed"] is True
    assert result["pool"] == {"name": "default-pool", "state": "absent"}


def test_info_lists_pools(capsys):
    rc, result = run_module(capsys, pool_info, {})
    assert rc == 0 and result["changed"] is False
    assert [p["name"] for p in result["pools"]] == ["default-pool"]


def test_info_unknown_pool_fails_clearly(capsys):
    rc, result = run_module(capsys, pool_info, {"name": "nope"})
    assert rc == 1 and result["error_kind"] == "not_found"
    assert result["msg"].startswith("Storage pool 'nope' does not exist")
