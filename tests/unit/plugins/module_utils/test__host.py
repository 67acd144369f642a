# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._host.capabilities import version_string
from ansible_collections.virtops.libvirt.plugins.module_utils._host.info import gather_host_info
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context


@pytest.mark.parametrize("number, text", [(9000000, "9.0.0"), (7002001, "7.2.1"), (0, "0.0.0"), (10010012, "10.10.12")])
def test_version_string(number, text):
    assert version_string(number) == text


def test_host_info_from_test_driver(test_conn):
    result = gather_host_info(Context(conn=test_conn))
    host = result["host"]
    assert result["changed"] is False
    assert host["driver"].lower() == "test"
    assert host["cpu"]["count"] == 16 and host["cpu"]["arch"]
    assert host["memory"]["total"] > 0
    assert 0 <= host["memory"]["free"] <= host["memory"]["available"] <= host["memory"]["total"]
    # the test driver has one running domain 'test' with 2 vCPUs
    assert host["domains"]["by_state"]["running"] == 1
    assert host["domains"]["names"] == ["test"]
    assert host["vcpus"]["allocated_active"] == 2
    assert [p["name"] for p in host["pools"]] == ["default-pool"]
    assert host["pools"][0]["capacity"] > 0
    assert host["networks"][0]["name"] == "default"
    assert host["kvm_usable"] is False


def test_host_info_counts_follow_domain_states(test_conn):
    dom = test_conn.lookupByName("test")
    dom.suspend()
    host = gather_host_info(Context(conn=test_conn))["host"]
    assert host["domains"]["by_state"]["paused"] == 1
    assert host["domains"]["active"] == 1  # a paused domain still holds its memory
    dom.destroy()
    host = gather_host_info(Context(conn=test_conn))["host"]
    assert host["domains"]["by_state"]["shutoff"] == 1
    assert host["domains"]["active"] == 0
    assert host["memory"]["allocated_active"] == 0
    assert host["memory"]["allocated_defined"] > 0
