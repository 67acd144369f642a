# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""CPU and memory tuning of a ``vm``: ``pinning`` (``<cputune>`` vcpupin and emulatorpin), ``numa``
(guest NUMA cells, ``<cpu><numa>``) and ``hugepages`` (``<memoryBacking><hugepages>``).

Each option has three faces: module parameters -> model (``normalize_*``, here), domain XML -> model
(:func:`.model_tuning.read_tuning`) and model -> XML (:func:`apply_tuning`, here); and pins are applied to a running
guest by :func:`plan_live_pins`.  CPU sets use libvirt's syntax (``0-3,^2,6``) and are kept in the
canonical form libvirt writes back (``0-1,3,6``), so a set compares equal however it was spelled.

Model values (``None``: not specified, never compared):

* ``pinning``: ``dict(vcpus=[dict(vcpu=0, cpuset='0-1')...] sorted by vcpu, emulator='2-3' or '')``;
  ``''`` means "not pinned"; the vcpus list, once given, is every pin.
* ``numa``: ``[dict(cpus='0-1', memory=MiB)...]``, cell ``i`` has id ``i``; ``[]``: no NUMA cells.
* ``hugepages``: ``'none'``, ``'default'`` (the host's default page size) or a size (``'2MiB'``, ``'1GiB'``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import parse_size
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.model_tuning import format_page_size

KIB = 1024
_CPUSET_PART = re.compile(r"^(\^)?(\d+)(?:-(\d+))?$")
#: the most CPUs a set may name (libvirt's own limit is far above any host)
MAX_CPU = 4095


# --- CPU sets -----------------------------------------------------------------------------------


def parse_cpuset(value, what):
    """libvirt CPU set syntax (``'0-3,^2,6'``) -> sorted tuple of CPU numbers; InvalidInputError if bad."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError("%s: %r is not a CPU set such as 0-3,^2,6" % (what, value))
    cpus, excluded = set(), set()
    for part in value.replace(" ", "").split(","):
        match = _CPUSET_PART.match(part)
        if not match:
            raise InvalidInputError("%s: %r is not a CPU set such as 0-3,^2,6 (bad part %r)" % (what, value, part))
        low = int(match.group(2))
        high = int(match.group(3)) if match.group(3) is not None else low
        if high < low or high > MAX_CPU:
            raise InvalidInputError("%s: %r has the range %r, which is empty or above %d" % (what, value, part, MAX_CPU))
        (excluded if match.group(1) else cpus).update(range(low, high + 1))
        if match.group(1) and match.group(3) is not None:
            raise InvalidInputError("%s: %r: an exclusion (^) names one CPU, not a range" % (what, value))
    result = tuple(sorted(cpus - excluded))
    if not result:
        raise InvalidInputError("%s: %r names no CPU" % (what, value))
    return result


def format_cpuset(cpus):
    """Sorted CPU numbers -> libvirt's canonical text (``(0, 1, 2, 5)`` -> ``'0-2,5'``)."""
    ranges = []
    for cpu in sorted(cpus):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(str(low) if low == high else "%d-%d" % (low, high) for low, high in ranges)


def canonical_cpuset(value, what):
    return format_cpuset(parse_cpuset(value, what))


def cpu_map(cpuset, host_cpus):
    """The tuple of booleans ``pinVcpuFlags``/``pinEmulator`` take for ``cpuset`` on a host of ``host_cpus`` CPUs."""
    cpus = set(parse_cpuset(cpuset, "cpuset"))
    return tuple(index in cpus for index in range(host_cpus))


# --- parameters -> model ------------------------------------------------------------------------


def normalize_pinning(pinning):
    if not pinning:
        return None
    vcpus = pinning.get("vcpus")
    emulator = pinning.get("emulator")
    out = dict(vcpus=None, emulator=None)
    if vcpus is not None:
        seen = {}
        for index, pin in enumerate(vcpus):
            what = "pinning.vcpus[%d]" % index
            vcpu = pin.get("vcpu")
            if isinstance(vcpu, bool) or not isinstance(vcpu, int) or vcpu < 0:
                raise InvalidInputError("%s.vcpu: must be a vCPU number (0 or more), got %r" % (what, vcpu))
            if vcpu in seen:
                raise InvalidInputError("%s.vcpu: vCPU %d is pinned by pinning.vcpus[%d] already" % (what, vcpu, seen[vcpu]))
            seen[vcpu] = index
        out["vcpus"] = sorted((dict(vcpu=pin["vcpu"], cpuset=canonical_cpuset(pin.get("cpuset"), "pinning.vcpus[%d].cpuset" % i))
                               for i, pin in enumerate(vcpus)), key=lambda pin: pin["vcpu"])
    if emulator is not None:
        out["emulator"] = "" if emulator == "" else canonical_cpuset(emulator, "pinning.emulator")
    return out


def normalize_numa(cells, memory_mib):
    """``numa`` -> cells ``dict(cpus, memory)``; ``memory_mib(value, what)`` parses a memory size in MiB."""
    if cells is None:
        return None
    out, owner = [], {}
    for index, cell in enumerate(cells):
        what = "numa[%d]" % index
        cpus = parse_cpuset(cell.get("cpus"), what + ".cpus")
        for cpu in cpus:
            if cpu in owner:
                raise InvalidInputError("%s.cpus: vCPU %d is in numa[%d] already; each vCPU belongs to one cell" % (what, cpu, owner[cpu]))
            owner[cpu] = index
        if cell.get("memory") is None:
            raise InvalidInputError("%s.memory: each NUMA cell needs its memory" % what)
        out.append(dict(cpus=format_cpuset(cpus), memory=memory_mib(cell["memory"], what + ".memory")))
    return out


def check_numa(model, current):
    """A VM's NUMA cells against its vCPUs and memory (the model before creation defaults; ``current``
    None for a new VM): every vCPU in exactly one cell, and the memory the sum of the cells.

    libvirt sets a VM's (maximum) memory to the sum of its cells: a ``max_memory`` that differs would
    never stay, so it is refused; when it is not given it becomes that sum (and ``memory`` too, for a
    new VM or one that has more).
    """
    cells = model.get("numa")
    if not cells:
        return
    current = current or {}
    max_vcpus = max_vcpu_count(model, current)
    cpus = set()
    for cell in cells:
        cpus.update(parse_cpuset(cell["cpus"], "numa"))
    if cpus != set(range(max_vcpus)):
        raise InvalidInputError("numa: the cells hold vCPUs %s, but the VM has vCPUs %s: each vCPU must be in exactly "
                                "one cell" % (format_cpuset(cpus), format_cpuset(range(max_vcpus))))
    total = sum(cell["memory"] for cell in cells)
    if model.get("max_memory") is not None and model["max_memory"] != total:
        raise InvalidInputError("numa: the cells hold %d MiB, but max_memory is %d MiB; libvirt makes the VM's memory the "
                                "sum of its cells" % (total, model["max_memory"]))
    if model.get("memory") is not None and model["memory"] > total:
        raise InvalidInputError("numa: the cells hold %d MiB, less than memory (%d MiB); libvirt makes the VM's memory the "
                                "sum of its cells" % (total, model["memory"]))
    model["max_memory"] = total
    if model.get("memory") is None and (not current or (current.get("memory") or 0) > total):
        model["memory"] = total


def max_vcpu_count(model, current):
    """The VM's maximum vCPU count after this run (as ``codec_write`` sets it; 1 for a new VM that names none)."""
    if model.get("max_vcpus") is not None:
        return model["max_vcpus"]
    cpu = model.get("cpu") or {}
    if not current and cpu.get("sockets"):
        return cpu["sockets"] * cpu["cores"] * cpu["threads"]
    return max((current or {}).get("max_vcpus") or 0, model.get("vcpus") or 0) or 1


def check_pins(model, current, host_cpus):
    """Pinned vCPUs exist in the VM, pinned host CPUs on the host (``host_cpus``: its CPU count, None: unknown)."""
    pinning = model.get("pinning")
    if not pinning:
        return
    max_vcpus = max_vcpu_count(model, current)
    for index, pin in enumerate(pinning.get("vcpus") or []):
        if pin["vcpu"] >= max_vcpus:
            raise InvalidInputError("pinning.vcpus[%d].vcpu: the VM has vCPUs 0-%d, not %d" % (index, max_vcpus - 1, pin["vcpu"]))
    if host_cpus is None:
        return
    sets = [("pinning.vcpus[%d].cpuset" % i, p["cpuset"]) for i, p in enumerate(pinning.get("vcpus") or [])]
    if pinning.get("emulator"):
        sets.append(("pinning.emulator", pinning["emulator"]))
    for what, cpuset in sets:
        beyond = [cpu for cpu in parse_cpuset(cpuset, what) if cpu >= host_cpus]
        if beyond:
            raise InvalidInputError("%s: the host has CPUs 0-%d; %s is not one of them" % (what, host_cpus - 1, format_cpuset(beyond)))


def normalize_hugepages(value):
    """``'none'``, ``'default'`` or a page size (``'2M'``, ``'2MiB'``, ``2048`` KiB is not guessed: units needed)."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() in ("none", "default"):
        return text.lower()
    if text.isdigit():
        raise InvalidInputError("hugepages: %r needs a unit (2MiB, 1GiB), or none, or default" % value)
    return format_page_size(parse_size(text, "hugepages", allow_zero=False))


def page_size_kib(size):
    return parse_size(size, "hugepages") // KIB


# --- model -> XML -------------------------------------------------------------------------------

_CPUTUNE_ORDER = ("shares", "period", "quota", "global_period", "global_quota", "emulator_period", "emulator_quota",
                  "iothread_period", "iothread_quota", "vcpupin", "emulatorpin", "iothreadpin", "emulatorsched",
                  "vcpusched", "iothreadsched", "cachetune", "memorytune")
_MEMORY_BACKING_ORDER = ("hugepages", "nosharepages", "locked", "source", "access", "allocation", "discard")
_CPU_ORDER = ("model", "vendor", "topology", "cache", "maxphysaddr", "feature", "numa")


def apply_tuning(root, model, child, place, drop):
    """Write ``pinning``, ``numa`` and ``hugepages`` of ``model`` into ``root`` (the placement helpers of
    ``codec_devices`` are passed in: ``child(parent, tag, order)``, ``place(parent, node, order)``, ``drop``)."""
    pinning = model.get("pinning")
    if pinning:
        _set_pins(root, pinning, child, place, drop)
    if model.get("numa") is not None:
        _set_numa(root, model["numa"], child, drop)
    if model.get("hugepages") is not None:
        _set_hugepages(root, model["hugepages"], child, place, drop)


def _set_pins(root, pinning, child, place, drop):
    cputune = root.find("cputune")
    if cputune is None and not pinning.get("vcpus") and not pinning.get("emulator"):
        return
    cputune = child(root, "cputune")
    if pinning.get("vcpus") is not None:
        drop(cputune, "vcpupin")
        for pin in pinning["vcpus"]:
            place(cputune, _xml.element("vcpupin", attrs={"vcpu": pin["vcpu"], "cpuset": pin["cpuset"]}), _CPUTUNE_ORDER)
    if pinning.get("emulator") is not None:
        drop(cputune, "emulatorpin")
        if pinning["emulator"]:
            place(cputune, _xml.element("emulatorpin", attrs={"cpuset": pinning["emulator"]}), _CPUTUNE_ORDER)
    if len(cputune) == 0 and not cputune.attrib:
        root.remove(cputune)


def _set_numa(root, cells, child, drop):
    cpu = root.find("cpu")
    if not cells:
        if cpu is not None:
            drop(cpu, "numa")
            if len(cpu) == 0 and not cpu.attrib:
                root.remove(cpu)
        return
    cpu = child(root, "cpu")
    drop(cpu, "numa")
    numa = child(cpu, "numa", _CPU_ORDER)
    for index, cell in enumerate(cells):
        _xml.sub(numa, "cell", attrs={"id": index, "cpus": cell["cpus"], "memory": cell["memory"] * 1024, "unit": "KiB"})


def _set_hugepages(root, hugepages, child, place, drop):
    backing = root.find("memoryBacking")
    if hugepages == "none":
        if backing is not None:
            drop(backing, "hugepages")
            if len(backing) == 0:
                root.remove(backing)
        return
    backing = child(root, "memoryBacking")
    drop(backing, "hugepages")
    node = place(backing, _xml.element("hugepages"), _MEMORY_BACKING_ORDER)
    if hugepages != "default":
        _xml.sub(node, "page", attrs={"size": page_size_kib(hugepages), "unit": "KiB"})


def set_shared_memory(root, child, place):
    """``<memoryBacking>`` with memory a vhost-user process can map (memfd, shared): what virtiofs needs."""
    backing = child(root, "memoryBacking")
    if backing.find("source") is None:
        place(backing, _xml.element("source", attrs={"type": "memfd"}), _MEMORY_BACKING_ORDER)
    access = backing.find("access")
    if access is None:
        access = place(backing, _xml.element("access"), _MEMORY_BACKING_ORDER)
    access.set("mode", "shared")


# --- a running guest ----------------------------------------------------------------------------


def plan_live_pins(vm, live, definition, plan):
    """Pins a running guest takes at once (``pinVcpuFlags``, ``pinEmulator``); a pin removed is a pin to
    every host CPU."""
    pinning = definition.get("pinning")
    if not pinning:
        return
    have = live.get("pinning") or dict(vcpus=[], emulator="")
    host_cpus = vm.ctx.conn.getCPUMap(0)[0]
    every = format_cpuset(range(host_cpus))
    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
    if pinning.get("vcpus") is not None:
        old = dict((pin["vcpu"], pin["cpuset"]) for pin in have["vcpus"])
        new = dict((pin["vcpu"], pin["cpuset"]) for pin in pinning["vcpus"])
        for vcpu in sorted(set(old) | set(new)):
            if vcpu >= live["vcpus"]:
                continue  # a vCPU that is not online cannot be pinned live; its pin waits for the definition
            want = new.get(vcpu, every)
            if old.get(vcpu, every) != want:
                plan.add("pin vCPU %d of running VM %s to host CPUs %s" % (vcpu, vm.name, want),
                         vm._call("pinning a vCPU of", "pinVcpuFlags", vcpu, cpu_map(want, host_cpus), flags))
    if pinning.get("emulator") is not None:
        want = pinning["emulator"] or every
        if (have.get("emulator") or every) != want:
            plan.add("pin the emulator threads of running VM %s to host CPUs %s" % (vm.name, want),
                     vm._call("pinning the emulator of", "pinEmulator", cpu_map(want, host_cpus), flags))
