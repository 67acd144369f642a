# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The checks against the destination, run before anything moves (in check mode too): guest arch,
virt type, machine type and emulator, CPU model, memory, snapshots and saved state, networks, and (in
:class:`~.disks.DiskChecks`) every disk.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors, translate_libvirt_error
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import lookup_or_none
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError
from ansible_collections.virtops.libvirt.plugins.module_utils._host.capabilities import guest_facts, memory_facts
from ansible_collections.virtops.libvirt.plugins.module_utils._migrate.disks import DiskChecks
from ansible_collections.virtops.libvirt.plugins.module_utils._migrate.job import MIB


def domain_networks(root):
    """``[(mac, network name)]`` of the interfaces attached to libvirt networks."""
    return [(_xml.find_attr(nic, "mac", "address"), _xml.find_attr(nic, "source", "network"))
            for nic in root.findall("devices/interface") if nic.get("type") == "network"]


def guest_platform(root):
    """``dict(virt_type, arch, machine, emulator)`` of a domain definition."""
    return dict(
        virt_type=root.get("type"),
        arch=_xml.find_attr(root, "os/type", "arch"),
        machine=_xml.find_attr(root, "os/type", "machine"),
        emulator=_xml.find_text(root, "devices/emulator"),
    )


def libvirt_message(exc):
    return " ".join(str(exc.get_error_message() or exc).split())


