# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What is true of a domain at run time: state, addresses, guest agent, run-time facts.

Used by ``vm`` and ``vm_info``.  Everything takes a raw ``virDomain`` (and the ``virConnect``
where the connection matters) and raises our exceptions (``_errors``); nothing here exits.

Address sources (``interface_addresses``):

``lease``
    the DHCP leases of libvirt's own networks (dnsmasq).  libvirt only looks at
    ``<interface type='network'>``; for ``type='bridge'`` on the bridge of an active libvirt
    network we also ask that network for the lease of the MAC.  Works without anything in the
    guest, but a lease outlives the boot that took it: right after a restart the previous boot's
    lease (same MAC, usually the same address) is reported before the guest has even booted.
``agent``
    ``guest-network-get-interfaces`` through qemu-guest-agent: every guest interface, static
    addresses and IPv6 included, with the guest's interface names.  Needs the agent running and
    an ``org.qemu.guest_agent.0`` channel.  Skipped without a call while libvirt shows the channel
    disconnected; a request the agent does not answer is abandoned after ``agent_timeout``.
``arp``
    the hypervisor's neighbour table: only addresses that have talked to the host recently.
``any``
    agent, then lease, then arp, merged per MAC: the first source that reports at least one
    address for a MAC wins (its name is in ``source``); a source that fails is skipped.

