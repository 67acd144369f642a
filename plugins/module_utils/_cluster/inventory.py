# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the inventory plugin ``virtops.libvirt.libvirt`` reads from its hypervisors.

Nothing here knows about Ansible's inventory: :func:`list_hypervisor` returns plain,
JSON-serialisable dicts (they go into the inventory cache as they are) and
:func:`run_concurrently` runs one such listing per hypervisor in threads, giving up on a
hypervisor that does not answer in time.

Per hypervisor: one connection, one ``getAllDomainStats`` (every VM and its state), two
``listAllDomains`` calls (persistent, autostart), then per VM its saved definition (one
``XMLDesc``: nothing else has tags, disks or NICs), read by :func:`_domain.summary_from_xml` with
the helpers ``vm`` and ``vm_info`` read it with, a ``storageVolLookupByPath`` per disk path not yet
asked on that hypervisor, and, for running VMs, the addresses from
:func:`addresses.interface_addresses` (what ``vm_info`` reports).

The definition is read without ``VIR_DOMAIN_XML_SECURE``, so it holds no graphics password, and
only the keys in ``DEFINITION_KEYS`` are kept.  This module does not import ``_vm`` (and with
it cloud-init, volumes, snapshots...): ``ansible-inventory`` loads less.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import addresses as _vm_addresses
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.states import state_names

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection, libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    InvalidInputError,
    NotFoundError,
    VirtopsError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._host.facts import state_word
from ansible_collections.virtops.libvirt.plugins.module_utils._core.timeouts import timeout_seconds
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.names import VolumeNames

#: ``ip_source`` values: ``vm_info``'s sources, and ``none`` (do not read addresses at all)
IP_SOURCES = _vm_addresses.SOURCES + ("none",)

#: the keys of the domain model (``_domain.model_from_xml``) that the inventory keeps (the rest is in ``vm_info``)
DEFINITION_KEYS = _domain.SUMMARY_KEYS
#: the variables the inventory plugin sets per VM (before its ``vars_prefix``): a record's keys and two of its hypervisor
VARIABLES = DEFINITION_KEYS + (
    "guest_agent", "state", "reason", "active", "persistent", "autostart", "macs", "ip_addresses", "ip", "address_error",
    "hypervisor", "uri",
)
#: what ``variables`` may name: the variables, and ``ansible_host``
CHOOSABLE = VARIABLES + ("ansible_host",)
#: chosen variables that need the VM's definition read (``name`` and ``uuid`` come with the listing)
NEEDS_DEFINITION = tuple(k for k in DEFINITION_KEYS if k not in ("name", "uuid")) + (
    "guest_agent", "macs", "ip_addresses", "ip", "address_error", "ansible_host")
#: chosen variables that need the addresses read
NEEDS_ADDRESSES = ("interfaces", "ip_addresses", "ip", "address_error", "ansible_host")
#: what a disk / an interface carries in the inventory
DISK_KEYS = ("target", "bus", "path", "pool", "volume", "format")
INTERFACE_KEYS = ("type", "source", "model", "mac", "addresses")

#: the name of the virtio channel qemu-guest-agent talks on
AGENT_CHANNEL = "org.qemu.guest_agent.0"
#: ``guest_agent_connection`` values: which VMs get the ``virtops.libvirt.guest_agent`` connection
AGENT_CONNECTION_MODES = ("never", "without_address", "always")
#: the connection plugin the inventory hands VMs to
AGENT_CONNECTION = "virtops.libvirt.guest_agent"

_XML_INACTIVE = flag("VIR_DOMAIN_XML_INACTIVE", 2)


# ----------------------------------------------------------------------- hypervisor names ---

def name_from_uri(uri):
    """The host part of a remote URI (``qemu+ssh://root@kvm1:22/system`` -> ``kvm1``), or None."""
    try:
        host = urlsplit(uri).hostname
    except ValueError:
        return None
    return host or None


