# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Virtual networks: a typed model <-> libvirt network XML, the ``network`` resource and ``network_info``.

The model is a dict::

    forward_mode  'nat' | 'route' | 'open' | 'isolated' (no <forward>) | 'bridge' | other (read only)
    bridge        bridge device name
    mtu           int
    domain        DNS domain name
    ipv4          {address, prefix, dhcp_ranges: [{start, end}], dhcp_hosts: [{mac, ip, name}]}
    ipv6          {address, prefix, dhcp_ranges: [{start, end}]}
    dns           {enabled: bool, forwarders: [addr], hosts: [{ip, hostnames: [str]}]}

``None`` means "not specified" (desired) or "not in the XML" (current).  DHCP host reservations
and DNS host entries are changed with ``virNetworkUpdate`` (live, no restart); everything else
is changed by redefining the network with its UUID, MAC address and bridge name kept.

Restarting a network recreates its bridge, and libvirt does not put the tap devices of running
domains back into it; the module re-plugs each such interface with two live device updates
(type ``bridge`` on the new bridge, then ``network`` again), which keeps MAC, PCI address and tap.
Port forwards (``port_forwards``) live in ``_firewall``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import ipaddress
import re

from ansible_collections.virtops.libvirt.plugins.module_utils._network import firewall as _firewall

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors, uri_is_local
from ansible_collections.virtops.libvirt.plugins.module_utils._core.defined import DefinedObjectResource, inactive_xml, lookup_or_none
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import (
    ABSENT,
    compare_specified,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    VirtopsError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.names import CONTROL_CHARS as _CONTROL, validate_object_name
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import guard, in_use_error, usage

FORWARD_MODES = ("nat", "route", "open", "isolated", "bridge")
DEFINITION_KEYS = ("forward_mode", "bridge", "mtu", "domain", "ipv4", "ipv6", "dns", "xml")
#: differences that virNetworkUpdate applies without a restart
LIVE_PATHS = ("ipv4.dhcp_hosts", "dns.hosts")
#: forward modes whose bridge libvirt creates at start (and so loses the domains' taps at a restart)
OWN_BRIDGE_MODES = ("nat", "route", "open", "isolated")

IFNAMSIZ = 16
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$")


# --------------------------------------------------------------------------- validation ---

def validate_name(name):
    return validate_object_name(name, "network")


def validate_bridge_name(bridge):
    if bridge is None:
        return None
    if not isinstance(bridge, str) or not bridge:
        raise InvalidInputError("bridge: the bridge name must not be empty")
    if len(bridge) > IFNAMSIZ - 1:
        raise InvalidInputError(
            "bridge: %r is %d characters long; Linux interface names have at most %d (IFNAMSIZ-1)" % (bridge, len(bridge), IFNAMSIZ - 1)
        )
    if bridge in (".", "..") or "/" in bridge or ":" in bridge or _CONTROL.search(bridge) or re.search(r"\s", bridge):
        raise InvalidInputError("bridge: %r is not a valid interface name (no '/', ':', whitespace, '.' or '..')" % bridge)
    return bridge


def _address(value, what, version):
    try:
        addr = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise InvalidInputError("%s: %r is not an IP address" % (what, value))
    if addr.version != version:
        raise InvalidInputError("%s: %s is not an IPv%d address" % (what, addr, version))
    return addr


def _mac(value, what):
    text = str(value).strip().lower()
    if not _MAC.match(text):
        raise InvalidInputError("%s: %r is not a MAC address such as 52:54:00:12:34:56" % (what, value))
    return text


def _ranges(ranges, net, what, version):
    """Validate and normalise DHCP ranges: inside ``net``, start <= end, no overlaps."""
    if ranges is None:
        return None
    out = []
    for index, item in enumerate(ranges):
        label = "%s[%d]" % (what, index)
        if not isinstance(item, dict) or item.get("start") is None or item.get("end") is None:
            raise InvalidInputError("%s: a DHCP range needs start and end" % label)
        start = _address(item["start"], label + ".start", version)
        end = _address(item["end"], label + ".end", version)
        if start > end:
            raise InvalidInputError("%s: start %s is after end %s" % (label, start, end))
        for addr, key in ((start, "start"), (end, "end")):
            if addr not in net:
                raise InvalidInputError("%s: %s %s is outside the subnet %s" % (label, key, addr, net))
            if addr in (net.network_address, net.broadcast_address) and net.num_addresses > 2 and version == 4:
                raise InvalidInputError("%s: %s %s is the %s address of %s" % (
                    label, key, addr, "network" if addr == net.network_address else "broadcast", net))
        out.append((start, end, label))
    ordered = sorted(out)
    for (s1, e1, l1), (s2, e2, l2) in zip(ordered, ordered[1:]):
        if s2 <= e1:
            raise InvalidInputError("%s (%s-%s) overlaps %s (%s-%s)" % (l2, s2, e2, l1, s1, e1))
    return [dict(start=str(s), end=str(e)) for s, e, _l in ordered]


def normalize_ip(ip, version, forward_mode):
    """User ``ipv4``/``ipv6`` dict -> model dict, validated, or None."""
    key = "ipv%d" % version
    if not ip:
        return None
    if forward_mode == "bridge":
        raise InvalidInputError("%s cannot be used with forward_mode bridge: the host bridge has its own addressing" % key)
    if ip.get("address") is None or ip.get("prefix") is None:
        raise InvalidInputError("%s: address and prefix are both required" % key)
    addr = _address(ip["address"], key + ".address", version)
    try:
        prefix = int(ip["prefix"])
    except (TypeError, ValueError):
        raise InvalidInputError("%s.prefix: %r is not a number" % (key, ip["prefix"]))
    if not 1 <= prefix <= (30 if version == 4 else 126):
        raise InvalidInputError("%s.prefix: %d is out of range (1-%d)" % (key, prefix, 30 if version == 4 else 126))
    net = ipaddress.ip_network("%s/%d" % (addr, prefix), strict=False)
    if addr == net.network_address or (version == 4 and addr == net.broadcast_address):
        raise InvalidInputError("%s.address: %s is the %s address of %s, not a usable host address" % (
            key, addr, "network" if addr == net.network_address else "broadcast", net))
    model = dict(address=str(addr), prefix=prefix,
                 dhcp_ranges=_ranges(ip.get("dhcp_ranges"), net, key + ".dhcp_ranges", version))
    if version == 4:
        model["dhcp_hosts"] = normalize_hosts(ip.get("dhcp_hosts"), net, key, gateway=addr)
    elif ip.get("dhcp_hosts"):
        raise InvalidInputError("ipv6.dhcp_hosts is not supported; give IPv6 reservations in xml")
    return model


def normalize_hosts(hosts, net, key, gateway=None):
    """DHCP reservations, validated: in ``net``, not its network, broadcast or own (``gateway``)
    address, each MAC and address once."""
    if hosts is None:
        return None
    out = []
    seen_mac, seen_ip = {}, {}
    for index, host in enumerate(hosts):
        label = "%s.dhcp_hosts[%d]" % (key, index)
        if not isinstance(host, dict) or host.get("mac") is None or host.get("ip") is None:
            raise InvalidInputError("%s: a DHCP reservation needs mac and ip" % label)
        mac = _mac(host["mac"], label + ".mac")
        addr = _address(host["ip"], label + ".ip", net.version)
        if addr not in net:
            raise InvalidInputError("%s.ip: %s is outside the subnet %s" % (label, addr, net))
        if addr in (net.network_address, net.broadcast_address):
            raise InvalidInputError("%s.ip: %s is not a usable host address of %s" % (label, addr, net))
        if gateway is not None and addr == gateway:
            raise InvalidInputError("%s.ip: %s is the network's own address (%s.address, the guests' gateway); "
                                    "reserve another address of %s" % (label, addr, key, net))
        name = host.get("name")
        if name is not None and not _DNS_NAME.match(str(name)):
            raise InvalidInputError("%s.name: %r is not a valid host name" % (label, name))
        if mac in seen_mac:
            raise InvalidInputError("%s.mac: %s is already reserved by %s" % (label, mac, seen_mac[mac]))
        if str(addr) in seen_ip:
            raise InvalidInputError("%s.ip: %s is already reserved by %s" % (label, addr, seen_ip[str(addr)]))
        seen_mac[mac] = label
        seen_ip[str(addr)] = label
        out.append(dict(mac=mac, ip=str(addr), name=name))
    return sort_hosts(out)


def _ip_key(text):
    """Sort key for address strings of both families (IPv4 first); unparsable text last."""
    try:
        addr = ipaddress.ip_address(text or "")
    except ValueError:
        return (7, 0, text or "")
    return (addr.version, int(addr), "")


def sort_hosts(hosts):
    return sorted(hosts, key=lambda h: (_ip_key(h.get("ip")), h.get("mac") or ""))


def normalize_dns(dns, forward_mode):
    if not dns:
        return None
    if forward_mode == "bridge":
        raise InvalidInputError("dns cannot be used with forward_mode bridge: libvirt runs no DNS server for it")
    out = dict(enabled=dns.get("enabled"), forwarders=None, hosts=None)
    if dns.get("forwarders") is not None:
        out["forwarders"] = [str(_address_any(f, "dns.forwarders[%d]" % i)) for i, f in enumerate(dns["forwarders"])]
    if dns.get("hosts") is not None:
        hosts = []
        for index, host in enumerate(dns["hosts"]):
            label = "dns.hosts[%d]" % index
            if not isinstance(host, dict) or host.get("ip") is None or not host.get("hostnames"):
                raise InvalidInputError("%s: a DNS host entry needs ip and at least one hostname" % label)
            names = [str(n) for n in host["hostnames"]]
            for name in names:
                if not _DNS_NAME.match(name):
                    raise InvalidInputError("%s.hostnames: %r is not a valid host name" % (label, name))
            hosts.append(dict(ip=str(_address_any(host["ip"], label + ".ip")), hostnames=names))
        if len(set(h["ip"] for h in hosts)) != len(hosts):
            raise InvalidInputError("dns.hosts: each IP address may appear only once; list all its hostnames in one entry")
        out["hosts"] = sorted(hosts, key=lambda h: _ip_key(h["ip"]))
    if out["enabled"] is False and (out["forwarders"] or out["hosts"]):
        raise InvalidInputError("dns: forwarders and hosts need dns.enabled true (libvirt's DNS server)")
    return out


def _address_any(value, what):
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise InvalidInputError("%s: %r is not an IP address" % (what, value))


def normalize_model(params):
    """The definition options of ``params`` -> model (validated), every key present."""
    mode = params.get("forward_mode")
    if mode is not None and mode not in FORWARD_MODES:
        raise InvalidInputError("forward_mode: %r is not one of %s" % (mode, ", ".join(FORWARD_MODES)))
    model = dict(
        forward_mode=mode,
        bridge=validate_bridge_name(params.get("bridge")),
        mtu=params.get("mtu"),
        domain=params.get("domain"),
        ipv4=normalize_ip(params.get("ipv4"), 4, mode),
        ipv6=normalize_ip(params.get("ipv6"), 6, mode),
        dns=normalize_dns(params.get("dns"), mode),
    )
    if model["mtu"] is not None and not 68 <= model["mtu"] <= 65535:
        raise InvalidInputError("mtu: %r is out of range (68-65535)" % model["mtu"])
    if model["domain"] is not None and not _DNS_NAME.match(model["domain"]):
        raise InvalidInputError("domain: %r is not a valid DNS domain name" % model["domain"])
    if mode == "bridge":
        if model["bridge"] is None:
            raise InvalidInputError("forward_mode bridge needs bridge: the name of an existing host bridge")
        if model["domain"] is not None:
            raise InvalidInputError("domain cannot be used with forward_mode bridge: libvirt runs no DNS server for it")
    return model


# ------------------------------------------------------------------------------ XML <-> model ---

def _ip_nodes(root, version):
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


def check_overlap(conn, name, wanted):
    """ConflictError when a subnet of ``wanted`` overlaps one of an active network other than ``name``."""
    if not wanted:
        return
    with libvirt_errors("listing the active networks"):
        networks = conn.listAllNetworks(getattr(libvirt, "VIR_CONNECT_LIST_NETWORKS_ACTIVE", 2))
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
                        "network '%s': its subnet %s overlaps %s of the active network '%s' (the guests of both would "
                        "share addresses and routes): choose another subnet, or stop or remove '%s' first"
                        % (name, mine, subnet, other, other),
                        overlapping_network=other,
                    )


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
            key=lambda h: _ip_key(h["ip"]),
        )
    ipv4 = _ip_nodes(root, 4)
    ipv6 = _ip_nodes(root, 6)
    return dict(
        forward_mode=mode,
        bridge=_xml.find_attr(root, "bridge", "name"),
        mtu=int(mtu) if mtu is not None else None,
        domain=_xml.find_attr(root, "domain", "name"),
        ipv4=_ip_model(ipv4[0] if ipv4 else None, 4),
        ipv6=_ip_model(ipv6[0] if ipv6 else None, 6),
        dns=dns,
    )


