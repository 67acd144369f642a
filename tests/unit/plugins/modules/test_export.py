# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The export module end to end in-process: argument parsing, the run, exit/fail JSON."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.virtops.libvirt.plugins.modules import export

URI = "test:///default"
VM = "virtops-exp-mod"


def run(capsys, args):
    with patch_module_args(dict(args, uri=URI)):
        with pytest.raises(SystemExit) as exit_info:
            export.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def vm(test_conn, tmp_path):
    image = str(tmp_path / "disk.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", image, "8M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x42 1M 1M", image], check=True, stdout=subprocess.DEVNULL)
    dom = test_conn.defineXML(
        "<domain type='test'><name>%s</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64'>hvm</type></os><devices><disk type='file' device='disk'>"
        "<driver name='qemu' type='qcow2'/><source file='%s'/><target dev='vda' bus='virtio'/></disk>"
        "</devices></domain>" % (VM, image))
    yield image
    dom.undefine()


def test_check_apply_check_apply(capsys, vm, tmp_path):
    dest = str(tmp_path / "out") + "/"
    outcomes = []
    for check in (True, False, True, False):
        rc, result = run(capsys, dict(vm=VM, format="tar.zst", dest=dest, _ansible_check_mode=check, _ansible_diff=True))
        assert rc == 0, result
        outcomes.append(result)
    assert [r["changed"] for r in outcomes] == [True, True, False, False]
    assert outcomes[0]["diff"]["before"] == {"state": "absent"}
    done = outcomes[1]
    art = done["artefacts"][0]
    assert art["path"] == os.path.join(str(tmp_path / "out"), VM + ".tar.zst") and art["size"] > 0
    assert done["directory"] == str(tmp_path / "out") and "owner" not in done  # no file attributes mixed in
    assert outcomes[3]["artefacts"][0]["sha256"] == art["sha256"]


@pytest.mark.parametrize("args,text", [
    (dict(vm=VM, volume="v", pool="p", dest="/tmp"), "mutually exclusive"),
    (dict(volume="v", dest="/tmp"), "pool"),
    (dict(dest="/tmp"), "one of the following is required"),
    (dict(vm=VM, format="zip", dest="/tmp"), "value of format must be one of"),
    (dict(vm=VM, format="ova", compressed=True, dest="/tmp"), "compressed applies"),
])
def test_bad_arguments(capsys, args, text):
    rc, result = run(capsys, args)
    assert rc == 1 and result["failed"] and text in result["msg"]


def test_missing_vm_fails_cleanly(capsys, tmp_path):
    rc, result = run(capsys, dict(vm="virtops-nothing-here", dest=str(tmp_path)))
    assert rc == 1 and result["error_kind"] == "not_found" and "does not exist" in result["msg"]
    assert os.listdir(str(tmp_path)) == []