def check_options(options):
    """The listing options, checked and with defaults: ``ip_source``, ``agent_timeout``, ``read_only``,
    ``variables`` (None: every variable; else the names of ``CHOOSABLE`` to read, as a sorted list)."""
    source = options.get("ip_source") or "lease"
    if source not in IP_SOURCES:
        raise InvalidInputError("ip_source: %r is not one of %s" % (source, ", ".join(IP_SOURCES)))
    timeout = timeout_seconds(options.get("agent_timeout"), "agent_timeout", 5)
    chosen = options.get("variables")
    if chosen is not None:
        unknown = sorted(set(chosen) - set(CHOOSABLE))
        if unknown:
            raise InvalidInputError("variables: unknown %s (known: %s)" % (", ".join(unknown), ", ".join(CHOOSABLE)))
        chosen = sorted(set(chosen))
    return dict(ip_source=source, agent_timeout=timeout, read_only=bool(options.get("read_only")), variables=chosen)


def with_agent_needs(options, mode):
    """``options`` (checked) reading also what ``guest_agent_connection: mode`` decides on: whether a VM has an
    agent channel, and for ``without_address`` its addresses."""
    if mode not in AGENT_CONNECTION_MODES:
        raise InvalidInputError("guest_agent_connection: %r is not one of %s" % (mode, ", ".join(AGENT_CONNECTION_MODES)))
    chosen = options.get("variables")
    if mode == "never" or chosen is None:
        return options
    extra = ("guest_agent", "ansible_host") if mode == "without_address" else ("guest_agent",)
    return dict(options, variables=sorted(set(chosen) | set(extra)))


def agent_connection(vm, uri, mode, networks=None):
    """The variables that hand ``vm`` (a record of hypervisor ``uri``) to the guest agent connection under
    ``guest_agent_connection: mode``: none unless it has an agent channel (and, for ``without_address``,
    no address that ``ansible_host`` would get)."""
    if mode == "never" or not vm.get("guest_agent"):
        return {}
    if mode == "without_address" and first_address(vm, networks):
        return {}
    return dict(ansible_connection=AGENT_CONNECTION, ansible_libvirt_uri=uri, ansible_libvirt_vm=vm["name"])


def wants(options, names):
    """Whether ``options`` (checked) ask for any of the variables ``names``."""
    chosen = options.get("variables")
    return chosen is None or any(name in chosen for name in names)


def covers(result, options):
    """Whether a hypervisor's listing (from the cache) read every variable that ``options`` ask for."""
    read, chosen = result.get("variables"), options.get("variables")
    return read is None or (chosen is not None and set(chosen) <= set(read))


# ---------------------------------------------------------------------------- one VM ---

_STATS_STATE = flag("VIR_DOMAIN_STATS_STATE", 1)
_LIST_PERSISTENT = flag("VIR_CONNECT_LIST_DOMAINS_PERSISTENT", 4)
_LIST_AUTOSTART = flag("VIR_CONNECT_LIST_DOMAINS_AUTOSTART", 64)


def domains_and_states(conn):
    """``[(domain, (state, reason))]`` of every VM (libvirt's numbers): one ``getAllDomainStats`` call,
    which lists the VMs with their states; where the driver lacks it, ``listAllDomains`` and a
    ``state()`` per VM."""
    try:
        stats = conn.getAllDomainStats(_STATS_STATE, 0)
    except libvirt.libvirtError:
        stats = None
    if stats is not None:
        return [(dom, (values.get("state.state", 0), values.get("state.reason", 0))) for dom, values in stats]
    with libvirt_errors("listing VMs"):
        domains = conn.listAllDomains(0)
    out = []
    for dom in domains:
        try:
            out.append((dom, tuple(dom.state(0)[:2])))
        except libvirt.libvirtError:
            pass  # removed while we looked: left out
    return out


