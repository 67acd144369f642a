# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read-only questions about the host's networks: lookup, facts (``network_info``), the running
VMs' interfaces on a network, overlapping subnets.  Nothing here changes anything.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_network
from ansible_collections.virtops.libvirt.plugins.module_utils._network.codec import model_from_xml, subnets
from ansible_collections.virtops.libvirt.plugins.module_utils._network.leases import dhcp_leases
from ansible_collections.virtops.libvirt.plugins.module_utils._network.model import mac_address, validate_name


def attached_domains(conn, name):
    """Names of the running domains with an <interface type='network'> on network ``name``."""
    return sorted(set(dom.name() for dom, _iface in running_interfaces(conn, name)))


def running_interfaces(conn, name):
    """``[(domain, interface element)]``: the <interface type='network'> on ``name`` of running domains."""
    out = []
    with libvirt_errors("listing running VMs"):
        domains = conn.listAllDomains(flag("VIR_CONNECT_LIST_DOMAINS_ACTIVE", 1))
    for dom in domains:
        try:
            root = _xml.parse(dom.XMLDesc(0), "domain XML")
        except libvirt.libvirtError:
            continue  # gone while we looked
        for iface in root.findall("devices/interface"):
            if iface.get("type") == "network" and _xml.find_attr(iface, "source", "network") == name:
                out.append((dom, iface))
    return out


def interface_summary(dom_name, iface):
    return dict(domain=dom_name, mac=_xml.find_attr(iface, "mac", "address"), device=_xml.find_attr(iface, "target", "dev"))


def check_overlap(conn, name, wanted):
    """ConflictError when a subnet of ``wanted`` overlaps one of an active network other than ``name``."""
    if not wanted:
        return
    with libvirt_errors("listing the active networks"):
        networks = conn.listAllNetworks(flag("VIR_CONNECT_LIST_NETWORKS_ACTIVE", 2))
    for network in networks:
        try:
            other = network.name()
            theirs = subnets(_xml.parse(network.XMLDesc(0), "network XML"))
        except libvirt.libvirtError:
            continue  # gone while we looked
        if other == name:
            continue
        for mine in wanted:
            for subnet in theirs:
                if mine.version == subnet.version and mine.overlaps(subnet):
                    raise ConflictError(
                        "network '%s': its subnet %s overlaps %s of the active network '%s' (the VMs of both would "
                        "share addresses and routes): choose another subnet, or stop or remove '%s' first"
                        % (name, mine, subnet, other, other),
                        overlapping_network=other,
                    )


def network_summary(net, name):
    """What the ``network`` module returns of a network (``net`` as looked up, or None)."""
    with libvirt_errors("reading network '%s'" % name):
        model = model_from_xml(net.XMLDesc(0))
        return dict(
            name=name,
            uuid=net.UUIDString(),
            state="active" if net.isActive() else "inactive",
            autostart=bool(net.autostart()),
            persistent=bool(net.isPersistent()),
            forward_mode=model["forward_mode"],
            bridge=model["bridge"],
        )


def network_facts(conn, network, with_leases=True):
    name = network.name()
    with libvirt_errors("reading network '%s'" % name):
        model = model_from_xml(network.XMLDesc(0))
        facts = dict(
            name=name,
            uuid=network.UUIDString(),
            active=bool(network.isActive()),
            autostart=bool(network.autostart()),
            persistent=bool(network.isPersistent()),
        )
        facts.update(model)
        facts["attached_domains"] = attached_domains(conn, name)
        if with_leases:
            facts["dhcp_leases"] = dhcp_leases(network)
    return facts


def gather_network_info(ctx):
    """``network_info``: every network, or the one named; with ``mac``, the IP leased/reserved for it."""
    conn = ctx.conn
    name = ctx.params.get("name")
    mac = ctx.params.get("mac")
    if mac is not None:
        mac = mac_address(mac, "mac")
    if name is not None:
        validate_name(name)
        network = find_network(conn, name)
        if network is None:
            with libvirt_errors("listing networks"):
                names = sorted(n.name() for n in conn.listAllNetworks(0))
            raise NotFoundError("Network '%s' does not exist; existing networks: %s" % (name, ", ".join(names) or "none"),
                                networks=[])
        networks = [network]
    else:
        with libvirt_errors("listing networks"):
            networks = conn.listAllNetworks(0)
    facts = []
    for network in networks:
        try:
            facts.append(network_facts(conn, network))
        except NotFoundError:
            continue  # removed while we looked
    facts.sort(key=lambda n: n["name"])
    result = dict(changed=False, networks=facts)
    if mac is not None:
        result["ip"] = ip_for_mac(facts, mac)
    return result


def ip_for_mac(facts, mac):
    """The address of ``mac``: its DHCP lease first, then its reservation; None when neither exists."""
    for net in facts:
        for lease in net.get("dhcp_leases") or ():
            if lease["mac"] == mac and lease["ip"]:
                return lease["ip"]
    for net in facts:
        for host in (net.get("ipv4") or {}).get("dhcp_hosts") or ():
            if host["mac"] == mac:
                return host["ip"]
    return None
