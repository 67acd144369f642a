# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Placement: which hypervisor each declared VM goes to (the ``virtops.libvirt.placement`` filter).

Pure Python on plain data: the ``host`` result of ``host_info`` and the ``vms`` of ``vm_info``
per hypervisor.  Nothing here talks to libvirt.

Rules, in this order:

1. A guest that exists on a hypervisor stays there (placement is idempotent).  If it is pinned
   (``hypervisor``) elsewhere, that is an error: moving it is a migration.  A guest defined on
   several hypervisors stays where it is active; if that is not exactly one, it is an error.
2. A pinned guest that does not exist goes to its hypervisor, after the same checks as any
   other (rule 3): a pin that breaks a limit is an error, not a silent overcommit.
3. The others are placed one by one, largest memory first (then vCPUs, disk, name), each on the
   hypervisor that fits it and has the most memory left afterwards; ties go to the lower vCPU
   ratio, then the most free pool space, then the name.  A hypervisor fits when

   * ``arch`` (if given) is its CPU's or one it can run (``guest_arches``); its own comes first;
   * memory: the memory of every VM defined on it, plus the guests placed on it, stays within
     ``total * max_memory_ratio - reserve_memory_mib``; with ``max_memory_ratio <= 1`` the new
     guests must also fit in what the host has ``available`` now, less the reserve (unless
     ``available`` is 0: the driver could not tell);
   * vCPUs: the vCPUs of every VM defined on it, plus the guests placed, stay within
     ``host CPUs * max_vcpu_ratio``;
   * storage: with ``disk_size``, the pool (``pool``, else ``default``) is active on it and has
     that much space left after the guests placed before; with only ``pool``, that pool is active;
   * anti-affinity: no VM of any of the guest's groups is on it (existing VMs count: a VM that is
     not among the guests counts with the groups in its metadata key ``anti_affinity``);
   * devices: with ``requires: {pci_class: gpu, count: 1}``, the hypervisor's ``devices`` (the
     ``host_device_info`` result) has that many free PCI devices of the class (``gpu``, or a
     ``class_name`` such as ``accelerator``) that no guest placed before it took.

Everything is sorted, so the same input always gives the same placement.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.virtops.libvirt.plugins.module_utils._domain.model import CREATION_DEFAULTS, validate_name
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.normalize import memory_mib
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import human_size, parse_size

MIB = 1024 * 1024
DEFAULT_POOL = "default"
#: metadata key (``vm``'s ``metadata``) holding the anti-affinity groups of a VM that is not a declared guest
ANTI_AFFINITY_KEY = "anti_affinity"
#: states in which a VM counts as the copy that is "there" when it is defined on several hypervisors
_ACTIVE_STATES = ("running", "paused", "pmsuspended", "shutdown", "crashed", "blocked")


