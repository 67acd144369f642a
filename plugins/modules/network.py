#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: network
short_description: Manage libvirt virtual networks (NAT, routed, open, isolated, host bridge, or from XML)
version_added: 0.1.0
description:
  - Defines, starts, stops and removes a libvirt virtual network, and keeps its definition and
    autostart flag as specified.
  - Only what you specify is compared, never libvirt's defaults (generated UUID, MAC address or
    bridge name).
  - A changed definition is applied by redefining the network in place. Its UUID, MAC address, bridge
    name and every setting you did not specify are kept.
  - An active network keeps running with its old definition until it is restarted. The module then
    returns RV(restart_required=true), unless O(restart=true) lets it stop and start the network.
  - When the module starts or restarts a network, it puts the interfaces of running domains back into
    the network's bridge (libvirt does not), and lists them in RV(reattached).
  - O(port_forwards) forwards ports of the hypervisor to guests on a NAT network, with firewall
    rules on the hypervisor and a libvirt network hook that restores them whenever libvirt starts
    the network.
  - When only O(ipv4.dhcp_hosts) or O(dns.hosts) differ, the change is applied to the running
    network and its definition with libvirt's network update. The network is not restarted and its
    dnsmasq keeps running.
  - All input is checked before anything changes. This covers DHCP ranges (inside the subnet,
    start not after end, no overlaps), reservations (inside the subnet, not the network's own
    address, no duplicate MAC or IP) and interface names (at most 15 characters).
  - A new network, a changed subnet, or a network being started, must not overlap the IPv4 or IPv6
    subnet of another active network. The error names that network.
  - Stopping or removing a network that VMs use is refused unless O(force=true). This counts every
    VM with an interface on it, running or not, because a stopped VM cannot start while its network
    is missing. The error names the VMs, returns them as C(used_by), and lists the running ones in
    C(attached_domains). In check mode the refusal is a warning, with the same text, and the result
    is V(changed), because an earlier task of the play may remove those VMs. A real run refuses.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.resource_module