def _uuids(conn, flags):
    with libvirt_errors("listing VMs"):
        return set(d.UUIDString() for d in conn.listAllDomains(flags))


def first_address(vm, networks=None):
    """The address ``ansible_host`` gets: in the first of ``networks`` that has one, else the VM's ``ip``,
    else its first global IPv6 address; None when no address is known."""
    own = [a for nic in vm["interfaces"] for a in nic.get("addresses") or ()]
    parsed = []
    for address in own:
        try:
            parsed.append((ipaddress.ip_address(address["address"].split("%")[0]), address["address"]))
        except ValueError:
            continue
    for network in networks or ():
        for ip, text in parsed:
            if ip.version == network.version and ip in network:
                return text
    if networks:
        return None
    if vm.get("ip"):
        return vm["ip"]
    for ip, text in parsed:
        if ip.version == 6 and not (ip.is_link_local or ip.is_loopback):
            return text
    return None


def vm_record(conn, dom, state, persistent, autostart, options, volumes=None):
    """One VM as the inventory keeps it (see ``VARIABLES``), or None if it vanished meanwhile.

    ``volumes``: a :class:`VolumeNames` of the hypervisor, shared by its VMs (each path asked once).
    With ``options["variables"]``, only what they need is read, and the record has only them (and
    ``name`` and ``uuid``; ``interfaces`` and ``ip`` for ``ansible_host``).
    """
    libvirt_state, reason = state_names(*state)
    vm = dict(name=dom.name(), uuid=dom.UUIDString(), state=state_word(libvirt_state), reason=reason,
              active=dom.ID() not in (None, -1), persistent=persistent, autostart=autostart)
    if wants(options, NEEDS_DEFINITION):
        try:
            text = dom.XMLDesc(_XML_INACTIVE)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == flag("VIR_ERR_NO_DOMAIN", 42):
                return None
            with libvirt_errors("reading VM '%s'" % dom.name()):
                raise
        root = _xml.parse(text, "domain XML of %s" % dom.name())
        model = _domain.summary_from_xml(root)
        if wants(options, ("disks",)):
            (volumes or VolumeNames(conn)).fill(model["disks"])
        vm.update((key, model[key]) for key in DEFINITION_KEYS)
        vm["guest_agent"] = root.find("devices/channel/target[@name='%s']" % AGENT_CHANNEL) is not None
        vm["disks"] = [dict((k, d[k]) for k in DISK_KEYS) for d in model["disks"]]
        vm["interfaces"] = [dict((k, n[k]) for k in INTERFACE_KEYS if k != "addresses") for n in model["interfaces"]]
        vm["macs"] = [n["mac"] for n in vm["interfaces"] if n["mac"]]
        try:
            _addresses(conn, dom, vm, options if wants(options, NEEDS_ADDRESSES) else dict(options, ip_source="none"))
        except NotFoundError:
            return None  # removed while we looked
        vm["ip_addresses"] = [a["address"] for nic in vm["interfaces"] for a in nic["addresses"]]
    chosen = options.get("variables")
    if chosen is None:
        return vm
    keep = set(chosen) | set(("name", "uuid")) | (set(("interfaces", "ip")) if "ansible_host" in chosen else set())
    return dict((k, v) for k, v in vm.items() if k in keep)


def _addresses(conn, dom, vm, options):
    """Each NIC's ``addresses``, the VM's ``ip`` and ``address_error``, as ``vm_info`` reports them."""
    _vm_addresses.merge_addresses(conn, dom, vm, options["ip_source"], options["agent_timeout"], trust_view=True)


# -------------------------------------------------------------------- one hypervisor ---

