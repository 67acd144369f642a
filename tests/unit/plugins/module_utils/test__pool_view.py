# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The read-only pool view: a refresh that races another job does not wait and does not fail."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.pool_view import refresh


class FakePool:
    def __init__(self, active, error=None):
        self.active = active
        self.error = error
        self.refreshed = 0

    def isActive(self):
        return self.active

    def name(self):
        return "p"

    def refresh(self, _flags):
        self.refreshed += 1
        if self.error:
            raise libvirt.libvirtError(self.error)


@pytest.mark.parametrize("error", [None, "storage pool 'p' has asynchronous jobs running.", "something else"])
def test_refresh_of_an_active_pool_never_waits_nor_fails(error):
    pool = FakePool(True, error)
    start = time.monotonic()
    refresh(pool)
    assert pool.refreshed == 1 and time.monotonic() - start < 1


def test_an_inactive_pool_is_not_refreshed():
    pool = FakePool(False)
    refresh(pool)
    assert pool.refreshed == 0
