# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The volume and volume_info modules end to end in-process: argument parsing, the run, exit/fail JSON.

Each module run opens its own connection to test:///default; the state of that driver lives as long as
some connection is open, so the ``test_conn`` fixture keeps it alive across the runs of one test.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.virtops.libvirt.plugins.modules import volume, volume_info

URI = "test:///default"
POOL = "default-pool"


@pytest.fixture(autouse=True)
def clean_pool(test_conn):
    def clean():
        for vol in test_conn.storagePoolLookupByName(POOL).listAllVolumes(0):
            vol.delete(0)

    clean()
    yield
    clean()


def run(capsys, module, args):
    with patch_module_args(dict(args, uri=URI)):
        with pytest.raises(SystemExit) as exit_info:
            module.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def test_create_check_apply_check_apply(capsys, test_conn):
    args = dict(name="m1.qcow2", pool=POOL, capacity="2M")
    outcomes = []
    for check in (True, False, True, False):
        rc, result = run(capsys, volume, dict(args, _ansible_check_mode=check, _ansible_diff=True))
        assert rc == 0, result
        outcomes.append(result)
    assert [r["changed"] for r in outcomes] == [True, True, False, False]
    assert outcomes[0]["diff"]["after"] == dict(state="present", name="m1.qcow2", pool=POOL, path="/default-pool/m1.qcow2",
                                                type="file", format="qcow2", capacity=2097152)
    assert outcomes[1]["volume"]["path"] == "/default-pool/m1.qcow2"
    assert test_conn.storagePoolLookupByName(POOL).listVolumes() == ["m1.qcow2"]

    rc, info = run(capsys, volume_info, dict(pool=POOL))
    assert rc == 0 and info["changed"] is False
    assert [(v["name"], v["format"], v["capacity"], v["used_by"]) for v in info["volumes"]] == [("m1.qcow2", "qcow2", 2097152, [])]


@pytest.mark.parametrize("args,kind,text", [
    (dict(name="../x", pool=POOL, capacity="1M"), "invalid_input", "separator"),
    (dict(name="x", pool="nope", capacity="1M"), "not_found", "nope"),
    (dict(name="x", pool=POOL, capacity="lots"), "invalid_input", "capacity"),
    (dict(name="x", pool=POOL, source="/a", backing_volume="b"), None, "mutually exclusive"),
    (dict(name="x", pool=POOL, capacity="1M", checksum="sha256:" + "0" * 64), None, "source"),
    (dict(name="x", pool=POOL, format="vmdk"), None, "format"),
])
def test_failures_are_one_line(capsys, test_conn, args, kind, text):
    rc, result = run(capsys, volume, args)
    assert rc == 1 and result["failed"] is True
    assert text in result["msg"]
    assert "Traceback" not in json.dumps(result)
    if kind:
        assert result["error_kind"] == kind
    assert test_conn.storagePoolLookupByName(POOL).listVolumes() == []


def test_volume_info_unknown_pool(capsys, test_conn):
    rc, result = run(capsys, volume_info, dict(pool="nope"))
    assert rc == 1 and result["error_kind"] == "not_found"