def _host_element(host):
    return _xml.element("host", attrs={"mac": host.get("mac"), "name": host.get("name"), "ip": host["ip"]})


def _dns_host_element(host):
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
            dhcp.append(_host_element(host))
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
                node.append(_dns_host_element(host))
        if len(node) == 0 and not node.attrib:
            root.remove(node)
    for version in (4, 6):
        ip = model.get("ipv%d" % version)
        if ip is None:
            continue
        nodes = _ip_nodes(root, version)
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


# ----------------------------------------------------------------------------------- facts ---

def lookup(conn, name):
    """The virNetwork called ``name``, or None."""
    return lookup_or_none(conn.networkLookupByName, name, libvirt.VIR_ERR_NO_NETWORK, "network")


def attached_domains(conn, name):
    """Names of the running domains with an <interface type='network'> on network ``name``."""
    return sorted(set(dom.name() for dom, _iface in running_interfaces(conn, name)))


def running_interfaces(conn, name):
    """``[(domain, interface element)]``: the <interface type='network'> on ``name`` of running domains."""
    flag = getattr(libvirt, "VIR_CONNECT_LIST_DOMAINS_ACTIVE", 1)
    out = []
    with libvirt_errors("listing running domains"):
        domains = conn.listAllDomains(flag)
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


def bridge_update_xml(iface, bridge):
    """The live interface as ``type='bridge'`` on ``bridge``: the first of the two re-plugging updates.

    A changed interface type makes libvirt (qemuDomainChangeNet) move the tap into the bridge; MAC,
    model, PCI address, alias and tap name stay, so the guest sees no change.
    """
    node = copy.deepcopy(iface)
    node.set("type", "bridge")
    source = node.find("source")
    source.attrib.clear()
    source.set("bridge", bridge)
    return _xml.to_string(node, pretty=False)


