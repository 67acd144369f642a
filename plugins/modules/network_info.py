#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: network_info
short_description: List libvirt virtual networks with addressing, DHCP, leases and attached domains
version_added: 0.1.0
description:
  - Returns every virtual network, or the one named in O(name). Each entry has the forward mode,
    bridge, addresses, DHCP ranges and reservations, DNS settings, the running domains attached to
    it and the current DHCP leases.
  - With O(mac), also returns the IP address of that MAC address in RV(ip).
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.info_module
options:
  name:
    description: Only this network. The module fails if it does not exist.
    type: str
  mac:
    description:
      - A MAC address to look up. RV(ip) is its address from a current DHCP lease, otherwise from a
        DHCP reservation, otherwise null.
      - Only the networks returned (all, or O(name)) are searched.
    type: str
"""

EXAMPLES = r"""
- name: All networks
  virtops.libvirt.network_info:
  register: nets

- name: The address a guest got on network lab
  virtops.libvirt.network_info:
    name: lab
    mac: "52:54:00:00:10:01"
  register: guest

- name: Show it
  ansible.builtin.debug:
    msg: "{{ guest.ip }}"
"""

RETURN = r"""
networks:
  description: The networks, sorted by name.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Name.
      type: str
    uuid:
      description: UUID.
      type: str
    active:
      description: Whether the network is running.
      type: bool
    autostart:
      description: Whether the network is started when libvirt starts.
      type: bool
    persistent:
      description: Whether the network is defined persistently.
      type: bool
    forward_mode:
      description: Forward mode; V(isolated) when the network has no C(<forward>).
      type: str
      sample: nat
    bridge:
      description: Bridge device name.
      type: str
    mtu:
      description: MTU, null when libvirt's default is used.
      type: int
    domain:
      description: DNS domain.
      type: str
    ipv4:
      description: IPv4 address, prefix, C(dhcp_ranges) (C(start), C(end)) and C(dhcp_hosts) (C(mac), C(ip), C(name)); null without IPv4.
      type: dict
    ipv6:
      description: IPv6 address, prefix and C(dhcp_ranges); null without IPv6.
      type: dict
    dns:
      description: C(enabled), C(forwarders) and C(hosts) (C(ip), C(hostnames)).
      type: dict
    attached_domains:
      description: Names of the running domains with an interface on the network.
      type: list
      elements: str
    dhcp_leases:
      description:
        - Current DHCP leases (C(mac), C(ip), C(prefix), C(hostname), C(client_id), C(expiry_time), C(interface)).
        - Empty for an inactive network; null where the libvirt driver cannot report leases.
      type: list
      elements: dict
ip:
  description: The address of O(mac), or null when it has neither a lease nor a reservation.
  returned: when O(mac) is given
  type: str
  sample: 192.168.210.10
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._network.view import gather_network_info
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(COMMON_ARGS, name=dict(type="str"), mac=dict(type="str")),
        supports_check_mode=True,
    )
    run_module(module, gather_network_info)


if __name__ == "__main__":
    main()
