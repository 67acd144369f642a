# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The cloud-init seed of a ``vm``: one more CD-ROM (or read-only virtio disk) made by the
``cloudinit`` resource in the VM's plan, and with ``cloud_init.detach`` detached (and deleted) once
the guest ran cloud-init with its instance-id; the VM's metadata records the seed that was used.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.options import SEED_OPTIONS
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import ready as _ready
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.options import DETACH_TIMEOUT, SEED_KEYS
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.remove import delete_path
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    VirtopsError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.timeouts import timeout_seconds
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import describe, usage
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import lookup_volume

#: where cloud-init keeps the instance-id of the seed it ran
INSTANCE_ID_FILE = "/var/lib/cloud/data/instance-id"

#: namespace of the record, in a VM's <metadata>, of the seed it used and that was detached
SEED_NS = "https://virtops.dev/xmlns/libvirt/cloud-init/1.0"


def as_desired(device):
    """A current device as a list entry that asks for exactly what it is."""
    return dict((k, v) for k, v in device.items() if k not in ("size", "pool", "volume"))


def _seed_writer():
    """``_cloudinit/seed`` (the renderer, the ISO builders, the seed resource), imported when a VM has
    ``cloud_init``: the many tasks without it do not compile that code (it still ships with the module)."""
    from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit import seed

    return seed