def list_hypervisor(uri, options, name=None, connection_class=Connection):
    """Every VM of the hypervisor at ``uri``: ``{name, uri, hostname, vms, seconds}``.

    ``name`` is the hypervisor's name in the inventory; without one, the host of a remote URI,
    else the host name libvirt reports.  VMs are sorted by name.  Raises VirtopsError (the
    connection failed, listing failed); a VM that disappears while it is read is left out.
    """
    started = time.monotonic()
    options = check_options(options)
    connection = connection_class(uri, read_only=options["read_only"])
    conn = connection.open()
    try:
        with libvirt_errors("reading the host name of %s" % uri):
            hostname = conn.getHostname()
        listed = domains_and_states(conn)
        persistent = _uuids(conn, _LIST_PERSISTENT) if wants(options, ("persistent",)) else set()
        autostart = _uuids(conn, _LIST_AUTOSTART) if wants(options, ("autostart",)) else set()
        volumes = VolumeNames(conn)
        vms = []
        for dom, state in listed:
            uuid = dom.UUIDString()
            vm = vm_record(conn, dom, state, uuid in persistent, uuid in autostart, options, volumes)
            if vm is not None:
                vms.append(vm)
    finally:
        connection.close()
    vms.sort(key=lambda v: (v["name"], v["uuid"]))
    return dict(
        name=name or name_from_uri(uri) or hostname,
        uri=uri,
        hostname=hostname,
        vms=vms,
        variables=options["variables"],
        seconds=round(time.monotonic() - started, 3),
    )


def check_uris_item(item, what):
    """An item of the plugin's ``uris`` (a URI, or ``{uri, name}``), checked, as ``{uri, name}``."""
    if isinstance(item, str):
        item = dict(uri=item)
    if not isinstance(item, dict):
        raise InvalidInputError("%s: must be a URI or a dictionary with uri and name" % what)
    unknown = sorted(set(item) - set(("uri", "name")))
    if unknown:
        raise InvalidInputError("%s: unknown keys %s (only uri and name)" % (what, ", ".join(unknown)))
    if not isinstance(item.get("uri"), str) or not item["uri"].strip():
        raise InvalidInputError("%s: uri must be a non-empty string" % what)
    name = item.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise InvalidInputError("%s: name must be a non-empty string" % what)
    return dict(uri=item["uri"], name=name)


def check_networks(texts):
    """The plugin's ``ansible_host_networks`` (CIDR texts) as ``ipaddress`` networks."""
    out = []
    for index, text in enumerate(texts or []):
        try:
            out.append(ipaddress.ip_network(str(text), strict=False))
        except ValueError as exc:
            raise InvalidInputError("ansible_host_networks[%d]: %s" % (index, exc))
    return out


#: the keys of an item of the plugin's ``filters``
FILTER_KEYS = ("include", "exclude")


def check_filters(items):
    """The plugin's ``filters``, checked: ``[(include|exclude, conditional or bool)]``."""
    out = []
    for index, item in enumerate(items or []):
        what = "filters[%d]" % index
        if not isinstance(item, dict) or len(item) != 1:
            raise InvalidInputError("%s: must be a dictionary with one key, include or exclude" % what)
        key, value = list(item.items())[0]
        if key not in FILTER_KEYS:
            raise InvalidInputError("%s: the key must be include or exclude, not %r" % (what, key))
        if not isinstance(value, (str, bool)):
            raise InvalidInputError("%s.%s: must be a conditional (a string) or a boolean" % (what, key))
        out.append((key, value))
    return out


def problems(results):
    """What to report of :func:`gather`'s ``results``: one line per hypervisor that was not listed.
    Two hypervisors listed under one name are an InvalidInputError."""
    out = []
    names = {}
    for result in results:
        if result.get("error"):
            who = "%s (%s)" % (result["name"], result["uri"]) if result.get("name") else result["uri"]
            out.append("hypervisor %s was not listed: %s" % (who, result["error"]))
            continue
        other = names.get(result["name"])
        if other is not None:
            raise InvalidInputError(
                "the hypervisors %s and %s are both named %r: give each a name (uris: [{uri: ..., name: ...}])"
                % (other, result["uri"], result["name"]))
        names[result["name"]] = result["uri"]
    return out


