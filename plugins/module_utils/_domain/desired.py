# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The desired model of a ``vm``: the user's options (or ``xml``) normalized, with creation defaults
or a clone source for a new VM, machine and virt type resolved against the host, the seed added,
targets assigned, disks and CD-ROMs resolved (:mod:`.disks`) and everything checked before any
step is planned (:mod:`.checks`: host limits, machine, CPU model, disk files, MACs).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import checks as _vm_checks
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import normalize as _normalize
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import shares as _shares
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import tuning as _tuning
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.clone import CloneSource
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.seed import SeedDevice
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.volumes import NewVolumes
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._host.nodedev import check_hostdevs
from ansible_collections.virtops.libvirt.plugins.module_utils._host.capabilities import guest_facts, host_capabilities, host_limits, kvm_usable


class DesiredRun:
    """What resolving the desired state found for the plan to act on, kept in the desired model as
    ``_run`` (never compared or shown): the volumes to make, the clone source, the seed, and the
    sha256 of the user's canonical ``xml``."""

    def __init__(self, vm):
        self.volumes = NewVolumes(vm)
        self.clone = CloneSource(vm, self.volumes)
        self.seed = SeedDevice(vm)
        self.xml_digest = None

    def planned_names(self):
        """``{path: (pool, volume)}`` of the volumes (and the seed) the plan makes."""
        made = self.volumes.planned_names()
        made.update(self.seed.planned_names())
        return made