def network_update_xml(iface):
    """The live interface back as ``type='network'`` (without the old port and bridge of its source)."""
    node = copy.deepcopy(iface)
    source = node.find("source")
    for attr in ("portid", "bridge"):
        source.attrib.pop(attr, None)
    return _xml.to_string(node, pretty=False)


def reattach_interfaces(conn, name):
    """Put the running domains' interfaces on network ``name`` back into its bridge.

    Returns ``(reattached, failures)``: summaries of the interfaces re-plugged, and messages.
    """
    with libvirt_errors("reading network '%s'" % name):
        bridge = _xml.find_attr(_xml.parse(conn.networkLookupByName(name).XMLDesc(0), "network XML"), "bridge", "name")
    if not bridge:
        return [], ["network '%s' runs without a bridge device to put them into" % name]
    live = getattr(libvirt, "VIR_DOMAIN_AFFECT_LIVE", 1)
    done, failures = [], []
    for dom, iface in running_interfaces(conn, name):
        summary = interface_summary(dom.name(), iface)
        try:
            dom.updateDeviceFlags(bridge_update_xml(iface, bridge), live)
            dom.updateDeviceFlags(network_update_xml(iface), live)
        except libvirt.libvirtError as exc:
            failures.append("%s interface %s: %s" % (summary["domain"], summary["mac"], " ".join(str(exc).split())))
            continue
        done.append(summary)
    return done, failures


