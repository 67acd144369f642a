# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gc

import pytest

from ansible.module_utils.common import warnings as ansible_warnings

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection, libvirt


@pytest.fixture
def test_conn():
    """A connection to libvirt's built-in test driver: real libvirt, no daemon.

    test:///default starts with a running domain 'test', pool 'default-pool' and network
    'default'.  Its state is shared by every connection of the process while any connection is
    open, so tests that add objects must remove them (or use names no other test uses).
    """
    connection = Connection("test:///default")
    conn = connection.open()
    yield conn
    connection.close()
    # The test driver keeps its state while any connection object lives; objects that a failed test
    # still holds would carry this test's domains, pools and volumes into the next test.
    gc.collect()


@pytest.fixture(autouse=True)
def fresh_module_warnings():
    """Each test starts with no warnings of a module run: ansible-core (2.19) keeps the warnings and
    deprecations of a module process in globals that exit_json does not clear, so a module run in an
    earlier test of this process would hand its warnings on to the next one."""
    for name in ("_global_warnings", "_global_deprecations"):
        store = getattr(ansible_warnings, name, None)
        if isinstance(store, (dict, list)):
            store.clear()
    yield


@pytest.fixture
def undefine_for_test_driver(monkeypatch):
    """The test driver refuses the undefine flags for NVRAM, checkpoint metadata and TPM state that the
    collection passes to real libvirt: without them while a test removes VMs from test:///default."""
    for name in ("VIR_DOMAIN_UNDEFINE_NVRAM", "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA", "VIR_DOMAIN_UNDEFINE_TPM"):
        monkeypatch.setattr(libvirt, name, 0, raising=False)
