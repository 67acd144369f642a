# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The network addresses of a VM: read (:func:`interface_addresses`), waited for
(:func:`address_wait.wait_for_addresses`) and put into a VM view (:func:`merge_addresses`).

Used by ``vm``, ``vm_info`` and the inventory plugin.  Everything takes a raw ``virDomain`` (and the
``virConnect`` where the connection matters) and raises our exceptions; nothing here changes a VM.

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

import ipaddress
import threading

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors, translate_libvirt_error
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OperationTimeoutError,
    VirtopsError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.agent_errors import AGENT_NOT_CONNECTED, agent_error
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.states import error_message, has_code, is_active
from ansible_collections.virtops.libvirt.plugins.module_utils._network.leases import dhcp_leases

SOURCES = ("lease", "agent", "arp", "any")
#: the order in which ``any`` asks the sources
ANY_ORDER = ("agent", "lease", "arp")
_SOURCE_CONSTANTS = dict(
    lease=("VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE", 0),
    agent=("VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT", 1),
    arp=("VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP", 2),
)
_NO_MAC = ("", "00:00:00:00:00:00")


def _source_error(exc, dom, source):
    """``(error, transient)`` for a failed ``interfaceAddresses`` call of one source.

    A domain that is gone or not running raises at once; a paused one is a (transient) problem.
    """
    name = dom.name()
    if has_code(exc, "VIR_ERR_NO_DOMAIN"):
        raise translate_libvirt_error(exc, "reading the addresses of VM '%s'" % name)
    if source == "agent" or (has_code(exc, "VIR_ERR_OPERATION_INVALID") and "not running" in error_message(exc).lower()):
        error, transient = agent_error(exc, dom, "the request for its network interfaces")
        if isinstance(error, ConflictError) and not transient:
            raise error
        return error, transient
    if has_code(exc, "VIR_ERR_NO_SUPPORT") or has_code(exc, "VIR_ERR_ARGUMENT_UNSUPPORTED"):
        return InvalidInputError("libvirt cannot read the addresses of VM '%s' from source '%s': %s"
                                 % (name, source, error_message(exc))), False
    return BackendError("reading the addresses of VM '%s' from source '%s' failed: %s"
                        % (name, source, error_message(exc))), False


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
                type="ipv6" if addr.get("type") == flag("VIR_IP_ADDR_TYPE_IPV6", 1) else "ipv4",
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


def domain_nics(dom):
    """``[(mac, interface type, bridge)]`` from the live XML, in the domain's order."""
    with libvirt_errors("reading the XML of VM '%s'" % dom.name()):
        root = _xml.parse(dom.XMLDesc(0), "domain XML")
    nics = []
    for iface in root.findall("devices/interface"):
        mac = (_xml.find_attr(iface, "mac", "address") or "").lower()
        if mac:
            nics.append((mac, iface.get("type"), _xml.find_attr(iface, "source", "bridge")))
    return nics


def _bridge_leases(conn, dom, known, nics=None):
    """Leases for ``<interface type='bridge'>`` NICs on the bridge of an active libvirt network.

    libvirt's lease source only covers ``type='network'``; the network's dnsmasq still serves the
    others when they share its bridge.  ``nics``: :func:`domain_nics` when the caller has them.
    """
    wanted = dict((mac, bridge) for mac, kind, bridge in (domain_nics(dom) if nics is None else nics)
                  if kind == "bridge" and bridge and mac not in known)
    if not wanted or conn is None:
        return []
    out = []
    try:
        networks = conn.listAllNetworks(flag("VIR_CONNECT_LIST_NETWORKS_ACTIVE", 2))
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
    with libvirt_errors("reading the XML of VM '%s'" % dom.name()):
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
            box["raw"] = dom.interfaceAddresses(flag(*_SOURCE_CONSTANTS["agent"]), 0)
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


def read_source(conn, dom, source, agent_timeout=AGENT_TIMEOUT, nics=None):
    """``(interfaces, problem)`` from one source; ``problem`` is None or ``(VirtopsError, transient)``.

    A domain that is gone or not running raises at once.  ``nics``: see :func:`_bridge_leases`.
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
                    "the guest agent of VM '%s' did not answer the request for its network interfaces "
                    "%s: is the guest busy, hung or still booting?" % (name, what)), True)
        else:
            raw = dom.interfaceAddresses(flag(*_SOURCE_CONSTANTS[source]), 0)
    except libvirt.libvirtError as exc:
        return [], _source_error(exc, dom, source)
    items = _normalize(raw, source)
    if source == "lease":
        known = set(item["mac"] for item in items if item["addresses"])
        items.extend(_bridge_leases(conn, dom, known, nics))
    return items, None


def read_any(conn, dom, agent_timeout=AGENT_TIMEOUT, nics=None):
    """``(interfaces, problems)``: the sources merged per MAC, and ``{source: message}`` of those that failed."""
    merged = []
    index = {}
    problems = {}
    for source in ANY_ORDER:
        items, problem = read_source(conn, dom, source, agent_timeout, nics)
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


def check_source(source):
    if source not in SOURCES:
        raise InvalidInputError("address source must be one of %s, got %r" % (", ".join(SOURCES), source))


def interface_addresses(conn, dom, source="any", agent_timeout=AGENT_TIMEOUT, active=None, nics=None):
    """The domain's interfaces and their addresses from ``source`` (see the module docstring).

    An explicit source that cannot answer raises (agent not connected: BackendError; no agent
    channel or source unsupported: InvalidInputError; agent silent for ``agent_timeout`` s:
    OperationTimeoutError); with ``any`` such a source yields nothing.  ``active`` and ``nics``
    (see :func:`domain_nics`): what the caller knows already, so libvirt is not asked again.
    """
    check_source(source)
    if not (is_active(dom) if active is None else active):
        return []
    if source == "any":
        return read_any(conn, dom, agent_timeout, nics)[0]
    items, problem = read_source(conn, dom, source, agent_timeout, nics)
    if problem is not None:
        raise problem[0]
    return items


def usable(address, family):
    """An address that counts for waiting: of ``family``, not link-local."""
    if family != "any" and address["type"] != family:
        return False
    ip = _ip(address["address"])
    return ip is None or not (ip.is_link_local or ip.is_loopback)


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
            if usable(address, "ipv4"):
                return address["address"]
    return None


def merge_addresses(conn, dom, vm, source, agent_timeout, trust_view=False):
    """Fill a ``vm`` model's NICs (``addresses``), ``ip`` and ``address_error`` from ``source``.

    Only the VM's own NICs get addresses (the agent also reports interfaces inside the guest, such
    as docker0); a source that cannot answer is ``address_error``, not a failure.  Returns all that
    the source reported ([] when the VM does not run, ``source`` is None or ``none``, or it failed).
    ``trust_view``: take ``active`` and the NICs (type, bridge, MAC) from ``vm`` instead of asking
    libvirt again (the inventory has just read them: two round trips per running VM fewer).
    """
    vm.update(ip=None, address_error=None)
    for nic in vm["interfaces"]:
        nic["addresses"] = []
    if source in (None, "none") or not vm["active"]:
        return []
    known = {}
    if trust_view:
        known = dict(active=True, nics=[(n["mac"], n["type"], n["source"] if n["type"] == "bridge" else None)
                                        for n in vm["interfaces"] if n["mac"]])
    try:
        found = interface_addresses(conn, dom, source, agent_timeout=agent_timeout, **known)
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
