# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The network filter model: the ``nwfilter`` module's options validated and normalised (no libvirt,
no XML; ``codec`` turns the model into libvirt's ``<filter>`` XML and back).

The model is a dict::

    chain       'root' | 'mac' | 'stp' | 'vlan' | 'arp' | 'rarp' | 'ipv4' | 'ipv6' (a suffix '-x' allowed)
    priority    int, -1000..1000 (the filter's place in its chain)
    rules       [rule]: the complete, ordered list
    filterrefs  [{filter: name, parameters: {NAME: [value, ...]}}]: the complete, ordered list

A rule is a dict with ``direction``, ``action``, ``priority`` (libvirt's default 500 filled in),
``protocol`` and only the match keys it has (``source``, ``destination``: an address with an optional
``/prefix``; ``source_ports``, ``destination_ports``: ``'80'`` or ``'8000-8010'``; ``state``: sorted
upper-case list; ``statematch``, ``source_mac``, ``destination_mac``, ``protocol_id``, ``icmp_type``,
``icmp_code``; ``attributes``: any further attributes of the protocol element, verbatim).  A rule
read from libvirt has the same shape, so two rule lists compare with ``==``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._nwfilter.names import normalize_parameters, validate_name

DIRECTIONS = ("in", "out", "inout")
ACTIONS = ("accept", "drop", "reject", "return", "continue")
L2_PROTOCOLS = ("mac", "vlan", "stp", "arp", "rarp")
IPV4_PROTOCOLS = ("ip", "tcp", "udp", "sctp", "icmp", "igmp", "esp", "ah", "udplite", "all")
IPV6_PROTOCOLS = ("ipv6", "tcp-ipv6", "udp-ipv6", "sctp-ipv6", "icmpv6", "esp-ipv6", "ah-ipv6", "udplite-ipv6",
                  "all-ipv6")
PROTOCOLS = L2_PROTOCOLS + IPV4_PROTOCOLS + IPV6_PROTOCOLS
#: protocols with source and destination ports
PORT_PROTOCOLS = ("ip", "ipv6", "tcp", "udp", "sctp", "udplite", "tcp-ipv6", "udp-ipv6", "sctp-ipv6", "udplite-ipv6")
#: protocols filtered by iptables, so with connection state
STATE_PROTOCOLS = tuple(p for p in IPV4_PROTOCOLS + IPV6_PROTOCOLS if p not in ("ip", "ipv6"))
STATES = ("NEW", "ESTABLISHED", "RELATED", "INVALID", "NONE")
CHAINS = ("root", "mac", "stp", "vlan", "arp", "rarp", "ipv4", "ipv6")
#: libvirt's own default priority of a rule
DEFAULT_RULE_PRIORITY = 500

#: the filters libvirt ships (/usr/share/libvirt/nwfilter, 9.0): re-created when libvirtd starts, referenced
#: by each other and by guests; this module neither changes nor removes them
BUILTIN_FILTERS = frozenset((
    "allow-arp", "allow-dhcp", "allow-dhcp-server", "allow-dhcpv6", "allow-dhcpv6-server", "allow-incoming-ipv4",
    "allow-incoming-ipv6", "allow-ipv4", "allow-ipv6", "clean-traffic", "clean-traffic-gateway", "no-arp-ip-spoofing",
    "no-arp-mac-spoofing", "no-arp-spoofing", "no-ip-multicast", "no-ip-spoofing", "no-ipv6-multicast",
    "no-ipv6-spoofing", "no-mac-broadcast", "no-mac-spoofing", "no-other-l2-traffic", "no-other-rarp-traffic",
    "qemu-announce-self", "qemu-announce-self-rarp",
))

#: model key -> attribute of the protocol element (addresses and ports are split further)
SIMPLE_ATTRS = (("source_mac", "srcmacaddr"), ("destination_mac", "dstmacaddr"), ("protocol_id", "protocolid"),
                ("icmp_type", "type"), ("icmp_code", "code"))
#: attributes the model has keys for (everything else of a protocol element is ``attributes``)
MODELLED_ATTRS = frozenset(("srcipaddr", "srcipmask", "dstipaddr", "dstipmask", "srcportstart", "srcportend",
                            "dstportstart", "dstportend", "state") + tuple(a for _k, a in SIMPLE_ATTRS))

_VARIABLE = re.compile(r"^\$[A-Za-z_][A-Za-z0-9_]*(\[(@?[0-9]+|@[A-Za-z_][A-Za-z0-9_]*)\])?$")
_CHAIN = re.compile(r"^(%s)(-[A-Za-z0-9_.:-]{1,32})?$" % "|".join(CHAINS))
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_ATTR_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def _int_in(value, low, high, what):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInputError("%s: %r is not a whole number" % (what, value))
    if not low <= number <= high:
        raise InvalidInputError("%s: %d is not between %d and %d" % (what, number, low, high))
    return number


def is_variable(value):
    return isinstance(value, str) and bool(_VARIABLE.match(value))


def normalize_address(value, family, what):
    """``'10.0.0.5'``, ``'10.0.0.0/24'``, or a filter variable (``'$IP'``): the text libvirt stores."""
    if value is None:
        return None
    value = str(value).strip()
    if is_variable(value):
        return value
    addr, _sep, prefix = value.partition("/")
    try:
        parsed = ipaddress.ip_address(addr)
    except ValueError:
        raise InvalidInputError("%s: %r is not an IP address (or a variable such as $IP)" % (what, value))
    if parsed.version != family:
        raise InvalidInputError("%s: %s is an IPv%d address; this rule's protocol is IPv%d"
                                % (what, addr, parsed.version, family))
    if prefix:
        bits = _int_in(prefix, 0, 32 if family == 4 else 128, what + " prefix")
        return "%s/%d" % (parsed, bits)
    return str(parsed)


def normalize_ports(value, what):
    """``80``, ``'80'``, ``'8000-8010'`` or ``'8000:8010'`` -> ``'80'`` / ``'8000-8010'``."""
    if value is None:
        return None
    text = str(value).strip().replace(":", "-")
    if is_variable(text):
        return text
    start, _sep, end = text.partition("-")
    first = _int_in(start, 0, 65535, what)
    if not end:
        return str(first)
    last = _int_in(end, 0, 65535, what)
    if last < first:
        raise InvalidInputError("%s: the range %s ends before it starts" % (what, text))
    return str(first) if last == first else "%d-%d" % (first, last)


def _normalize_state(value, what):
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    states = sorted(set(str(s).strip().upper() for s in items if str(s).strip()))
    bad = [s for s in states if s not in STATES]
    if bad or not states:
        raise InvalidInputError("%s: %s: the states are %s" % (what, ", ".join(bad) or "empty", ", ".join(STATES)))
    return states


def _family(protocol):
    if protocol in L2_PROTOCOLS:
        return None
    return 6 if protocol in IPV6_PROTOCOLS else 4


def normalize_rule(rule, index):
    """One rule of the ``rules`` option -> the model's rule (see the module doc)."""
    what = "rules[%d]" % index
    protocol = rule.get("protocol") or "all"
    if protocol not in PROTOCOLS:
        raise InvalidInputError("%s.protocol: %r is not one of %s" % (what, protocol, ", ".join(PROTOCOLS)))
    family = _family(protocol)
    out = dict(
        direction=rule.get("direction") or "inout",
        action=rule.get("action") or "accept",
        priority=_int_in(rule["priority"], -1000, 1000, what + ".priority") if rule.get("priority") is not None
        else DEFAULT_RULE_PRIORITY,
        protocol=protocol,
    )
    if out["direction"] not in DIRECTIONS:
        raise InvalidInputError("%s.direction: %r is not one of %s" % (what, out["direction"], ", ".join(DIRECTIONS)))
    if out["action"] not in ACTIONS:
        raise InvalidInputError("%s.action: %r is not one of %s" % (what, out["action"], ", ".join(ACTIONS)))
    for key in ("source", "destination"):
        if rule.get(key) is not None:
            if family is None:
                raise InvalidInputError("%s.%s: protocol %s has no IP addresses (use %s_mac, or protocol ip)"
                                        % (what, key, protocol, key))
            out[key] = normalize_address(rule[key], family, "%s.%s" % (what, key))
    for key in ("source_ports", "destination_ports"):
        if rule.get(key) is not None:
            if protocol not in PORT_PROTOCOLS:
                raise InvalidInputError("%s.%s: protocol %s has no ports (one of %s has)"
                                        % (what, key, protocol, ", ".join(PORT_PROTOCOLS)))
            out[key] = normalize_ports(rule[key], "%s.%s" % (what, key))
    if rule.get("state") is not None:
        if protocol not in STATE_PROTOCOLS:
            raise InvalidInputError("%s.state: protocol %s has no connection state (one of %s has)"
                                    % (what, protocol, ", ".join(STATE_PROTOCOLS)))
        out["state"] = _normalize_state(rule["state"], what + ".state")
    if rule.get("statematch") is not None:
        out["statematch"] = bool(rule["statematch"])
    for key in ("source_mac", "destination_mac"):
        value = rule.get(key)
        if value is not None:
            if not (is_variable(value) or _MAC.match(value)):
                raise InvalidInputError("%s.%s: %r is not a MAC address (or a variable such as $MAC)" % (what, key, value))
            out[key] = value if is_variable(value) else value.lower()
    for key in ("protocol_id", "icmp_type", "icmp_code"):
        if rule.get(key) is not None:
            out[key] = str(rule[key])
    attributes = rule.get("attributes")
    if attributes:
        for name in attributes:
            if not _ATTR_NAME.match(str(name)) or name in MODELLED_ATTRS:
                raise InvalidInputError("%s.attributes: %r is not a free attribute (use the option for it)" % (what, name))
        out["attributes"] = dict((str(k), str(v)) for k, v in attributes.items())
    return out


def normalize_filterref(ref, what):
    """``{filter, parameters}`` -> the model's reference (``validate_name`` on the filter's name)."""
    name = ref.get("filter") or ref.get("name")
    if not name:
        raise InvalidInputError("%s.filter: the name of the referenced filter is missing" % what)
    validate_name(name)
    return dict(filter=name, parameters=normalize_parameters(ref.get("parameters"), what + ".parameters"))


def normalize_model(params):
    """The module's parameters -> the model (None: not specified)."""
    chain = params.get("chain")
    if chain is not None and not _CHAIN.match(chain):
        raise InvalidInputError("chain: %r is not one of %s (optionally with a suffix such as ipv4-web)"
                                % (chain, ", ".join(CHAINS)))
    priority = params.get("priority")
    rules = params.get("rules")
    refs = params.get("filterrefs")
    return dict(
        chain=chain,
        priority=_int_in(priority, -1000, 1000, "priority") if priority is not None else None,
        rules=[normalize_rule(r, i) for i, r in enumerate(rules)] if rules is not None else None,
        filterrefs=[normalize_filterref(r, "filterrefs[%d]" % i) for i, r in enumerate(refs)] if refs is not None else None,
    )


def rule_text(rule):
    """One line for ``--diff`` and messages: ``500 in drop tcp from 10.0.0.5 to any port 8000 state NEW``."""
    words = [str(rule["priority"]), rule["direction"], rule["action"], rule["protocol"]]
    if "source" in rule or "destination" in rule:
        words += ["from", rule.get("source", "any"), "to", rule.get("destination", "any")]
    for key, word in (("source_ports", "sport"), ("destination_ports", "dport"), ("source_mac", "srcmac"),
                      ("destination_mac", "dstmac"), ("protocol_id", "protocolid"), ("icmp_type", "type"),
                      ("icmp_code", "code")):
        if key in rule:
            words += [word, rule[key]]
    if "state" in rule:
        words += ["state", ",".join(rule["state"])]
    if rule.get("statematch") is False:
        words.append("statematch=false")
    for name, value in sorted((rule.get("attributes") or {}).items()):
        words.append("%s=%s" % (name, value))
    return " ".join(words)


def filterref_text(ref):
    params = ref.get("parameters") or {}
    if not params:
        return ref["filter"]
    return "%s(%s)" % (ref["filter"], ", ".join("%s=%s" % (k, ",".join(v)) for k, v in sorted(params.items())))