def _groups(value, what):
    """``'web'`` / ``['web', 'db']`` / ``'web, db'`` -> sorted list of group names."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        items = [v for v in re.split(r"[,\s]+", value) if v]
    elif isinstance(value, (list, tuple)):
        items = []
        for item in value:
            if not isinstance(item, str) or not item.strip():
                raise InvalidInputError("%s: every anti-affinity group must be a non-empty string, got %r" % (what, item))
            items.append(item.strip())
    else:
        raise InvalidInputError("%s: must be a group name or a list of them, got %r" % (what, value))
    return sorted(set(items))


def _positive_number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InvalidInputError("%s: must be a number greater than 0, got %r" % (what, value))
    return float(value)


# --------------------------------------------------------------------------- the input ---

def _guest(raw, index):
    what = "guests[%d]" % index
    if not isinstance(raw, dict):
        raise InvalidInputError("%s: must be a dictionary with at least 'name', got %r" % (what, raw))
    name = raw.get("name")
    if not isinstance(name, str):
        raise InvalidInputError("%s.name: required, and must be a string" % what)
    validate_name(name)
    what = "guest '%s'" % name
    vcpus = raw.get("vcpus")
    vcpus = CREATION_DEFAULTS["vcpus"] if vcpus is None else vcpus
    if isinstance(vcpus, str) and vcpus.strip().isdigit():
        vcpus = int(vcpus)  # a templated number
    if isinstance(vcpus, bool) or not isinstance(vcpus, int) or vcpus < 1:
        raise InvalidInputError("%s: vcpus must be a whole number of at least 1, got %r" % (what, vcpus))
    memory = raw.get("memory")
    memory = CREATION_DEFAULTS["memory"] if memory is None else memory_mib(memory, "%s: memory" % what)
    disk = raw.get("disk_size")
    disk = 0 if disk is None else parse_size(disk, "%s: disk_size" % what)
    for key in ("pool", "hypervisor", "arch"):
        if raw.get(key) is not None and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise InvalidInputError("%s: %s must be a non-empty string, got %r" % (what, key, raw[key]))
    pool = raw.get("pool") or None
    return dict(
        index=index,
        raw=raw,
        name=name,
        vcpus=vcpus,
        memory=memory,
        disk=disk,
        pool=pool if pool or not disk else DEFAULT_POOL,
        pinned=raw.get("hypervisor") or None,
        groups=_groups(raw.get("anti_affinity"), "%s: anti_affinity" % what),
        arch=raw.get("arch") or None,
        requires=_requires(raw.get("requires"), what),
    )


def _requires(value, what):
    """``requires`` of a guest -> ``dict(pci_class, count)`` or None."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - set(("pci_class", "count")) or not isinstance(value.get("pci_class"), str):
        raise InvalidInputError("%s: requires must be a dictionary with pci_class (gpu, or a class name of host_device_info "
                                "such as accelerator) and optionally count, got %r" % (what, value))
    count = value.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidInputError("%s: requires.count must be a whole number of at least 1, got %r" % (what, count))
    return dict(pci_class=value["pci_class"], count=count)


def _device_matches(device, pci_class):
    return bool(device.get("gpu")) if pci_class == "gpu" else device.get("class_name") == pci_class


def _unwrap(value, key):
    """``capacity[h].host`` / ``.vms`` may be the whole registered result: take its ``host`` / ``vms``."""
    if isinstance(value, dict) and key in value and ("changed" in value or "failed" in value):
        return value[key]
    return value


def _number(data, path, what):
    node = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise InvalidInputError("%s: has no %s; pass the 'host' result of virtops.libvirt.host_info" % (what, ".".join(path)))
        node = node[key]
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise InvalidInputError("%s: %s must be a number, got %r" % (what, ".".join(path), node))
    return node


