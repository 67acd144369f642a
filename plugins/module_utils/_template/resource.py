# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``vm_template`` resource: a template made from a VM, or removed (:mod:`.store` says where it lives).

Made in one plan: (``seal: true``, the VM running) seal the guest through its agent and shut the
VM down (:mod:`.seal`); flatten each writable disk into a base volume (qemu-img convert into a
temporary file beside the volume libvirt made, mode 0444, renamed over it, record written); write
the definition file.  A failed step undoes the steps before it (base volumes deleted again); a
sealed and stopped VM stays so.  An existing template is never remade.

Removed: refused while VMs use its base volumes (linked clones, through their overlays: named by
:mod:`.._core.usage`); ``force`` removes the definition and the base volumes nobody uses, and keeps
those that VMs still need (deleting them would break those VMs, which ``force`` never does).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import ABSENT, DifferenceTracker
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_pool, find_vm, refresh_pool, retry_busy
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Outcome, Resource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.timeouts import timeout_seconds
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import guard, in_use_error, usage
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._host.facts import run_state
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import trust as _trust
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import (
    backing_chain,
    lookup_pool,
    lookup_pool_or_assume,
    lookup_volume,
    parse_volume_xml,
    volume_xml,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_write import build_volume_xml, delete_by_name
from ansible_collections.virtops.libvirt.plugins.module_utils._template import seal as _seal
from ansible_collections.virtops.libvirt.plugins.module_utils._template import store as _store
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.fs import remove_quietly, temp_path
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.qemu_img import QemuImg

_XML_INACTIVE = flag("VIR_DOMAIN_XML_INACTIVE", 2)
#: metadata of one VM's life that a template does not hand on (the seed it used, snapshot records)
_PER_VM_METADATA = ("https://virtops.dev/xmlns/libvirt/cloud-init/", "https://virtops.dev/xmlns/libvirt/snapshot/")
MADE_BY = "vm_template"


class TemplateResource(Resource):
    kind = "template"

    def __init__(self, ctx):
        super(TemplateResource, self).__init__(ctx)
        _store.validate_template_name(self.params["name"])
        self.seal_timeout = timeout_seconds(self.params.get("seal_timeout"), "seal_timeout", 600)
        self.shutdown_timeout = timeout_seconds(self.params.get("shutdown_timeout"), "shutdown_timeout", 120)
        self._dir = None

    # --- read -----------------------------------------------------------------------------------

    def _directory(self):
        """The pool's directory, or None when the pool is assumed (check mode: an earlier task makes it)."""
        if self._dir is None:
            if self.params["state"] == "absent" and find_pool(self.ctx.conn, self.params["pool"]) is None:
                return None  # a template of a pool that is gone is gone
            pool = lookup_pool_or_assume(self.ctx, self.params["pool"], "pool")
            if pool is None:
                return None
            self._dir = _store.template_dir(self.ctx, pool)
        return self._dir

    def read(self):
        directory = self._directory()
        if directory is None:
            return None
        return _store.find_template(directory, self.name, self.params["pool"])

    def refresh(self):
        return self.read()

    # --- desired --------------------------------------------------------------------------------

    def desired(self, current):
        if self.params["state"] == "absent":
            return None
        wanted = dict(source_vm=self.params.get("vm"))
        if current is None:
            wanted.update(self._source(self.params.get("vm")))
        return wanted

    def _source(self, vm_name):
        """What a new template is made of: the VM, whether it is sealed now, its disks (resolved)."""
        if not vm_name:
            raise InvalidInputError("vm: name the VM to make template %r from" % self.name)
        dom = find_vm(self.ctx.conn, vm_name)
        if dom is None:
            self.ctx.assume(NotFoundError("vm: VM %r does not exist" % vm_name))
            return dict(_dom=None, _seal=False, _disks=[], _root=None)
        with libvirt_errors("reading the definition of VM %r" % vm_name):
            root = _xml.parse(dom.XMLDesc(_XML_INACTIVE), "domain XML of %s" % vm_name)
            state = run_state(dom)
        seal = self._check_seal(vm_name, state, root)
        disks = [self._source_disk(vm_name, disk) for disk in _domain.model_from_xml(root)["disks"] if not disk.get("readonly")]
        if not disks:
            raise InvalidInputError("vm: VM %r has no writable disk to make a template of" % vm_name)
        return dict(_dom=dom, _seal=seal, _disks=disks, _root=root, sealed="agent" if seal else "none")

    def _check_seal(self, vm_name, state, root):
        seal = self.params.get("seal")
        if state == "running":
            if not seal:
                raise ConflictError("vm: VM %r is running, and its disks change while they are copied: give seal: true to seal "
                                    "its guest through the guest agent and shut it down first, or stop it yourself" % vm_name)
            _seal.check_agent(root, vm_name)
            return True
        if state != "stopped":
            raise ConflictError("vm: VM %r is %s: a template is made from a stopped VM (or a running one with seal: true)"
                                % (vm_name, state))
        if seal:
            raise ConflictError("seal: VM %r is stopped, and sealing runs in its guest through the guest agent: start it and "
                                "give seal: true, or give seal: false when its guest was sealed already" % vm_name)
        if seal is None:
            raise InvalidInputError("seal: VM %r is stopped and this module cannot tell whether its guest was sealed (each VM "
                                    "made from an unsealed template keeps its machine-id and cloud-init state): start it and "
                                    "give seal: true, or give seal: false to take its disks as they are" % vm_name)
        return False

    def _source_disk(self, vm_name, disk):
        what = "vm: disk %s of %s" % (disk["target"], vm_name)
        if disk.get("encryption"):
            raise InvalidInputError("%s is encrypted; a template is made of unencrypted disks" % what)
        try:
            if disk.get("volume"):
                vol = lookup_volume(lookup_pool(self.ctx.conn, disk["pool"], what), disk["volume"])
                if vol is None:
                    raise NotFoundError("%s: volume %r does not exist in pool %r" % (what, disk["volume"], disk["pool"]))
            else:
                vol = self.ctx.conn.storageVolLookupByPath(disk["path"] or "")
        except libvirt.libvirtError:
            raise InvalidInputError("%s (%s) is not a volume of a libvirt storage pool" % (what, disk.get("path")))
        model = parse_volume_xml(volume_xml(vol))
        fmt = _trust.trusted_volume(self.ctx.conn, self.ctx.uri, model, QemuImg.of(self.ctx), what,
                                    chain=lambda: backing_chain(self.ctx.conn, model))["format"]
        volume = _store.base_name(self.name, disk["target"])
        return dict(target=disk["target"], source=model["path"], source_format=fmt, capacity=model["capacity"],
                    volume=volume, path=os.path.join(self._directory() or "", volume), format=_store.BASE_FORMAT)

    # --- compare, predict, diff -----------------------------------------------------------------

    def compare(self, current, desired):
        tracker = DifferenceTracker()
        if current is None and desired is not None:
            tracker.add(("state",), ABSENT, "present")
        elif current is not None and desired is None:
            tracker.add(("state",), "present", ABSENT)
        elif current is not None and desired["source_vm"] not in (None, current["source_vm"]):
            tracker.add(("source_vm",), current["source_vm"], desired["source_vm"])
        return tracker

    def predict(self, current, desired):
        if desired is None:
            return None
        if current is not None:
            return current
        model = _domain.model_from_xml(desired["_root"]) if desired["_root"] is not None else {}
        return dict(name=self.name, pool=self.params["pool"], source_vm=desired["source_vm"], sealed=desired.get("sealed"),
                    path=os.path.join(self._directory() or "", _store.definition_name(self.name)), created=None,
                    disks=[dict((k, d[k]) for k in ("target", "volume", "format", "capacity", "path")) for d in desired["_disks"]],
                    memory=model.get("memory"), vcpus=model.get("vcpus"), machine=model.get("machine"),
                    interfaces=len(model.get("interfaces") or []))

    def diff_views(self, current, desired):
        def shown(facts):
            if facts is None:
                return {"state": ABSENT}
            out = dict(_store.view(facts), state="present")
            out.pop("created", None)
            return out

        after = shown(self.predict(current, desired)) if desired is not None else {"state": ABSENT}
        return shown(current), after

    def result(self, state, outcome):
        outcome = outcome or Outcome()
        out = dict(template=_store.view(state))
        if outcome.removed_volumes:
            out["removed_volumes"] = list(outcome.removed_volumes)
        return out

    # --- plan -----------------------------------------------------------------------------------

    def plan(self, current, desired, diff, plan):
        if desired is None:
            return self._plan_remove(current, plan) if current is not None else None
        if current is not None:
            if diff:
                raise ConflictError("template %r exists already, made from VM %r, not %r: a template is not made again; remove "
                                    "it first (state: absent) or choose another name"
                                    % (self.name, current["source_vm"], desired["source_vm"]))
            return None
        if desired["_dom"] is None:  # check mode: the VM is assumed, nothing more is known
            plan.add("make template %s from VM %s" % (self.name, desired["source_vm"]))
            return None
        vm_name = desired["source_vm"]
        if desired["_seal"]:
            plan.add("seal the guest of VM %s through its agent (%s)" % (vm_name, _seal.SEAL_WHAT),
                     _seal.seal_step(self.ctx, vm_name, self.seal_timeout))
            plan.add("shut down VM %s (ACPI, up to %d s)" % (vm_name, self.shutdown_timeout),
                     _seal.shutdown_step(self.ctx, vm_name, self.shutdown_timeout))
        for disk in desired["_disks"]:
            self._check_free(disk)
            plan.add("flatten disk %s of VM %s into read-only base volume %s in pool %s"
                     % (disk["target"], vm_name, disk["volume"], self.params["pool"]),
                     self._make_base(disk), undo=self._undo_base(disk["volume"]), partial=True)
        text = _xml.to_string(_store.build_document(self.name, vm_name, desired["sealed"], desired["_disks"],
                                                    self._template_domain(desired["_root"], desired["_disks"])))
        path = os.path.join(self._directory(), _store.definition_name(self.name))
        plan.add("write the definition of template %s to %s" % (self.name, path), self._write(path, text),
                 undo=self._remove_file(path))
        return None

    def _check_free(self, disk):
        if os.path.lexists(disk["path"]):
            raise ConflictError("template %r: its base volume %s exists already (left by another task?); remove it first"
                                % (self.name, disk["path"]))

    def _template_domain(self, root, disks):
        """The VM's definition as the template keeps it (see :mod:`.store`)."""
        root = _xml.parse(_xml.to_string(root))
        root.find("name").text = self.name
        for path in ("uuid", "devices/interface/mac", "devices/interface/target", "os/nvram", "devices/graphics"):
            for node in root.findall(path):
                node.getparent().remove(node)
        meta = root.find("metadata")
        for node in list(meta) if meta is not None else ():
            if isinstance(node.tag, str) and node.tag.startswith(tuple("{" + ns for ns in _PER_VM_METADATA)):
                meta.remove(node)
        for node in root.findall("devices/serial") + root.findall("devices/console"):
            if node.get("type") == "file":  # that VM's log file: each VM made from the template gets a pty
                node.set("type", "pty")
                for source in node.findall("source") + node.findall("log"):
                    node.remove(source)
        bases = dict((d["target"], d) for d in disks)
        for disk in root.findall("devices/disk"):
            target = _xml.find_attr(disk, "target", "dev")
            if disk.get("device") == "cdrom":
                for node in disk.findall("source") + disk.findall("backingStore"):
                    disk.remove(node)  # the drive stays, empty
                continue
            if target not in bases:
                disk.getparent().remove(disk)  # read-only disks (a cloud-init seed) belong to that VM
                continue
            for node in disk.findall("source") + disk.findall("backingStore"):
                disk.remove(node)
            disk.set("type", "file")
            driver = disk.find("driver")
            if driver is None:
                driver = _xml.element("driver", attrs={"name": "qemu"})
                disk.insert(0, driver)
            driver.set("type", _store.BASE_FORMAT)
            driver.addnext(_xml.element("source", attrs={"file": bases[target]["path"]}))
        return root

    # --- steps ----------------------------------------------------------------------------------

    def _pool(self):
        return lookup_pool(self.ctx.conn, self.params["pool"])

    def _make_base(self, disk):
        def call():
            pool = self._pool()
            xml = _xml.to_string(build_volume_xml(disk["volume"], disk["capacity"], _store.BASE_FORMAT, allocation=0), pretty=False)
            retry_busy(lambda: pool.createXML(xml, 0), "creating volume %r in pool %r" % (disk["volume"], self.params["pool"]))
            tmp = temp_path(disk["path"])
            try:
                QemuImg.of(self.ctx).convert(disk["source"], tmp, _store.BASE_FORMAT, src_fmt=disk["source_format"])
                os.chmod(tmp, _store.BASE_MODE)
                os.replace(tmp, disk["path"])
            except BaseException:
                remove_quietly(tmp)
                raise
            _record.write_record(disk["path"], _record.new_record(_store.BASE_FORMAT, MADE_BY))
            refresh_pool(pool)

        return call

    def _undo_base(self, volume):
        def call():
            delete_by_name(self.ctx.conn, self.params["pool"], volume)

        return call

    def _write(self, path, text):
        def call():
            _store.write_document(path, text)
            refresh_pool(self._pool())

        return call

    def _remove_file(self, path):
        def call():
            remove_quietly(path)
            refresh_pool(self._pool())

        return call

    # --- remove ---------------------------------------------------------------------------------

    def _plan_remove(self, current, plan):
        answer = usage(self.ctx)
        definition = current["path"]
        users, dependants = answer.users_of(paths=[d["path"] for d in current["disks"]])
        error = in_use_error("template %r" % self.name, users, dependants,
                             advice="remove those VMs (or their disks) first",
                             action="remove the template and keep the base volumes they need")
        force = bool(self.params.get("force"))
        guard(self.ctx, error, force, plan.warn)
        with open(definition, "rb") as handle:
            saved = handle.read()
        plan.add("remove the definition of template %s (%s)" % (self.name, definition), self._remove_file(definition),
                 undo=self._write(definition, saved))
        removed = []
        for disk in current["disks"]:
            used, needing = answer.users_of(paths=[disk["path"]])
            if (used or needing) and force:
                plan.warn("template %s: base volume %s is kept: VMs still need it" % (self.name, disk["path"]))
                continue
            plan.add("delete base volume %s from pool %s" % (disk["volume"], self.params["pool"]),
                     self._undo_base(disk["volume"]))
            removed.append(disk["path"])
        return Outcome(removed_volumes=removed)