class DesiredModel:
    """Builds the desired model of VM ``vm`` (a VmResource) from its parameters and ``current``;
    keeps only what the host says (capabilities, limits) between calls."""

    def __init__(self, vm):
        self.vm = vm
        self.ctx = vm.ctx
        self._host = None
        self._caps = None

    def build(self, current):
        """The model (without state and autostart) for the parameters; ``current`` as read().
        Its ``_run`` is a new :class:`DesiredRun`."""
        vm, params = self.vm, self.vm.params
        run = DesiredRun(vm)
        if params.get("xml"):
            model = dict(xml=self._user_xml(params["xml"], run))
            self.check_xml(model["xml"], current)
            model["_run"] = run
            return model
        model = _normalize.normalize(params)
        _tuning.check_numa(model, current)
        if model.get("virt_type") == "auto":
            model["virt_type"] = None if current is not None else self._auto_virt_type()
        if current is None:
            template = run.clone.template() if params.get("template") else None
            if template is not None:
                model = run.clone.model(model, template)
            elif params.get("clone_from") and run.clone.source_vm() is not None:
                model = run.clone.model(model)
            else:
                model = _normalize.with_creation_defaults(model)
                if model.get("virt_type") is None:
                    model["virt_type"] = self._auto_virt_type()
        if model.get("machine"):
            arch = self._arch(model, current)
            model["machine"] = self._canonical_machine(model["machine"], arch)
            _vm_checks.check_machine(self.capabilities(), model["machine"], arch)
        machine = model.get("machine") or (current or {}).get("machine")
        if params.get("cloud_init") is not None:
            run.seed.add_device(model, params["cloud_init"], current)
        self._targets_by_source(model, current)
        _normalize.assign_targets(model, _normalize.default_cdrom_bus(machine), current)
        self._check_unique_targets(model)
        vm.disks.resolve_disks(model, current, run.volumes)
        vm.disks.resolve_cdroms(model)
        vm.disks.check_interfaces(model)
        self._check_host_limits(model)
        self._check_devices(model, current)
        self._check_host_devices(model, current)
        model["_run"] = run
        return model

    def _user_xml(self, text, run):
        root = self.vm._user_root(text)
        run.xml_digest = hashlib.sha256(_xml.canonical(root)).hexdigest()
        return _xml.to_string(root)

    def _auto_virt_type(self):
        host = self._host_facts()
        return "kvm" if host["kvm"] else "qemu"

    def capabilities(self):
        if self._caps is None:
            self._caps = host_capabilities(self.ctx.conn)
        return self._caps

    def _arch(self, model, current):
        return model.get("arch") or (current or {}).get("arch") or _xml.find_text(self.capabilities(), "host/cpu/arch")

    def _canonical_machine(self, machine, arch):
        """``q35`` -> ``pc-q35-7.2``: libvirt stores the versioned name an alias stands for."""
        caps = self.capabilities()
        for node in caps.findall("guest/arch[@name='%s']/machine" % arch):
            if (node.text or "").strip() == machine and node.get("canonical"):
                return node.get("canonical")
        return machine

    def _host_facts(self):
        if self._host is None:
            conn = self.ctx.conn
            caps = self.capabilities()
            arches = guest_facts(caps)[0]
            self._host = dict(host_limits(conn), kvm=kvm_usable(conn, _xml.find_text(caps, "host/cpu/arch"), arches))
        return self._host

    def _check_host_limits(self, model):
        if any(model.get(key) for key in ("vcpus", "max_vcpus", "memory", "max_memory")):
            _vm_checks.check_host_limits(self._host_facts(), model)

    def check_xml(self, text, current):
        """The user's (or an imported) definition: host limits, machine type, CPU model, disks, MACs."""
        root = _xml.parse(text, "xml")
        _vm_checks.check_xml_limits(self._host_facts(), root)
        model = _domain.model_from_xml(root)
        _vm_checks.check_machine(self.capabilities(), model["machine"], model["arch"], "xml: machine")
        _vm_checks.check_cpu_model(self.ctx.conn, model["cpu"], model["arch"], model["machine"], model["virt_type"],
                                   "xml: cpu model")
        _vm_checks.check_disk_files(model)
        for disk in model["disks"]:
            if not disk.get("readonly") and not disk.get("shareable"):
                self.vm.disks.check_not_shared(disk, "xml: disks[%s]" % disk["target"], current)
        have = set(n["mac"] for n in (current or {}).get("interfaces") or [] if n.get("mac"))
        new = set(n["mac"] for n in model["interfaces"] if n.get("mac") and n["mac"] not in have)
        _vm_checks.check_macs(self.ctx.conn, model["interfaces"], new, skip=self._skip(current))

    def _skip(self, current):
        """The VMs whose disks and MACs are this VM's own (its name, and the one it is renamed from)."""
        return (self.vm.name, (current or {}).get("_rename_from"))

    def _check_devices(self, model, current):
        """The VM's disks and MACs as they will be, and a named CPU model (see ``_vm_checks``)."""
        current = current or {}
        _vm_checks.check_disk_files(dict((key, model[key] if model.get(key) is not None else current.get(key))
                                         for key in ("disks", "cdroms")))
        if model.get("interfaces") is not None:
            have = current.get("interfaces") or []
            nics, new = [], set()
            for index, nic in enumerate(model["interfaces"]):
                old = have[index].get("mac") if index < len(have) else None
                if nic.get("mac") and nic["mac"] != old:
                    new.add(nic["mac"])
                nics.append(dict(nic, mac=nic.get("mac") or old))
            _vm_checks.check_macs(self.ctx.conn, nics, new, skip=self._skip(current))
        cpu = model.get("cpu")
        if cpu and cpu.get("model"):
            _vm_checks.check_cpu_model(self.ctx.conn, cpu, self._arch(model, current), model.get("machine") or current.get("machine"),
                                       model.get("virt_type") or current.get("virt_type"))

    def _check_host_devices(self, model, current):
        """Pins within the host's CPUs, a hugepage size the host has, swtpm and virtiofsd there for a new
        TPM or shares, and new PCI host devices that exist and no other VM passes through."""
        conn = self.ctx.conn
        if model.get("pinning"):
            _tuning.check_pins(model, current, conn.getCPUMap(0)[0])
        hugepages = model.get("hugepages")
        if hugepages not in (None, "none", "default") and hugepages != (current or {}).get("hugepages"):
            sizes = [int(p.get("size")) for p in self.capabilities().findall("host/cpu/pages") if (p.get("size") or "").isdigit()]
            if sizes and _tuning.page_size_kib(hugepages) not in sizes:
                raise InvalidInputError("hugepages: the host has pages of %s, not %s" % (
                    ", ".join(_tuning.format_page_size(s * 1024) for s in sizes), hugepages))
        if model.get("tpm") or model.get("filesystems"):
            _shares.check_host_support(_shares.domain_capabilities(conn, model, current), model, current, conn.getLibVersion())
        check_hostdevs(self.ctx, model.get("hostdevs"), self.vm.name, self._skip(current), (current or {}).get("hostdevs") or ())

    @staticmethod
    def _check_unique_targets(model):
        seen = set()
        for key in ("disks", "cdroms"):
            for dev in model.get(key) or []:
                if dev["target"] in seen:
                    raise InvalidInputError("two devices use target %s" % dev["target"])
                seen.add(dev["target"])

    def _targets_by_source(self, model, current):
        """A listed device whose file is already attached keeps the target it has."""
        if current is None:
            return
        for key in ("disks", "cdroms"):
            attached = dict((d["path"], d) for d in current.get(key) or [] if d.get("path"))
            for dev in model.get(key) or []:
                if dev.get("target") is not None:
                    continue
                path = dev.get("path")
                if path is None and dev.get("volume"):
                    path = self.vm._volume_path(dev.get("pool") or "default", dev["volume"])
                have = attached.get(path) if path else None
                if have is not None and dev.get("bus") in (None, have["bus"]):
                    dev["target"], dev["bus"] = have["target"], have["bus"]