class Hypervisor:
    """What placement knows of one hypervisor, and what it has placed there so far."""

    def __init__(self, name, entry, limits):
        what = "capacity['%s']" % name
        if not isinstance(entry, dict) or "host" not in entry or "vms" not in entry:
            raise InvalidInputError(
                "%s: must be a dictionary with 'host' (the host result of virtops.libvirt.host_info) and 'vms' "
                "(the vms result of virtops.libvirt.vm_info)" % what)
        host = _unwrap(entry["host"], "host")
        vms = _unwrap(entry["vms"], "vms")
        if not isinstance(vms, list):
            raise InvalidInputError("%s.vms: must be the list 'vms' of virtops.libvirt.vm_info, got %r" % (what, type(vms).__name__))
        self.name = name
        self.total = _number(host, ("memory", "total"), what + ".host") // MIB
        # 0 is what host_info reports when the driver cannot tell (no host has no memory at all)
        self.available = _number(host, ("memory", "available"), what + ".host") // MIB or None
        self.cpus = int(_number(host, ("cpu", "count"), what + ".host"))
        self.arch = (host.get("cpu") or {}).get("arch")
        self.arches = set(host.get("guest_arches") or {}) | set([self.arch] if self.arch else [])
        self.pools = {}
        for pool in host.get("pools") or ():
            if isinstance(pool, dict) and pool.get("active") and pool.get("name"):
                self.pools[pool["name"]] = int(pool.get("available") or 0)
        self.vms = []
        for index, vm in enumerate(vms):
            if not isinstance(vm, dict) or not isinstance(vm.get("name"), str):
                raise InvalidInputError("%s.vms[%d]: must be a VM of virtops.libvirt.vm_info (with a name)" % (what, index))
            self.vms.append(vm)
        self.memory_used = sum(int(vm.get("memory") or 0) for vm in self.vms)
        self.vcpus_used = sum(int(vm.get("vcpus") or 0) for vm in self.vms)
        self.memory_limit = int(self.total * limits["max_memory_ratio"] - limits["reserve_memory_mib"])
        self.vcpu_limit = self.cpus * limits["max_vcpu_ratio"]
        self.check_available = limits["max_memory_ratio"] <= 1.0 and self.available is not None
        self.reserve = limits["reserve_memory_mib"]
        self.members = {}  # anti-affinity group -> names of the VMs here
        self.placed = []  # guests placed here in this run
        self.placed_memory = 0
        self.disk_used = {}  # pool -> bytes for the guests placed here
        devices = entry.get("devices")
        devices = devices.get("pci_devices") if isinstance(devices, dict) else devices
        # the free PCI devices (host_device_info), None when not given; the names this run gave guests
        self.devices = None if devices is None else [d for d in devices if isinstance(d, dict) and d.get("free")]
        self.claimed = set()

    def free_devices(self, pci_class):
        return [d for d in self.devices or () if _device_matches(d, pci_class) and d.get("name") not in self.claimed]

    def add_members(self, name, groups):
        for group in groups:
            self.members.setdefault(group, [])
            if name not in self.members[group]:
                self.members[group].append(name)

    # what is left, with what this run placed here already
    def memory_free(self):
        return self.memory_limit - self.memory_used

    def vcpus_free(self):
        return self.vcpu_limit - self.vcpus_used

    def available_free(self):
        if self.available is None:
            return None
        return self.available - self.reserve - self.placed_memory

    def pool_free(self, pool):
        if pool not in self.pools:
            return None
        return self.pools[pool] - self.disk_used.get(pool, 0)

    def problems(self, guest):
        """Why ``guest`` does not fit here: a list of short reasons, empty when it fits."""
        out = []
        if guest["arch"] and guest["arch"] not in self.arches:
            out.append("arch %s not supported (host %s)" % (guest["arch"], self.arch))
        if guest["memory"] > self.memory_free():
            out.append("memory: needs %d MiB, %d MiB left of %d" % (guest["memory"], max(self.memory_free(), 0), self.memory_limit))
        elif self.check_available and guest["memory"] > self.available_free():
            out.append("memory: needs %d MiB, %d MiB available now after the %d MiB reserve"
                       % (guest["memory"], max(self.available_free(), 0), self.reserve))
        if guest["vcpus"] > self.vcpus_free():
            out.append("vCPUs: needs %d, %g left of %g" % (guest["vcpus"], max(self.vcpus_free(), 0), self.vcpu_limit))
        if guest["pool"]:
            free = self.pool_free(guest["pool"])
            if free is None:
                out.append("pool %s missing or inactive" % guest["pool"])
            elif guest["disk"] > free:
                out.append("pool %s: needs %s, %s free" % (guest["pool"], human_size(guest["disk"]), human_size(max(free, 0))))
        clash = [g for g in guest["groups"] if self.members.get(g)]
        for group in clash:
            out.append("anti-affinity %s: %s already here" % (group, ", ".join(sorted(self.members[group]))))
        need = guest["requires"]
        if need and self.devices is None:
            out.append("devices unknown (give its host_device_info result as devices)")
        elif need and len(self.free_devices(need["pci_class"])) < need["count"]:
            out.append("devices: needs %d free %s, %d free" % (need["count"], need["pci_class"], len(self.free_devices(need["pci_class"]))))
        return out

    def take(self, guest):
        self.placed.append(guest["name"])
        self.memory_used += guest["memory"]
        self.placed_memory += guest["memory"]
        self.vcpus_used += guest["vcpus"]
        if guest["pool"] and guest["disk"]:
            self.disk_used[guest["pool"]] = self.disk_used.get(guest["pool"], 0) + guest["disk"]
        self.add_members(guest["name"], guest["groups"])
        if guest["requires"]:
            taken = self.free_devices(guest["requires"]["pci_class"])[:guest["requires"]["count"]]
            self.claimed.update(d.get("name") for d in taken)

    def rank(self, guest):
        """Sort key among the hypervisors that fit ``guest``: lower is better."""
        foreign = 1 if guest["arch"] and guest["arch"] != self.arch else 0
        memory_left = self.memory_free() - guest["memory"]
        vcpu_ratio = (self.vcpus_used + guest["vcpus"]) / float(self.cpus or 1)
        pool_left = (self.pool_free(guest["pool"]) or 0) - guest["disk"] if guest["pool"] else 0
        return (foreign, -memory_left, vcpu_ratio, -pool_left, self.name)


