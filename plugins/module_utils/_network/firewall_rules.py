# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Port forwards as firewall rules: the user's ``port_forwards`` validated, the iptables commands
that apply and remove them, and the rules read back from ``iptables -S``.

Each network has two chains ``VIRTOPS_PF_<net>`` (table ``nat``: DNAT, jumped to from PREROUTING
and OUTPUT; table ``filter``: ACCEPT of the DNATed connections, jumped to from the top of FORWARD,
before libvirt's own LIBVIRT_FW* chains that reject traffic into a NAT network).  Every rule
carries a comment with the network name and the forward it implements, which is what reading back
parses, so idempotency rests on the real rules, not on a cache.  ``firewall`` decides when to
apply them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import ipaddress
import re
import shlex

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import CommandError, InvalidInputError

PROTOCOLS = ("tcp", "udp")
CHAIN_PREFIX = "VIRTOPS_PF_"
#: (table, built-in chain) pairs that jump to the network's chain; FORWARD must come before libvirt's
JUMPS = (("nat", "PREROUTING"), ("nat", "OUTPUT"), ("filter", "FORWARD"))
_PORTS = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
_COMMENT = re.compile(
    r"^virtops-libvirt port forward of network (?P<net>.*): (?P<proto>tcp|udp) (?P<host>\*|[0-9.]+):(?P<hport>\d+(?:-\d+)?)"
    r" -> (?P<guest>[0-9.]+):(?P<gport>\d+(?:-\d+)?)$"
)
_JUMP_COMMENT = "virtops-libvirt port forwards of network %s"

# ------------------------------------------------------------------------------- validation ---


def _ports(value, label):
    """(first, last) of a port or a range '8000-8010', each 1-65535."""
    if isinstance(value, bool):
        raise InvalidInputError("%s: %r is not a port or a range such as 8000-8010" % (label, value))
    match = _PORTS.match(str(value)) if value is not None else None
    if not match:
        raise InvalidInputError("%s: %r is not a port or a range such as 8000-8010" % (label, value))
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) is not None else first
    for port in (first, last):
        if not 1 <= port <= 65535:
            raise InvalidInputError("%s: port %d is out of range (1-65535)" % (label, port))
    if last < first:
        raise InvalidInputError("%s: the range %d-%d ends before it starts" % (label, first, last))
    return first, last


def _port_text(first, last):
    return first if first == last else "%d-%d" % (first, last)


def _ipv4(value, label):
    try:
        addr = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise InvalidInputError("%s: %r is not an IP address" % (label, value))
    if addr.version != 4:
        raise InvalidInputError("%s: %s is not an IPv4 address (port forwards are IPv4 only)" % (label, addr))
    return addr


def forward_label(fwd):
    """'tcp *:8080 -> 192.168.100.10:80': how a forward is shown in messages, actions and comments."""
    return "%s %s:%s -> %s:%s" % (fwd["protocol"], fwd["host_address"] or "*", fwd["host_port"],
                                  fwd["guest_address"], fwd["guest_port"])


def sort_forwards(forwards):
    """Rules for one host address come before those for all addresses (first match wins)."""
    def key(fwd):
        ports = _ports(fwd["host_port"], "host_port")
        host = int(ipaddress.ip_address(fwd["host_address"])) if fwd["host_address"] else 0
        return (fwd["host_address"] is None, host, fwd["protocol"], ports)
    return sorted(forwards, key=key)