def _mib(num_bytes):
    return "%d MiB" % (int(num_bytes) // MIB)


class Prechecks(DiskChecks):
    """The checks against the destination, run before anything moves (in check mode too).

    Each check fills ``checks[name]`` with what it found or raises with a message that names the
    check; ``warnings`` collects what could not be verified.
    """

    def __init__(self, src, dst, dom, opts, mode):
        super(Prechecks, self).__init__(src, dst, dom, opts, mode)
        flags = flag("VIR_DOMAIN_XML_MIGRATABLE") | flag("VIR_DOMAIN_XML_SECURE")
        if not self.live:
            flags |= flag("VIR_DOMAIN_XML_INACTIVE")
        with libvirt_errors("reading the definition of VM '%s'" % self.name):
            self.root = _xml.parse(dom.XMLDesc(flags), "domain XML")
            self.info = dom.info()
            # the CPU the running guest really has (the migratable XML can carry a bare default model
            # that libvirt itself does not hold against the destination)
            live_cpu = _xml.parse(dom.XMLDesc(0), "domain XML").find("cpu") if self.live else None
        self.cpu = live_cpu if live_cpu is not None else self.root.find("cpu")

    def run(self, src_caps, dst_caps):
        self.check_platform(dst_caps)
        self.check_cpu(src_caps)
        self.check_memory()
        self.check_state()
        self.check_networks()
        self.check_disks()
        return self.checks

    # --- platform and CPU -------------------------------------------------------------------

    def check_platform(self, dst_caps):
        plat = guest_platform(self.root)
        arches, machines = guest_facts(dst_caps)
        arch, virt_type, machine = plat["arch"], plat["virt_type"], plat["machine"]
        if arch not in arches:
            raise ConflictError("arch: the destination cannot run %s guests (it runs %s)"
                                % (arch, ", ".join(sorted(arches)) or "none"))
        if virt_type not in arches[arch]:
            raise ConflictError("arch: the destination offers virt types %s for %s guests, not %s (the VM's)"
                                % (", ".join(arches[arch]) or "none", arch, virt_type))
        if machine and machines.get(arch) and machine not in machines[arch]:
            raise ConflictError("arch: the destination's QEMU has no machine type %s (the VM's); it has %s"
                                % (machine, ", ".join(machines[arch])))
        if plat["emulator"]:
            try:
                self.dst.getDomainCapabilities(plat["emulator"], arch, machine, virt_type, 0)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise ConflictError("arch: the destination cannot run the VM's emulator %s for %s/%s/%s: %s"
                                        % (plat["emulator"], arch, virt_type, machine,
                                           libvirt_message(exc)))
        self.checks["arch"] = "%s guest, virt type %s, machine %s: offered by the destination" % (
            arch, virt_type, machine or "default")

    def _compare(self, call, what):
        fail_incompatible = flag("VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE")
        try:
            result = call(fail_incompatible)
        except libvirt.libvirtError as exc:
            code = exc.get_error_code()
            if code == libvirt.VIR_ERR_NO_SUPPORT:
                self.warnings.append("cpu: the destination's libvirt cannot compare CPUs; %s not checked" % what)
                return "not checked (the destination's libvirt cannot compare CPUs)"
            message = libvirt_message(exc)
            if code == flag("VIR_ERR_CPU_INCOMPATIBLE", -1):
                raise ConflictError("cpu: the destination cannot give VM '%s' %s: %s" % (self.name, what, message))
            raise translate_libvirt_error(exc, "cpu: comparing %s with the destination's" % what)
        if result == flag("VIR_CPU_COMPARE_INCOMPATIBLE", 0):
            raise ConflictError("cpu: the destination cannot give VM '%s' %s" % (self.name, what))
        return "compatible"

    def check_cpu(self, src_caps):
        cpu = self.cpu
        mode = cpu.get("mode", "custom") if cpu is not None else None
        plat = guest_platform(self.root)
        if cpu is None or (mode == "custom" and cpu.find("model") is None):
            self.checks["cpu"] = "not checked: the VM names no CPU model (the hypervisor's default)"
            return
        if mode == "custom":
            model = _xml.find_text(cpu, "model")
            text = _xml.to_string(cpu, pretty=False)
            verdict = self._compare(
                lambda flag: self.dst.compareHypervisorCPU(plat["emulator"], plat["arch"], plat["machine"],
                                                           plat["virt_type"], text, flag),
                "its CPU model %s" % model)
            self.checks["cpu"] = "%s: CPU model %s" % (verdict, model)
            return
        if mode == "host-model":  # only in an inactive definition: expanded when the VM starts
            self.checks["cpu"] = "not checked: host-model is worked out on the destination when the VM starts"
            return
        if not self.live or plat["virt_type"] != "kvm":
            self.checks["cpu"] = "not checked: %s CPU of a %s VM" % (mode, "stopped" if not self.live else "TCG")
            return
        host_cpu = src_caps.find("host/cpu")
        text = _xml.to_string(host_cpu, pretty=False)
        verdict = self._compare(lambda flag: self.dst.compareCPU(text, flag),
                                "the source host's CPU (%s, mode %s)" % (_xml.find_text(host_cpu, "model"), mode))
        self.checks["cpu"] = "%s: %s, the source host's CPU %s" % (verdict, mode, _xml.find_text(host_cpu, "model"))

    # --- memory and state -------------------------------------------------------------------

    def check_memory(self):
        with libvirt_errors("reading the destination's memory"):
            facts = memory_facts(self.dst, self.dst.getInfo())
        reserve = self.opts["reserve_memory"] * MIB
        if self.live:
            need = int(self.info[2]) * 1024
            have = facts["available"]
            if need + reserve > have:
                raise ConflictError(
                    "memory: VM '%s' uses %s%s, but the destination has only %s available"
                    % (self.name, _mib(need), " plus reserve_memory %s" % _mib(reserve) if reserve else "",
                       _mib(have)))
            self.checks["memory"] = "%s needed%s, %s available on the destination" % (
                _mib(need), " + %s reserve" % _mib(reserve) if reserve else "", _mib(have))
            return
        need = int(self.info[1]) * 1024
        if need + reserve > facts["total"]:
            raise ConflictError(
                "memory: VM '%s' is defined with %s%s, more than the destination's %s in total: it could never "
                "start there" % (self.name, _mib(need), " plus reserve_memory %s" % _mib(reserve) if reserve else "",
                                 _mib(facts["total"])))
        self.checks["memory"] = "%s defined%s, %s in total on the destination (a stopped VM uses none yet)" % (
            _mib(need), " + %s reserve" % _mib(reserve) if reserve else "", _mib(facts["total"]))

    def check_state(self):
        with libvirt_errors("reading the snapshots of VM '%s'" % self.name):
            snapshots = self.dom.snapshotNum(0)
            saved = bool(self.dom.hasManagedSaveImage(0)) if not self.live else False
        if snapshots:
            raise ConflictError("snapshots: VM '%s' has %d snapshot(s); libvirt does not migrate them (their metadata "
                                "stays behind): delete or export them first" % (self.name, snapshots))
        if saved:
            raise ConflictError("state: VM '%s' has a saved state (managed save) on the source that would be lost: "
                                "start it, or remove the saved state, first" % self.name)

    def check_networks(self):
        found = []
        for mac, network in domain_networks(self.root):
            if not network:
                continue
            net = lookup_or_none(self.dst.networkLookupByName, network, libvirt.VIR_ERR_NO_NETWORK,
                                 "network on the destination")
            if net is None:
                self.assume(ConflictError("networks: the destination has no network '%s' (interface %s of VM '%s')"
                                          % (network, mac, self.name)))
            elif self.live:
                with libvirt_errors("reading network '%s' on the destination" % network):
                    active = net.isActive()
                if not active:
                    self.assume(ConflictError("networks: network '%s' (interface %s) is not active on the destination"
                                              % (network, mac)))
            found.append(network)
        self.checks["networks"] = ("present on the destination: %s" % ", ".join(sorted(set(found)))
                                   if found else "no libvirt network interfaces")