class SeedDevice:
    """The seed of VM ``vm`` (a VmResource): ``seed`` (pool, name, options, path) and ``detach``
    (instance_id, timeout) come from the desired state; ``consumed`` is the result when the guest
    used this very seed and it was detached already."""

    def __init__(self, vm):
        self.vm = vm
        self.ctx = vm.ctx
        self.seed = None
        self.detach = None
        self.consumed = None

    def add_device(self, model, cloud_init, current):
        """The NoCloud seed as one more CD-ROM (or a read-only virtio disk) of the VM.

        ``cloud_init`` holds the ``cloudinit`` module's content options, or only ``volume`` (an
        existing seed); ``pool`` (``default``), ``volume`` (``<vm>-seed.iso``) and ``bus`` (the
        CD-ROM bus, or ``virtio`` for a disk) say where it lives and how the guest sees it.
        """
        unknown = sorted(set(cloud_init) - set(SEED_OPTIONS) - set(SEED_KEYS))
        if unknown:
            raise InvalidInputError("cloud_init: unknown option(s) %s; use %s" % (
                ", ".join(unknown), ", ".join(SEED_OPTIONS + SEED_KEYS)))
        timeout_seconds(cloud_init.get("detach_timeout"), "cloud_init.detach_timeout")
        pool = cloud_init.get("pool") or "default"
        name = cloud_init.get("volume") or "%s-seed.iso" % self.vm.name
        options = dict((k, v) for k, v in cloud_init.items() if k in SEED_OPTIONS and v is not None)
        if cloud_init.get("detach") and self._consumed(cloud_init, options, pool, name, current):
            return  # the guest booted with this seed and it was detached: nothing to attach or make
        seed_pool = self.vm._pool(pool, "cloud_init")
        path = self.vm._volume_path(pool, name)
        if not options and seed_pool is not None and lookup_volume(seed_pool, name) is None:
            self.ctx.assume(NotFoundError("cloud_init: seed volume %r does not exist in pool %r; give the seed's content "
                                          "(user_data, hostname, ...) to make it" % (name, pool)))
        self.seed = dict(pool=pool, name=name, options=options, path=path)
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
            model[key] = [as_desired(d) for d in (current or {}).get(key) or []]
        if path is None or not any(d.get("path") == path for d in model[key]):
            model[key].append(device)

    def _consumed(self, cloud_init, options, pool, name, current):
        """For ``cloud_init.detach``: check it can work; True when this seed was used and detached already."""
        if not options:
            raise InvalidInputError("cloud_init.detach: give the seed's content (user_data, hostname, ...); the module "
                                    "detaches a seed once the guest ran cloud-init with its instance-id")
        if self.vm.requested_state() not in ("running", "restarted"):
            raise InvalidInputError("cloud_init.detach: the seed is detached after the guest booted with it, so the VM must "
                                    "run (state running or restarted)")
        timeout = timeout_seconds(cloud_init.get("detach_timeout"), "cloud_init.detach_timeout", DETACH_TIMEOUT)
        instance_id = _seed_writer().build_seed(options, "volume:%s/%s" % (pool, name)).instance_id
        self.detach = dict(instance_id=instance_id, timeout=timeout)
        if current is not None and _xml.find_attr(_xml.parse(current["xml"]),
                                                  "metadata/{%s}cloud-init" % SEED_NS, "detached") == instance_id:
            self.detach = None
            self.consumed = dict(path=None, instance_id=instance_id, content_sha256=None, changed=False, detached=True)
            return True
        return False

    def planned_names(self):
        """``{path: (pool, volume)}`` of the seed this plan makes."""
        if self.seed is not None and self.seed["path"]:
            return {self.seed["path"]: (self.seed["pool"], self.seed["name"])}
        return {}

    # --- plan -----------------------------------------------------------------------------------

    def plan(self, plan):
        """The seed's steps (the ``cloudinit`` resource included in ``plan``); returns its result, or None."""
        if self.seed is None or not self.seed["options"]:
            return self.consumed
        return _seed_writer().ensure_seed(self.ctx, plan, self.seed["options"], pool=self.seed["pool"], name=self.seed["name"])

    def plan_detach(self, current, plan, result):
        """After the plan boots the VM with its seed (or it runs with it): wait for cloud-init, detach, delete."""
        if self.detach is None or self.seed is None:
            return
        name = self.vm.name
        path = self.seed["path"]
        starts = "start VM %s" % name in plan.descriptions
        live = (current or {}).get("_live") or {}
        attached = any(d.get("path") == path for d in (live.get("cdroms") or []) + (live.get("disks") or []))
        if not starts and not (current and current["active"] and attached):
            plan.warn("cloud_init: VM %s reads its new seed when it boots next; the seed is detached on a run after that"
                      % name)
            return
        iid = self.detach["instance_id"]
        plan.add("wait for cloud-init of instance %s to finish in VM %s" % (iid, name),
                 self._wait_cloud_init(iid, self.detach["timeout"]))
        plan.add("detach the cloud-init seed %s from VM %s" % (path, name), self._detach_seed(path))
        renamed = (current or {}).get("_rename_from")
        others, _dependants = usage(self.ctx).users_of(paths=[path], exclude_vms=(name, renamed))
        if others:
            plan.warn("cloud_init: the seed %s is kept when it is detached: it is also used by %s" % (path, describe(others)))
        else:
            plan.add("delete the cloud-init seed volume %s" % path, delete_path(self.ctx, path))
        plan.add("record in VM %s that seed %s was used" % (name, iid), self._mark_seed_used(iid, result))

    def _wait_cloud_init(self, instance_id, timeout, sleep=time.sleep, clock=time.monotonic):
        """Until cloud-init finished in the guest (with or without errors: it read the seed either way),
        then the instance it ran must be the seed's."""
        def call():
            dom = self.vm._lookup()
            try:
                _ready.Waiter(dom, timeout, sleep, clock).cloud_init(fail_on_error=False)
                got = _ready.read_guest_file(dom, INSTANCE_ID_FILE, limit=4096)
            except VirtopsError as exc:
                exc.msg = "cloud_init.detach: %s" % exc.msg
                exc.args = (exc.msg,)
                raise
            got = (got or b"").decode("utf-8", "replace").strip()
            if got != instance_id:
                raise ConflictError("cloud_init.detach: VM %s runs cloud-init instance %r, not %r of its seed; a guest reads "
                                    "its seed when it boots: restart it and run the task again" % (self.vm.name, got, instance_id))

        return call

    def _detach_seed(self, path):
        def call():
            dom = self.vm._lookup()
            with libvirt_errors("detaching the cloud-init seed from VM %s" % self.vm.name):
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

    def _mark_seed_used(self, instance_id, result):
        """Records the used seed in the VM; ``result`` (the seed's return values) says it is detached."""
        def call():
            dom = self.vm._lookup()
            node = _xml.element("cloud-init", attrs=dict(detached=instance_id))
            flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
            with libvirt_errors("recording the used seed in VM %s" % self.vm.name):
                dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, _xml.to_string(node, pretty=False),
                                "virtops-ci", SEED_NS, flags)
            if result is not None:
                result["detached"] = True

        return call