def normalize_port_forwards(items, subnet, host_address=None):
    """The user's ``port_forwards`` -> a sorted list of normalised forwards, validated.

    ``subnet`` is the network's IPv4 subnet (an ``ip_network``) and ``host_address`` the bridge's own
    address; a guest address must be a usable address of the subnet.  Ports are ints, ranges
    'first-last' strings; ``guest_port`` defaults to ``host_port``.
    """
    if items is None:
        return None
    out = []
    for index, item in enumerate(items):
        label = "port_forwards[%d]" % index
        if not isinstance(item, dict):
            raise InvalidInputError("%s: a port forward is a dict with protocol, host_port, guest_address and guest_port" % label)
        proto = item.get("protocol") or "tcp"
        if proto not in PROTOCOLS:
            raise InvalidInputError("%s.protocol: %r is not one of %s" % (label, proto, ", ".join(PROTOCOLS)))
        if item.get("host_port") is None:
            raise InvalidInputError("%s: host_port is required" % label)
        if item.get("guest_address") is None:
            raise InvalidInputError("%s: guest_address is required" % label)
        hfirst, hlast = _ports(item["host_port"], label + ".host_port")
        gvalue = item.get("guest_port")
        if gvalue is None:
            gfirst, glast = hfirst, hlast
        else:
            gfirst, glast = _ports(gvalue, label + ".guest_port")
            if "-" not in str(gvalue):
                glast = gfirst + (hlast - hfirst)
            if glast - gfirst != hlast - hfirst:
                raise InvalidInputError("%s.guest_port: the range %d-%d has %d ports but host_port %s has %d" % (
                    label, gfirst, glast, glast - gfirst + 1, _port_text(hfirst, hlast), hlast - hfirst + 1))
            if glast > 65535:
                raise InvalidInputError("%s.guest_port: %d-%d runs past port 65535" % (label, gfirst, glast))
        guest = _ipv4(item["guest_address"], label + ".guest_address")
        if subnet is None:
            raise InvalidInputError("%s: the network has no IPv4 address, so it has no subnet to forward into" % label)
        if guest not in subnet:
            raise InvalidInputError("%s.guest_address: %s is outside the network's subnet %s" % (label, guest, subnet))
        if guest in (subnet.network_address, subnet.broadcast_address):
            raise InvalidInputError("%s.guest_address: %s is not a usable host address of %s" % (label, guest, subnet))
        if host_address is not None and guest == ipaddress.ip_address(host_address):
            raise InvalidInputError("%s.guest_address: %s is the hypervisor's own address on the network, not a guest" % (label, guest))
        host = None
        if item.get("host_address") not in (None, ""):
            addr = _ipv4(item["host_address"], label + ".host_address")
            if addr.is_unspecified:
                raise InvalidInputError("%s.host_address: leave host_address out to forward on all host addresses" % label)
            if addr.is_loopback or addr.is_multicast:
                raise InvalidInputError("%s.host_address: %s cannot be forwarded (loopback or multicast)" % (label, addr))
            host = str(addr)
        out.append(dict(protocol=proto, host_address=host, host_port=_port_text(hfirst, hlast),
                        guest_address=str(guest), guest_port=_port_text(gfirst, glast), _label=label,
                        _range=(hfirst, hlast)))
    for i, one in enumerate(out):
        for other in out[:i]:
            if (one["protocol"] == other["protocol"] and one["host_address"] == other["host_address"]
                    and one["_range"][0] <= other["_range"][1] and other["_range"][0] <= one["_range"][1]):
                raise InvalidInputError("%s: %s port %s on %s is already forwarded by %s (%s)" % (
                    one["_label"], one["protocol"], one["host_port"],
                    one["host_address"] or "all host addresses", other["_label"], forward_label(other)))
    for fwd in out:
        del fwd["_label"], fwd["_range"]
    return sort_forwards(out)


def port_forwards_for(items, network, mode, ipv4):
    """``port_forwards`` of network ``network`` validated against what it will be: forward mode
    ``mode`` and IPv4 model ``ipv4`` (``{address, prefix}`` or None)."""
    if items and mode != "nat":
        raise InvalidInputError("port_forwards: network '%s' is %s; port forwards need forward_mode nat" % (
            network, "isolated" if mode == "isolated" else "a %s network" % mode))
    subnet = None
    if ipv4 and ipv4.get("address") and ipv4.get("prefix") is not None:
        subnet = ipaddress.ip_network("%s/%s" % (ipv4["address"], ipv4["prefix"]), strict=False)
    return normalize_port_forwards(items, subnet, ipv4.get("address") if ipv4 else None)


# ------------------------------------------------------------------------------ iptables rules ---

def chain_name(network):
    """The network's chain: readable for short plain names, a hash otherwise (28 characters at most)."""
    if re.match(r"^[A-Za-z0-9_.-]{1,17}$", network):
        return CHAIN_PREFIX + network
    return CHAIN_PREFIX + "H" + hashlib.sha1(network.encode("utf-8")).hexdigest()[:16]