# -------------------------------------------------------------------------- the table ---

def capacity_table(hypervisors, guest):
    """One line per hypervisor: what is used and left, and why ``guest`` does not fit there."""
    pool = guest["pool"]
    header = ["hypervisor", "arch", "memory MiB used/limit", "available MiB", "vCPUs used/limit"]
    if pool:
        header.append("pool %s free" % pool)
    header.append("why not")
    rows = [header]
    for hv in hypervisors:
        row = [hv.name, hv.arch or "?", "%d/%d" % (hv.memory_used, hv.memory_limit),
               "?" if hv.available is None else "%d" % max(hv.available_free() + hv.reserve, 0),
               "%d/%g" % (hv.vcpus_used, hv.vcpu_limit)]
        if pool:
            free = hv.pool_free(pool)
            row.append("-" if free is None else human_size(max(free, 0)))
        row.append("; ".join(hv.problems(guest)) or "fits")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _describe(guest):
    parts = ["%d MiB" % guest["memory"], "%d vCPU%s" % (guest["vcpus"], "" if guest["vcpus"] == 1 else "s")]
    if guest["disk"]:
        parts.append("%s in pool %s" % (human_size(guest["disk"]), guest["pool"]))
    elif guest["pool"]:
        parts.append("pool %s" % guest["pool"])
    if guest["arch"]:
        parts.append("arch %s" % guest["arch"])
    if guest["groups"]:
        parts.append("anti-affinity %s" % ", ".join(guest["groups"]))
    if guest["requires"]:
        parts.append("%d %s device(s)" % (guest["requires"]["count"], guest["requires"]["pci_class"]))
    return ", ".join(parts)


def _no_fit(hypervisors, guest, why, placed):
    table = capacity_table(hypervisors, guest)
    done = ", ".join("%s -> %s" % pair for pair in placed)
    raise ConflictError(
        "placement: %s guest '%s' (%s):\n%s%s"
        % (why, guest["name"], _describe(guest), table, ("\nplaced before it in this run: " + done) if done else ""),
        guest=guest["name"], table=table)


# --------------------------------------------------------------------------- placing ---

def _limits(max_vcpu_ratio, max_memory_ratio, reserve_memory_mib):
    if isinstance(reserve_memory_mib, bool) or not isinstance(reserve_memory_mib, (int, float)) or reserve_memory_mib < 0:
        raise InvalidInputError("reserve_memory_mib: must be a number of MiB, 0 or more, got %r" % (reserve_memory_mib,))
    return dict(
        max_vcpu_ratio=_positive_number(max_vcpu_ratio, "max_vcpu_ratio"),
        max_memory_ratio=_positive_number(max_memory_ratio, "max_memory_ratio"),
        reserve_memory_mib=reserve_memory_mib,
    )


def _existing(hypervisors):
    """``{vm name: [(hypervisor, vm)]}`` of every VM on every hypervisor."""
    where = {}
    for hv in hypervisors:
        for vm in hv.vms:
            where.setdefault(vm["name"], []).append((hv, vm))
    return where


