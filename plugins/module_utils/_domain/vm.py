# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``vm`` resource: a libvirt domain, its disks' volumes and its run state.

Reads the saved and the live definition, resolves what the user asked for (pools, volumes,
networks) into a model, compares only what was specified, and plans: volumes to create, the
definition to write (keeping UUID, MACs and device addresses), what can change live (memory
balloon, vCPUs, CD-ROM media, disk growth, metadata; disks, CD-ROM drives and NICs added or removed:
:mod:`.hotplug`), and the run-state transition.  Whatever
differs between the new definition and the running guest and cannot change live is reported as
``reboot_required`` (or applied by a restart with ``apply: restart``).

The pieces, each in its own file of this package:

* :mod:`.desired` the desired model (defaults, host, checks); :mod:`.disks` pools, volumes, formats;
* :mod:`.seed` the cloud-init seed; :mod:`.clone` ``clone_from``; :mod:`.volumes` volumes made or grown;
* :mod:`.compare` comparison, prediction and ``--diff``; :mod:`.live` live changes, pending changes;
* :mod:`.power` the run state; :mod:`.remove` ``state: absent``; :mod:`.options` the option table.

What one run finds out is the :class:`~._core.reconcile.Outcome` that :meth:`VmResource.plan` returns
(``reboot_required``, ``pending_changes``, ``removed_volumes``, the seed's result as ``cloud_init``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import checks as _vm_checks
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import compare as _compare
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import addresses as _addresses
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import address_wait as _address_wait
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import codec_write as _codec_write
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import hotplug as _hotplug
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import live as _live
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import pcie as _pcie
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import ready as _ready
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.compare import MASK, definition_model
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.desired import DesiredModel
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.disks import DiskResolver
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.options import DEFAULTS, DEFINITION_KEYS, STATES, TIMEOUTS
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.power import PowerPlan
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.remove import plan_absent, undefine_flags
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.view import vm_view
from ansible_collections.virtops.libvirt.plugins.module_utils._core import secrets as _secrets
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.defined import Codec, DefinedObjectResource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_pool, find_vm
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import compare_specified
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError, VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Outcome
from ansible_collections.virtops.libvirt.plugins.module_utils._core.timeouts import check_timeouts, timeout_seconds
from ansible_collections.virtops.libvirt.plugins.module_utils._host.facts import run_state
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.names import VolumeNames, fill_volume_names
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import (
    lookup_pool_or_assume,
    lookup_volume,
    parse_volume_xml,
    volume_path,
    volume_xml,
)

_XML_SECURE = flag("VIR_DOMAIN_XML_SECURE", 1)
#: plan steps that change the run state: a check-mode run does not wait for the VM then
_POWER_STEPS = ("start VM", "resume VM", "wake up VM", "shut down VM", "power off", "pause VM")
_XML_INACTIVE = flag("VIR_DOMAIN_XML_INACTIVE", 2)


class VmResource(DefinedObjectResource):
    noun = "VM"
    root_tag = "domain"
    kind = "vm"
    codec = Codec(_domain.model_from_xml, _codec_write.build_xml, _codec_write.apply_model)
    find = staticmethod(find_vm)
    define_method = "defineXML"
    check_name = staticmethod(_domain.validate_name)

    def __init__(self, ctx):
        super(VmResource, self).__init__(ctx)
        self.paths_made = set()     # files an enclosing plan makes before this one starts the VM (vm_import)
        self.requested = DesiredModel(self)  # keeps the host's capabilities and limits once read
        self.disks = DiskResolver(self)      # keeps the disk users and trusted formats once read
        self.power = PowerPlan(self)

    # --- DefinedObjectResource hooks ------------------------------------------------------------

    def _inactive_xml(self, obj):
        if not obj.isPersistent():
            return obj.XMLDesc(_XML_SECURE)
        return obj.XMLDesc(_XML_INACTIVE | _XML_SECURE)

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

    # --- helpers of the collaborators -----------------------------------------------------------

    def _timeout(self, key):
        return timeout_seconds(self.params.get(key), key, TIMEOUTS[key])

    def _pool(self, name, what):
        """The active pool ``name``; None in check mode when it is assumed (an earlier task creates it)."""
        return lookup_pool_or_assume(self.ctx, name, what)

    def _volume_path(self, pool_name, volume):
        """Where ``volume`` of ``pool_name`` is (or would be made); None for an unknown pool."""
        pool = find_pool(self.ctx.conn, pool_name)
        if pool is None or not pool.isActive():
            return None
        vol = lookup_volume(pool, volume)
        if vol is not None:
            return parse_volume_xml(volume_xml(vol))["path"]
        return volume_path(pool, volume)

    def _definition_xml(self, desired, base_xml=None, uuid=None):
        text = super(VmResource, self)._definition_xml(desired, base_xml, uuid)
        if desired.get("xml") is None:
            return text
        return _xml.to_string(_codec_write.mark_xml_source(_xml.parse(text), desired["_run"].xml_digest))

    @staticmethod
    def _xml_unchanged(model, desired):
        """A VM defined from this very user XML before: what libvirt made of it is not compared again."""
        digest = desired["_run"].xml_digest
        return digest is not None and model.get("xml_sha256") == digest

    # --- read -----------------------------------------------------------------------------------

    def read(self):
        """The VM; with ``rename_from`` and no VM ``name``, the VM to rename (``_rename_from`` names it)."""
        check_timeouts(self.params, TIMEOUTS)
        self._wanted_ready()
        current = super(VmResource, self).read()
        rename_from = self.params.get("rename_from")
        if current is None and rename_from and rename_from != self.name:
            _domain.validate_name(rename_from)
            old = find_vm(self.ctx.conn, rename_from)
            if old is None:
                raise NotFoundError("rename_from: neither VM %r nor VM %r exists, so there is nothing to rename; leave "
                                    "rename_from out to create VM %r" % (rename_from, self.name, self.name))
            saved_lookup = self._lookup
            self._lookup = lambda: old
            try:
                current = super(VmResource, self).read()
            finally:
                self._lookup = saved_lookup
            current["_rename_from"] = rename_from
        return current

    # --- desired --------------------------------------------------------------------------------

    def requested_state(self):
        state = self.params.get("state") or DEFAULTS["state"]
        if state not in STATES:
            raise InvalidInputError("state: %r is not one of %s" % (state, ", ".join(STATES)))
        return None if state == "absent" else state

    def desired(self, current):
        state = self.requested_state()
        if state is None:
            return None
        model = self.requested.build(current)
        model.update(state=state, autostart=self.params.get("autostart"))
        return model

    @staticmethod
    def _shown(desired):
        """``desired`` without what only the plan reads (``_run``): what is compared and shown."""
        return None if desired is None else dict((k, v) for k, v in desired.items() if not k.startswith("_"))

    # --- compare --------------------------------------------------------------------------------

    def compare(self, current, desired):
        if current is not None and desired is not None and desired.get("xml") is not None and self._xml_unchanged(current, desired):
            tracker = compare_specified(dict((k, v) for k, v in self._shown(desired).items() if k != "xml"), current)
        elif current is None or desired is None or desired.get("xml") is not None:
            tracker = super(VmResource, self).compare(current, self._shown(desired))
        else:
            tracker = _compare.compare_model(current, desired)
        if current is not None and current.get("_rename_from"):
            tracker.add(("name",), current["_rename_from"], self.name)
        return tracker

    # --- plan -----------------------------------------------------------------------------------

    def plan(self, current, desired, diff, plan):
        if desired is None:
            return plan_absent(self, current, plan) if current is not None else None
        outcome = Outcome()
        run = desired["_run"]
        seed = run.seed.plan(plan)
        if current is None:
            start_xml = self._plan_create(desired, plan)
        else:
            start_xml = self._plan_update(current, desired, diff, plan, outcome)
        self._check_start(plan, start_xml, run)
        run.seed.plan_detach(current, plan, seed)
        if seed is not None:
            outcome.values["cloud_init"] = seed
        outcome.values["_ready_now"] = bool(current and current["state"] == "running") and not any(
            d.startswith(_POWER_STEPS) for d in plan.descriptions)
        outcome.values["_changed"] = bool(plan)
        return outcome

    def _check_start(self, plan, start_xml, run):
        """A plan that starts the VM: what would make the start fail, found before anything is done
        (before a restart shuts the guest down)."""
        starts = "start VM %s" % self.name
        if start_xml is None or not any(d == starts or d.startswith(starts + " ") for d in plan.descriptions):
            return
        made = set(run.planned_names()) | self.paths_made
        _vm_checks.check_startable(self.ctx, _xml.parse(start_xml, "domain XML"), made)

    def _plan_create(self, desired, plan):
        """Volumes, definition, autostart, start; returns the definition the start boots."""
        desired["_run"].volumes.plan(plan)
        clone = desired["_run"].clone.info
        if clone is not None:
            xml_text = _xml.to_string(_codec_write.apply_model(_xml.parse(clone["xml"]), definition_model(desired)))
        else:
            xml_text = self._definition_xml(definition_model(desired) if desired.get("xml") is None else desired)
        label = "define VM %s" % self.name
        if clone is not None:
            label += " as a %s clone of %s" % (clone["mode"], clone["source"])
        spare = _pcie.spare_ports(self.params.get("pcie_spare_ports")) if desired.get("xml") is None else 0
        plan.add(label, lambda: _pcie.define_with_spare_ports(self._define, xml_text, spare),
                 undo=self._call("undefining", "undefineFlags", undefine_flags()))
        if desired.get("autostart"):
            plan.add("set autostart of VM %s to true" % self.name, self._call("setting autostart of", "setAutostart", 1))
        state = desired["state"]
        if state in ("running", "restarted"):
            plan.add("start VM %s" % self.name, self._call("starting", "create"), undo=self._call("stopping", "destroy"))
        elif state == "paused":
            plan.add("start VM %s paused" % self.name,
                     self._call("starting", "createWithFlags", libvirt.VIR_DOMAIN_START_PAUSED),
                     undo=self._call("stopping", "destroy"))
        return xml_text

    def _plan_update(self, current, desired, diff, plan, outcome):
        """Rename, volumes, redefinition, growth, live changes, autostart, run state; returns the
        definition a start in this plan boots."""
        old = current.get("_rename_from")
        if old:
            if current["active"]:
                raise ConflictError("rename_from: VM %r is %s; a VM is renamed only while it is stopped" % (old, current["state"]))
            plan.add("rename VM %s to %s" % (old, self.name), _live.rename_step(self.ctx, old, self.name),
                     undo=_live.rename_step(self.ctx, self.name, old))
        definition = definition_model(desired) if desired.get("xml") is None else None
        config_changed = [p for p in diff.paths if p.split(".")[0] in DEFINITION_KEYS or p == "xml"]
        config_changed = [p for p in config_changed if not p.endswith(".size")]
        desired["_run"].volumes.plan(plan)
        start_xml, redefined = current["xml"], False
        live = current["active"] and definition is not None and desired["state"] not in ("stopped", "restarted")
        run_state_now = self.power.plan_wake_first(current, desired, plan) if live else current["state"]
        handled, attach = _hotplug.plan_hotplug(self, current, definition, plan, self._timeout("hotplug_timeout")) if live else ((), ())
        if config_changed:
            if desired.get("xml") is not None:
                xml_text = self._definition_xml(desired, uuid=current["uuid"])
            else:
                xml_text = self._definition_xml(definition, base_xml=current["xml"])
            old_xml = current["xml"]
            start_xml, redefined = xml_text, True
            plan.add("redefine VM %s (%s)" % (self.name, ", ".join(sorted(set(p.split(".")[0] for p in config_changed)))),
                     lambda: self._define(xml_text), undo=lambda: self._define(old_xml))
        desired["_run"].volumes.plan_growth(current, desired, plan)
        active = current["active"]
        if live:
            _hotplug.plan_attach(self, attach, plan, self._timeout("hotplug_timeout"))
            _hotplug.check_attach(self, start_xml, attach, set(desired["_run"].planned_names()) | self.paths_made)
            _live.plan_live(self, current, definition, diff, plan)
        if active:
            reboot, pending = _live.needs_reboot(self, current, desired, handled)
            outcome.reboot_required, outcome.pending_changes = reboot, pending
        self._plan_autostart(current, desired, diff, plan)
        self.power.plan_state(dict(current, state=run_state_now), desired, plan, outcome, redefined)
        return start_xml

    # --- results --------------------------------------------------------------------------------

    def predict(self, current, desired):
        if desired is None:
            return None
        state = desired["state"]
        if state == "present":
            state = current["state"] if current else "stopped"
        elif state == "restarted":
            state = "running"
        base = _compare.predicted_definition(self, current, desired)
        names = VolumeNames(self.ctx.conn, desired["_run"].planned_names())
        names.fill(base["disks"])
        names.fill(base["cdroms"])
        base.update(state=state, autostart=desired.get("autostart") if desired.get("autostart") is not None
                    else (current or {}).get("autostart", False))
        return base

    def diff_views(self, current, desired):
        before, after = super(VmResource, self).diff_views(current, self._shown(desired))
        if current is not None and desired is not None and desired.get("xml") is None:
            _compare.device_diff_views(current, desired, before, after)
            _compare.implied_diff_views(self, current, desired, before, after)
        for view in (before, after):
            graphics = view.get("graphics") if isinstance(view, dict) else None
            if isinstance(graphics, dict) and graphics.get("password"):
                graphics["password"] = MASK
            if isinstance(view, dict) and isinstance(view.get("xml"), str):
                view["xml"] = _secrets.mask_xml_passwords(view["xml"])
        return _secrets.mask(before, self.ctx.no_log_values), _secrets.mask(after, self.ctx.no_log_values)

    def result(self, state, outcome):
        outcome = outcome or Outcome()
        vm = vm_view(state) if state else None
        reboot = bool(outcome.reboot_required and state and state.get("state") != "stopped")
        out = dict(vm=vm, reboot_required=reboot, pending_changes=list(outcome.pending_changes) if reboot else [])
        seed = outcome.values.get("cloud_init")
        if seed is not None:
            out["cloud_init"] = dict((k, seed.get(k)) for k in ("path", "instance_id", "content_sha256", "changed"))
            out["cloud_init"]["detached"] = bool(seed.get("detached"))
        wanted = self._wanted_ready()
        if wanted and vm is not None and vm["state"] == "running":
            if self.ctx.check_mode and not outcome.values.get("_ready_now"):
                out["ready"] = None  # check mode does not wait for a VM it would only start
            else:
                try:
                    out.update(self._wait_ready(vm, wanted))
                except VirtopsError as exc:
                    exc.details.setdefault("changed", bool(outcome.values.get("_changed")) and not self.ctx.check_mode)
                    raise
        return _secrets.mask(out, self.ctx.no_log_values)

    def _wanted_ready(self):
        """The conditions of ``wait_for`` (and ``wait_for_ip``), checked against ``state``."""
        wanted = _ready.conditions(self.params.get("wait_for"), self.params.get("wait_for_ip"))
        if self.params.get("wait_for") and self.requested_state() not in ("running", "restarted", "present"):
            raise InvalidInputError("wait_for: a VM is waited for only when it runs (state running, restarted or present), "
                                    "not with state %s" % self.params.get("state"))
        return wanted

    def _wait_ready(self, vm, wanted):
        """Wait for the guest agent, cloud-init and addresses, in that order, within one deadline."""
        timeout = self._timeout("wait_for_timeout" if self.params.get("wait_for") else "wait_for_ip_timeout")
        started = time.monotonic()
        dom = self._lookup()
        got = _ready.wait_ready(dom, wanted, timeout)
        out = {}
        if "ip" in wanted:
            source = self.params.get("ip_source") or DEFAULTS["ip_source"]
            out.update(_wait_for_ip(self.ctx.conn, self.name, vm, dom, source, max(timeout - (time.monotonic() - started), 1)))
        out["ready"] = dict(conditions=list(wanted), agent=got.get("agent", False), cloud_init=got.get("cloud_init"),
                            seconds=round(time.monotonic() - started, 1))
        return out


def _wait_for_ip(conn, name, vm, dom, source, timeout):
    """Wait for the addresses of ``vm``'s NICs (``wait_for_ip``) and put them into ``vm``'s interfaces."""
    macs = [nic["mac"] for nic in vm.get("interfaces") or [] if nic.get("mac")]
    if not macs:
        raise InvalidInputError("wait_for_ip: VM %r has no network interface" % name)
    found = _address_wait.wait_for_addresses(conn, dom, source=source, timeout=timeout, macs=macs)
    by_mac = dict((item["mac"], item) for item in found)
    for nic in vm["interfaces"]:
        nic["addresses"] = (by_mac.get(nic.get("mac")) or {}).get("addresses", [])
    return dict(addresses=found, ip=_addresses.domain_ip_summary(found, macs))