def rule_comment(network, fwd):
    return "virtops-libvirt port forward of network %s: %s" % (network, forward_label(fwd))


def parse_comment(text):
    """(network, forward) from a rule comment, or None when it is not one of ours."""
    match = _COMMENT.match(text or "")
    if not match:
        return None

    def port(value):
        return int(value) if "-" not in value else value

    fwd = dict(protocol=match.group("proto"), host_address=None if match.group("host") == "*" else match.group("host"),
               host_port=port(match.group("hport")), guest_address=match.group("guest"), guest_port=port(match.group("gport")))
    return match.group("net"), fwd


def _iptables_ports(value):
    return str(value).replace("-", ":")


def nat_rule(network, fwd):
    """Arguments after ``-A CHAIN`` of the DNAT rule of one forward."""
    proto = fwd["protocol"]
    if fwd["host_address"]:
        match = ["-d", fwd["host_address"] + "/32"]
    else:
        # every local address except loopback (DNAT from 127.0.0.1 would need route_localnet)
        match = ["!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL"]
    match += ["-p", proto, "-m", proto, "--dport", _iptables_ports(fwd["host_port"]),
              "-m", "comment", "--comment", rule_comment(network, fwd)]
    hfirst = _ports(fwd["host_port"], "host_port")[0]
    gfirst, glast = _ports(fwd["guest_port"], "guest_port")
    if "-" not in str(fwd["host_port"]):
        dest = "%s:%d" % (fwd["guest_address"], gfirst)
    elif gfirst == hfirst:
        dest = fwd["guest_address"]  # no port given: DNAT keeps each port as it is
    else:
        dest = "%s:%d-%d/%d" % (fwd["guest_address"], gfirst, glast, hfirst)  # shift the range 1:1
    return match + ["-j", "DNAT", "--to-destination", dest]


def filter_rule(network, fwd):
    """Arguments after ``-A CHAIN`` of the FORWARD accept of one forward (only DNATed connections)."""
    proto = fwd["protocol"]
    return ["-d", fwd["guest_address"] + "/32", "-p", proto, "-m", proto, "--dport", _iptables_ports(fwd["guest_port"]),
            "-m", "conntrack", "--ctstate", "DNAT", "-m", "comment", "--comment", rule_comment(network, fwd),
            "-j", "ACCEPT"]


class Iptables:
    """Rules of one network, as iptables commands, and read back from ``iptables -S``."""

    name = "iptables"

    def __init__(self, run_command, iptables):
        self._run = run_command
        self.iptables = iptables

    def _argv(self, table, *args):
        return [self.iptables, "-w", "-t", table] + list(args)

    def _jump(self, network, table, hook, op, *position):
        chain = chain_name(network)
        return self._argv(table, op, hook, *(list(position) + ["-m", "comment", "--comment", _JUMP_COMMENT % network, "-j", chain]))

    def apply_commands(self, network, forwards):
        """Commands (dicts for :func:`run_commands` and the hook) that make the rules exactly ``forwards``."""
        chain = chain_name(network)
        cmds = []
        for table in ("nat", "filter"):
            cmds.append(dict(argv=self._argv(table, "-N", chain), ignore_errors=True))
            cmds.append(dict(argv=self._argv(table, "-F", chain)))
        for fwd in forwards:
            cmds.append(dict(argv=self._argv("nat", "-A", chain, *nat_rule(network, fwd))))
        for fwd in forwards:
            cmds.append(dict(argv=self._argv("filter", "-A", chain, *filter_rule(network, fwd))))
        for table, hook in JUMPS:
            # delete whatever jumps exist, then one at the very top (before libvirt's chains)
            cmds.append(dict(argv=self._jump(network, table, hook, "-D"), repeat=True))
            cmds.append(dict(argv=self._jump(network, table, hook, "-I", "1")))
        return cmds

    def remove_commands(self, network):
        chain = chain_name(network)
        cmds = [dict(argv=self._jump(network, table, hook, "-D"), repeat=True) for table, hook in JUMPS]
        for table in ("nat", "filter"):
            cmds.append(dict(argv=self._argv(table, "-F", chain), ignore_errors=True))
            cmds.append(dict(argv=self._argv(table, "-X", chain), ignore_errors=True))
        return cmds

    def _save(self, table):
        argv = self._argv(table, "-S")
        rc, out, err = self._run(argv)
        if rc != 0:
            raise CommandError("reading the %s table with iptables failed: %s" % (table, err.strip() or out.strip()),
                               argv, rc, out, err)
        return out

    def read(self, network):
        """What the firewall holds for ``network``: see :func:`parse_rules`."""
        return parse_rules(network, dict((table, self._save(table)) for table in ("nat", "filter")))


