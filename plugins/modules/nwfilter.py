#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nwfilter
short_description: Manage libvirt network filters (firewall rules for VM interfaces)
version_added: 0.1.0
description:
  - Defines, changes and removes a libvirt network filter, the firewall that libvirt applies to the
    interfaces of guests that reference it (see the O(virtops.libvirt.vm#module:interfaces[].filter)
    option of the vm module).
  - O(rules) and O(filterrefs) are complete, ordered lists. The rules are compared after
    normalisation (libvirt's default rule priority 500 filled in, ports and states in one spelling),
    so a second run with the same rules reports no change. A list you leave out is kept.
  - A changed filter is redefined with its UUID kept. libvirt applies the new rules at once to the
    interfaces of running guests that use the filter, directly or through other filters. No guest
    restarts.
  - With C(--diff), each rule is one line (priority, direction, action, protocol, addresses, ports,
    state), so a changed rule shows as one changed line.
  - Removing a filter is refused while VM interfaces reference it (directly or through other filters)
    or other filters reference it, unless O(force=true). The error names the VMs and the filters.
    libvirt itself refuses to remove a filter that a running guest's interface uses; O(force) cannot
    override that.
  - libvirt's own filters (C(clean-traffic), C(no-ip-spoofing), C(allow-dhcp) and the others libvirt
    installs) are never changed or removed by this module. libvirtd re-creates them when it starts.
    Reference them from a filter of your own with O(filterrefs).
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.resource_module
options:
  name:
    description:
      - Name of the filter. Letters, digits, V(_), V(.), V(:) and V(-).
    type: str
    required: true
  state:
    description:
      - V(present) makes sure the filter is defined as specified.
      - V(absent) removes it. Refused while it is in use, unless O(force=true).
    type: str
    choices: [present, absent]
    default: present
  chain:
    description:
      - The chain the filter's rules go into. V(root) (libvirt's default for a new filter), V(mac),
        V(stp), V(vlan), V(arp), V(rarp), V(ipv4) or V(ipv6), optionally with a suffix
        (V(ipv4-web)).
    type: str
  priority:
    description: The filter's place in its chain (-1000 to 1000; lower first).
    type: int
  rules:
    description:
      - The filter's rules, in order. The complete list.
    type: list
    elements: dict
    suboptions:
      direction:
        description: V(in) is traffic to the guest, V(out) from the guest, V(inout) both.
        type: str
        choices: [in, out, inout]
        default: inout
      action:
        description:
          - What happens to matching traffic. V(return) leaves the filter's chain, V(continue) goes
            on with the next rule.
        type: str
        choices: [accept, drop, reject, return, continue]
        default: accept
      priority:
        description: The rule's priority (-1000 to 1000, lower first). libvirt's default is 500.
        type: int
      protocol:
        description:
          - The protocol the rule matches. V(all) is any IPv4 traffic, V(all-ipv6) any IPv6 traffic.
        type: str
        choices: [mac, vlan, stp, arp, rarp, ip, tcp, udp, sctp, icmp, igmp, esp, ah, udplite, all, ipv6,
                  tcp-ipv6, udp-ipv6, sctp-ipv6, icmpv6, esp-ipv6, ah-ipv6, udplite-ipv6, all-ipv6]
        default: all
      source:
        description:
          - Source address, optionally with a prefix (V(192.0.2.0/24)), or a filter variable (V($IP)).
            For V(in) rules the source is the remote side; for V(out) rules it is the guest.
        type: str
      destination:
        description: Destination address, optionally with a prefix, or a filter variable.
        type: str
      source_ports:
        description: Source port or range (V(80), V(8000-8010)).
        type: str
      destination_ports:
        description: Destination port or range (V(80), V(8000-8010)).
        type: str
      state:
        description: Connection states matched (V(NEW), V(ESTABLISHED), V(RELATED), V(INVALID), V(NONE)).
        type: list
        elements: str
      statematch:
        description: V(false) turns off libvirt's connection tracking for this rule.
        type: bool
      source_mac:
        description: Source MAC address (protocols V(mac), V(arp) and the others that have one).
        type: str
      destination_mac:
        description: Destination MAC address.
        type: str
      protocol_id:
        description: The layer 3 protocol of a V(mac) rule (V(ipv4), V(ipv6), V(arp), V(rarp) or a number).
        type: str
      icmp_type:
        description: ICMP type of a V(icmp) or V(icmpv6) rule.
        type: str
      icmp_code:
        description: ICMP code of a V(icmp) or V(icmpv6) rule.
        type: str
      attributes:
        description:
          - Further attributes of the protocol element, written as given (for example V(comment),
            V(connlimit-above), V(ipset)). Not for what the options above cover.
        type: dict
  filterrefs:
    description:
      - Other filters this one includes, in order, with their parameters. The complete list.
      - A referenced filter must exist. A reference that would make a loop is refused.
    type: list
    elements: dict
    suboptions:
      filter:
        description: Name of the referenced filter (for example V(clean-traffic)).
        type: str
        required: true
      parameters:
        description:
          - "Parameters of the referenced filter, for example V({IP: 192.0.2.10}). A list gives a
            parameter several values."
        type: dict
  force:
    description:
      - Remove the filter although VM interfaces or other filters reference it. A guest whose
        interface references a missing filter cannot start.
    type: bool
    default: false
