# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Network XML <-> the model of ``model``: reading a definition, changing only what a model
specifies in one (UUID, MAC address, bridge name... kept), and building a new one with lxml.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._network.model import ip_key, sort_hosts


def ip_nodes(root, version):
    out = []
    for node in root.findall("ip"):
        family = node.get("family")
        if family is None:
            family = "ipv6" if ":" in (node.get("address") or "") else "ipv4"
        if family == "ipv%d" % version:
            out.append(node)
    return out


def _ip_model(node, version):
    if node is None:
        return None
    prefix = node.get("prefix")
    if prefix is None and node.get("netmask"):
        prefix = ipaddress.ip_network("0.0.0.0/%s" % node.get("netmask")).prefixlen
    model = dict(address=node.get("address"), prefix=int(prefix) if prefix is not None else None,
                 dhcp_ranges=[dict(start=r.get("start"), end=r.get("end")) for r in node.findall("dhcp/range")])
    if version == 4:
        model["dhcp_hosts"] = sort_hosts([
            dict(mac=(h.get("mac") or "").lower() or None, ip=h.get("ip"), name=h.get("name"))
            for h in node.findall("dhcp/host")
        ])
    return model


def _node_subnet(node):
    """``(own address, subnet)`` of an ``<ip>`` element, or None without address and prefix/netmask."""
    address, prefix = node.get("address"), node.get("prefix")
    if prefix is None and node.get("netmask"):
        prefix = ipaddress.ip_network("0.0.0.0/%s" % node.get("netmask")).prefixlen
    if not address or prefix is None:
        return None
    try:
        return ipaddress.ip_address(address), ipaddress.ip_network("%s/%s" % (address, prefix), strict=False)
    except ValueError:
        return None


def subnets(root):
    """Every IPv4 and IPv6 subnet of a network definition."""
    found = [_node_subnet(node) for node in root.findall("ip")]
    return [item[1] for item in found if item is not None]


def check_xml_reservations(root):
    """The DHCP reservations of a network definition (given as ``xml``): inside their subnet and not
    the network's own address."""
    for node in root.findall("ip"):
        found = _node_subnet(node)
        if found is None:
            continue
        own, net = found
        for index, host in enumerate(node.findall("dhcp/host")):
            try:
                addr = ipaddress.ip_address(host.get("ip") or "")
            except ValueError:
                continue  # an IPv6 reservation by id, or libvirt's own error to come
            label = "xml: <ip address='%s'> reservation %d (%s)" % (own, index, host.get("mac") or host.get("id") or addr)
            if addr not in net:
                raise InvalidInputError("%s: %s is outside the subnet %s" % (label, addr, net))
            if addr == own:
                raise InvalidInputError("%s: %s is the network's own address (the guests' gateway)" % (label, addr))


def model_from_xml(text_or_node):
    """Network XML -> model dict (every key present; None where the XML says nothing)."""
    root = _xml.parse(text_or_node, "network XML") if isinstance(text_or_node, (str, bytes)) else text_or_node
    forward = root.find("forward")
    if forward is None:
        mode = "isolated"
    else:
        mode = forward.get("mode") or "nat"
    mtu = _xml.find_attr(root, "mtu", "size")
    dns_node = root.find("dns")
    dns = dict(enabled=True, forwarders=[], hosts=[])
    if dns_node is not None:
        dns["enabled"] = dns_node.get("enable") != "no"
        dns["forwarders"] = [f.get("addr") for f in dns_node.findall("forwarder") if f.get("addr")]
        dns["hosts"] = sorted(
            [dict(ip=h.get("ip"), hostnames=[n.text.strip() for n in h.findall("hostname") if n.text])
             for h in dns_node.findall("host")],
            key=lambda h: ip_key(h["ip"]),
        )
    ipv4 = ip_nodes(root, 4)
    ipv6 = ip_nodes(root, 6)
    return dict(
        forward_mode=mode,
        bridge=_xml.find_attr(root, "bridge", "name"),
        mtu=int(mtu) if mtu is not None else None,
        domain=_xml.find_attr(root, "domain", "name"),
        ipv4=_ip_model(ipv4[0] if ipv4 else None, 4),
        ipv6=_ip_model(ipv6[0] if ipv6 else None, 6),
        dns=dns,
    )


def host_element(host):
    return _xml.element("host", attrs={"mac": host.get("mac"), "name": host.get("name"), "ip": host["ip"]})


def dns_host_element(host):
    return _xml.element("host", attrs={"ip": host["ip"]},
                        children=[_xml.element("hostname", name) for name in host["hostnames"]])


