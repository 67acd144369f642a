# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Port forwards from the hypervisor into the guests of a NAT network.

libvirt has no option for this; its answer is a hook script.  We manage three things on the
hypervisor, all named after the network:

* the live firewall rules: two chains ``VIRTOPS_PF_<net>`` (table ``nat``: DNAT, jumped to from
  PREROUTING and OUTPUT; table ``filter``: ACCEPT of the DNATed connections, jumped to from the top
  of FORWARD, before libvirt's own LIBVIRT_FW* chains that reject traffic into a NAT network).
  Every rule carries a comment with the network name and the forward it implements, which is what
  reading back parses, so idempotency rests on the real rules, not on a cache;
* a state file ``/etc/libvirt/virtops/port-forwards/<net>.json``: the forwards, the network's UUID
  and the exact commands that apply and remove the rules;
* the libvirt network hook ``/etc/libvirt/hooks/network.d/virtops-port-forwards`` (libvirt >= 6.5
  runs every executable in ``network.d``), which runs those commands when libvirt reports the
  network ``started`` and ``stopped``: the rules come back after a network restart or a reboot and
  go away when the network stops.  libvirt looks for hooks only when the daemon starts or reloads,
  so installing the first network hook reloads the daemon (SIGHUP, what ``systemctl reload`` does).

The firewall is the one of the machine the module runs on, so all of this needs a local ``uri``
and root.  libvirt before 10.4 always uses iptables (``iptables`` is iptables-nft or -legacy, the
same binary libvirt calls); a libvirt configured for its nftables backend is refused with a clear
message, as rules in our own nftables table could not override libvirt's rejects.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import ipaddress
import json
import os
import re
import shlex
import signal
import shutil
import socket
import stat
import struct
import sys
import tempfile

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import uri_is_local
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    CommandError,
    ConflictError,
    InvalidInputError,
    MissingDependencyError,
)

PROTOCOLS = ("tcp", "udp")
ETC_LIBVIRT = "/etc/libvirt"
STATE_SUBDIR = os.path.join("virtops", "port-forwards")
HOOK_NAME = "virtops-port-forwards"
CHAIN_PREFIX = "VIRTOPS_PF_"
#: (table, built-in chain) pairs that jump to the network's chain; FORWARD must come before libvirt's
JUMPS = (("nat", "PREROUTING"), ("nat", "OUTPUT"), ("filter", "FORWARD"))
LIBVIRT_NFT_VERSION = 10004000  # libvirt 10.4.0 added the nftables firewall backend
DAEMONS = ("virtnetworkd", "libvirtd")
_SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
_PORTS = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
_COMMENT = re.compile(
    r"^virtops-libvirt port forward of network (?P<net>.*): (?P<proto>tcp|udp) (?P<host>\*|[0-9.]+):(?P<hport>\d+(?:-\d+)?)"
    r" -> (?P<guest>[0-9.]+):(?P<gport>\d+(?:-\d+)?)$"
)
_JUMP_COMMENT = "virtops-libvirt port forwards of network %s"


# ------------------------------------------------------------------------------ where we run ---

def is_root():
    return os.geteuid() == 0


def find_command(name):
    """Absolute path of ``name`` (the sbin directories included), or None."""
    path = os.environ.get("PATH", "")
    return shutil.which(name, path=os.pathsep.join([path] + list(_SBIN)))


def libvirt_firewall_backend(lib_version, etc_dir=ETC_LIBVIRT):
    """'iptables' or 'nftables': the backend the libvirt network driver uses for its own rules."""
    if lib_version < LIBVIRT_NFT_VERSION:
        return "iptables"
    try:
        with open(os.path.join(etc_dir, "network.conf")) as handle:
            for line in handle:
                match = re.match(r'^\s*firewall_backend\s*=\s*"([a-z]+)"', line)
                if match:
                    return match.group(1)
    except (IOError, OSError):
        pass
    # libvirt's default: nftables when nft is installed, iptables otherwise
    return "nftables" if find_command("nft") else "iptables"


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


# ----------------------------------------------------------------------- hook and state files ---

