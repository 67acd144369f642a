# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The read-only pieces of the VM package: what a module returns about a VM (``view``), the run
state helpers (``states``, ``_host.facts``), and that the read-only files import no writer."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os

import libvirt
import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import states as _states
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.view import vm_view
from ansible_collections.virtops.libvirt.plugins.module_utils._host.facts import run_state, state_word

MODULE_UTILS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "module_utils")


def test_vm_view_drops_secrets_and_internals():
    model = dict(
        name="web", xml="<domain/>", xml_sha256="abc", _run="internal",
        graphics=dict(type="vnc", password="secret", port=-1),
        disks=[dict(target="vda", backing_volume="base.qcow2", backing_pool="default", size=1)],
    )
    view = vm_view(model)
    assert view == dict(name="web", graphics=dict(type="vnc", port=-1), disks=[dict(target="vda", size=1)])
    # a copy: the model keeps what the view drops
    assert model["graphics"]["password"] == "secret"
    assert model["disks"][0]["backing_volume"] == "base.qcow2"


def test_vm_view_without_graphics_or_disks():
    assert vm_view(dict(name="x", graphics=None)) == dict(name="x", graphics=None)


@pytest.mark.parametrize("word, expected", [("shutoff", "stopped"), ("blocked", "running"), ("paused", "paused")])
def test_state_word(word, expected):
    assert state_word(word) == expected


class FakeDom:
    def __init__(self, state):
        self._state = state

    def state(self, flags=0):
        return [self._state, 1]


@pytest.mark.parametrize("number, expected", [(1, "running"), (3, "paused"), (5, "stopped"), (99, "nostate")])
def test_run_state(number, expected):
    assert run_state(FakeDom(number)) == expected


class FakeError(Exception):
    def __init__(self, code, message):
        super(FakeError, self).__init__(message)
        self.code = code
        self.message = message

    def get_error_code(self):
        return self.code

    def get_error_message(self):
        return self.message


def test_has_code_and_error_message():
    exc = FakeError(libvirt.VIR_ERR_NO_DOMAIN, "Domain not found:\n  no domain with matching name 'x'")
    assert _states.has_code(exc, "VIR_ERR_NO_DOMAIN")
    assert not _states.has_code(exc, "VIR_ERR_NO_SUPPORT")
    assert not _states.has_code(exc, "VIR_ERR_NOT_IN_THIS_BINDING")
    assert _states.error_message(exc) == "Domain not found: no domain with matching name 'x'"


def _imports(name):
    with open(os.path.join(MODULE_UTILS, *name.split("/"))) as handle:
        tree = ast.parse(handle.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.rsplit(".", 1)[-1])
            found.update(alias.name for alias in node.names)
    return found


WRITERS = {"vm", "codec_write", "codec_devices", "normalize", "cloudinit", "snapshot", "volume", "firewall", "network"}


@pytest.mark.parametrize("name", [
    "_domain/model.py", "_domain/view.py", "_domain/states.py", "_domain/agent_errors.py", "_domain/addresses.py",
    "_domain/runtime_facts.py", "_domain/info.py", "_host/facts.py", "_host/info.py", "_cluster/inventory.py",
])
def test_read_only_files_import_no_writer(name):
    assert not _imports(name) & WRITERS