seealso:
  - name: libvirt network filters
    description: The rules, protocols and attributes libvirt's network filters have.
    link: https://libvirt.org/formatnwfilter.html
"""

EXAMPLES = r"""
- name: Web guests accept HTTP only from the proxy, on top of libvirt's anti-spoofing filter
  virtops.libvirt.nwfilter:
    name: web-in
    chain: root
    filterrefs:
      - filter: clean-traffic
    rules:
      - direction: in
        action: accept
        protocol: tcp
        source: 192.168.210.5
        destination_ports: "80"
        state: [NEW, ESTABLISHED]
      - direction: in
        action: drop
        protocol: tcp
        destination_ports: "80"

- name: Attach it to a VM's interface, with the guest's address as parameter
  virtops.libvirt.vm:
    name: web1
    interfaces:
      - network: lab
        filter:
          name: web-in
          parameters:
            IP: 192.168.210.10

- name: Remove the filter
  virtops.libvirt.nwfilter:
    name: web-in
    state: absent
"""

RETURN = r"""
nwfilter:
  description: The filter after the run (predicted in check mode); null when absent.
  returned: success
  type: dict
  contains:
    name:
      description: Name of the filter.
      type: str
    uuid:
      description: UUID of the filter (null for a filter a check run would create).
      type: str
    chain:
      description: Its chain.
      type: str
    priority:
      description: Its priority, when set.
      type: int
    builtin:
      description: Whether it is one of the filters libvirt ships.
      type: bool
    rules:
      description: The rules, normalised (the keys of O(rules) that are set).
      type: list
      elements: dict
    filterrefs:
      description: The references, each with C(filter) and C(parameters) (each a list of values).
      type: list
      elements: dict
  sample:
    name: web-in
    uuid: 6c85e6b6-d804-44e7-8bda-4888c21f55c0
    chain: root
    builtin: false
    rules:
      - {direction: in, action: accept, priority: 500, protocol: tcp, source: 192.168.210.5,
         destination_ports: "80", state: [ESTABLISHED, NEW]}
    filterrefs:
      - {filter: clean-traffic, parameters: {}}
actions:
  description: What the module did (or would do in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["redefine network filter web-in (rules)"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._nwfilter.kind import NWFILTER

ARGUMENT_SPEC = NWFILTER.argument_spec


def main():
    NWFILTER.run(AnsibleModule(**NWFILTER.module_kwargs()))


if __name__ == "__main__":
    main()