HOOK_SCRIPT = '''#!%(python)s
# -*- coding: utf-8 -*-
# libvirt network hook of the virtops.libvirt collection, installed by its network module.
# When libvirt has started a network it applies the port forwards recorded for that network in
# %(state_dir)s/<network>.json, and removes them when libvirt has stopped it.
# It never fails, so a broken forward cannot keep a network from starting.  Do not edit: the
# module rewrites this file.
import json
import os
import subprocess
import sys

STATE_DIR = %(state_dir)r


def log(text):
    sys.stderr.write("virtops-port-forwards: %%s\\n" %% text)


def run(commands):
    for cmd in commands:
        for _attempt in range(100 if cmd.get("repeat") else 1):
            proc = subprocess.Popen(cmd["argv"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, universal_newlines=True)
            _out, err = proc.communicate()
            if proc.returncode != 0:
                if not cmd.get("ignore_errors") and not cmd.get("repeat"):
                    log("%%s failed (rc %%d): %%s" %% (" ".join(cmd["argv"]), proc.returncode, err.strip()))
                break


def main(argv):
    data = sys.stdin.read()
    if len(argv) < 3 or argv[2] not in ("started", "stopped"):
        return 0
    name = argv[1]
    path = os.path.join(STATE_DIR, name + ".json")
    if "/" in name or name in (".", "..") or not os.path.isfile(path):
        return 0
    try:
        with open(path) as handle:
            state = json.load(handle)
    except (IOError, OSError, ValueError) as exc:
        log("cannot read %%s: %%s" %% (path, exc))
        return 0
    if argv[2] == "stopped":
        run(state.get("remove") or [])
    elif state.get("uuid") and "<uuid>%%s</uuid>" %% state["uuid"] not in data:
        log("%%s was written for another network called %%s (UUID %%s): not applied" %% (path, name, state["uuid"]))
    else:
        run(state.get("apply") or [])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
'''


def hook_python():
    """The interpreter the hook runs with: the system's Python 3 (the hook needs only the stdlib)."""
    for path in ("/usr/bin/python3", "/usr/libexec/platform-python", "/usr/local/bin/python3"):
        if os.access(path, os.X_OK):
            return path
    return sys.executable


def hook_text(state_dir, python=None):
    return HOOK_SCRIPT % dict(python=python or hook_python(), state_dir=state_dir)


def network_hook_present(hooks_dir):
    """Whether libvirt would find a network hook there (its virHookCheck: ``network`` or an
    executable in ``network.d``)."""
    path = os.path.join(hooks_dir, "network")
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return True
    directory = path + ".d"
    try:
        names = os.listdir(directory)
    except (IOError, OSError):
        return False
    return any(os.path.isfile(os.path.join(directory, n)) and os.access(os.path.join(directory, n), os.X_OK) for n in names)


def read_file(path):
    """(text, mode) of a file, or (None, None) when it does not exist."""
    try:
        with open(path) as handle:
            text = handle.read()
        return text, stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None, None
    except (IOError, OSError) as exc:
        raise BackendError("cannot read %s: %s" % (path, exc))


