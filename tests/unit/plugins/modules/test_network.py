# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The network and network_info modules end to end in-process: argument parsing, the run, exit/fail JSON.

Each module run opens its own test:///default connection (a fresh copy of the test driver's
objects), so multi-run scenarios live in test__network.py; here one run per case.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.virtops.libvirt.plugins.modules import network, network_info


def run_module(capsys, module, args):
    args = dict(args, uri="test:///default")
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            module.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def test_create_nat_network(capsys):
    rc, result = run_module(capsys, network, {
        "name": "m-net1", "forward_mode": "nat", "autostart": True,
        "ipv4": {"address": "192.168.225.1", "prefix": 24,
                 "dhcp_ranges": [{"start": "192.168.225.10", "end": "192.168.225.20"}]},
    })
    assert rc == 0, result
    assert result["changed"] is True and result["restart_required"] is False
    assert result["network"]["state"] == "active" and result["network"]["autostart"] is True
    assert result["network"]["forward_mode"] == "nat" and len(result["network"]["uuid"]) == 36


def test_existing_network_unchanged_with_diff(capsys):
    rc, result = run_module(capsys, network, {"name": "default", "_ansible_diff": True})
    assert rc == 0 and result["changed"] is False
    assert result["diff"]["before"] == result["diff"]["after"] == {"state": "active"}


def test_check_mode(capsys):
    rc, result = run_module(capsys, network, {"name": "m-net2", "forward_mode": "route",
                                              "ipv4": {"address": "192.168.226.1", "prefix": 24},
                                              "_ansible_check_mode": True})
    assert rc == 0 and result["changed"] is True and result["network"]["uuid"] is None


def test_overlapping_ranges_fail_cleanly(capsys):
    rc, result = run_module(capsys, network, {"name": "m-net3", "ipv4": {
        "address": "192.168.227.1", "prefix": 24,
        "dhcp_ranges": [{"start": "192.168.227.10", "end": "192.168.227.20"},
                        {"start": "192.168.227.20", "end": "192.168.227.30"}]}})
    assert rc == 1 and result["error_kind"] == "invalid_input"
    assert "overlaps" in result["msg"]


def test_xml_excludes_options(capsys):
    rc, result = run_module(capsys, network, {"name": "m-net4", "xml": "<network/>", "forward_mode": "nat"})
    assert rc == 1 and "mutually exclusive" in result["msg"]


def test_info(capsys):
    rc, result = run_module(capsys, network_info, {"name": "default", "mac": "52:54:00:00:00:99"})
    assert rc == 0 and result["changed"] is False
    assert [n["name"] for n in result["networks"]] == ["default"]
    assert result["ip"] is None


def test_info_missing(capsys):
    rc, result = run_module(capsys, network_info, {"name": "m-none"})
    assert rc == 1 and result["error_kind"] == "not_found"


def test_port_forwards_validated_before_anything(capsys):
    # fails on its input, before the firewall or any file of this machine is looked at
    rc, result = run_module(capsys, network, {
        "name": "m-pf", "forward_mode": "nat", "ipv4": {"address": "192.168.228.1", "prefix": 24},
        "port_forwards": [{"host_port": "8080", "guest_address": "192.168.99.10", "guest_port": 80}]})
    assert rc == 1 and result["error_kind"] == "invalid_input"
    assert result["msg"] == "port_forwards[0].guest_address: 192.168.99.10 is outside the network's subnet 192.168.228.0/24"


@pytest.mark.parametrize("forward, message", [
    ({"host_port": 8080}, "missing required arguments: guest_address found in port_forwards"),
    ({"host_port": 8080, "guest_address": "192.168.228.10", "protocol": "icmp"}, "value of protocol must be one of: tcp, udp"),
])
def test_port_forwards_argument_spec(capsys, forward, message):
    rc, result = run_module(capsys, network, {"name": "m-pf2", "port_forwards": [forward]})
    assert rc == 1 and message in result["msg"]