def _ip_element(ip, version):
    node = _xml.element("ip", attrs={"family": "ipv%d" % version, "address": ip["address"], "prefix": ip["prefix"]})
    _fill_dhcp(node, ip)
    return node


def _fill_dhcp(node, ip):
    """Replace the DHCP ranges / hosts of an <ip> element with those ``ip`` specifies."""
    ranges = ip.get("dhcp_ranges")
    hosts = ip.get("dhcp_hosts")
    if ranges is None and hosts is None:
        return
    dhcp = node.find("dhcp")
    if dhcp is None:
        dhcp = _xml.sub(node, "dhcp")
    if ranges is not None:
        for old in dhcp.findall("range"):
            dhcp.remove(old)
        for index, item in enumerate(ranges):
            dhcp.insert(index, _xml.element("range", attrs={"start": item["start"], "end": item["end"]}))
    if hosts is not None:
        for old in dhcp.findall("host"):
            dhcp.remove(old)
        for host in hosts:
            dhcp.append(host_element(host))
    if len(dhcp) == 0:
        node.remove(dhcp)


def _set_attr_element(root, tag, attr, value, after=("uuid", "name")):
    node = root.find(tag)
    if node is None:
        node = _xml.element(tag)
        _insert_after(root, node, after)
    node.set(attr, str(value))


def _insert_after(root, node, tags):
    for tag in tags:
        anchor = root.find(tag)
        if anchor is not None:
            anchor.addnext(node)
            return
    root.append(node)


def apply_model(root, model):
    """Change, in a network definition (edited in place), only what ``model`` specifies.

    Everything else - UUID, MAC address, a generated bridge name, NAT port ranges - is kept.
    """
    mode = model.get("forward_mode")
    if mode is not None:
        forward = root.find("forward")
        current = "isolated" if forward is None else (forward.get("mode") or "nat")
        if current != mode:
            if forward is not None:
                root.remove(forward)
            if mode != "isolated":
                _insert_after(root, _xml.element("forward", attrs={"mode": mode}), ("uuid", "name"))
    if model.get("bridge") is not None:
        _set_attr_element(root, "bridge", "name", model["bridge"], ("forward", "uuid", "name"))
    if mode == "bridge":
        for tag in ("mac", "ip", "dns", "domain"):
            for node in root.findall(tag):
                root.remove(node)
        bridge = root.find("bridge")
        for attr in ("stp", "delay"):
            bridge.attrib.pop(attr, None)
    if model.get("mtu") is not None:
        _set_attr_element(root, "mtu", "size", int(model["mtu"]), ("bridge", "forward", "uuid", "name"))
    if model.get("domain") is not None:
        _set_attr_element(root, "domain", "name", model["domain"], ("mac", "bridge", "forward", "uuid", "name"))
    dns = model.get("dns")
    if dns is not None:
        node = root.find("dns")
        if node is None:
            node = _xml.element("dns")
            _insert_after(root, node, ("domain", "mac", "mtu", "bridge", "forward", "uuid", "name"))
        if dns.get("enabled") is not None:
            if dns["enabled"]:
                node.attrib.pop("enable", None)
            else:
                node.set("enable", "no")
        if dns.get("forwarders") is not None:
            for old in node.findall("forwarder"):
                node.remove(old)
            for index, addr in enumerate(dns["forwarders"]):
                node.insert(index, _xml.element("forwarder", attrs={"addr": addr}))
        if dns.get("hosts") is not None:
            for old in node.findall("host"):
                node.remove(old)
            for host in dns["hosts"]:
                node.append(dns_host_element(host))
        if len(node) == 0 and not node.attrib:
            root.remove(node)
    for version in (4, 6):
        ip = model.get("ipv%d" % version)
        if ip is None:
            continue
        nodes = ip_nodes(root, version)
        if not nodes:
            root.append(_ip_element(ip, version))
            continue
        node = nodes[0]
        if ip.get("address") is not None:
            node.set("address", ip["address"])
        if ip.get("prefix") is not None:
            node.attrib.pop("netmask", None)
            node.set("prefix", str(ip["prefix"]))
        _fill_dhcp(node, ip)
    return root


def xml_from_model(name, model, uuid=None):
    """A new network definition (lxml element) from the model; never string-formatted."""
    root = _xml.element("network")
    _xml.sub(root, "name", name)
    if uuid:
        _xml.sub(root, "uuid", uuid)
    return apply_model(root, model)