def host_names(results, naming, reserved=()):
    """``({(hypervisor, uuid): inventory host name}, {name: [its hosts]})`` after the plugin's ``host_naming``
    (``name``, ``name_at_hypervisor``, ``uuid``): a name on two hypervisors, or ``reserved`` (a hypervisor
    host's), becomes ``NAME@HYPERVISOR``; the second dict has those that collided."""
    key = (lambda vm: vm["uuid"]) if naming == "uuid" else (lambda vm: vm["name"])
    counts = Counter(key(vm) for result in results for vm in result["vms"])
    names = {}
    collided = {}
    for result in results:
        for vm in result["vms"]:
            base = key(vm)
            clash = counts[base] > 1 or (naming != "uuid" and base in reserved)
            if naming == "name_at_hypervisor" or clash:
                name = "%s@%s" % (base, result["name"])
                if clash:
                    collided.setdefault(base, []).append(name)
            else:
                name = base
            names[(result["name"], vm["uuid"])] = name
    return names, collided


# ---------------------------------------------------------------------- concurrency ---

def run_concurrently(jobs, workers=8, timeout=60, clock=time.monotonic):
    """Run ``jobs`` (a list of callables) in at most ``workers`` threads at a time.

    Returns one outcome per job, in order: ``("ok", value)``, ``("error", exception)`` or
    ``("timeout", seconds)`` for a job still running ``timeout`` seconds after it started.  Such a
    job is abandoned: its daemon thread may stay blocked (in a libvirt call to a host that does
    not answer) until the process exits, and its result, if it ever comes, is dropped.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidInputError("workers must be a positive integer, got %r" % (workers,))
    timeout = timeout_seconds(timeout, "timeout", 60)
    cond = threading.Condition()
    outcomes = [None] * len(jobs)
    waiting = list(range(len(jobs)))
    running = {}  # job index -> start time

    def run(index):
        try:
            outcome = ("ok", jobs[index]())
        except Exception as exc:  # pylint: disable=broad-except
            outcome = ("error", exc)  # handed to the caller's thread
        with cond:
            if index in running:  # not abandoned
                del running[index]
                outcomes[index] = outcome
            cond.notify_all()

    with cond:
        while waiting or running:
            while waiting and len(running) < workers:
                index = waiting.pop(0)
                running[index] = clock()
                thread = threading.Thread(target=run, args=(index,), name="virtops-inventory-%d" % index)
                thread.daemon = True
                thread.start()
            now = clock()
            for index, started in list(running.items()):
                if now - started >= timeout:
                    del running[index]
                    outcomes[index] = ("timeout", timeout)
            if running:
                deadline = min(running.values()) + timeout
                cond.wait(max(min(deadline - clock(), 1.0), 0.01))
    return outcomes


def gather(hypervisors, options, workers=8, timeout=60, connection_class=Connection):
    """List every hypervisor of ``hypervisors`` (``[{name, uri}]``) concurrently.

    Returns one dict per hypervisor, in order: what :func:`list_hypervisor` returns, or
    ``{name, uri, error, vms: []}`` for one that failed or did not answer within ``timeout`` s.
    """
    options = check_options(options)

    def job(item):
        return lambda: list_hypervisor(item["uri"], options, item.get("name"), connection_class)

    outcomes = run_concurrently([job(h) for h in hypervisors], workers=workers, timeout=timeout)
    results = []
    for item, (kind, value) in zip(hypervisors, outcomes):
        if kind == "ok":
            results.append(value)
            continue
        if kind == "timeout":
            error = "no answer from %s within %s s" % (item["uri"], value)
        elif isinstance(value, VirtopsError):
            error = value.msg
        else:
            error = "%s: %s" % (type(value).__name__, value)
        results.append(dict(name=item.get("name") or name_from_uri(item["uri"]), uri=item["uri"],
                            hostname=None, vms=[], error=error))
    return results