def _home(guest, copies):
    """The hypervisor a guest defined on several hypervisors is on: the one where it is active."""
    if len(copies) == 1:
        return copies[0][0]
    active = [hv for hv, vm in copies if vm.get("active") or vm.get("state") in _ACTIVE_STATES]
    if len(active) == 1:
        return active[0]
    raise ConflictError(
        "placement: guest '%s' is defined on several hypervisors (%s) and %s; remove the copies that should not be there"
        % (guest["name"], ", ".join(hv.name for hv, _vm in copies),
           "active on none of them" if not active else "active on %s" % ", ".join(hv.name for hv in active)))


def place(guests, capacity, max_vcpu_ratio=4.0, max_memory_ratio=1.0, reserve_memory_mib=512):
    """``(guests with 'hypervisor' set, notes)``; see the module docstring.  Raises VirtopsError."""
    if not isinstance(guests, list):
        raise InvalidInputError("placement: the input must be a list of guests, got %s" % type(guests).__name__)
    if not isinstance(capacity, dict) or not capacity:
        raise InvalidInputError("placement: capacity must be a non-empty dictionary of hypervisor name -> {host, vms}")
    limits = _limits(max_vcpu_ratio, max_memory_ratio, reserve_memory_mib)
    hypervisors = [Hypervisor(str(name), capacity[name], limits) for name in sorted(capacity, key=str)]
    by_name = dict((hv.name, hv) for hv in hypervisors)
    specs = [_guest(raw, index) for index, raw in enumerate(guests)]
    seen = set()
    for spec in specs:
        if spec["name"] in seen:
            raise InvalidInputError("placement: guest '%s' is declared twice" % spec["name"])
        seen.add(spec["name"])
    declared = dict((spec["name"], spec) for spec in specs)
    where = _existing(hypervisors)
    notes = []

    # existing VMs: their groups count wherever they are
    for hv in hypervisors:
        for vm in hv.vms:
            spec = declared.get(vm["name"])
            groups = spec["groups"] if spec else _groups((vm.get("metadata") or {}).get(ANTI_AFFINITY_KEY),
                                                         "VM '%s' on %s: metadata %s" % (vm["name"], hv.name, ANTI_AFFINITY_KEY))
            for group in groups:
                if hv.members.get(group):
                    notes.append("anti-affinity group '%s' already has %s and %s on %s"
                                 % (group, ", ".join(hv.members[group]), vm["name"], hv.name))
            hv.add_members(vm["name"], groups)

    chosen = {}
    for spec in specs:
        if spec["pinned"] is not None and spec["pinned"] not in by_name:
            raise InvalidInputError("placement: guest '%s' is pinned to hypervisor '%s', which is not in capacity (%s)"
                                    % (spec["name"], spec["pinned"], ", ".join(sorted(by_name))))
        copies = where.get(spec["name"])
        if not copies:
            continue
        home = _home(spec, copies)
        if spec["pinned"] is not None and spec["pinned"] != home.name:
            raise ConflictError(
                "placement: guest '%s' exists on %s but is pinned to %s: migrate it (virtops.libvirt.migrate) or "
                "change its hypervisor" % (spec["name"], home.name, spec["pinned"]))
        chosen[spec["name"]] = home.name

    placed = []
    for spec in specs:
        if spec["name"] in chosen or spec["pinned"] is None:
            continue
        hv = by_name[spec["pinned"]]
        if hv.problems(spec):
            _no_fit(hypervisors, spec, "pinned hypervisor %s cannot take" % hv.name, placed)
        hv.take(spec)
        chosen[spec["name"]] = hv.name
        placed.append((spec["name"], hv.name))

    free = [s for s in specs if s["name"] not in chosen]
    free.sort(key=lambda s: (-s["memory"], -s["vcpus"], -s["disk"], s["name"]))
    for spec in free:
        fits = [hv for hv in hypervisors if not hv.problems(spec)]
        if not fits:
            _no_fit(hypervisors, spec, "no hypervisor can take", placed)
        best = min(fits, key=lambda hv: hv.rank(spec))
        best.take(spec)
        chosen[spec["name"]] = best.name
        placed.append((spec["name"], best.name))

    out = []
    for spec in specs:
        item = dict(spec["raw"])
        item["hypervisor"] = chosen[spec["name"]]
        out.append(item)
    return out, notes
