# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``vm`` resource: a libvirt domain, its disks' volumes and its run state.

Reads the saved and the live definition, resolves what the user asked for (pools, volumes,
networks) into a model, compares only what was specified, and plans: volumes to create, the
definition to write (keeping UUID, MACs and device addresses), what can change live (memory
balloon, vCPUs, CD-ROM media, disk growth, metadata), and the run-state transition.  Whatever
differs between the new definition and the running guest and cannot change live is reported as
``reboot_required`` (or applied by a restart with ``apply: restart``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit import seed as _cloudinit
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import codec_write as _codec_write
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import normalize as _normalize
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import address_wait as _address_wait
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import addresses as _addresses
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import agent as _agent
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record
from ansible_collections.virtops.libvirt.plugins.module_utils._core import secrets as _secrets
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot import view as _snapshot
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import trust as _trust
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import checks as _vm_checks
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.view import vm_view
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors, uri_is_local
from ansible_collections.virtops.libvirt.plugins.module_utils._core.defined import DefinedObjectResource, lookup_or_none
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import (
    ABSENT,
    DifferenceTracker,
    compare_specified,
    project,
    values_equal,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OperationTimeoutError,
    VirtopsError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._host.capabilities import guest_facts, host_capabilities, host_limits, kvm_usable
from ansible_collections.virtops.libvirt.plugins.module_utils._host.facts import run_state
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.qemu_img import QemuImg
from ansible_collections.virtops.libvirt.plugins.module_utils._core.timeouts import check_timeouts, timeout_seconds
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import describe, usage, vm_names
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import refresh_pool, retry_busy
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.disks import disk_users
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import (
    backing_chain,
    lookup_pool_or_assume,
    lookup_volume,
    parse_volume_xml,
    volume_path,
    volume_xml,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_write import (
    build_volume_xml,
    delete_by_name,
    exists_already,
    record_fill,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.names import VolumeNames, fill_volume_names

STATES = ("present", "running", "stopped", "paused", "restarted", "absent")
RUN_STATES = ("running", "stopped", "paused")
MASK = "********"

#: namespace of the record, in a VM's <metadata>, of the seed it used and that was detached
SEED_NS = "https://virtops.dev/xmlns/libvirt/cloud-init/1.0"

#: model paths that a running guest takes without a restart
LIVE_KEYS = ("memory", "vcpus", "title", "description", "tags", "metadata")
#: model keys compared per device (``pool``/``volume``/``backing_*``/``size`` are resolved or handled apart)
_NOT_COMPARED = ("pool", "volume", "backing_volume", "backing_pool", "size")

#: timeouts of the module and their defaults (seconds)
TIMEOUTS = dict(shutdown_timeout=120, wait_for_ip_timeout=300)

_XML_SECURE = getattr(libvirt, "VIR_DOMAIN_XML_SECURE", 1) if libvirt else 1
_XML_INACTIVE = getattr(libvirt, "VIR_DOMAIN_XML_INACTIVE", 2) if libvirt else 2


def _by_target(devices):
    return dict((d["target"], d) for d in devices or [])


def _strip(model, keys):
    return dict((k, v) for k, v in model.items() if k not in keys)


class VmResource(DefinedObjectResource):
    noun = "VM"
    root_tag = "domain"
    kind = "vm"

    def __init__(self, ctx):
        super(VmResource, self).__init__(ctx)
        self.reboot_required = False
        self.pending_changes = []
        self._renaming_from = None
        self._new_volumes = []      # (pool_name, xml element, description) to create
        self._grow = []             # (target, path, size) disks to grow
        self._created = []          # virStorageVol objects this run made (for undo)
        self._clone = None
        self._users = None
        self._host = None
        self._caps = None
        self._xml_digest = None
        self._seed = None
        self._seed_result = None
        self._detach = None
        self._start_xml = None      # the definition a start in this plan boots
        self._redefined = False     # the plan writes a new definition
        self.paths_made = set()     # files an enclosing plan makes before this one starts the VM (vm_import)
        self.removed_volumes = []   # paths the absent plan deletes (remove_storage)

    # --- DefinedObjectResource hooks ------------------------------------------------------------

    def validate_name(self, name):
        _domain.validate_name(name)

    def _lookup(self):
        return lookup_or_none(self.ctx.conn.lookupByName, self.name, libvirt.VIR_ERR_NO_DOMAIN, "VM")

    def _define_call(self, xml_text):
        return self.ctx.conn.defineXML(xml_text)

    def _inactive_xml(self, obj):
        if not obj.isPersistent():
            return obj.XMLDesc(_XML_SECURE)
        return obj.XMLDesc(_XML_INACTIVE | _XML_SECURE)

    def model_from_xml(self, text):
        return _domain.model_from_xml(text)

    def xml_from_model(self, model, uuid=None):
        return _codec_write.build_xml(self.name, model, uuid)

    def apply_model(self, root, model):
        return _codec_write.apply_model(root, model)

    # --- read -----------------------------------------------------------------------------------

    def read(self):
        check_timeouts(self.params, TIMEOUTS)
        current = super(VmResource, self).read()
        rename_from = self.params.get("rename_from")
        if current is None and rename_from and rename_from != self.name:
            _domain.validate_name(rename_from)
            old = lookup_or_none(self.ctx.conn.lookupByName, rename_from, libvirt.VIR_ERR_NO_DOMAIN, "VM")
            if old is None:
                raise NotFoundError("rename_from: neither VM %r nor VM %r exists, so there is nothing to rename; leave "
                                    "rename_from out to create VM %r" % (rename_from, self.name, self.name))
            self._renaming_from = rename_from
            saved_lookup = self._lookup
            self._lookup = lambda: old
            try:
                current = super(VmResource, self).read()
            finally:
                self._lookup = saved_lookup
        return current

    def _timeout(self, key):
        return timeout_seconds(self.params.get(key), key, TIMEOUTS[key])

    def _live_xml(self, obj):
        return obj.XMLDesc(_XML_SECURE)

    def _after_read(self, obj, current, active):
        current["state"] = run_state(obj)
        current["active"] = active
        for disk in current["disks"]:
            disk["size"] = self._capacity(obj, disk)
        fill_volume_names(self.ctx.conn, current)

    @staticmethod
    def _capacity(dom, disk):
        if not disk.get("path") and not disk.get("volume"):
            return None
        try:
            return int(dom.blockInfo(disk["target"])[0])
        except libvirt.libvirtError:
            return None

    # --- desired --------------------------------------------------------------------------------

    def requested_state(self):
        state = self.params.get("state") or "running"
        if state not in STATES:
            raise InvalidInputError("state: %r is not one of %s" % (state, ", ".join(STATES)))
        return None if state == "absent" else state

    def desired(self, current):
        state = self.requested_state()
        if state is None:
            return None
        params = self.params
        if params.get("xml"):
            model = dict(xml=self._user_xml(params["xml"]))
            self._check_xml(model["xml"])
        else:
            model = _normalize.normalize(params)
            if model.get("virt_type") == "auto":
                model["virt_type"] = None if self._current is not None else self._auto_virt_type()
            if self._current is None:
                if params.get("clone_from") and self._clone_source_vm() is not None:
                    model = self._clone_model(model)
                else:
                    model = _normalize.with_creation_defaults(model)
                    if model.get("virt_type") is None:
                        model["virt_type"] = self._auto_virt_type()
            if model.get("machine"):
                arch = self._arch(model)
                model["machine"] = self._canonical_machine(model["machine"], arch)
                _vm_checks.check_machine(self._capabilities(), model["machine"], arch)
            machine = model.get("machine") or (self._current or {}).get("machine")
            if params.get("cloud_init") is not None:
                self._add_seed_device(model, params["cloud_init"])
            self._targets_by_source(model)
            _normalize.assign_targets(model, _normalize.default_cdrom_bus(machine), self._current)
            self._check_unique_targets(model)
            self._resolve_disks(model)
            self._resolve_cdroms(model)
            self._check_interfaces(model)
            self._check_host_limits(model)
            self._check_devices(model)
        model.update(state=state, autostart=params.get("autostart"))
        return model

    def _user_xml(self, text):
        root = self._user_root(text)
        self._xml_digest = hashlib.sha256(_xml.canonical(root)).hexdigest()
        return _xml.to_string(root)

    def _definition_xml(self, desired, base_xml=None, uuid=None):
        text = super(VmResource, self)._definition_xml(desired, base_xml, uuid)
        if desired.get("xml") is None:
            return text
        return _xml.to_string(_codec_write.mark_xml_source(_xml.parse(text), self._xml_digest))

    def _xml_unchanged(self, model):
        """A VM defined from this very user XML before: what libvirt made of it is not compared again."""
        return self._xml_digest is not None and model.get("xml_sha256") == self._xml_digest

    def _auto_virt_type(self):
        host = self._host_facts()
        return "kvm" if host["kvm"] else "qemu"

    def _capabilities(self):
        if self._caps is None:
            self._caps = host_capabilities(self.ctx.conn)
        return self._caps

    def _arch(self, model):
        return model.get("arch") or (self._current or {}).get("arch") or _xml.find_text(self._capabilities(), "host/cpu/arch")

    def _canonical_machine(self, machine, arch):
        """``q35`` -> ``pc-q35-7.2``: libvirt stores the versioned name an alias stands for."""
        caps = self._capabilities()
        for node in caps.findall("guest/arch[@name='%s']/machine" % arch):
            if (node.text or "").strip() == machine and node.get("canonical"):
                return node.get("canonical")
        return machine

    def _host_facts(self):
        if self._host is None:
            conn = self.ctx.conn
            caps = self._capabilities()
            arches = guest_facts(caps)[0]
            self._host = dict(host_limits(conn), kvm=kvm_usable(conn, _xml.find_text(caps, "host/cpu/arch"), arches))
        return self._host

    def _check_host_limits(self, model):
        if any(model.get(key) for key in ("vcpus", "max_vcpus", "memory", "max_memory")):
            _vm_checks.check_host_limits(self._host_facts(), model)

    def _check_xml(self, text):
        """The user's (or an imported) definition: host limits, machine type, CPU model, disks, MACs."""
        root = _xml.parse(text, "xml")
        _vm_checks.check_xml_limits(self._host_facts(), root)
        model = _domain.model_from_xml(root)
        _vm_checks.check_machine(self._capabilities(), model["machine"], model["arch"], "xml: machine")
        _vm_checks.check_cpu_model(self.ctx.conn, model["cpu"], model["arch"], model["machine"], model["virt_type"],
                                   "xml: cpu model")
        _vm_checks.check_disk_files(model)
        for disk in model["disks"]:
            if not disk.get("readonly") and not disk.get("shareable"):
                self._check_not_shared(disk, "xml: disks[%s]" % disk["target"])
        have = set(n["mac"] for n in (self._current or {}).get("interfaces") or [] if n.get("mac"))
        new = set(n["mac"] for n in model["interfaces"] if n.get("mac") and n["mac"] not in have)
        _vm_checks.check_macs(self.ctx.conn, model["interfaces"], new, skip=(self.name, self._renaming_from))

    def _check_devices(self, model):
        """The VM's disks and MACs as they will be, and a named CPU model (see ``_vm_checks``)."""
        current = self._current or {}
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
            _vm_checks.check_macs(self.ctx.conn, nics, new, skip=(self.name, self._renaming_from))
        cpu = model.get("cpu")
        if cpu and cpu.get("model"):
            _vm_checks.check_cpu_model(self.ctx.conn, cpu, self._arch(model), model.get("machine") or current.get("machine"),
                                       model.get("virt_type") or current.get("virt_type"))

    @staticmethod
    def _check_unique_targets(model):
        seen = set()
        for key in ("disks", "cdroms"):
            for dev in model.get(key) or []:
                if dev["target"] in seen:
                    raise InvalidInputError("two devices use target %s" % dev["target"])
                seen.add(dev["target"])

    # --- resolving pools, volumes, networks -----------------------------------------------------

    def _pool(self, name, what):
        """The active pool ``name``; None in check mode when it is assumed (an earlier task creates it)."""
        return lookup_pool_or_assume(self.ctx, name, what)

    def _disk_users(self):
        if self._users is None:
            self._users = disk_users(self.ctx.conn)
        return self._users

    def _resolve_disks(self, model):
        current = _by_target((self._current or {}).get("disks"))
        for disk in model.get("disks") or []:
            what = "disks[%s]" % disk["target"]
            if disk.get("path") is None and not disk.get("volume"):
                have = current.get(disk["target"])
                if have is not None and disk.get("pool") is None:
                    disk["path"] = have["path"]  # the existing disk at this target stays
                else:
                    disk["pool"] = disk.get("pool") or "default"
                    disk["volume"] = "%s-%s.%s" % (self.name, disk["target"], "img" if disk.get("format") == "raw" else "qcow2")
            if disk.get("volume"):
                disk["pool"] = disk.get("pool") or "default"
                self._resolve_volume(disk, what)
            else:
                disk["format"] = self._format_of_path(disk["path"], current.get(disk["target"]), disk.get("format"), what)
            if not disk.get("readonly"):
                self._check_not_shared(disk, what)

    # --- cloud-init seed -------------------------------------------------------------------------

    _SEED_KEYS = ("pool", "volume", "bus", "detach", "detach_timeout")

    def _add_seed_device(self, model, cloud_init):
        """The NoCloud seed as one more CD-ROM (or a read-only virtio disk) of the VM.

        ``cloud_init`` holds the ``cloudinit`` module's content options, or only ``volume`` (an
        existing seed); ``pool`` (``default``), ``volume`` (``<vm>-seed.iso``) and ``bus`` (the
        CD-ROM bus, or ``virtio`` for a disk) say where it lives and how the guest sees it.
        """
        unknown = sorted(set(cloud_init) - set(_cloudinit.SEED_OPTIONS) - set(self._SEED_KEYS))
        if unknown:
            raise InvalidInputError("cloud_init: unknown option(s) %s; use %s" % (
                ", ".join(unknown), ", ".join(_cloudinit.SEED_OPTIONS + self._SEED_KEYS)))
        timeout_seconds(cloud_init.get("detach_timeout"), "cloud_init.detach_timeout")
        pool = cloud_init.get("pool") or "default"
        name = cloud_init.get("volume") or "%s-seed.iso" % self.name
        options = dict((k, v) for k, v in cloud_init.items() if k in _cloudinit.SEED_OPTIONS and v is not None)
        if cloud_init.get("detach") and self._seed_consumed(cloud_init, options, pool, name):
            return  # the guest booted with this seed and it was detached: nothing to attach or make
        seed_pool = self._pool(pool, "cloud_init")
        path = self._volume_path(pool, name)
        if not options and seed_pool is not None and lookup_volume(seed_pool, name) is None:
            self.ctx.assume(NotFoundError("cloud_init: seed volume %r does not exist in pool %r; give the seed's content "
                                          "(user_data, hostname, ...) to make it" % (name, pool)))
        self._seed = dict(pool=pool, name=name, options=options, path=path)
        bus = cloud_init.get("bus")
        if bus not in (None, "virtio") + _domain.CDROM_BUSES:
            raise InvalidInputError("cloud_init.bus: %r is not one of virtio, %s" % (bus, ", ".join(_domain.CDROM_BUSES)))
        key = "disks" if bus == "virtio" else "cdroms"
        device = dict(path=path, bus=bus, target=None)
        if path is None:  # check mode, the pool is assumed: the definition names the pool volume
            device.update(pool=pool, volume=name)
        if key == "disks":
            device.update(format="raw", readonly=True)
        if model.get(key) is None:
            model[key] = [self._as_desired(d) for d in (self._current or {}).get(key) or []]
        if path is None or not any(d.get("path") == path for d in model[key]):
            model[key].append(device)

    def _seed_consumed(self, cloud_init, options, pool, name):
        """For ``cloud_init.detach``: check it can work; True when this seed was used and detached already."""
        if not options:
            raise InvalidInputError("cloud_init.detach: give the seed's content (user_data, hostname, ...); the module "
                                    "detaches a seed once the guest ran cloud-init with its instance-id")
        if self.requested_state() not in ("running", "restarted"):
            raise InvalidInputError("cloud_init.detach: the seed is detached after the guest booted with it, so the VM must "
                                    "run (state running or restarted)")
        timeout = timeout_seconds(cloud_init.get("detach_timeout"), "cloud_init.detach_timeout", 900)
        instance_id = _cloudinit.build_seed(options, "volume:%s/%s" % (pool, name)).instance_id
        self._detach = dict(instance_id=instance_id, timeout=timeout)
        if self._current is not None and _xml.find_attr(_xml.parse(self._current["xml"]),
                                                        "metadata/{%s}cloud-init" % SEED_NS, "detached") == instance_id:
            self._detach = None
            self._seed_result = dict(path=None, instance_id=instance_id, content_sha256=None, changed=False, detached=True)
            return True
        return False

    def _plan_detach(self, current, plan):
        """After the plan boots the VM with its seed (or it runs with it): wait for cloud-init, detach, delete."""
        if self._detach is None or self._seed is None:
            return
        path = self._seed["path"]
        starts = "start VM %s" % self.name in plan.descriptions
        live = (current or {}).get("_live") or {}
        attached = any(d.get("path") == path for d in (live.get("cdroms") or []) + (live.get("disks") or []))
        if not starts and not (current and current["active"] and attached):
            plan.warn("cloud_init: VM %s reads its new seed when it boots next; the seed is detached on a run after that"
                      % self.name)
            return
        iid = self._detach["instance_id"]
        plan.add("wait for cloud-init of instance %s to finish in VM %s" % (iid, self.name),
                 self._wait_cloud_init(iid, self._detach["timeout"]))
        plan.add("detach the cloud-init seed %s from VM %s" % (path, self.name), self._detach_seed(path))
        others, _dependants = usage(self.ctx).users_of(paths=[path], exclude_vms=(self.name, self._renaming_from))
        if others:
            plan.warn("cloud_init: the seed %s is kept when it is detached: it is also used by %s" % (path, describe(others)))
        else:
            plan.add("delete the cloud-init seed volume %s" % path, self._delete_path(path))
        plan.add("record in VM %s that seed %s was used" % (self.name, iid), self._mark_seed_used(iid))

    def _wait_cloud_init(self, instance_id, timeout, sleep=time.sleep, clock=time.monotonic):
        def call():
            dom = self._lookup()
            deadline = clock() + timeout
            script = "cloud-init status --wait >/dev/null 2>&1; cat /var/lib/cloud/data/instance-id"
            while True:
                left = deadline - clock()
                try:
                    out = _agent.guest_exec(dom, "/bin/sh", ["-c", script], timeout=max(left, 1))
                    break
                except VirtopsError as exc:
                    if exc.kind == "invalid_input":
                        raise
                    if clock() + 2 >= deadline:
                        raise OperationTimeoutError("cloud_init.detach: cloud-init did not finish in VM %s within %d s (%s)"
                                                    % (self.name, timeout, exc.msg))
                    sleep(2)
            got = (out["stdout"] or "").strip()
            if got != instance_id:
                raise ConflictError("cloud_init.detach: VM %s runs cloud-init instance %r, not %r of its seed; a guest reads "
                                    "its seed when it boots: restart it and run the task again" % (self.name, got, instance_id))

        return call

    def _detach_seed(self, path):
        def call():
            dom = self._lookup()
            with libvirt_errors("detaching the cloud-init seed from VM %s" % self.name):
                live = bool(dom.isActive())
                root = _xml.parse(dom.XMLDesc(0))
                for disk in root.findall("devices/disk"):
                    if _xml.find_attr(disk, "source", "file") != path:
                        continue
                    if disk.get("device") == "cdrom":
                        disk.remove(disk.find("source"))  # eject: the drive stays, empty
                        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0)
                        dom.updateDeviceFlags(_xml.to_string(disk, pretty=False), flags)
                    else:
                        text = _xml.to_string(disk, pretty=False)
                        dom.detachDeviceFlags(text, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
                        if live:
                            dom.detachDeviceFlags(text, libvirt.VIR_DOMAIN_AFFECT_LIVE)

        return call

    def _mark_seed_used(self, instance_id):
        def call():
            dom = self._lookup()
            node = _xml.element("cloud-init", attrs=dict(detached=instance_id))
            flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
            with libvirt_errors("recording the used seed in VM %s" % self.name):
                dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, _xml.to_string(node, pretty=False),
                                "virtops-ci", SEED_NS, flags)
            if self._seed_result is not None:
                self._seed_result["detached"] = True

        return call

    @staticmethod
    def _as_desired(device):
        """A current device as a list entry that asks for exactly what it is."""
        return dict((k, v) for k, v in device.items() if k not in ("size", "pool", "volume"))

    def _plan_seed(self, plan):
        if self._seed is None or not self._seed["options"]:
            return
        self._seed_result = _cloudinit.ensure_seed(self.ctx, plan, self._seed["options"], pool=self._seed["pool"],
                                                   name=self._seed["name"])

    def plan(self, current, desired, diff, plan):
        if desired is not None:
            self._plan_seed(plan)
        super(VmResource, self).plan(current, desired, diff, plan)
        if desired is not None:
            self._check_start(plan)
            self._plan_detach(current, plan)

    def _check_start(self, plan):
        """A plan that starts the VM: what would make the start fail, found before anything is done
        (before a restart shuts the guest down)."""
        starts = "start VM %s" % self.name
        if self._start_xml is None or not any(d == starts or d.startswith(starts + " ") for d in plan.descriptions):
            return
        made = set(self._planned_volume_names()) | self.paths_made
        _vm_checks.check_startable(self.ctx, _xml.parse(self._start_xml, "domain XML"), made)

    def _planned_volume_names(self):
        """``{path: (pool, volume)}`` of the volumes (and the seed) this plan makes."""
        made = {}
        for item in self._new_volumes:
            name = _xml.find_text(item[1], "name")
            path = self._volume_path(item[0], name)
            if path:
                made[path] = (item[0], name)
        if self._seed is not None and self._seed["path"]:
            made[self._seed["path"]] = (self._seed["pool"], self._seed["name"])
        return made

    def _targets_by_source(self, model):
        """A listed device whose file is already attached keeps the target it has."""
        if self._current is None:
            return
        for key in ("disks", "cdroms"):
            attached = dict((d["path"], d) for d in self._current.get(key) or [] if d.get("path"))
            for dev in model.get(key) or []:
                if dev.get("target") is not None:
                    continue
                path = dev.get("path")
                if path is None and dev.get("volume"):
                    path = self._volume_path(dev.get("pool") or "default", dev["volume"])
                have = attached.get(path) if path else None
                if have is not None and dev.get("bus") in (None, have["bus"]):
                    dev["target"], dev["bus"] = have["target"], have["bus"]

    def _volume_path(self, pool_name, volume):
        """Where ``volume`` of ``pool_name`` is (or would be made); None for an unknown pool."""
        pool = lookup_or_none(self.ctx.conn.storagePoolLookupByName, pool_name, libvirt.VIR_ERR_NO_STORAGE_POOL, "storage pool")
        if pool is None or not pool.isActive():
            return None
        vol = lookup_volume(pool, volume)
        if vol is not None:
            return parse_volume_xml(volume_xml(vol))["path"]
        return volume_path(pool, volume)

    def _resolve_volume(self, disk, what):
        pool = self._pool(disk["pool"], what)
        vol = lookup_volume(pool, disk["volume"]) if pool is not None else None
        if vol is not None:
            info = parse_volume_xml(volume_xml(vol))
            disk["path"] = info["path"]
            have = _by_target((self._current or {}).get("disks")).get(disk["target"])
            disk["format"] = self._trusted_format(what, disk.get("format"), have, model=info)
            return
        if disk.get("size") is None and not disk.get("backing_volume"):
            if pool is not None:  # else the pool is assumed already
                self.ctx.assume(NotFoundError("%s: volume %r does not exist in pool %r; give size (or backing_volume) to "
                                              "create it" % (what, disk["volume"], disk["pool"])))
            disk["format"] = disk.get("format") or "qcow2"
            disk["path"] = volume_path(pool, disk["volume"]) if pool is not None else None
            if disk["path"]:
                self.paths_made.add(disk["path"])  # assumed above: the start check need not say it again
            return
        backing_path = backing_format = None
        size = disk.get("size") or 0
        if disk.get("backing_volume"):
            bpool_name = disk.get("backing_pool") or disk["pool"]
            bpool = self._pool(bpool_name, what)
            bvol = lookup_volume(bpool, disk["backing_volume"]) if bpool is not None else None
            if bvol is None and bpool is not None:
                self.ctx.assume(NotFoundError("%s: backing_volume %r does not exist in pool %r"
                                              % (what, disk["backing_volume"], bpool_name)))
            if bvol is not None:
                base = parse_volume_xml(volume_xml(bvol))
                # the base's recorded (or checked) format: a base recorded raw stays raw below the overlay
                base_format = self._trusted_format("%s: backing_volume %s" % (what, disk["backing_volume"]), None, None,
                                                   model=base, disk_formats=False)
            else:  # check mode: an earlier task makes it
                base, base_format = dict(path=None, format=None, capacity=size), None
            backing_path, backing_format = base["path"], base_format
            if disk.get("size") is not None and disk["size"] < base["capacity"]:
                raise InvalidInputError("%s: size %d is smaller than backing volume %r (%d bytes)"
                                        % (what, disk["size"], disk["backing_volume"], base["capacity"]))
            size = max(size, base["capacity"] or 0)
            if disk.get("format") not in (None, "qcow2"):
                raise InvalidInputError("%s: a linked clone (backing_volume) is qcow2, not %s" % (what, disk["format"]))
            disk["format"] = "qcow2"
        disk["format"] = disk.get("format") or "qcow2"
        if disk["format"] == "qcow2":
            size = -(-size // 65536) * 65536
        disk["size"] = size
        disk["path"] = volume_path(pool, disk["volume"]) if pool is not None else None
        xml = build_volume_xml(disk["volume"], size, disk["format"], allocation=0,
                               backing_path=backing_path, backing_format=backing_format)
        label = "create %s volume %s in pool %s" % (disk["format"], disk["volume"], disk["pool"])
        if backing_path:
            label += " on backing volume %s" % disk["backing_volume"]
        self._new_volumes.append((disk["pool"], xml, label))

    def _format_of_path(self, path, have, declared=None, what=None):
        """The format of a disk given by path (see :meth:`_trusted_format`)."""
        try:
            vol = self.ctx.conn.storageVolLookupByPath(path)
        except libvirt.libvirtError:
            vol = None
        if vol is not None:
            return self._trusted_format(what or "disk %s" % path, declared, have, model=parse_volume_xml(volume_xml(vol)))
        return self._trusted_format(what or "disk %s" % path, declared, have, path=path)

    def _trusted_format(self, what, declared, have, model=None, path=None, disk_formats=True):
        """The format a disk is used with: the user's declaration, else the VM's own definition, else the
        collection's record, else libvirt's report; an image that is newly attached passes the image-trust
        check (``_trust``).  ``model``: libvirt's report of a volume; ``path``: a file of no pool."""
        where = model["path"] if model is not None else path
        if have is not None and have.get("path") == where and have.get("format") and declared in (None, have["format"]):
            return have["format"]  # already a disk of this VM as it is: nothing new is attached
        qemu_img = QemuImg(run=self.ctx.run_command)
        if model is not None and declared is None:
            fmt = self._trusted_volume(model, what)["format"]
        elif model is not None:
            fmt = _trust.trusted_volume(self.ctx.conn, self.ctx.uri, model, qemu_img, what, declared=declared,
                                        chain=lambda: backing_chain(self.ctx.conn, model))["format"]
        else:
            local = _record.local_path(self.ctx.uri, path)
            rec = _record.read_record(local) if local else None
            if rec is not None and declared not in (None, rec["format"]):
                raise InvalidInputError("%s is recorded as a %s image (made by this collection), not %s"
                                        % (what, rec["format"], declared))
            fmt = declared or (rec or {}).get("format")
            if fmt is None:
                raise InvalidInputError("disk %s is not a volume of any libvirt storage pool: give its format (qcow2 or raw)"
                                        % path)
            if local is not None and not (rec is not None and fmt == "raw"):
                _trust.check_image(qemu_img, local, fmt, what, backing=_trust.pool_member(self.ctx.conn),
                                   said="recorded" if rec is not None else "declared")
        if disk_formats and fmt not in _domain.DISK_FORMATS:
            raise InvalidInputError("%s is a %s image: VM disks are %s; convert it first (volume with source and format)"
                                    % (what, fmt, " or ".join(_domain.DISK_FORMATS)))
        return fmt

    def _check_not_shared(self, disk, what):
        for user in self._disk_users():
            if user["domain"] in (self.name, self._renaming_from) or user["device"] != "disk":
                continue
            if user["path"] and user["path"] == disk.get("path"):
                raise ConflictError("%s: %s is already a disk of VM %r; a writable disk cannot be shared (give readonly: true)"
                                    % (what, disk["path"], user["domain"]))

    def _resolve_cdroms(self, model):
        for cdrom in model.get("cdroms") or []:
            if cdrom.get("volume"):
                what = "cdroms[%s]" % cdrom["target"]
                pool = self._pool(cdrom["pool"], what)
                vol = lookup_volume(pool, cdrom["volume"]) if pool is not None else None
                if vol is None:
                    if pool is not None:
                        self.ctx.assume(NotFoundError("%s: volume %r does not exist in pool %r"
                                                      % (what, cdrom["volume"], cdrom["pool"])))
                    continue  # check mode: the definition names the pool volume
                cdrom["path"] = parse_volume_xml(volume_xml(vol))["path"]

    def _check_interfaces(self, model):
        for index, nic in enumerate(model.get("interfaces") or []):
            what = "interfaces[%d]" % index
            if nic["type"] == "network":
                net = lookup_or_none(self.ctx.conn.networkLookupByName, nic["source"], libvirt.VIR_ERR_NO_NETWORK, "network")
                if net is None:
                    self.ctx.assume(NotFoundError("%s: libvirt network %r does not exist" % (what, nic["source"])))
            elif nic["type"] in ("bridge", "direct"):
                try:
                    self.ctx.conn.interfaceLookupByName(nic["source"])
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() == libvirt.VIR_ERR_NO_INTERFACE:
                        self.ctx.assume(NotFoundError("%s: the host has no interface %r" % (what, nic["source"])))
                        continue
                    self.ctx.warn("could not check that host interface %r exists (%s)" % (nic["source"], " ".join(str(exc).split())))

    # --- clone ----------------------------------------------------------------------------------

    def _clone_source_vm(self):
        """The VM ``clone_from`` names; None when it is assumed (check mode: an earlier task makes it,
        and the prediction is a new VM from the options)."""
        source_name = self.params["clone_from"]
        src = lookup_or_none(self.ctx.conn.lookupByName, source_name, libvirt.VIR_ERR_NO_DOMAIN, "VM")
        if src is None:
            self.ctx.assume(NotFoundError("clone_from: VM %r does not exist" % source_name))
        return src

    def _clone_model(self, model):
        source_name = self.params["clone_from"]
        src = self._clone_source_vm()
        mode = self.params.get("clone_mode") or "full"
        root, snapshot = self._clone_source(src, source_name, mode)
        root.find("name").text = self.name
        for path in ("uuid", "devices/interface/mac", "os/nvram", "devices/graphics", "metadata/{%s}snapshot" % _snapshot.REVERT_NS):
            _codec_write._drop(root, path)
        base = _domain.model_from_xml(root)
        disks = []
        for disk in base["disks"]:
            if disk.get("readonly"):
                disks.append(disk)
                continue
            disks.append(self._clone_disk(source_name, disk, mode, snapshot))
        model = dict((k, v) for k, v in model.items() if v is not None)
        model.setdefault("disks", disks)
        if model.get("graphics") is None:
            model["graphics"] = dict(_domain.CREATION_DEFAULTS["graphics"])
        label = source_name if snapshot is None else "snapshot %s of %s" % (snapshot["name"], source_name)
        self._clone = dict(xml=_xml.to_string(root), source=label, mode=mode)
        return model

    def _clone_source(self, src, source_name, mode):
        """The definition to copy (the VM's, or the one saved in its snapshot) and the snapshot's facts."""
        snap_name = self.params.get("clone_snapshot")
        if snap_name is None:
            if src.isActive():
                raise ConflictError("clone_from: VM %r is %s; stop it first (its disks must not change while they are copied), "
                                    "or clone from a snapshot (clone_snapshot)" % (source_name, run_state(src)))
            return _xml.parse(self._inactive_xml(src), "domain XML of %s" % source_name), None
        _snapshot.validate_name(snap_name, "clone_snapshot")
        snap = _snapshot.lookup_snapshot(src, snap_name)
        if snap is None:
            raise NotFoundError("clone_snapshot: VM %r has no snapshot %r" % (source_name, snap_name))
        with libvirt_errors("reading snapshot %s of VM %s" % (snap_name, source_name)):
            facts = _snapshot.parse_snapshot_xml(snap.getXMLDesc(0))
        if facts["domain"] is None:
            raise ConflictError("clone_snapshot: snapshot %r of VM %r holds no VM definition to copy" % (snap_name, source_name))
        if not facts["external"]:
            if mode == "linked":
                raise InvalidInputError("clone_mode: a linked clone needs an external (disk_only) snapshot, whose files below "
                                        "the overlays stay unchanged; snapshot %r is internal: use clone_mode: full" % snap_name)
            if src.isActive():
                raise ConflictError("clone_snapshot: snapshot %r is internal (inside the disks of %s, which is %s); stop the VM "
                                    "first, its disks must not change while the snapshot is read from them"
                                    % (snap_name, source_name, run_state(src)))
            if not uri_is_local(self.ctx.uri):
                raise InvalidInputError("clone_snapshot: copying internal snapshot %r runs qemu-img on the hypervisor; run the "
                                        "task there with a local URI (qemu:///system), or use an external snapshot" % snap_name)
        return copy.deepcopy(facts["domain"]), facts

    def _clone_disk(self, source_name, disk, mode, snapshot=None):
        what = "clone_from: disk %s of %s" % (disk["target"], source_name)
        try:
            vol = self.ctx.conn.storageVolLookupByPath(disk["path"])
            pool = vol.storagePoolLookupByVolume()
        except libvirt.libvirtError:
            raise InvalidInputError("%s (%s) is not a volume of a libvirt storage pool, so it cannot be cloned" % (what, disk["path"]))
        info = parse_volume_xml(volume_xml(vol))
        ext = "qcow2" if mode == "linked" or info["format"] == "qcow2" else "img"
        new = dict(disk, pool=pool.name(), volume="%s-%s.%s" % (self.name, disk["target"], ext), size=None)
        new["path"] = volume_path(pool, new["volume"])
        if lookup_volume(pool, new["volume"]) is not None:
            raise ConflictError("%s: volume %r already exists in pool %r" % (what, new["volume"], pool.name()))
        if mode == "linked":
            new["format"] = "qcow2"
            xml = build_volume_xml(new["volume"], info["capacity"], "qcow2", allocation=0,
                                   backing_path=info["path"], backing_format=info["format"])
            self._new_volumes.append((pool.name(), xml, "create qcow2 volume %s in pool %s on backing file %s"
                                      % (new["volume"], pool.name(), info["path"])))
        elif snapshot is not None and not snapshot["external"]:
            new["format"] = info["format"]
            xml = build_volume_xml(new["volume"], info["capacity"], info["format"], allocation=0)
            self._new_volumes.append((pool.name(), xml, "copy internal snapshot %s of volume %s to %s in pool %s"
                                      % (snapshot["name"], info["name"], new["volume"], pool.name()), None,
                                      self._snapshot_filler(info["path"], info["format"], snapshot["name"])))
        else:
            new["format"] = info["format"]
            xml = build_volume_xml(new["volume"], info["capacity"], info["format"], allocation=0)
            self._new_volumes.append((pool.name(), xml, "copy volume %s to %s in pool %s"
                                      % (info["name"], new["volume"], pool.name()), vol))
        new["pool"] = new["volume"] = None  # resolved: the disk is its path from here on
        return new

    def _snapshot_filler(self, src_path, fmt, snapshot_name):
        """Writes internal snapshot ``snapshot_name`` of ``src_path`` into a new volume (qemu-img, on the hypervisor)."""

        def fill(vol):
            with libvirt_errors("reading the path of a new volume"):
                dst = vol.path()
            QemuImg(run=self.ctx.run_command).convert(src_path, dst, fmt, src_fmt=fmt, snapshot=snapshot_name, target_exists=True)

        return fill

    # --- compare --------------------------------------------------------------------------------

    def compare(self, current, desired):
        if current is not None and desired is not None and desired.get("xml") is not None and self._xml_unchanged(current):
            tracker = compare_specified(dict((k, v) for k, v in desired.items() if k != "xml"), current)
        elif current is None or desired is None or desired.get("xml") is not None:
            tracker = super(VmResource, self).compare(current, desired)
        else:
            tracker = self._compare_model(current, desired)
        if current is not None and self._renaming_from:
            tracker.add(("name",), self._renaming_from, self.name)
        return tracker

    def _compare_model(self, current, desired, tracker=None, live=False):
        tracker = DifferenceTracker() if tracker is None else tracker
        plain = dict((k, v) for k, v in desired.items()
                     if k not in ("disks", "cdroms", "interfaces", "graphics", "xml") and not k.startswith("_"))
        if live:
            plain.pop("state", None)
            plain.pop("autostart", None)
        compare_specified(plain, current, tracker)
        self._compare_graphics(current.get("graphics") or {}, desired.get("graphics"), tracker)
        for key in ("disks", "cdroms"):
            if desired.get(key) is not None:
                self._compare_devices(key, _by_target(current.get(key)), desired[key], tracker, live)
        if desired.get("interfaces") is not None:
            self._compare_interfaces(current.get("interfaces") or [], desired["interfaces"], tracker)
        return tracker

    @staticmethod
    def _compare_graphics(current, desired, tracker):
        if not desired:
            return
        for key, value in desired.items():
            if value is None:
                continue
            have = current.get(key)
            if not values_equal(value, have):
                if key == "password":
                    tracker.add(("graphics", key), MASK if have else None, MASK if value else None)
                else:
                    tracker.add(("graphics", key), have, value)

    def _compare_devices(self, key, current, desired, tracker, live):
        wanted = set()
        for dev in desired:
            wanted.add(dev["target"])
            have = current.get(dev["target"])
            if have is None:
                tracker.add((key, dev["target"]), ABSENT, self._device_view(dev))
                continue
            compare_specified(_strip(dev, _NOT_COMPARED), have, tracker, (key, dev["target"]))
            if key == "disks" and not live and dev.get("size") is not None and have.get("size") is not None:
                if dev["size"] > have["size"]:
                    tracker.add((key, dev["target"], "size"), have["size"], dev["size"])
        for target, have in current.items():
            if target not in wanted:
                tracker.add((key, target), self._device_view(have), ABSENT)

    @staticmethod
    def _compare_interfaces(current, desired, tracker):
        for index, nic in enumerate(desired):
            if index >= len(current):
                tracker.add(("interfaces", str(index)), ABSENT, _strip(dict((k, v) for k, v in nic.items() if v is not None), ()))
                continue
            compare_specified(nic, current[index], tracker, ("interfaces", str(index)))
        for index in range(len(desired), len(current)):
            tracker.add(("interfaces", str(index)), current[index], ABSENT)

    @staticmethod
    def _device_view(dev):
        return dict((k, v) for k, v in dev.items() if v is not None and k not in ("pool", "volume", "backing_pool"))

    # --- plan -----------------------------------------------------------------------------------

    def _definition_model(self, desired):
        return dict((k, v) for k, v in desired.items() if k in _domain.DEFINITION_KEYS)

    def _plan_new_volumes(self, plan):
        for item in self._new_volumes:
            pool_name, xml, label = item[:3]
            source_vol = item[3] if len(item) > 3 else None
            fill = item[4] if len(item) > 4 else None
            source = label if fill is not None else None
            if source_vol is not None:
                # the copy reads the source with its known format; libvirt's copy (createXMLFrom) probes it,
                # so it is used only where nothing else is known (remote URI)
                model = parse_volume_xml(volume_xml(source_vol))
                source = "volume:%s" % model["path"]
                if self._trusted_volume(model, "clone_from: volume %s" % model["path"])["checked"] != "report":
                    source_vol, fill = None, self._copy_filler(model["path"], self._trusted_volume(model)["format"], xml)
            self._trust_backing(xml)
            plan.add(label, self._create_volume(pool_name, xml, source_vol, fill, source), undo=self._delete_created,
                     partial=True)

    def _trusted_volume(self, model, what=None):
        """``_trust.trusted_volume`` of a pool volume (remembered per path for this run)."""
        cache = self.__dict__.setdefault("_trusted", {})
        if model["path"] not in cache:
            cache[model["path"]] = _trust.trusted_volume(self.ctx.conn, self.ctx.uri, model, QemuImg(run=self.ctx.run_command),
                                                         what or "volume %s" % model["path"],
                                                         chain=lambda: backing_chain(self.ctx.conn, model))
        return cache[model["path"]]

    def _trust_backing(self, xml):
        """A new overlay names its base with the base's trusted format, never libvirt's probe of it."""
        path = _xml.find_text(xml, "backingStore/path")
        if path is None:
            return
        try:
            base = self.ctx.conn.storageVolLookupByPath(path)
        except libvirt.libvirtError:
            return  # check mode: a base an earlier task makes (a real run found it while resolving)
        fmt = self._trusted_volume(parse_volume_xml(volume_xml(base)), "backing file %s" % path)["format"]
        node = xml.find("backingStore/format")
        if node is None:
            node = _xml.sub(xml.find("backingStore"), "format")
        node.set("type", fmt)

    def _copy_filler(self, src_path, src_fmt, xml):
        """Fills a new volume with a copy of ``src_path`` read as ``src_fmt`` (qemu-img on this node)."""
        fmt = _xml.find_attr(xml, "target/format", "type")

        def fill(vol):
            with libvirt_errors("reading the path of a new volume"):
                dst = vol.path()
            QemuImg(run=self.ctx.run_command).convert(src_path, dst, fmt, src_fmt=src_fmt, target_exists=True)

        return fill

    def _create_volume(self, pool_name, xml, source_vol=None, fill=None, source=None):
        """A step that creates a volume (a copy of ``source_vol``), then ``fill(vol)`` if given; the volume
        carries the collection's record of its format (and of whether the fill completed)."""
        text = _xml.to_string(xml, pretty=False)
        name = _xml.find_text(xml, "name")
        rec = _record.new_record(_xml.find_attr(xml, "target/format", "type"), "vm",
                                 backing_format=_xml.find_attr(xml, "backingStore/format", "type"),
                                 source=source, complete=fill is None)

        def create():
            pool = self._pool(pool_name, "creating a volume")
            self._created.append((pool_name, name))  # the undo deletes it, also when the creation broke off
            try:
                if source_vol is not None:
                    vol = retry_busy(lambda: pool.createXMLFrom(text, source_vol, 0), "copying a volume into pool %r" % pool_name)
                else:
                    vol = retry_busy(lambda: pool.createXML(text, 0), "creating a volume in pool %r" % pool_name)
            except ConflictError as exc:
                if exists_already(exc):
                    self._created[-1] = None  # another task's volume: not this run's to delete
                raise
            path = _record.local_file(self.ctx.uri, parse_volume_xml(volume_xml(vol)))
            record_fill(path, rec, complete=False)
            if fill is not None:
                fill(vol)
                record_fill(path, rec, complete=True)

        return create

    def _delete_created(self):
        """Undo of a creation: by name, through the current connection (it may be a new one).  The entry
        is dropped only once the volume is gone: the plan may run this undo again after a reconnect."""
        item = self._created[-1] if self._created else None
        if item is not None:
            delete_by_name(self.ctx.conn, item[0], item[1])
        if self._created:
            self._created.pop()

    def _plan_create(self, desired, plan):
        self._plan_new_volumes(plan)
        if self._clone is not None:
            base = _xml.parse(self._clone["xml"])
            xml_text = _xml.to_string(_codec_write.apply_model(base, self._definition_model(desired)))
        else:
            xml_text = self._definition_xml(self._definition_model(desired) if desired.get("xml") is None else desired)
        label = "define VM %s" % self.name
        if self._clone is not None:
            label += " as a %s clone of %s" % (self._clone["mode"], self._clone["source"])
        self._start_xml = xml_text
        plan.add(label, lambda: self._define(xml_text), undo=self._undefine_created)
        if desired.get("autostart"):
            plan.add("set autostart of VM %s to true" % self.name, self._call("setting autostart of", "setAutostart", 1))
        state = desired["state"]
        if state in ("running", "restarted"):
            plan.add("start VM %s" % self.name, self._call("starting", "create"), undo=self._call("stopping", "destroy"))
        elif state == "paused":
            plan.add("start VM %s paused" % self.name,
                     self._call("starting", "createWithFlags", libvirt.VIR_DOMAIN_START_PAUSED),
                     undo=self._call("stopping", "destroy"))

    def _undefine_created(self):
        self._call("undefining", "undefineFlags", self._undefine_flags())()

    @staticmethod
    def _undefine_flags():
        flags = 0
        for name in ("VIR_DOMAIN_UNDEFINE_MANAGED_SAVE", "VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA",
                     "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA", "VIR_DOMAIN_UNDEFINE_NVRAM"):
            flags |= getattr(libvirt, name, 0)
        return flags

    def _plan_update(self, current, desired, diff, plan):
        if self._renaming_from:
            if current["active"]:
                raise ConflictError("rename_from: VM %r is %s; a VM is renamed only while it is stopped"
                                    % (self._renaming_from, current["state"]))
            old = self._renaming_from
            plan.add("rename VM %s to %s" % (old, self.name), self._rename(old, self.name),
                     undo=self._rename(self.name, old))
        definition = self._definition_model(desired) if desired.get("xml") is None else None
        config_changed = [p for p in diff.paths if p.split(".")[0] in _domain.DEFINITION_KEYS or p == "xml"]
        config_changed = [p for p in config_changed if not p.endswith(".size")]
        self._plan_new_volumes(plan)
        self._start_xml = current["xml"]
        if config_changed:
            if desired.get("xml") is not None:
                xml_text = self._definition_xml(desired, uuid=current["uuid"])
            else:
                xml_text = self._definition_xml(definition, base_xml=current["xml"])
            old_xml = current["xml"]
            self._start_xml, self._redefined = xml_text, True
            plan.add("redefine VM %s (%s)" % (self.name, ", ".join(sorted(set(p.split(".")[0] for p in config_changed)))),
                     lambda: self._define(xml_text), undo=lambda: self._define(old_xml))
        self._plan_growth(current, desired, plan)
        active = current["active"]
        if active and definition is not None and desired["state"] not in ("stopped", "restarted"):
            self._plan_live(current, definition, diff, plan)
        if active:
            self.reboot_required = self._needs_reboot(current, desired)
        self._plan_autostart(current, desired, diff, plan)
        self._plan_state(current, desired, plan)

    def _rename(self, old, new):
        def call():
            with libvirt_errors("renaming VM %r to %r" % (old, new)):
                self.ctx.conn.lookupByName(old).rename(new, 0)

        return call

    def _plan_growth(self, current, desired, plan):
        have = _by_target(current.get("disks"))
        for disk in desired.get("disks") or []:
            old = have.get(disk["target"])
            if old is None or disk.get("size") is None or old.get("size") is None:
                continue
            if disk["size"] < old["size"]:
                plan.warn("disk %s is %d bytes, more than size %d: disks are never shrunk" % (disk["target"], old["size"], disk["size"]))
            elif disk["size"] > old["size"]:
                live = " (live)" if current["active"] else ""
                plan.add("grow disk %s of VM %s from %d to %d bytes%s" % (disk["target"], self.name, old["size"], disk["size"], live),
                         self._grow_disk(disk, current["active"]))

    def _grow_disk(self, disk, active):
        def call():
            if active:
                self._call("growing disk %s of" % disk["target"], "blockResize", disk["target"], disk["size"],
                           libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)()
                return
            with libvirt_errors("growing disk %s (%s) of VM %r" % (disk["target"], disk["path"], self.name)):
                vol = self.ctx.conn.storageVolLookupByPath(disk["path"])
                vol.resize(disk["size"], 0)
                refresh_pool(vol.storagePoolLookupByVolume())

        return call

    def _plan_live(self, current, definition, diff, plan):
        """Changes a running guest takes without a restart: balloon, vCPUs, CD-ROM media, metadata.

        Memory is a balloon request the guest may not follow (no driver): it is sent when the
        definition's memory changes, never because the guest did not follow an earlier request.
        """
        live = current["_live"]
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
        memory = definition.get("memory")
        if memory is not None and diff.touches("memory") and memory <= live["max_memory"]:
            plan.add("set memory of running VM %s to %d MiB" % (self.name, memory),
                     self._call("setting memory of", "setMemoryFlags", memory * 1024, flags))
        vcpus = definition.get("vcpus")
        if vcpus is not None and live["vcpus"] < vcpus <= live["max_vcpus"]:
            plan.add("set vCPUs of running VM %s to %d" % (self.name, vcpus),
                     self._call("setting vCPUs of", "setVcpusFlags", vcpus, flags))
        live_cdroms = _by_target(live["cdroms"])
        for cdrom in definition.get("cdroms") or []:
            have = live_cdroms.get(cdrom["target"])
            if have is not None and have["bus"] == cdrom["bus"] and have["path"] != cdrom.get("path"):
                text = _xml.to_string(_codec_write.disk_element(cdrom, "cdrom"), pretty=False)
                what = "insert %s into" % cdrom["path"] if cdrom.get("path") else "eject the medium of"
                plan.add("%s CD-ROM %s of running VM %s" % (what, cdrom["target"], self.name),
                         self._call("changing the CD-ROM medium of", "updateDeviceFlags", text, flags))
        self._plan_live_metadata(live, definition, plan)

    def _plan_live_metadata(self, live, definition, plan):
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
        for key, kind in (("title", libvirt.VIR_DOMAIN_METADATA_TITLE),
                          ("description", libvirt.VIR_DOMAIN_METADATA_DESCRIPTION)):
            value = definition.get(key)
            if value is not None and value != live[key]:
                plan.add("set %s of running VM %s" % (key, self.name),
                         self._call("setting the %s of" % key, "setMetadata", kind, value or None, None, None, flags))
        tags = definition.get("tags")
        meta = definition.get("metadata")
        if (tags is not None and tags != live["tags"]) or (meta is not None and meta != live["metadata"]):
            node = _codec_write.metadata_element(tags if tags is not None else live["tags"],
                                                  meta if meta is not None else live["metadata"], namespaced=False)
            text = _xml.to_string(node, pretty=False)
            plan.add("set tags and metadata of running VM %s" % self.name,
                     self._call("setting the metadata of", "setMetadata", libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                                text, "virtops", _xml.VIRTOPS_NS, flags))

    def _needs_reboot(self, current, desired):
        """True when the running guest differs from the definition in what cannot change live."""
        if desired.get("xml") is not None:
            if self._xml_unchanged(current["_live"]):
                return False
            return not _xml.xml_subset(_xml.parse(desired["xml"]), _xml.parse(current["_live_xml"]))
        definition = self._definition_model(self._predicted_definition(current, desired))
        live = current["_live"]
        if (definition.get("cpu") or {}).get("mode") in ("host-model", None):
            definition.pop("cpu", None)  # the live XML shows the model host-model expanded to
        pending = self._compare_model(live, definition, live=True).paths
        blocking = []
        live_cdroms = _by_target(live["cdroms"])
        for path in pending:
            parts = path.split(".")
            if parts[0] in LIVE_KEYS:
                if parts[0] == "memory" and definition["memory"] > live["max_memory"]:
                    blocking.append(path)
                elif parts[0] == "vcpus" and (definition["vcpus"] > live["max_vcpus"] or definition["vcpus"] < live["vcpus"]):
                    blocking.append(path)
                continue
            if parts[0] == "cdroms" and len(parts) == 3 and parts[2] == "path" and parts[1] in live_cdroms:
                continue
            blocking.append(path)
        self.pending_changes = blocking
        return bool(blocking)

    def _plan_state(self, current, desired, plan):
        want = desired["state"]
        have = current["state"]
        apply_restart = self.params.get("apply") == "restart" and self.reboot_required
        if want == "present":
            if apply_restart and current["active"]:
                self._plan_stop(have, plan)
                plan.add("start VM %s" % self.name, self._start_again(current))
                self.reboot_required = False
            return
        if want == "restarted" or (apply_restart and want in ("running", "paused") and current["active"]):
            if current["active"]:
                self._plan_stop(have, plan)
                plan.add("start VM %s" % self.name, self._start_again(current))
            else:
                plan.add("start VM %s" % self.name, self._call("starting", "create"))
            if want == "paused":
                plan.add("pause VM %s" % self.name, self._call("pausing", "suspend"))
            self.reboot_required = False
            return
        if want == "running":
            if have == "stopped":
                plan.add("start VM %s" % self.name, self._call("starting", "create"), undo=self._call("stopping", "destroy"))
            elif have == "paused":
                plan.add("resume VM %s" % self.name, self._call("resuming", "resume"), undo=self._call("pausing", "suspend"))
            elif have == "pmsuspended":
                plan.add("wake up VM %s" % self.name, self._call("waking up", "pMWakeup", 0))
            elif have == "crashed":
                plan.add("power off crashed VM %s" % self.name, self._call("stopping", "destroy"))
                plan.add("start VM %s" % self.name, self._call("starting", "create"))
        elif want == "paused":
            if have == "stopped":
                plan.add("start VM %s paused" % self.name,
                         self._call("starting", "createWithFlags", libvirt.VIR_DOMAIN_START_PAUSED))
            elif have != "paused":
                plan.add("pause VM %s" % self.name, self._call("pausing", "suspend"), undo=self._call("resuming", "resume"))
        elif want == "stopped" and have != "stopped":
            self._plan_stop(have, plan)
            self.reboot_required = False

    def _start_again(self, current):
        """The start after this plan shut the VM down.  If the new definition does not start, the old
        one is defined again and started, so the VM runs (or is paused) as before, and the error says
        so; the guest was restarted, so the failed result has ``changed: true``."""
        old_xml, was, redefined = current["xml"], current["state"], self._redefined

        def call():
            try:
                self._call("starting", "create")()
                return
            except VirtopsError as exc:
                error = exc
            details = dict(error.details, changed=True)
            if not redefined:
                raise _same_kind(error, "VM %s was shut down to restart and did not start again (%s); it is stopped"
                                 % (self.name, error.msg), details)
            try:
                self._define(old_xml)
                flags = libvirt.VIR_DOMAIN_START_PAUSED if was == "paused" else 0
                self._call("starting the previous definition of", "createWithFlags", flags)()
            except VirtopsError as again:
                raise _same_kind(error, "VM %s did not start with its new definition (%s); its previous definition is "
                                 "restored but did not start either (%s): the VM is stopped"
                                 % (self.name, error.msg, again.msg), details)
            raise _same_kind(error, "VM %s did not start with its new definition (%s); its previous definition is restored "
                             "and the VM %s again (the guest was restarted): nothing of the change was applied"
                             % (self.name, error.msg, "is paused" if was == "paused" else "runs"), details)

        return call

    def _plan_stop(self, have, plan):
        timeout = self._timeout("shutdown_timeout")
        force = bool(self.params.get("force"))
        if have == "paused" and force:
            plan.add("power off paused VM %s" % self.name, self._call("stopping", "destroy"))
            return
        if have == "paused":
            plan.add("resume VM %s to shut it down" % self.name, self._call("resuming", "resume"))
        label = "shut down VM %s (ACPI, up to %d s%s)" % (self.name, timeout, ", then power off" if force else "")
        plan.add(label, self._shutdown(timeout, force))

    def _shutdown(self, timeout, force, sleep=time.sleep, clock=time.monotonic):
        def call():
            dom = self._lookup()
            with libvirt_errors("shutting down VM %r" % self.name):
                if not dom.isActive():
                    return
                deadline = clock() + timeout
                self._acpi_shutdown(dom)
                delay = 0.25
                while clock() < deadline:
                    sleep(delay)
                    delay = min(delay * 2, 2.0)
                    if not dom.isActive():
                        return
                    self._acpi_shutdown(dom)  # guests that boot slowly miss the first ACPI event
                # the guest may have gone down after the last look: only a VM that still runs is late
                if not dom.isActive():
                    return
                if force:
                    try:
                        dom.destroy()
                    except libvirt.libvirtError:
                        if dom.isActive():
                            raise
                    return
            raise OperationTimeoutError(
                "VM %r did not shut down within %d s (does the guest react to ACPI?); give force: true to power "
                "it off after the timeout, or a longer shutdown_timeout" % (self.name, timeout))

        return call

    @staticmethod
    def _acpi_shutdown(dom):
        """Press the power button; a guest that is already shutting down or off is not an error."""
        try:
            dom.shutdown()
        except libvirt.libvirtError:
            if dom.isActive() and dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING:
                raise

    def _plan_absent(self, current, plan):
        if current["active"]:
            plan.add("power off VM %s" % self.name, self._call("stopping", "destroy"))
        owned = self._owned_volumes(current, plan) if self.params.get("remove_storage") else []
        self.removed_volumes = list(owned)
        plan.add("undefine VM %s" % self.name, self._call("undefining", "undefineFlags", self._undefine_flags()))
        for path in owned:
            plan.add("delete volume %s" % path, self._delete_path(path))

    def _owned_volumes(self, current, plan):
        """Writable disk volumes (and its own seed) that no other VM uses and no other volume is based on
        (:mod:`_usage`: other VMs running or not, their snapshots, NVRAM...; overlays in any pool)."""
        owned = []
        answer = usage(self.ctx)
        seed = "%s-seed.iso" % self.name
        for cdrom in current["cdroms"]:
            if cdrom.get("path") and cdrom["path"].rsplit("/", 1)[-1] == seed:
                if not answer.users_of([cdrom["path"]], exclude_vms=[self.name])[0]:
                    owned.append(cdrom["path"])
        for disk in current["disks"]:
            path = disk.get("path")
            if not path or disk.get("readonly"):
                continue
            users, based = answer.users_of([path], exclude_vms=[self.name])
            direct = [u for u in users if not u.get("via") and u["role"] != "backing file"]
            if direct or (users and not based):
                direct = direct or users
                plan.warn("kept %s: VM %s uses it too (%s)" % (path, ", ".join(vm_names(direct)), describe(direct)))
                continue
            if based:
                plan.warn("kept %s: volumes %s are based on it" % (path, ", ".join(based)))
                continue
            try:
                self.ctx.conn.storageVolLookupByPath(path)
            except libvirt.libvirtError:
                plan.warn("kept %s: it is not a volume of a libvirt storage pool" % path)
                continue
            owned.append(path)
        return owned

    def _delete_path(self, path):
        def call():
            with libvirt_errors("deleting volume %s" % path):
                vol = self.ctx.conn.storageVolLookupByPath(path)
            retry_busy(lambda: vol.delete(0), "deleting volume %s" % path)

        return call

    # --- results --------------------------------------------------------------------------------

    def predict(self, current, desired):
        if desired is None:
            return None
        state = desired["state"]
        if state == "present":
            state = current["state"] if current else "stopped"
        elif state == "restarted":
            state = "running"
        base = self._predicted_definition(current, desired)
        names = VolumeNames(self.ctx.conn, self._planned_volume_names())
        names.fill(base["disks"])
        names.fill(base["cdroms"])
        base.update(state=state, autostart=desired.get("autostart") if desired.get("autostart") is not None
                    else (current or {}).get("autostart", False))
        return base

    def _predicted_definition(self, current, desired):
        """The VM with the definition the plan writes, read back the way read() reads one: what a real
        run returns (max_memory raised with memory, ...), and what the running guest is compared with."""
        definition = _domain.model_from_xml(self._prediction_xml(current, desired))
        if current is None:
            base = definition
        else:
            base = copy.deepcopy(current)
            base.update((k, definition[k]) for k in _domain.DEFINITION_KEYS + ("nvram",))
            base["name"] = self.name
        self._predict_sizes(base, current, desired)
        return base

    def _prediction_xml(self, current, desired):
        if desired.get("xml") is not None:
            return desired["xml"]
        if current is not None:
            return _xml.to_string(self.apply_model(_xml.parse(current["xml"], "domain XML"), self._definition_model(desired)))
        if self._clone is not None:
            return _xml.to_string(_codec_write.apply_model(_xml.parse(self._clone["xml"]), self._definition_model(desired)))
        return _xml.to_string(_codec_write.build_xml(self.name, self._definition_model(desired)))

    @staticmethod
    def _predict_sizes(base, current, desired):
        """Disk sizes after the plan: a disk that stays keeps its size (or grows to the one asked for)."""
        have = _by_target((current or {}).get("disks"))
        asked = _by_target(desired.get("disks")) if desired.get("xml") is None else {}
        for disk in base["disks"]:
            old = have.get(disk["target"])
            sizes = [(asked.get(disk["target"]) or {}).get("size")]
            if old is not None and old.get("path") == disk.get("path"):
                sizes.append(old.get("size"))
            sizes = [size for size in sizes if size is not None]
            disk["size"] = max(sizes) if sizes else None

    def _device_diff_views(self, current, desired, before, after):
        """Devices in ``--diff``: per device only the keys the user gave (and whole added/removed ones)."""
        for key in ("disks", "cdroms", "interfaces"):
            wanted = desired.get(key)
            if wanted is None:
                continue
            if key == "interfaces":
                have = dict((str(i), n) for i, n in enumerate(current.get(key) or []))
                ids = [str(i) for i in range(len(wanted))]
            else:
                have = _by_target(current.get(key))
                ids = [d["target"] for d in wanted]
            shown = [self._device_view(_strip(d, _NOT_COMPARED[:-1])) for d in wanted]
            for n, i in enumerate(ids):
                size = (have.get(i) or {}).get("size")
                if size is not None and shown[n].get("size") is not None and shown[n]["size"] < size:
                    shown[n]["size"] = size  # disks are never shrunk
            before[key] = [project(have[i], shown[n]) for n, i in enumerate(ids) if i in have]
            before[key] += [self._device_view(h) for i, h in sorted(have.items()) if i not in ids]
            after[key] = shown

    def _absent_view(self, current):
        return {"state": current["state"]}

    def _implied_diff_views(self, current, desired, before, after):
        """Values the user did not give that change with those given (``max_memory`` raised with
        ``memory``, ``max_vcpus`` with ``vcpus``, ...): shown, since the run changes them."""
        predicted = self._predicted_definition(current, desired)
        for key in _domain.DEFINITION_KEYS:
            if desired.get(key) is not None or key in ("disks", "cdroms", "interfaces"):
                continue
            old, new = current.get(key), predicted.get(key)
            if not isinstance(new, dict) and not values_equal(new, old):
                before[key], after[key] = old, new

    def diff_views(self, current, desired):
        before, after = super(VmResource, self).diff_views(current, desired)
        if current is not None and desired is not None and desired.get("xml") is None:
            self._device_diff_views(current, desired, before, after)
            self._implied_diff_views(current, desired, before, after)
        for view in (before, after):
            graphics = view.get("graphics") if isinstance(view, dict) else None
            if isinstance(graphics, dict) and graphics.get("password"):
                graphics["password"] = MASK
            if isinstance(view, dict) and isinstance(view.get("xml"), str):
                view["xml"] = _secrets.mask_xml_passwords(view["xml"])
        return _secrets.mask(before, self.ctx.no_log_values), _secrets.mask(after, self.ctx.no_log_values)

    def result(self, state, outcome):
        vm = vm_view(state) if state else None
        reboot = bool(self.reboot_required and state and state.get("state") != "stopped")
        out = dict(vm=vm, reboot_required=reboot, pending_changes=list(self.pending_changes) if reboot else [])
        if self._seed_result is not None:
            out["cloud_init"] = dict((k, self._seed_result.get(k)) for k in ("path", "instance_id", "content_sha256", "changed"))
            out["cloud_init"]["detached"] = bool(self._seed_result.get("detached"))
        if self.params.get("wait_for_ip") and vm is not None and vm["state"] == "running" and not self.ctx.check_mode:
            out.update(self._wait_for_ip(vm))
        return _secrets.mask(out, self.ctx.no_log_values)

    def _wait_for_ip(self, vm):
        macs = [nic["mac"] for nic in vm.get("interfaces") or [] if nic.get("mac")]
        if not macs:
            raise InvalidInputError("wait_for_ip: VM %r has no network interface" % self.name)
        found = _address_wait.wait_for_addresses(self.ctx.conn, self._lookup(), source=self.params.get("ip_source") or "any",
                                                 timeout=self._timeout("wait_for_ip_timeout"), macs=macs)
        by_mac = dict((item["mac"], item) for item in found)
        for nic in vm["interfaces"]:
            nic["addresses"] = (by_mac.get(nic.get("mac")) or {}).get("addresses", [])
        return dict(addresses=found, ip=_addresses.domain_ip_summary(found, macs))


def _same_kind(error, msg, details):
    """A new error of the kind of ``error`` (a libvirt failure keeps its ``error_kind``)."""
    cls = type(error) if type(error) in (InvalidInputError, NotFoundError, ConflictError) else BackendError
    return cls(msg, **details)