def dhcp_leases(network):
    """The DHCP leases of an active network (None where the driver cannot tell)."""
    if not network.isActive():
        return []
    try:
        leases = network.DHCPLeases()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
            return None
        raise
    out = []
    for lease in leases or ():
        out.append(dict(
            mac=(lease.get("mac") or "").lower() or None,
            ip=lease.get("ipaddr"),
            prefix=lease.get("prefix"),
            hostname=lease.get("hostname"),
            client_id=lease.get("clientid"),
            expiry_time=lease.get("expirytime"),
            interface=lease.get("iface"),
        ))
    return out


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
        mac = _mac(mac, "mac")
    if name is not None:
        validate_name(name)
        network = lookup(conn, name)
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


# -------------------------------------------------------------------------------- resource ---

class NetworkResource(DefinedObjectResource):
    """One virtual network: definition, running state, autostart, live DHCP/DNS hosts, removal."""

    kind = "network"
    noun = "network"
    root_tag = "network"
    #: libvirt's configuration directory on the hypervisor (hooks, port forward records)
    firewall_etc = _firewall.ETC_LIBVIRT

    def __init__(self, ctx):
        super(NetworkResource, self).__init__(ctx)
        self.reattached = []
        self._forwards = None  # _firewall.PortForwards when port_forwards is managed
        self._starts = False  # the plan starts (or restarts) the network

    def validate_name(self, name):
        validate_name(name)

    def _lookup(self):
        return lookup(self.ctx.conn, self.name)

    def _define_call(self, xml_text):
        return self.ctx.conn.networkDefineXML(xml_text)

    def _inactive_xml(self, obj):
        return inactive_xml(obj, getattr(libvirt, "VIR_NETWORK_XML_INACTIVE", 1))

    def model_from_xml(self, text):
        return model_from_xml(text)

    def xml_from_model(self, model, uuid=None):
        return xml_from_model(self.name, model, uuid)

    def apply_model(self, root, model):
        return apply_model(root, model)

    def desired(self, current):
        params = self.params
        state = self.requested_state()
        if state is None:
            return None
        model = normalize_model(params)
        model["xml"] = None
        if params.get("xml") is not None:
            given = [k for k in DEFINITION_KEYS if k != "xml" and model.get(k) is not None]
            if given:
                raise InvalidInputError("xml cannot be combined with %s: put those into the XML" % ", ".join(given))
            model["xml"] = self._user_xml(params["xml"])
        elif model["forward_mode"] == "bridge":
            self._check_host_bridge(model["bridge"])
        model.update(state=state if state in ("active", "inactive") else None, autostart=params.get("autostart"))
        model["port_forwards"] = self._desired_port_forwards(model)
        return model

    def _desired_port_forwards(self, model):
        """Validate ``port_forwards`` against the network it will be; read what is in effect now."""
        items = self.params.get("port_forwards")
        if items is None:
            return None
        current = self._current
        wanted = model_from_xml(model["xml"]) if model.get("xml") is not None else model
        mode = wanted.get("forward_mode") or (current["forward_mode"] if current else "isolated")
        ipv4 = wanted.get("ipv4") or (current or {}).get("ipv4")
        if items and mode != "nat":
            raise InvalidInputError("port_forwards: network '%s' is %s; port forwards need forward_mode nat" % (
                self.name, "isolated" if mode == "isolated" else "a %s network" % mode))
        subnet = None
        if ipv4 and ipv4.get("address") and ipv4.get("prefix") is not None:
            subnet = ipaddress.ip_network("%s/%s" % (ipv4["address"], ipv4["prefix"]), strict=False)
        forwards = _firewall.normalize_port_forwards(items, subnet, ipv4.get("address") if ipv4 else None)
        self._forwards = _firewall.PortForwards(self.ctx, self.name, self.firewall_etc)
        with libvirt_errors("reading the libvirt version"):
            version = self.ctx.conn.getLibVersion()
        self._forwards.require_usable(version)
        in_effect = self._forwards.read(current is not None and current["state"] == "active")
        if current is not None:
            current["port_forwards"] = in_effect
        return forwards

    def _user_xml(self, text):
        root = self._user_root(text)
        validate_bridge_name(_xml.find_attr(root, "bridge", "name"))
        check_xml_reservations(root)
        return _xml.to_string(root, pretty=True)

    def _check_host_bridge(self, bridge):
        """Best effort: ask libvirt's interface driver whether the host bridge exists."""
        try:
            self.ctx.conn.interfaceLookupByName(bridge)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_INTERFACE:  # check mode: an earlier task may create it
                self.ctx.assume(InvalidInputError(
                    "bridge: the host has no interface %r for forward_mode bridge (create the bridge first)" % bridge
                ))
                return
            self.ctx.warn("could not check that host bridge %r exists (%s)" % (bridge, " ".join(str(exc).split())))

    # --- compare ----------------------------------------------------------------------------

    @staticmethod
    def _definition(desired):
        return dict((k, desired.get(k)) for k in DEFINITION_KEYS if k != "xml")

    def _live_differences(self, current, desired):
        if desired.get("xml") is not None:
            return ["xml"] if not _xml.xml_subset(_xml.parse(desired["xml"]), _xml.parse(current["_live_xml"])) else []
        return compare_specified(self._definition(desired), current["_live"]).paths

    # --- plan -------------------------------------------------------------------------------

    def _plan_create(self, desired, plan):
        xml_text = self._definition_xml(desired)
        check_overlap(self.ctx.conn, self.name, subnets(_xml.parse(xml_text)))
        plan.add("define network %s" % self.name, lambda: self._define(xml_text),
                 undo=self._call("undefining", "undefine"))
        if desired.get("autostart"):
            plan.add("set autostart of network %s to true" % self.name, self._call("setting autostart of", "setAutostart", 1))
        if desired.get("state") == "active":
            plan.add("start network %s" % self.name, self._call("starting", "create"),
                     undo=self._call("stopping", "destroy"))

    def _update_flags(self, active):
        flags = getattr(libvirt, "VIR_NETWORK_UPDATE_AFFECT_CONFIG", 2)
        if active:
            flags |= getattr(libvirt, "VIR_NETWORK_UPDATE_AFFECT_LIVE", 1)
        return flags

    def _update_call(self, command, section, parent_index, node, flags):
        text = _xml.to_string(node, pretty=False)

        def call():
            self._call("updating", "update", command, section, parent_index, text, flags)()

        return call

    def _plan_live_updates(self, current, desired, plan, active):
        """DHCP reservations and DNS hosts through virNetworkUpdate: no restart, dnsmasq keeps running."""
        flags = self._update_flags(active)
        add = getattr(libvirt, "VIR_NETWORK_UPDATE_COMMAND_ADD_LAST", 3)
        delete = getattr(libvirt, "VIR_NETWORK_UPDATE_COMMAND_DELETE", 2)
        modify = getattr(libvirt, "VIR_NETWORK_UPDATE_COMMAND_MODIFY", 1)
        wanted = ((desired.get("ipv4") or {}).get("dhcp_hosts"))
        if wanted is not None:
            section = getattr(libvirt, "VIR_NETWORK_SECTION_IP_DHCP_HOST", 4)
            root = _xml.parse(current["xml"])
            parent = root.findall("ip").index(_ip_nodes(root, 4)[0])
            have = dict((h["mac"], h) for h in current["ipv4"]["dhcp_hosts"])
            want = dict((h["mac"], h) for h in wanted)
            for mac in sorted(set(have) - set(want)):
                plan.add("remove DHCP reservation %s (%s) from network %s" % (mac, have[mac]["ip"], self.name),
                         self._update_call(delete, section, parent, _host_element(have[mac]), flags),
                         undo=self._update_call(add, section, parent, _host_element(have[mac]), flags))
            for mac in sorted(set(have) & set(want)):
                if have[mac] != want[mac]:
                    plan.add("change DHCP reservation %s to %s in network %s" % (mac, want[mac]["ip"], self.name),
                             self._update_call(modify, section, parent, _host_element(want[mac]), flags),
                             undo=self._update_call(modify, section, parent, _host_element(have[mac]), flags))
            for mac in sorted(set(want) - set(have)):
                plan.add("add DHCP reservation %s (%s) to network %s" % (mac, want[mac]["ip"], self.name),
                         self._update_call(add, section, parent, _host_element(want[mac]), flags),
                         undo=self._update_call(delete, section, parent, _host_element(want[mac]), flags))
        wanted = (desired.get("dns") or {}).get("hosts")
        if wanted is not None:
            section = getattr(libvirt, "VIR_NETWORK_SECTION_DNS_HOST", 10)
            have = dict((h["ip"], h) for h in current["dns"]["hosts"])
            want = dict((h["ip"], h) for h in wanted)
            for ip in sorted(set(have) - set(want)) + sorted(k for k in set(have) & set(want) if have[k] != want[k]):
                plan.add("remove DNS host %s from network %s" % (ip, self.name),
                         self._update_call(delete, section, -1, _dns_host_element(have[ip]), flags),
                         undo=self._update_call(add, section, -1, _dns_host_element(have[ip]), flags))
            for ip in sorted(set(want) - set(have)) + sorted(k for k in set(have) & set(want) if have[k] != want[k]):
                plan.add("add DNS host %s (%s) to network %s" % (ip, ", ".join(want[ip]["hostnames"]), self.name),
                         self._update_call(add, section, -1, _dns_host_element(want[ip]), flags),
                         undo=self._update_call(delete, section, -1, _dns_host_element(want[ip]), flags))

    def _plan_update(self, current, desired, diff, plan):
        definition_paths = [p for p in diff.paths if p.split(".")[0] in DEFINITION_KEYS]
        was_active = current["state"] == "active"
        live_only = (
            definition_paths
            and current["persistent"]
            and all(p in LIVE_PATHS for p in definition_paths)
            and (current.get("ipv4") is not None or "ipv4.dhcp_hosts" not in definition_paths)
        )
        applied_live = []
        old_xml = new_xml = current["xml"]
        if live_only:
            self._plan_live_updates(current, desired, plan, was_active)
            applied_live = list(LIVE_PATHS)
        elif definition_paths or not current["persistent"]:
            new_xml = self._definition_xml(desired, base_xml=None if desired.get("xml") else old_xml)
            plan.add("redefine network %s" % self.name, lambda: self._define(new_xml),
                     undo=(lambda: self._define(old_xml)) if current["persistent"] else None)

        will_be_active = desired.get("state") == "active" or (desired.get("state") is None and was_active)
        new_subnets = subnets(_xml.parse(new_xml))
        if (not was_active and will_be_active) or set(new_subnets) != set(subnets(_xml.parse(old_xml))):
            check_overlap(self.ctx.conn, self.name, new_subnets)
        live_diff = [p for p in self._live_differences(current, desired) if p not in applied_live] if was_active else []
        if was_active and desired.get("state") == "inactive":
            self._guard_users(current, plan, "stop it")
            plan.add("stop network %s" % self.name, self._call("stopping", "destroy"), undo=self._call("starting", "create"))
        elif live_diff:
            if self.params.get("restart"):
                plan.add("stop network %s to apply its new definition" % self.name, self._call("stopping", "destroy"),
                         undo=self._start_if_inactive)
                plan.add("start network %s" % self.name, self._call("starting", "create"))
                self._starts = True
                self._plan_reattach(desired, current, plan)
            else:
                self.restart_required = True
                plan.warn("network '%s' is active: its new definition takes effect when it is restarted "
                          "(set restart: true to let the module stop and start it)" % self.name)
        elif not was_active and will_be_active:
            plan.add("start network %s" % self.name, self._call("starting", "create"), undo=self._call("stopping", "destroy"))
            self._starts = True
            self._plan_reattach(desired, current, plan)

        self._plan_autostart(current, desired, diff, plan)

    def _start_if_inactive(self):
        net = self._lookup()
        if net is not None and not net.isActive():
            with libvirt_errors("starting network '%s'" % self.name):
                net.create()

    def _plan_reattach(self, desired, current, plan):
        """After the network (re)starts: re-plug the running domains' interfaces into its new bridge."""
        found = running_interfaces(self.ctx.conn, self.name)
        if not found:
            return
        mode = desired.get("forward_mode")
        if desired.get("xml") is not None:
            mode = model_from_xml(desired["xml"])["forward_mode"]
        mode = mode or current["forward_mode"]
        names = sorted(set(dom.name() for dom, _iface in found))
        if mode not in OWN_BRIDGE_MODES:
            plan.warn("network '%s' (forward mode %s) was restarted: check the interfaces of the running domain(s) %s"
                      % (self.name, mode, ", ".join(names)))
            return
        self.reattached = [interface_summary(dom.name(), iface) for dom, iface in found]
        plan.add("reattach the interfaces of the running domain(s) %s to network %s" % (", ".join(names), self.name),
                 self._reattach)

    def _reattach(self):
        self.reattached, failures = reattach_interfaces(self.ctx.conn, self.name)
        if failures:
            raise BackendError("network '%s' was restarted but some interfaces could not be reattached to its bridge: %s"
                               % (self.name, "; ".join(failures)), reattached=self.reattached)

    # --- port forwards --------------------------------------------------------------------------

    def plan(self, current, desired, diff, plan):
        super(NetworkResource, self).plan(current, desired, diff, plan)
        if desired is None:
            self._plan_forwards_absent(plan)
            return
        if self._forwards is not None:
            if desired.get("state") is not None:
                active_after = desired["state"] == "active"
            else:
                active_after = current is not None and current["state"] == "active"
            uuid = self._object.UUIDString() if self._object is not None else None
            self._forwards.plan(plan, desired["port_forwards"], uuid, self._uuid, active_after, self._starts)
        elif self._starts and current is not None:
            self._plan_forwards_reapply(plan)

    def _uuid(self):
        net = self._lookup()
        if net is None:
            raise NotFoundError("network '%s' disappeared" % self.name)
        return net.UUIDString()

    def _recorded_forwards(self):
        """The PortForwards of a network that has a port forward record here, usable; else None."""
        if not uri_is_local(self.ctx.uri):
            return None
        forwards = _firewall.PortForwards(self.ctx, self.name, self.firewall_etc)
        if forwards.read_state() is None:
            return None
        try:
            with libvirt_errors("reading the libvirt version"):
                version = self.ctx.conn.getLibVersion()
            forwards.require_usable(version)
        except VirtopsError as exc:
            self.ctx.warn("network '%s' has port forwards recorded in %s but they cannot be managed here: %s"
                          % (self.name, forwards.state_path, exc.msg))
            return None
        return forwards

    def _plan_forwards_absent(self, plan):
        forwards = self._recorded_forwards()
        if forwards is not None:
            forwards.read(False)
            forwards.plan_remove(plan)

    def _plan_forwards_reapply(self, plan):
        forwards = self._recorded_forwards()
        if forwards is not None:
            forwards.read(False)
            forwards.plan_reapply(plan)

    def _guard_users(self, current, plan, action):
        """Stopping or removing a network that VMs use (running: they lose their connection; stopped:
        they cannot start) is refused unless ``force`` (see :func:`_usage.guard`)."""
        bridge = current.get("bridge") if current.get("forward_mode") in OWN_BRIDGE_MODES else None
        users = usage(self.ctx).network_users(self.name, bridge)
        error = in_use_error("network '%s'" % self.name, users,
                             advice="remove those VMs or detach their interfaces first (a running VM loses its "
                             "connection, a stopped one cannot start)", action=action)
        if error is not None:
            error.details["attached_domains"] = sorted(set(u["vm"] for u in users if u["active"]))
        guard(self.ctx, error, self.params.get("force"), plan.warn)

    def _plan_absent(self, current, plan):
        active = current["state"] == "active"
        self._guard_users(current, plan, "remove it")
        if active:
            plan.add("stop network %s" % self.name, self._call("stopping", "destroy"), undo=self._call("starting", "create"))
        if current["persistent"]:
            old_xml = current["xml"]
            plan.add("undefine network %s" % self.name, self._call("undefining", "undefine"),
                     undo=lambda: self._define(old_xml))

    # --- results ----------------------------------------------------------------------------

    def _absent_view(self, current):
        return {"state": current["state"], "forward_mode": current["forward_mode"], "bridge": current["bridge"]}

    def predict(self, current, desired):
        if desired is None:
            return None
        state = dict(current or {})
        for key in ("forward_mode", "bridge", "autostart"):
            if desired.get(key) is not None:
                state[key] = desired[key]
        if desired.get("state") is not None:
            state["state"] = desired["state"]
        if desired.get("port_forwards") is not None:
            state["port_forwards"] = desired["port_forwards"]
        state.setdefault("state", "inactive")
        state["predicted"] = True
        return state

    def result(self, state, outcome):
        if state is None:
            return dict(network=dict(name=self.name, state=ABSENT), restart_required=False, reattached=[])
        if state.get("predicted"):
            network = dict(
                name=self.name,
                uuid=self._object.UUIDString() if self._object is not None else None,
                state=state["state"],
                autostart=bool(state.get("autostart")),
                persistent=True,
                forward_mode=state.get("forward_mode"),
                bridge=state.get("bridge"),
            )
        else:
            net = self._lookup()
            with libvirt_errors("reading network '%s'" % self.name):
                model = model_from_xml(net.XMLDesc(0))
                network = dict(
                    name=self.name,
                    uuid=net.UUIDString(),
                    state="active" if net.isActive() else "inactive",
                    autostart=bool(net.autostart()),
                    persistent=bool(net.isPersistent()),
                    forward_mode=model["forward_mode"],
                    bridge=model["bridge"],
                )
        if self._forwards is not None:
            if state.get("predicted"):
                network["port_forwards"] = state.get("port_forwards")
            else:
                network["port_forwards"] = self._forwards.read(network["state"] == "active")
        return dict(network=network, restart_required=self.restart_required, reattached=self.reattached)
