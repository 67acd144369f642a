# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gc

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection


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