options:
  name:
    description:
      - Name of the network.
      - It must not be empty, contain V(/) or control characters, be V(.) or V(..), or be longer
        than 128 characters.
    type: str
    required: true
  state:
    description:
      - V(present) makes sure the network is defined and leaves it running or stopped as it is (a new
        network is left stopped).
      - V(active) makes sure the network is defined and started.
      - V(inactive) makes sure the network is defined and stopped. Refused when VMs use the
        network, unless O(force=true).
      - V(absent) stops and undefines the network. Refused when VMs use the network, unless
        O(force=true).
    type: str
    choices: [present, active, inactive, absent]
    default: active
  forward_mode:
    description:
      - How the network reaches the outside.
      - V(nat) masquerades to the host's default route. V(route) routes without NAT. V(open) adds
        no firewall rules at all. V(isolated) has no C(<forward>) element, so guests reach only
        each other and the host.
      - V(bridge) uses an existing host bridge given in O(bridge). libvirt then manages no
        addresses, DHCP or DNS, so O(ipv4), O(ipv6), O(dns) and O(domain) cannot be used. The
        module asks libvirt's interface driver whether that bridge exists. Where the driver
        cannot tell, it warns and checks only that the name is well-formed.
      - A new network without O(forward_mode) is isolated.
    type: str
    choices: [nat, route, open, isolated, bridge]
  bridge:
    description:
      - Name of the bridge device. At most 15 characters, with no V(/), V(:) or whitespace.
      - Without it libvirt picks a free name (C(virbrN)) for a new network and that name is kept.
    type: str
  mtu:
    description: MTU of the bridge (68 to 65535).
    type: int
  domain:
    description: DNS domain of the network, served by its dnsmasq.
    type: str
  ipv4:
    description: The IPv4 address of the host on the network, and DHCP.
    type: dict
    suboptions:
      address:
        description: Address of the host side, for example V(192.168.210.1).
        type: str
        required: true
      prefix:
        description: Prefix length (1 to 30).
        type: int
        required: true
      dhcp_ranges:
        description: DHCP address ranges. They must lie inside the subnet and must not overlap.
        type: list
        elements: dict
        suboptions:
          start:
            description: First address of the range.
            type: str
            required: true
          end:
            description: Last address of the range.
            type: str
            required: true
      dhcp_hosts:
        description:
          - DHCP reservations. Each IP must lie inside the subnet and must not be O(ipv4.address) (the
            guests' gateway). No MAC or IP may appear twice.
          - The list is the complete set; reservations not listed are removed. A change of this list
            alone is applied live, without a restart.
        type: list
        elements: dict
        suboptions:
          mac:
            description: MAC address of the guest interface.
            type: str
            required: true
          ip:
            description: Address to hand out.
            type: str
            required: true
          name:
            description: Host name to hand out.
            type: str
  ipv6:
    description: The IPv6 address of the host on the network, and DHCPv6 ranges.
    type: dict
    suboptions:
      address:
        description: Address of the host side, for example V(fd00:210::1).
        type: str
        required: true
      prefix:
        description: Prefix length (1 to 126).
        type: int
        required: true
      dhcp_ranges:
        description: DHCPv6 address ranges. They must lie inside the subnet and must not overlap.
        type: list
        elements: dict
        suboptions:
          start:
            description: First address of the range.
            type: str
            required: true
          end:
            description: Last address of the range.
            type: str
            required: true
  dns:
    description: The network's DNS server (dnsmasq).
    type: dict
    suboptions:
      enabled:
        description: Whether libvirt runs a DNS server on the network.
        type: bool
      forwarders:
        description: Upstream DNS servers (addresses); the complete list.
        type: list
        elements: str
      hosts:
        description:
          - Static host entries; the complete list, one entry per IP address.
          - A change of this list alone is applied live, without a restart.
        type: list
        elements: dict
        suboptions:
          ip:
            description: Address.
            type: str
            required: true
          hostnames:
            description: Names for the address.
            type: list
            elements: str
            required: true
  xml:
    description:
      - The whole network definition, for what the options above do not cover. It cannot be
        combined with them.
      - It is compared as a subset of the definition libvirt has, so what libvirt adds does not
        count as a difference.
    type: str
  autostart:
    description: Whether the network is started when libvirt starts.
    type: bool
  restart:
    description:
      - Allow the module to stop and start an active network so that a changed definition takes effect.
      - When V(false) such a change is only saved, and RV(restart_required) is V(true).
      - A restart recreates the network's bridge, and libvirt leaves the tap devices of running domains
        outside it. For networks whose bridge libvirt creates (V(nat), V(route), V(open), V(isolated)),
        the module then re-plugs each interface of a running domain on the network. It makes two live
        device updates (type C(bridge) on the new bridge, then type C(network) again). The MAC address,
        PCI address and tap device stay the same, and the guest sees at most a short loss of packets.
        The interfaces are listed in RV(reattached).
    type: bool
    default: false
  port_forwards:
    description:
      - Ports of the hypervisor forwarded to guests on this network. The network must have
        O(forward_mode=nat) and an IPv4 address. Port forwards are IPv4 only.
      - The list is the complete set. V([]) removes all forwards of the network, and leaving the
        option out leaves them as they are. O(state=absent) removes them together with the network.
      - The module adds DNAT rules to the nat table (from PREROUTING and OUTPUT), and ACCEPT rules for
        the forwarded connections to the filter table. The FORWARD accept comes first, before
        libvirt's chains that reject traffic into a NAT network. Each network has its own chain
        C(VIRTOPS_PF_<network>) in both tables, and every rule has a comment with the network's name.
        Idempotency reads these rules back.
      - The forwards are recorded in C(/etc/libvirt/virtops/port-forwards/<network>.json). The
        libvirt network hook C(/etc/libvirt/hooks/network.d/virtops-port-forwards) applies them when
        libvirt has started the network (after a restart or a reboot) and removes them when it has
        stopped it. libvirt looks for hook scripts only when its daemon starts or reloads. So when
        the module installs the first network hook, it makes the daemon that runs network hooks
        (C(libvirtd) or C(virtnetworkd)) reload, as C(systemctl reload) does.
      - These are changes to the machine where libvirt runs. O(uri) must be local (for example
        V(qemu:///system)), and the module must run as root on the hypervisor; otherwise the task
        fails before it changes anything. libvirt must use its iptables firewall backend (the only one
        before libvirt 10.4).
      - A firewall service that flushes all rules on reload (firewalld with its iptables backend)
        removes the forwards until the network restarts or the module runs again.
    type: list
    elements: dict
    suboptions:
      protocol:
        description: The protocol.
        type: str
        choices: [tcp, udp]
        default: tcp
      host_address:
        description:
          - The hypervisor address that receives the connections.
          - Without it, connections to any local address of the hypervisor are forwarded, except
            loopback.
        type: str
      host_port:
        description:
          - A port (V(8080)) or a range (V(8000-8010)) on the hypervisor, 1 to 65535.
          - A port and protocol may be forwarded once per host address. A forward for one address
            takes precedence over a forward of the same port for all addresses.
        type: raw
        required: true
      guest_address:
        description: The guest's IPv4 address. It must be a host address of the network's subnet.
        type: str
        required: true
      guest_port:
        description:
          - The port on the guest. The default is O(port_forwards[].host_port).
          - For a range of host ports, a range of the same length or its first port. Ports are mapped
            one to one (V(8000-8010) to V(9000) forwards 8000 to 9000, 8001 to 9001 and so on).
        type: raw
  force:
    description:
      - With O(state=inactive) or O(state=absent), stop or remove the network even though VMs use it.
        The module warns and names them.
      - Running VMs keep running, but their interfaces are cut off from any bridge, so they have no
        connection. When this module starts the network again, it puts those interfaces back (see
        RV(reattached)). Stopped VMs cannot start until the network is active again.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: A NAT network with DHCP, started and started at boot
  virtops.libvirt.network:
    name: lab
    forward_mode: nat
    ipv4:
      address: 192.168.210.1
      prefix: 24
      dhcp_ranges:
        - start: 192.168.210.100
          end: 192.168.210.199
      dhcp_hosts:
        - mac: "52:54:00:00:10:01"
          ip: 192.168.210.10
          name: web1
    dns:
      hosts:
        - ip: 192.168.210.10
          hostnames: [web1, www]
    autostart: true

- name: An isolated network
  virtops.libvirt.network:
    name: backend
    forward_mode: isolated
    ipv4:
      address: 192.168.211.1
      prefix: 24

- name: Use an existing host bridge
  virtops.libvirt.network:
    name: lan
    forward_mode: bridge
    bridge: br0

- name: Change the subnet and restart the network to apply it
  virtops.libvirt.network:
    name: backend
    ipv4:
      address: 192.168.212.1
      prefix: 24
    restart: true

- name: Forward ports of the hypervisor to a web server and a range of ports to a game server
  virtops.libvirt.network:
    name: lab
    forward_mode: nat
    ipv4:
      address: 192.168.210.1
      prefix: 24
    port_forwards:
      - host_port: 8080
        guest_address: 192.168.210.10
        guest_port: 80
      - protocol: udp
        host_address: 203.0.113.5
        host_port: 27015-27020
        guest_address: 192.168.210.11
  become: true

- name: Remove a network
  virtops.libvirt.network:
    name: backend
    state: absent
"""

RETURN = r"""
network:
  description: The network after the run (predicted in check mode).
  returned: success
  type: dict
  contains:
    name:
      description: Name of the network.
      type: str
    uuid:
      description: UUID (null for a network that check mode would create).
      type: str
    state:
      description: V(active), V(inactive) or V(absent).
      type: str
    autostart:
      description: Whether the network is started when libvirt starts.
      type: bool
    persistent:
      description: Whether the network is defined persistently.
      type: bool
    forward_mode:
      description: Forward mode (V(isolated) when there is no C(<forward>)).
      type: str
    bridge:
      description: Bridge device name.
      type: str
      sample: virbr1
    port_forwards:
      description:
        - The port forwards in effect, read back from the firewall rules (for an inactive network,
          the recorded ones). Ports are numbers, ranges are strings.
      returned: when O(port_forwards) is given
      type: list
      elements: dict
      sample:
        - protocol: tcp
          host_address: null
          host_port: 8080
          guest_address: 192.168.210.10
          guest_port: 80
reattached:
  description:
    - The interfaces of running domains that the module put back into the network's bridge after
      starting or restarting it (predicted in check mode).
  returned: success
  type: list
  elements: dict
  contains:
    domain:
      description: Name of the domain.
      type: str
    mac:
      description: MAC address of the interface.
      type: str
    device:
      description: The tap device on the hypervisor.
      type: str
  sample:
    - domain: web1
      mac: "52:54:00:12:34:56"
      device: vnet0
restart_required:
  description:
    - Whether the network is active with a definition that differs from the one it runs with; it
      takes effect once the network is restarted.
  returned: success
  type: bool
actions:
  description: What the module did (or would do in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["define network lab", "set autostart of network lab to true", "start network lab"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._network.kind import NETWORK

ARGUMENT_SPEC = NETWORK.argument_spec


def main():
    NETWORK.run(AnsibleModule(**NETWORK.module_kwargs()))


if __name__ == "__main__":
    main()