def parse_rules(network, saved):
    """Parse ``iptables -S`` output (``{'nat': text, 'filter': text}``) for the rules of ``network``.

    Returns a dict: ``chains`` (tables where the chain exists), ``jumps`` ({(table, hook): [index]}
    of the rules jumping to the chain), ``owners`` (network names in the jumps' and rules' comments),
    ``rules`` ({table: [(network, forward, target) or None per rule]}), ``forward_ok`` (the FORWARD jump
    comes before libvirt's chains).
    """
    chain = chain_name(network)
    state = dict(chains=[], jumps={}, owners=set(), rules={"nat": [], "filter": []}, forward_ok=True)
    for table in ("nat", "filter"):
        positions = {}
        first_libvirt = None
        for line in (saved.get(table) or "").splitlines():
            try:
                tokens = shlex.split(line)
            except ValueError:
                continue
            if len(tokens) >= 2 and tokens[0] == "-N" and tokens[1] == chain:
                state["chains"].append(table)
                continue
            if len(tokens) < 2 or tokens[0] != "-A":
                continue
            where = tokens[1]
            index = positions.get(where, 0)
            positions[where] = index + 1
            target = tokens[tokens.index("-j") + 1] if "-j" in tokens[:-1] else None
            comment = tokens[tokens.index("--comment") + 1] if "--comment" in tokens[:-1] else None
            if where == "FORWARD" and target and target.startswith("LIBVIRT_") and first_libvirt is None:
                first_libvirt = index
            if target == chain and (table, where) in JUMPS:
                state["jumps"].setdefault((table, where), []).append(index)
                owner = comment[len(_JUMP_COMMENT % ""):] if comment and comment.startswith(_JUMP_COMMENT % "") else None
                state["owners"].add(owner)
            elif where == chain:
                parsed = parse_comment(comment)
                if parsed is not None:
                    state["owners"].add(parsed[0])
                state["rules"][table].append((parsed[0], parsed[1], target) if parsed else None)
        if table == "filter" and first_libvirt is not None:
            state["forward_ok"] = all(i < first_libvirt for i in state["jumps"].get(("filter", "FORWARD"), []))
    return state


def live_forwards(network, state):
    """The forwards in effect: the DNAT rules of the network's chain, when the chain is jumped to."""
    if "nat" not in state["chains"] or not state["jumps"].get(("nat", "PREROUTING")):
        return []
    return sort_forwards([item[1] for item in state["rules"]["nat"] if item and item[0] == network and item[2] == "DNAT"])


def in_sync(network, state, forwards):
    """True when the firewall holds exactly ``forwards`` for ``network`` and nothing else of ours."""
    if not forwards:
        return not state["chains"] and not state["jumps"]
    if sorted(state["chains"]) != ["filter", "nat"] or not state["forward_ok"]:
        return False
    if any(len(state["jumps"].get(jump, [])) != 1 for jump in JUMPS):
        return False
    want = [rule_comment(network, fwd) for fwd in forwards]
    for table, target in (("nat", "DNAT"), ("filter", "ACCEPT")):
        have = state["rules"][table]
        if any(item is None or item[0] != network or item[2] != target for item in have):
            return False
        if [rule_comment(network, item[1]) for item in have] != want:
            return False
    return True


def run_commands(run_command, commands):
    """Run hook/apply commands: ``ignore_errors`` tolerates a failure, ``repeat`` runs until one fails."""
    for cmd in commands:
        for _attempt in range(100 if cmd.get("repeat") else 1):
            rc, out, err = run_command(list(cmd["argv"]))
            if rc != 0:
                if not cmd.get("ignore_errors") and not cmd.get("repeat"):
                    raise CommandError("%s failed: %s" % (" ".join(cmd["argv"]), (err or out).strip()),
                                       cmd["argv"], rc, out, err)
                break
