# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``vm_info``: the VMs of a hypervisor, filtered, each as ``vm`` returns it plus its run-time facts.

One entry is :func:`view.vm_view` of the model of the VM's *persistent* definition (what ``vm``
returns and compares) with the facts of :func:`_runtime.runtime_facts` merged in:

* top level: ``state`` (``vm``'s words: ``running``, ``paused``, ``stopped``, ...), ``reason``,
  ``id``, ``active``, ``persistent``, ``autostart``, ``cpu_time_ns``, ``uptime_seconds``,
  ``snapshot_count``, ``console`` and ``displays`` (the graphics of the running domain with the
  ports libvirt assigned; ``graphics`` stays the definition, ``port: -1`` meaning automatic);
* each disk: ``size`` (capacity, as ``vm`` has it), ``allocation`` and ``physical`` in bytes; disks and
  CD-ROMs: ``pool`` and ``volume`` of their file (``_volume_names``, as ``vm`` fills them);
* each interface: ``target`` (the host device, ``vnet0``, while it runs; the definition's, usually
  None, while it does not) and, with addresses,
  ``addresses``; the VM gets ``addresses`` (every interface the source reports, guest-internal
  ones included) and ``ip``, as ``vm`` returns them with ``wait_for_ip``;
* with ``guest_info``: ``guest`` (:mod:`.guest_facts`, through the agent) and ``guest_error``.
* with ``statistics``: ``statistics`` of each running VM over ``interval`` seconds (:mod:`.stats`).

The definition is read without ``VIR_DOMAIN_XML_SECURE``, so libvirt leaves graphics passwords
out of it; :func:`view.vm_view` drops the (then empty) password key.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import addresses as _addresses
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import runtime_facts as _runtime
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.guest_facts import guest_facts
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import stats as _stats

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_vm
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._host.facts import run_state, state_word
from ansible_collections.virtops.libvirt.plugins.module_utils._core.timeouts import timeout_seconds
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.view import vm_view
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.names import fill_volume_names

#: what the ``state`` filter accepts: ``vm``'s run states and libvirt's rarer ones
STATE_FILTERS = ("running", "paused", "stopped", "shutdown", "crashed", "pmsuspended", "nostate")
#: the agent is asked for at most this long per VM (seconds) unless ``agent_timeout`` says otherwise
AGENT_TIMEOUT = 5

_XML_INACTIVE = flag("VIR_DOMAIN_XML_INACTIVE", 2)


def _options(params):
    """The filters and switches of ``params``, checked."""
    name = params.get("name")
    pattern = params.get("name_pattern")
    if name is not None and pattern is not None:
        raise InvalidInputError("name and name_pattern are mutually exclusive")
    if name is not None:
        _domain.validate_name(name)
    states = params.get("state")
    for state in states or ():
        if state not in STATE_FILTERS:
            raise InvalidInputError("state: %r is not one of %s" % (state, ", ".join(STATE_FILTERS)))
    source = params.get("ip_source") or "lease"
    if source not in _addresses.SOURCES:
        raise InvalidInputError("ip_source: %r is not one of %s" % (source, ", ".join(_addresses.SOURCES)))
    timeout = timeout_seconds(params.get("agent_timeout"), "agent_timeout", AGENT_TIMEOUT)
    addresses = params.get("addresses")
    return dict(
        name=name,
        pattern=pattern,
        states=set(states) if states else None,
        tags=set(str(t) for t in params.get("tags") or ()),
        addresses=True if addresses is None else bool(addresses),
        ip_source=source,
        agent_timeout=timeout,
        xml=bool(params.get("xml")),
        guest_info=bool(params.get("guest_info")),
        statistics=bool(params.get("statistics")),
        interval=timeout_seconds(params.get("interval"), "interval", 1),
    )


def _definition_xml(dom):
    """The persistent definition (the live one of a transient domain), never with secrets."""
    if dom.isPersistent():
        return dom.XMLDesc(_XML_INACTIVE)
    return dom.XMLDesc(0)


def _without_passwords(text, root):
    """``text``, or, if a ``passwd`` attribute slipped through anyway, ``root`` without any."""
    found = root.xpath("//*[@passwd]")
    if not found:
        return text
    for node in found:
        del node.attrib["passwd"]
    return _xml.to_string(root, pretty=True)


def _merge_runtime(vm, facts, live):
    """Put :func:`_runtime.runtime_facts` into the ``vm_view`` dict ``vm`` (in place)."""
    vm.update(
        state=state_word(facts["state"]),
        reason=facts["reason"],
        id=facts["id"],
        active=facts["active"],
        persistent=facts["persistent"],
        autostart=facts["autostart"],
        cpu_time_ns=facts["cpu_time_ns"],
        uptime_seconds=facts["uptime_seconds"],
        snapshot_count=facts["snapshot_count"],
        console=facts["console"],
        displays=facts["graphics"],
    )
    sizes = facts["disk_sizes"]
    for disk in vm["disks"]:
        size = sizes.get(disk["target"]) or {}
        disk.update(size=size.get("capacity"), allocation=size.get("allocation"), physical=size.get("physical"))
    if live is not None:
        live_targets = dict((nic["mac"], nic["target"]) for nic in live["interfaces"] if nic["mac"])
        for nic in vm["interfaces"]:
            nic["target"] = live_targets.get(nic["mac"])


def _merge_addresses(conn, dom, vm, opts):
    """``addresses``/``ip`` of the VM and per interface; a source that cannot answer is ``address_error``."""
    vm["addresses"] = _addresses.merge_addresses(conn, dom, vm, opts["ip_source"], opts["agent_timeout"])


def vm_facts(conn, dom, opts, vcpus=None):
    """One VM as ``vm_info`` returns it, or None when it does not have every tag of ``opts['tags']``.
    ``vcpus``: a dict that gets ``{uuid: vCPUs}`` of the VM while it runs (for the statistics)."""
    name = dom.name()
    with libvirt_errors("reading VM '%s'" % name):
        text = _definition_xml(dom)
    root = _xml.parse(text, "domain XML of %s" % name)
    model = _domain.model_from_xml(root)
    if not opts["tags"] <= set(model["tags"]):
        return None
    fill_volume_names(conn, model)
    with libvirt_errors("reading VM '%s'" % name):
        live_root = _xml.parse(dom.XMLDesc(0), "live domain XML of %s" % name)
    facts = _runtime.runtime_facts(conn, dom, live_root)
    live = _domain.model_from_xml(live_root) if facts["active"] else None
    vm = vm_view(model)
    if live is not None and vcpus is not None:
        vcpus[vm["uuid"]] = live.get("vcpus")
    _merge_runtime(vm, facts, live)
    if opts["addresses"]:
        _merge_addresses(conn, dom, vm, opts)
    if opts["xml"]:
        vm["xml"] = _without_passwords(text, root)
    if opts["guest_info"]:
        vm["guest"], vm["guest_error"] = guest_facts(dom)
    return vm


def _still_there(conn, dom):
    try:
        conn.lookupByUUIDString(dom.UUIDString())
    except libvirt.libvirtError:
        return False
    return True


def _domains(conn, opts):
    if opts["name"] is not None:
        dom = find_vm(conn, opts["name"])
        if dom is None:
            with libvirt_errors("listing VMs"):
                names = sorted(d.name() for d in conn.listAllDomains(0))
            raise NotFoundError("VM '%s' does not exist; existing VMs: %s" % (opts["name"], ", ".join(names) or "none"),
                                vms=[])
        return [dom]
    with libvirt_errors("listing VMs"):
        domains = conn.listAllDomains(0)
    if opts["pattern"] is not None:
        domains = [d for d in domains if fnmatch.fnmatchcase(d.name(), opts["pattern"])]
    return domains


def gather_vm_info(ctx):
    """``vm_info``: every VM, or the one named, that passes the filters; sorted by name."""
    conn = ctx.conn
    opts = _options(ctx.params)
    vms, vcpus = [], {}
    first = _stats.sample(conn) if opts["statistics"] else None
    for dom in _domains(conn, opts):
        try:
            if opts["states"] is not None:
                with libvirt_errors("reading the state of VM '%s'" % dom.name()):
                    if run_state(dom) not in opts["states"]:
                        continue
            vm = vm_facts(conn, dom, opts, vcpus)
        except NotFoundError:
            if _still_there(conn, dom):
                raise
            continue  # removed while we looked
        if vm is not None:
            vms.append(vm)
    if first is not None:
        _stats.add_statistics(conn, vms, first, opts["interval"], vcpus)
    vms.sort(key=lambda v: v["name"])
    return dict(changed=False, vms=vms)