Each interface is ``{mac, name, addresses: [{type, address, prefix}], source}``; ``name`` is the
source's name for it (the guest's ``eth0`` for the agent, the host's ``vnet0`` for lease/arp).
Loopback interfaces and addresses are left out.  An inactive domain has no addresses: ``[]``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import ipaddress
import json
import os
import re
import threading
import time
import traceback
from urllib.parse import parse_qs, urlsplit

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import (
    libvirt,
    libvirt_errors,
    translate_libvirt_error,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
    OperationTimeoutError,
    VirtopsError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._network.leases import dhcp_leases

LIBVIRT_QEMU_IMPORT_ERROR = None
try:
    import libvirt_qemu
except ImportError:  # pragma: no cover - depends on the managed node
    libvirt_qemu = None
    LIBVIRT_QEMU_IMPORT_ERROR = traceback.format_exc()

# ------------------------------------------------------------------------------- states ---

# virDomainState and, per state, its reason enum, by libvirt constant name.  The numbers come
# from the installed binding; a name it lacks (older libvirt) is left out and reads "unknown".
# (VIR_DOMAIN_SHUTDOWN_* other than UNKNOWN/USER are shutdown *flags*, not reasons.)
_STATE_TABLE = (
    ("NOSTATE", ("UNKNOWN",)),
    ("RUNNING", ("UNKNOWN", "BOOTED", "MIGRATED", "RESTORED", "FROM_SNAPSHOT", "UNPAUSED",
                 "MIGRATION_CANCELED", "SAVE_CANCELED", "WAKEUP", "CRASHED", "POSTCOPY", "POSTCOPY_FAILED")),
    ("BLOCKED", ("UNKNOWN",)),
    ("PAUSED", ("UNKNOWN", "USER", "MIGRATION", "SAVE", "DUMP", "IOERROR", "WATCHDOG", "FROM_SNAPSHOT",
                "SHUTTING_DOWN", "SNAPSHOT", "CRASHED", "STARTING_UP", "POSTCOPY", "POSTCOPY_FAILED",
                "API_ERROR")),
    ("SHUTDOWN", ("UNKNOWN", "USER")),
    ("SHUTOFF", ("UNKNOWN", "SHUTDOWN", "DESTROYED", "CRASHED", "MIGRATED", "SAVED", "FAILED",
                 "FROM_SNAPSHOT", "DAEMON")),
    ("CRASHED", ("UNKNOWN", "PANICKED")),
    ("PMSUSPENDED", ("UNKNOWN",)),
)


def _state_names():
    """``{state number: (state name, {reason number: reason name})}`` from the binding's constants."""
    table = {}
    if libvirt is None:
        return table
    for state, reasons in _STATE_TABLE:
        number = getattr(libvirt, "VIR_DOMAIN_" + state, None)
        if number is None:
            continue
        names = {}
        for reason in reasons:
            value = getattr(libvirt, "VIR_DOMAIN_%s_%s" % (state, reason), None)
            if value is not None:
                names[value] = reason.lower()
        table[number] = (state.lower(), names)
    return table


STATE_NAMES = _state_names()


def state_names(state, reason):
    """``(1, 1)`` -> ``('running', 'booted')``; numbers libvirt may add later read ``'unknown'``."""
    name, reasons = STATE_NAMES.get(state, ("unknown", {}))
    return name, reasons.get(reason, "unknown")


def state_of(dom):
    """The domain's state and the reason for it: ``('running', 'booted')``, ``('shutoff', 'destroyed')``."""
    with libvirt_errors("reading the state of domain '%s'" % dom.name()):
        state, reason = dom.state(0)[:2]
    return state_names(state, reason)


def _is_active(dom):
    with libvirt_errors("reading the state of domain '%s'" % dom.name()):
        return bool(dom.isActive())


# ---------------------------------------------------------------------------- addresses ---

SOURCES = ("lease", "agent", "arp", "any")
#: the order in which ``any`` asks the sources
ANY_ORDER = ("agent", "lease", "arp")
FAMILIES = ("ipv4", "ipv6", "any")
_SOURCE_CONSTANTS = dict(
    lease=("VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE", 0),
    agent=("VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT", 1),
    arp=("VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP", 2),
)
_NO_MAC = ("", "00:00:00:00:00:00")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

AGENT_NOT_CONNECTED = (
    "the guest agent of domain '%s' is not connected: is qemu-guest-agent running in the guest and does "
    "the domain have an org.qemu.guest_agent.0 channel?"
)
AGENT_NOT_CONFIGURED = (
    "domain '%s' has no guest agent channel: add <channel type='unix'><target type='virtio' "
    "name='org.qemu.guest_agent.0'/></channel> and install qemu-guest-agent in the guest"
)


def _code(exc, name):
    return libvirt is not None and exc.get_error_code() == getattr(libvirt, name, None)


def _message(exc):
    return " ".join(str(exc.get_error_message() or exc).split())


def _agent_error(exc, dom, doing, timeout=None):
    """The VirtopsError for a libvirtError of a guest agent call, and whether waiting may cure it."""
    name = dom.name()
    message = _message(exc)
    low = message.lower()
    if _code(exc, "VIR_ERR_NO_DOMAIN"):
        return translate_libvirt_error(exc, "%s in domain '%s'" % (doing, name)), False
    if _code(exc, "VIR_ERR_OPERATION_INVALID") and "not running" in low:
        # libvirt says "not running" for paused domains too: tell them apart
        try:
            state, reason = state_names(*dom.state(0)[:2])
        except libvirt.libvirtError:
            state, reason = "unknown", "unknown"
        if state in ("paused", "pmsuspended"):
            return ConflictError("domain '%s' is %s (%s): its guest agent cannot answer %s until it runs again"
                                 % (name, state, reason, doing), state=state, reason=reason), True
        return ConflictError("domain '%s' is not running (%s, %s): %s needs a running guest"
                             % (name, state, reason, doing), state=state, reason=reason), False
    if _code(exc, "VIR_ERR_AGENT_UNRESPONSIVE") and "not connected" in low:
        return BackendError(AGENT_NOT_CONNECTED % name, libvirt_error=message), True
    if "agent is not configured" in low:
        return InvalidInputError(AGENT_NOT_CONFIGURED % name, libvirt_error=message), False
    if _code(exc, "VIR_ERR_AGENT_UNRESPONSIVE") or _code(exc, "VIR_ERR_OPERATION_TIMEOUT") \
            or _code(exc, "VIR_ERR_AGENT_UNSYNCED"):
        within = " within %s s" % timeout if timeout is not None else ""
        return OperationTimeoutError(
            "the guest agent of domain '%s' did not answer %s%s (is the guest busy, hung or still "
            "booting?): %s" % (name, doing, within, message), libvirt_error=message), True
    if _code(exc, "VIR_ERR_NO_SUPPORT"):
        return InvalidInputError(
            "this libvirt driver has no guest agent support (only QEMU/KVM has): %s" % message), False
    if "unable to execute qemu agent command" in low:
        # "internal error: unable to execute QEMU agent command 'x': <the agent's reason>"
        reason = re.sub(r"^.*?unable to execute qemu agent command '[^']*': ", "", message, flags=re.IGNORECASE)
        return BackendError("%s failed in domain '%s': %s" % (doing, name, reason), libvirt_error=message), False
    return translate_libvirt_error(exc, "%s in domain '%s'" % (doing, name)), False


def _source_error(exc, dom, source):
    """``(error, transient)`` for a failed ``interfaceAddresses`` call of one source.

    A domain that is gone or not running raises at once; a paused one is a (transient) problem.
    """
    name = dom.name()
    if _code(exc, "VIR_ERR_NO_DOMAIN"):
        raise translate_libvirt_error(exc, "reading the addresses of domain '%s'" % name)
    if source == "agent" or (_code(exc, "VIR_ERR_OPERATION_INVALID") and "not running" in _message(exc).lower()):
        error, transient = _agent_error(exc, dom, "the request for its network interfaces")
        if isinstance(error, ConflictError) and not transient:
            raise error
        return error, transient
    if _code(exc, "VIR_ERR_NO_SUPPORT") or _code(exc, "VIR_ERR_ARGUMENT_UNSUPPORTED"):
        return InvalidInputError("libvirt cannot read the addresses of domain '%s' from source '%s': %s"
                                 % (name, source, _message(exc))), False
    return BackendError("reading the addresses of domain '%s' from source '%s' failed: %s"
                        % (name, source, _message(exc))), False


def _ip(text):
    try:
        return ipaddress.ip_address(str(text).split("%", maxsplit=1)[0])
    except ValueError:
        return None


def _normalize(raw, source):
    """``interfaceAddresses()`` output -> our list, one entry per MAC (interfaces without one by name)."""
    out = []
    by_key = {}
    for ifname, info in (raw or {}).items():
        if ifname == "lo":
            continue
        info = info or {}
        mac = (info.get("hwaddr") or "").lower()
        mac = None if mac in _NO_MAC else mac
        addresses = []
        for addr in info.get("addrs") or ():
            ip = _ip(addr.get("addr"))
            if ip is not None and ip.is_loopback:
                continue
            addresses.append(dict(
                type="ipv6" if addr.get("type") == getattr(libvirt, "VIR_IP_ADDR_TYPE_IPV6", 1) else "ipv4",
                address=addr.get("addr"),
                prefix=int(addr["prefix"]) if addr.get("prefix") is not None else None,
            ))
        key = mac or ("name", ifname)
        entry = by_key.get(key)
        if entry is None:
            entry = by_key[key] = dict(mac=mac, name=ifname, addresses=[], source=source)
            out.append(entry)
        elif addresses and not entry["addresses"]:
            entry["name"] = ifname  # a bridge or VLAN on the same MAC: name the one that has the address
        for address in addresses:
            if address not in entry["addresses"]:
                entry["addresses"].append(address)
    return out


def _domain_nics(dom):
    """``[(mac, interface type, bridge)]`` from the live XML, in the domain's order."""
    with libvirt_errors("reading the XML of domain '%s'" % dom.name()):
        root = _xml.parse(dom.XMLDesc(0), "domain XML")
    nics = []
    for iface in root.findall("devices/interface"):
        mac = (_xml.find_attr(iface, "mac", "address") or "").lower()
        if mac:
            nics.append((mac, iface.get("type"), _xml.find_attr(iface, "source", "bridge")))
    return nics


def _bridge_leases(conn, dom, known):
    """Leases for ``<interface type='bridge'>`` NICs on the bridge of an active libvirt network.

    libvirt's lease source only covers ``type='network'``; the network's dnsmasq still serves the
    others when they share its bridge.
    """
    wanted = dict((mac, bridge) for mac, kind, bridge in _domain_nics(dom)
                  if kind == "bridge" and bridge and mac not in known)
    if not wanted or conn is None:
        return []
    out = []
    try:
        networks = conn.listAllNetworks(getattr(libvirt, "VIR_CONNECT_LIST_NETWORKS_ACTIVE", 2))
        by_bridge = dict((net.bridgeName(), net) for net in networks)
    except libvirt.libvirtError:
        return []
    for mac, bridge in wanted.items():
        network = by_bridge.get(bridge)
        if network is None:
            continue
        try:
            leases = dhcp_leases(network) or ()
        except libvirt.libvirtError:
            continue
        addresses = []
        for lease in leases:
            ip = _ip(lease.get("ip"))
            if lease.get("mac") == mac and ip is not None:
                addresses.append(dict(type="ipv%d" % ip.version, address=lease["ip"], prefix=lease.get("prefix")))
        if addresses:
            out.append(dict(mac=mac, name=_lease_ifname(leases, mac) or bridge, addresses=addresses, source="lease"))
    return out


def _lease_ifname(leases, mac):
    for lease in leases:
        if lease.get("mac") == mac and lease.get("interface"):
            return lease["interface"]
    return None


#: how long one agent request for the interfaces may take (libvirt's own default is to wait forever)
AGENT_TIMEOUT = 10
# domain UUID -> the thread still blocked in an agent request that did not answer in time
_PENDING_AGENT = {}
_NO_ANSWER = "no answer"
_STILL_PENDING = "still pending"


def _agent_channel_state(dom):
    """``'connected'``/``'disconnected'`` from the live XML's guest agent channel, or None (no state)."""
    with libvirt_errors("reading the XML of domain '%s'" % dom.name()):
        root = _xml.parse(dom.XMLDesc(0), "domain XML")
    for target in root.findall("devices/channel/target"):
        if target.get("name") == "org.qemu.guest_agent.0":
            return target.get("state")
    return None


def _agent_addresses(dom, timeout):
    """``dom.interfaceAddresses(AGENT)``, but giving up after ``timeout`` seconds.

    libvirt blocks until the agent answers (seen: 21 s for an agent stopped 20 s, forever for a
    hung guest) unless the domain's agent timeout was changed, which we do not do behind the
    user's back.  The call runs in a daemon thread; if it does not return in time the agent is
    reported as not answering, and no second request is sent while the first is still pending.
    """
    key = dom.UUIDString()
    pending = _PENDING_AGENT.get(key)
    if pending is not None:
        if pending.is_alive():
            return _STILL_PENDING
        del _PENDING_AGENT[key]
    box = {}

    def call():
        try:
            box["raw"] = dom.interfaceAddresses(getattr(libvirt, _SOURCE_CONSTANTS["agent"][0], 1), 0)
        except Exception as exc:  # pylint: disable=broad-except
            box["error"] = exc  # raised again in the caller's thread

    thread = threading.Thread(target=call, name="virtops-agent-%s" % key)
    thread.daemon = True
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        _PENDING_AGENT[key] = thread
        return _NO_ANSWER
    if "error" in box:
        raise box["error"]
    return box["raw"]


def _read_source(conn, dom, source, agent_timeout=AGENT_TIMEOUT):
    """``(interfaces, problem)`` from one source; ``problem`` is None or ``(VirtopsError, transient)``.

    A domain that is gone or not running raises at once.
    """
    name = dom.name()
    try:
        if source == "agent":
            if _agent_channel_state(dom) == "disconnected":
                return [], (BackendError(AGENT_NOT_CONNECTED % name), True)
            raw = _agent_addresses(dom, agent_timeout)
            if raw in (_NO_ANSWER, _STILL_PENDING):
                what = ("within %g s" % agent_timeout) if raw == _NO_ANSWER else "(an earlier request is still pending)"
                return [], (OperationTimeoutError(
                    "the guest agent of domain '%s' did not answer the request for its network interfaces "
                    "%s: is the guest busy, hung or still booting?" % (name, what)), True)
        else:
            raw = dom.interfaceAddresses(getattr(libvirt, _SOURCE_CONSTANTS[source][0], _SOURCE_CONSTANTS[source][1]), 0)
    except libvirt.libvirtError as exc:
        return [], _source_error(exc, dom, source)
    items = _normalize(raw, source)
    if source == "lease":
        known = set(item["mac"] for item in items if item["addresses"])
        items.extend(_bridge_leases(conn, dom, known))
    return items, None


def _read_any(conn, dom, agent_timeout=AGENT_TIMEOUT):
    """``(interfaces, problems)``: the sources merged per MAC, and ``{source: message}`` of those that failed."""
    merged = []
    index = {}
    problems = {}
    for source in ANY_ORDER:
        items, problem = _read_source(conn, dom, source, agent_timeout)
        if problem is not None:
            problems[source] = problem[0].msg
        for item in items:
            key = item["mac"] or ("name", item["name"])
            if key not in index:
                index[key] = len(merged)
                merged.append(item)
            elif item["addresses"] and not merged[index[key]]["addresses"]:
                merged[index[key]] = item  # the first source that knows an address wins
    return merged, problems


def _check_source(source):
    if source not in SOURCES:
        raise InvalidInputError("address source must be one of %s, got %r" % (", ".join(SOURCES), source))


def interface_addresses(conn, dom, source="any", agent_timeout=AGENT_TIMEOUT):
    """The domain's interfaces and their addresses from ``source`` (see the module docstring).

    An explicit source that cannot answer raises (agent not connected: BackendError; no agent
    channel or source unsupported: InvalidInputError; agent silent for ``agent_timeout`` s:
    OperationTimeoutError); with ``any`` such a source yields nothing.
    """
    _check_source(source)
    if not _is_active(dom):
        return []
    if source == "any":
        return _read_any(conn, dom, agent_timeout)[0]
    items, problem = _read_source(conn, dom, source, agent_timeout)
    if problem is not None:
        raise problem[0]
    return items


def _usable(address, family):
    """An address that counts for waiting: of ``family``, not link-local."""
    if family != "any" and address["type"] != family:
        return False
    ip = _ip(address["address"])
    return ip is None or not (ip.is_link_local or ip.is_loopback)


def _has_family(items, mac, family):
    return any(_usable(a, family) for item in items if item["mac"] == mac for a in item["addresses"])


def _describe(items, macs, family):
    parts = []
    for mac in macs:
        found = [a for item in items if item["mac"] == mac for a in item["addresses"]]
        text = ", ".join("%s/%s" % (a["address"], a["prefix"]) for a in found) or "no address"
        ok = "" if _has_family(items, mac, family) else " (missing %s)" % family
        parts.append("%s: %s%s" % (mac, text, ok))
    return "; ".join(parts) or "nothing"


def _normalize_macs(macs):
    out = []
    for mac in macs:
        text = str(mac).strip().lower().replace("-", ":")
        if not _MAC.match(text):
            raise InvalidInputError("%r is not a MAC address (expected 52:54:00:xx:xx:xx)" % (mac,))
        out.append(text)
    return out


def wait_for_addresses(conn, dom, source="any", timeout=300, macs=None, family="ipv4",
                       sleep=time.sleep, clock=time.monotonic, agent_timeout=AGENT_TIMEOUT):
    """Poll :func:`interface_addresses` until every MAC in ``macs`` has an address of ``family``.

    ``macs`` defaults to every interface of the domain (live XML).  ``family`` is ``ipv4``,
    ``ipv6`` or ``any``; link-local addresses (169.254/16, fe80::/10) do not count.  Polls every
    0.5 s, doubling up to 5 s.  While the agent is not connected yet (booting guest) it keeps
    waiting; a permanent problem (no agent channel, unsupported source) fails at once, and so does
    the domain stopping.  On timeout: OperationTimeoutError saying what was seen.
    """
    _check_source(source)
    if family not in FAMILIES:
        raise InvalidInputError("address family must be one of %s, got %r" % (", ".join(FAMILIES), family))
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        raise InvalidInputError("timeout must be a number of seconds, got %r" % (timeout,))
    if timeout < 0:
        raise InvalidInputError("timeout must not be negative, got %s" % timeout)
    name = dom.name()
    if not _is_active(dom):
        raise ConflictError("domain '%s' is not running (%s, %s): start it before waiting for its addresses"
                            % ((name,) + state_of(dom)))
    if macs is None:
        macs = [nic[0] for nic in _domain_nics(dom)]
        if not macs:
            raise InvalidInputError("domain '%s' has no network interface: there is no address to wait for" % name)
    macs = _normalize_macs(macs)
    deadline = clock() + timeout
    interval = 0.5
    while True:
        bound = max(min(agent_timeout, deadline - clock()), 1)
        if source == "any":
            items, problems = _read_any(conn, dom, bound)
        else:
            items, problem = _read_source(conn, dom, source, bound)
            problems = {}
            if problem is not None:
                error, transient = problem
                if not transient:
                    raise error
                problems[source] = error.msg
        if all(_has_family(items, mac, family) for mac in macs):
            return items
        now = clock()
        if now >= deadline:
            seen = _describe(items, macs, family)
            notes = "".join("; %s: %s" % (src, msg) for src, msg in sorted(problems.items()))
            raise OperationTimeoutError(
                "timed out after %g s waiting for an %s address on %s of domain '%s' (source %s); seen: %s%s"
                % (timeout, family if family != "any" else "IP", "every interface" if len(macs) != 1 else macs[0],
                   name, source, seen, notes),
                interfaces=items, missing=[m for m in macs if not _has_family(items, m, family)],
            )
        sleep(min(interval, max(deadline - now, 0)))
        interval = min(interval * 2, 5.0)
        if not _is_active(dom):
            state, reason = state_of(dom)
            raise ConflictError("domain '%s' stopped (%s, %s) while waiting for its addresses" % (name, state, reason),
                                state=state, reason=reason)


def domain_ip_summary(interfaces, macs=None):
    """The first IPv4 address that is not link-local (the ``ip`` return value), or None.

    With ``macs``, only those interfaces count, in that order (guest-internal bridges such as
    docker0, reported by the agent, then never win over the domain's own NICs).
    """
    items = list(interfaces or ())
    if macs is not None:
        order = [m.lower() for m in macs]
        items = sorted((i for i in items if i.get("mac") in order), key=lambda i: order.index(i["mac"]))
    for item in items:
        for address in item.get("addresses") or ():
            if _usable(address, "ipv4"):
                return address["address"]
    return None


# -------------------------------------------------------------------------- guest agent ---


def merge_addresses(conn, dom, vm, source, agent_timeout):
    """Fill a ``vm`` model's NICs (``addresses``), ``ip`` and ``address_error`` from ``source``.

    Only the VM's own NICs get addresses (the agent also reports interfaces inside the guest, such
    as docker0); a source that cannot answer is ``address_error``, not a failure.  Returns all that
    the source reported ([] when the VM does not run, ``source`` is None or ``none``, or it failed).
    """
    vm.update(ip=None, address_error=None)
    for nic in vm["interfaces"]:
        nic["addresses"] = []
    if source in (None, "none") or not vm["active"]:
        return []
    try:
        found = interface_addresses(conn, dom, source, agent_timeout=agent_timeout)
    except NotFoundError:
        raise
    except VirtopsError as exc:
        vm["address_error"] = exc.msg
        return []
    by_mac = dict((item["mac"], item) for item in found if item["mac"])
    for nic in vm["interfaces"]:
        nic["addresses"] = list((by_mac.get(nic["mac"]) or {}).get("addresses") or [])
    vm["ip"] = domain_ip_summary(found, [n["mac"] for n in vm["interfaces"] if n["mac"]])
    return found


def require_libvirt_qemu():
    if libvirt_qemu is None:
        raise MissingDependencyError(
            "The libvirt_qemu module of the libvirt Python binding is missing on the managed node: install "
            "the 'libvirt-python' package from PyPI (or python3-libvirt from your distribution)",
            exception=LIBVIRT_QEMU_IMPORT_ERROR,
        )


def agent_command(dom, command, arguments=None, timeout=10):
    """Run one qemu-guest-agent command and return its parsed ``return`` value.

    ``timeout`` (seconds) is how long libvirt waits for the answer.  Errors: no agent channel
    (InvalidInputError), agent not connected (BackendError), no answer in time
    (OperationTimeoutError), the command failed in the guest (BackendError), domain not running
    (ConflictError).
    """
    require_libvirt_qemu()
    try:
        timeout = int(timeout)
    except (TypeError, ValueError):
        raise InvalidInputError("guest agent timeout must be a whole number of seconds, got %r" % (timeout,))
    if timeout < 1:
        raise InvalidInputError("guest agent timeout must be at least 1 s, got %s" % timeout)
    request = {"execute": command}
    if arguments is not None:
        request["arguments"] = arguments
    name = dom.name()
    doing = "guest agent command '%s'" % command
    try:
        reply = libvirt_qemu.qemuAgentCommand(dom, json.dumps(request), timeout, 0)
    except libvirt.libvirtError as exc:
        raise _agent_error(exc, dom, doing, timeout)[0]
    try:
        parsed = json.loads(reply)
    except (TypeError, ValueError):
        raise BackendError("%s in domain '%s' answered with something that is not JSON: %r"
                           % (doing, name, str(reply)[:200]))
    if not isinstance(parsed, dict) or "return" not in parsed:
        error = parsed.get("error") if isinstance(parsed, dict) else None
        desc = error.get("desc") if isinstance(error, dict) else parsed
        raise BackendError("%s failed in domain '%s': %s" % (doing, name, desc), reply=parsed)
    return parsed["return"]


def _b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def _unb64(text):
    if not text:
        return ""
    return base64.b64decode(text).decode("utf-8", "replace")


def guest_exec(dom, path, args=(), input_data=None, timeout=30, sleep=time.sleep, clock=time.monotonic):
    """Run ``path args...`` in the guest through the agent; ``{exitcode, signal, stdout, stderr, truncated}``.

    ``input_data`` (str or bytes) is the command's stdin.  Polls ``guest-exec-status`` (0.1 s,
    doubling up to 1 s) until the command ends; after ``timeout`` seconds OperationTimeoutError
    (the command keeps running in the guest: the agent cannot kill it).  Output is decoded as
    UTF-8 (invalid bytes replaced); the agent keeps at most 16 MiB of each stream (``truncated``).
    """
    arguments = {"path": str(path), "arg": [str(a) for a in args], "capture-output": True}
    if input_data is not None:
        arguments["input-data"] = _b64(input_data)
    started = agent_command(dom, "guest-exec", arguments)
    pid = started.get("pid") if isinstance(started, dict) else None
    if pid is None:
        raise BackendError("guest-exec in domain '%s' returned no pid: %r" % (dom.name(), started))
    deadline = clock() + float(timeout)
    interval = 0.1
    while True:
        status = agent_command(dom, "guest-exec-status", {"pid": pid})
        if status.get("exited"):
            return dict(
                exitcode=status.get("exitcode"),
                signal=status.get("signal"),
                stdout=_unb64(status.get("out-data")),
                stderr=_unb64(status.get("err-data")),
                truncated=bool(status.get("out-truncated") or status.get("err-truncated")),
            )
        now = clock()
        if now >= deadline:
            raise OperationTimeoutError(
                "'%s' (pid %s in domain '%s') did not finish within %g s; it is still running in the guest"
                % (path, pid, dom.name(), float(timeout)), pid=pid)
        sleep(min(interval, max(deadline - now, 0)))
        interval = min(interval * 2, 1.0)


# ------------------------------------------------------------------------ runtime facts ---

def qemu_pid_file(uri, name):
    """Where a local QEMU driver keeps the pid of domain ``name``, or None for other URIs.

    ``qemu:///system`` -> ``/run/libvirt/qemu/NAME.pid``; with ``?socket=DIR/SOCK`` (modular
    daemons, the lab) ``DIR/qemu/NAME.pid``; ``qemu:///session`` ->
    ``$XDG_RUNTIME_DIR/libvirt/qemu/run/NAME.pid``.  Remote URIs (a host, or ssh/tcp/tls) -> None.
    """
    parts = urlsplit(uri or "")
    if parts.scheme not in ("qemu", "qemu+unix") or parts.netloc:
        return None
    socket_path = (parse_qs(parts.query).get("socket") or [None])[0]
    if parts.path.rstrip("/") == "/system":
        run_dir = os.path.dirname(socket_path) if socket_path else "/run/libvirt"
        return os.path.join(run_dir, "qemu", name + ".pid")
    if parts.path.rstrip("/") == "/session":
        if socket_path:
            run_dir = os.path.dirname(socket_path)
        else:
            base = os.environ.get("XDG_RUNTIME_DIR") or os.path.join(os.path.expanduser("~"), ".cache")
            run_dir = os.path.join(base, "libvirt")
        return os.path.join(run_dir, "qemu", "run", name + ".pid")
    return None


def process_uptime(pid_file, uuid, proc="/proc"):
    """Seconds since the process in ``pid_file`` started, if it is the QEMU of domain ``uuid``; else None.

    The process must carry ``-uuid UUID`` on its command line, so a stale pid file, a reused pid
    or a pid from another pid namespace gives None rather than a wrong number.
    """
    try:
        with open(pid_file) as handle:
            pid = int(handle.read().strip())
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as handle:
            argv = handle.read().split(b"\0")
        with open(os.path.join(proc, str(pid), "stat")) as handle:
            stat = handle.read()
        with open(os.path.join(proc, "uptime")) as handle:
            boot_seconds = float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    wanted = uuid.lower().encode("ascii")
    if not any(argv[i] == b"-uuid" and argv[i + 1].lower() == wanted for i in range(len(argv) - 1)):
        return None
    try:
        # fields after "(comm)": state is field 3, starttime field 22 (clock ticks after boot)
        start_ticks = int(stat[stat.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None
    return max(0, int(boot_seconds - start_ticks / float(os.sysconf("SC_CLK_TCK"))))


def uptime_seconds(conn, dom):
    """Seconds since the domain's QEMU process started on this host, or None when that cannot be known.

    libvirt has no API for it; this reads the local QEMU driver's pid file and ``/proc`` (see
    :func:`qemu_pid_file`), so it works when the module runs on the hypervisor over a local
    ``qemu://`` URI and the user may read the pid file.  Reboots inside the guest do not reset it;
    a domain migrated or restored here counts from then.
    """
    with libvirt_errors("reading domain '%s'" % dom.name()):
        if not dom.isActive():
            return None
        uri = conn.getURI()
        uuid = dom.UUIDString()
    pid_file = qemu_pid_file(uri, dom.name())
    if pid_file is None:
        return None
    return process_uptime(pid_file, uuid)


def _port(value, active):
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if active and number > 0 else None


def graphics_facts(root, active):
    """``[{type, port, tls_port, listen}]``; ports only for a running domain that has them assigned."""
    out = []
    for node in root.findall("devices/graphics"):
        listen = node.get("listen") or node.get("socket")
        if listen is None:
            for child in node.findall("listen"):
                listen = child.get("address") or child.get("socket")
                if listen:
                    break
        out.append(dict(
            type=node.get("type"),
            port=_port(node.get("port"), active),
            tls_port=_port(node.get("tlsPort"), active),
            listen=listen,
        ))
    return out


def console_facts(root):
    """The first ``<console>`` (else ``<serial>``): ``{type, target, path, log_file}``, or None.

    ``path`` is the pty (``/dev/pts/N`` once running), file or socket path; for tcp/udp
    ``host:service``.  ``log_file`` is the ``<log file=...>`` that copies the output.
    """
    node = root.find("devices/console")
    if node is None:
        node = root.find("devices/serial")
    if node is None:
        return None
    source = node.find("source")
    path = node.get("tty") if node.get("type") == "pty" else None
    if source is not None:
        if source.get("path"):
            path = source.get("path")
        elif source.get("host") or source.get("service"):
            path = "%s:%s" % (source.get("host") or "", source.get("service") or "")
    return dict(
        type=node.get("type"),
        target=_xml.find_attr(node, "target", "type") or node.tag,
        path=path,
        log_file=_xml.find_attr(node, "log", "file"),
    )


_SOURCE_ATTRS = ("file", "dev", "dir", "name", "volume")


def disk_sizes(dom, root):
    """``{target: {capacity, allocation, physical}}`` (bytes) for every disk that has a source.

    Empty cdroms/floppies are skipped; a disk libvirt cannot measure (file missing, ...) gives
    None values instead of failing.
    """
    out = {}
    for disk in root.findall("devices/disk"):
        target = _xml.find_attr(disk, "target", "dev")
        source = disk.find("source")
        if not target or source is None or not any(source.get(a) for a in _SOURCE_ATTRS):
            continue
        try:
            capacity, allocation, physical = dom.blockInfo(target, 0)[:3]
        except libvirt.libvirtError as exc:
            if _code(exc, "VIR_ERR_NO_DOMAIN"):
                raise translate_libvirt_error(exc, "reading the disks of domain '%s'" % dom.name())
            capacity = allocation = physical = None
        out[target] = dict(capacity=capacity, allocation=allocation, physical=physical)
    return out


def _snapshot_count(dom):
    try:
        return int(dom.snapshotNum(0))
    except libvirt.libvirtError as exc:
        if _code(exc, "VIR_ERR_NO_SUPPORT"):
            return 0
        raise


def runtime_facts(conn, dom, root=None):
    """What is true of the domain now (see the keys below); ``id``, ``cpu_time_ns`` and
    ``uptime_seconds`` are None while it is not active.  ``root``: the live XML, parsed, when the
    caller has it already."""
    name = dom.name()
    state, reason = state_of(dom)
    with libvirt_errors("reading the run-time facts of domain '%s'" % name):
        active = bool(dom.isActive())
        dom_id = dom.ID() if active else -1
        info = dom.info()
        persistent = bool(dom.isPersistent())
        try:
            autostart = bool(dom.autostart())
        except libvirt.libvirtError:
            autostart = False  # transient domains on some drivers
        if root is None:
            root = _xml.parse(dom.XMLDesc(0), "domain XML")
        snapshots = _snapshot_count(dom)
        sizes = disk_sizes(dom, root)
    return dict(
        state=state,
        reason=reason,
        id=dom_id if dom_id is not None and dom_id >= 0 else None,
        active=active,
        persistent=persistent,
        autostart=autostart,
        cpu_time_ns=int(info[4]) if active else None,
        snapshot_count=snapshots,
        uptime_seconds=uptime_seconds(conn, dom) if active else None,
        graphics=graphics_facts(root, active),
        console=console_facts(root),
        disk_sizes=sizes,
    )
