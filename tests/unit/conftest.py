# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._connection import Connection


@pytest.fixture
def test_conn():
    """A connection to libvirt's built-in test driver: real libvirt, no daemon.

    Each open of test:///default gets a fresh copy of the default objects (a running domain
    'test', pool 'default-pool', network 'default').
    """
    connection = Connection("test:///default")
    conn = connection.open()
    yield conn
    connection.close()
