# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The network model: its options validated and normalised (no libvirt, no XML).

The model is a dict::

    forward_mode  'nat' | 'route' | 'open' | 'isolated' (no <forward>) | 'bridge' | other (read only)
    bridge        bridge device name
    mtu           int
    domain        DNS domain name
    ipv4          {address, prefix, dhcp_ranges: [{start, end}], dhcp_hosts: [{mac, ip, name}]}
    ipv6          {address, prefix, dhcp_ranges: [{start, end}]}
    dns           {enabled: bool, forwarders: [addr], hosts: [{ip, hostnames: [str]}]}

``None`` means "not specified" (desired) or "not in the XML" (current).  ``codec`` turns it into
libvirt network XML and back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.names import CONTROL_CHARS as _CONTROL, validate_object_name

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


def mac_address(value, what):
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
        mac = mac_address(host["mac"], label + ".mac")
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


def ip_key(text):
    """Sort key for address strings of both families (IPv4 first); unparsable text last."""
    try:
        addr = ipaddress.ip_address(text or "")
    except ValueError:
        return (7, 0, text or "")
    return (addr.version, int(addr), "")


def sort_hosts(hosts):
    return sorted(hosts, key=lambda h: (ip_key(h.get("ip")), h.get("mac") or ""))


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
        out["hosts"] = sorted(hosts, key=lambda h: ip_key(h["ip"]))
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