def write_file(path, text, mode):
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        os.makedirs(parent, 0o755)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_file(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except (IOError, OSError) as exc:
        raise BackendError("cannot remove %s: %s" % (path, exc))


# --------------------------------------------------------------------------- daemon reload ---

def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def _socket_peer(path):
    """pid of the process that listens on the unix socket ``path`` (SO_PEERCRED), or None."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(5)
        sock.connect(path)
        creds = sock.getsockopt(socket.SOL_SOCKET, getattr(socket, "SO_PEERCRED", 17), struct.calcsize("3i"))
        return struct.unpack("3i", creds)[0]
    except (IOError, OSError):
        return None
    finally:
        sock.close()


def _uri_socket(uri):
    match = re.search(r"[?&]socket=([^&]+)", uri or "")
    return match.group(1) if match else None


def network_daemon_pids(uri):
    """pids of the libvirt daemon that runs network hooks for ``uri`` on this machine.

    The daemon listening on the URI's socket when that is a libvirtd or virtnetworkd (not a
    socket-activating systemd); else the root libvirtd/virtnetworkd processes of this network
    namespace, virtnetworkd preferred.
    """
    sockets = [_uri_socket(uri)] if _uri_socket(uri) else ["/run/libvirt/virtnetworkd-sock", "/run/libvirt/libvirt-sock"]
    for path in sockets:
        if not os.path.exists(path):
            continue
        pid = _socket_peer(path)
        if pid and pid > 1 and _comm(pid) in DAEMONS:
            return [pid]
    try:
        own_net = os.readlink("/proc/self/ns/net")
        entries = os.listdir("/proc")
    except (IOError, OSError):
        return []
    found = dict((d, []) for d in DAEMONS)
    for entry in entries:
        if not entry.isdigit():
            continue
        pid = int(entry)
        comm = _comm(pid)
        if comm not in DAEMONS:
            continue
        try:
            if os.stat("/proc/%d" % pid).st_uid != 0 or os.readlink("/proc/%d/ns/net" % pid) != own_net:
                continue
        except (IOError, OSError):
            continue
        found[comm].append(pid)
    return sorted(found["virtnetworkd"]) or sorted(found["libvirtd"])


def reload_daemon(pid):
    """Make a libvirt daemon reload (as ``systemctl reload`` does): it looks for hooks again."""
    try:
        os.kill(pid, signal.SIGHUP)
    except (IOError, OSError) as exc:
        raise BackendError("could not make the libvirt daemon (pid %d) reload: %s" % (pid, exc))


# ------------------------------------------------------------------------------ the manager ---

class PortForwards:
    """The port forwards of one network on this hypervisor: read, compare, plan.

    ``ctx`` gives ``run_command``, ``uri`` and ``warn``; ``etc_dir`` is libvirt's configuration
    directory (``/etc/libvirt``).
    """

    def __init__(self, ctx, network, etc_dir=ETC_LIBVIRT):
        self.ctx = ctx
        self.network = network
        self.etc_dir = etc_dir
        self.state_dir = os.path.join(etc_dir, STATE_SUBDIR)
        self.state_path = os.path.join(self.state_dir, network + ".json")
        self.hooks_dir = os.path.join(etc_dir, "hooks")
        self.hook_path = os.path.join(self.hooks_dir, "network.d", HOOK_NAME)
        self.backend = None
        self.live = None
        self.state = None

    # --- preconditions ----------------------------------------------------------------------

    def require_usable(self, lib_version):
        """Refuse, before anything changes, where we cannot manage the hypervisor's firewall."""
        uri = self.ctx.uri or "qemu:///system"
        if not uri_is_local(uri):
            raise InvalidInputError(
                "port_forwards changes the firewall of the hypervisor, so the module must run on it: uri %r is "
                "remote. Run this task on the hypervisor itself (for example with delegate_to) with a local uri "
                "such as qemu:///system" % uri)
        if not is_root():
            raise InvalidInputError("port_forwards changes the hypervisor's firewall and libvirt's hook directory: "
                                    "run the module as root (become: true)")
        backend = libvirt_firewall_backend(lib_version, self.etc_dir)
        if backend != "iptables":
            raise ConflictError(
                "libvirt on this hypervisor uses its %s firewall backend; port_forwards supports libvirt's iptables "
                "backend only (set firewall_backend = \"iptables\" in %s)" % (backend, os.path.join(self.etc_dir, "network.conf")))
        iptables = find_command("iptables")
        if iptables is None:
            raise MissingDependencyError("port_forwards needs the iptables command on the hypervisor (libvirt's firewall tool)")
        self.backend = Iptables(self.ctx.run_command, iptables)

    # --- read -------------------------------------------------------------------------------

    def read_state(self):
        text, _mode = read_file(self.state_path)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return {"unreadable": True}

    def read_live(self):
        live = self.backend.read(self.network)
        chain = chain_name(self.network)
        others = sorted(o for o in live["owners"] if o is not None and o != self.network)
        if others:
            raise ConflictError("the firewall chain %s of network %s is also used by network(s) %s: remove their "
                                "port forwards first" % (chain, self.network, ", ".join(others)))
        if None in live["owners"]:
            raise ConflictError("the firewall chain %s of network %s holds or is jumped to by rules that this module did "
                                "not make (they have no virtops-libvirt comment): remove them first" % (chain, self.network))
        return live

    def read(self, active):
        """Forwards in effect: the live rules of an active network, else the recorded ones."""
        self.state = self.read_state()
        self.live = self.read_live()
        if active:
            return live_forwards(self.network, self.live)
        return sort_forwards(copy.deepcopy((self.state or {}).get("forwards") or []))

    # --- documents --------------------------------------------------------------------------

    def state_doc(self, forwards, uuid):
        return dict(
            managed_by="virtops.libvirt.network",
            network=self.network,
            uuid=uuid,
            backend=self.backend.name,
            forwards=forwards,
            apply=self.backend.apply_commands(self.network, forwards),
            remove=self.backend.remove_commands(self.network),
        )

    @staticmethod
    def _dump(doc):
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    # --- plan -------------------------------------------------------------------------------

    def plan(self, plan, forwards, uuid, get_uuid, active_after, started):
        """Add the steps that make files and rules match ``forwards``.

        ``uuid`` is the network's UUID now (None for a network this run creates; ``get_uuid`` reads it
        when the step runs); ``active_after`` whether the network runs after the plan, ``started``
        whether the plan (re)starts it (so the rules read before are gone).
        """
        old_text = self._dump(self.state) if self.state is not None else None
        if forwards:
            if uuid is None or self.state is None or self._dump(self.state_doc(forwards, uuid)) != old_text:
                plan.add("record port forwards of network %s in %s" % (self.network, self.state_path),
                         lambda: write_file(self.state_path, self._dump(self.state_doc(forwards, uuid or get_uuid())), 0o644),
                         undo=self._restore(self.state_path, old_text, 0o644))
            self._plan_hook(plan)
        elif self.state is not None:
            plan.add("remove the port forward record %s" % self.state_path, lambda: remove_file(self.state_path),
                     undo=self._restore(self.state_path, old_text, 0o644))
        if active_after and forwards and (started or not in_sync(self.network, self.live, forwards)):
            plan.add("apply port forwards of network %s: %s" % (self.network, ", ".join(forward_label(f) for f in forwards)),
                     lambda: self._apply(forwards), undo=self._undo_live())
        elif (not active_after or not forwards) and (not in_sync(self.network, self.live, [])):
            plan.add("remove the port forward rules of network %s" % self.network,
                     self._remove, undo=self._undo_live())

    def plan_remove(self, plan):
        """Everything of this network goes: rules and record (the shared hook stays)."""
        if self.state is not None:
            old_text = self._dump(self.state)
            plan.add("remove the port forward record %s" % self.state_path, lambda: remove_file(self.state_path),
                     undo=self._restore(self.state_path, old_text, 0o644))
        if not in_sync(self.network, self.live, []):
            plan.add("remove the port forward rules of network %s" % self.network, self._remove, undo=self._undo_live())

    def plan_reapply(self, plan):
        """After a restart: the recorded rules again (the hook does it too once libvirt runs it)."""
        forwards = (self.state or {}).get("forwards") or []
        if forwards and not self.state.get("unreadable"):
            plan.add("apply port forwards of network %s: %s" % (self.network, ", ".join(forward_label(f) for f in forwards)),
                     lambda: self._apply(forwards))

    def _plan_hook(self, plan):
        text = hook_text(self.state_dir)
        have, mode = read_file(self.hook_path)
        if have == text and mode == 0o755:
            return
        present = network_hook_present(self.hooks_dir)
        plan.add("install the libvirt network hook %s" % self.hook_path, lambda: write_file(self.hook_path, text, 0o755),
                 undo=self._restore(self.hook_path, have, mode or 0o755))
        if not present:
            pids = network_daemon_pids(self.ctx.uri)
            if pids:
                for pid in pids:
                    plan.add("reload the libvirt daemon (pid %d) so that it runs the new network hook" % pid,
                             lambda pid=pid: reload_daemon(pid))
            else:
                plan.warn("could not find the libvirt daemon that runs network hooks: reload it (systemctl reload "
                          "libvirtd or virtnetworkd) so that port forwards come back when the network restarts")

    @staticmethod
    def _restore(path, text, mode):
        def undo():
            if text is None:
                remove_file(path)
            else:
                write_file(path, text, mode)
        return undo

    def _undo_live(self):
        before = live_forwards(self.network, self.live)
        if before:
            return lambda: run_commands(self.ctx.run_command, self.backend.apply_commands(self.network, before))
        return self._remove

    def _apply(self, forwards):
        """Apply ``forwards``; when that fails midway, put back what was there before (then raise)."""
        try:
            run_commands(self.ctx.run_command, self.backend.apply_commands(self.network, forwards))
            if not in_sync(self.network, self.read_live(), forwards):
                raise BackendError("the port forward rules of network %s are not in place after applying them" % self.network)
        except Exception:
            try:
                self._undo_live()()
            except Exception:  # pylint: disable=broad-except
                pass  # the original error is the one to report
            raise

    def _remove(self):
        run_commands(self.ctx.run_command, self.backend.remove_commands(self.network))
        if not in_sync(self.network, self.read_live(), []):
            raise BackendError("the port forward rules of network %s are still there after removing them" % self.network)
