# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``pool`` resource: one storage pool's definition, running state and autostart, its build
(mkdir / mkfs / vgcreate, never overwriting) and its removal (with its volumes when ``purge``).

The model and its XML codec are :mod:`.pool_model`; lookups and facts :mod:`.pool_view`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.virtops.libvirt.plugins.module_utils._storage.pool_model import (
    DEFINITION_KEYS,
    DIRECTORY_TYPES,
    apply_model,
    desired_model,
    model_from_xml,
    validate_name,
    xml_from_model,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.pool_net import SECRET_USAGE
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.pool_view import pool_facts, refresh, user_volumes
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_encryption import secret_uuid

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors, uri_is_local
from ansible_collections.virtops.libvirt.plugins.module_utils._core.defined import Codec, DefinedObjectResource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import ABSENT, compare_specified
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_pool, refresh_pool
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Outcome
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import guard, in_use_error, usage


def build_flags(pool_type):
    """Build without overwriting: existing data means 'already built'."""
    if pool_type in ("fs", "logical"):
        return flag("VIR_STORAGE_POOL_BUILD_NO_OVERWRITE", 4)
    return 0


def made_directory(ctx, pool_type, path):
    """A function telling whether the target directory exists now but did not when the plan was
    made (known on the hypervisor itself only; elsewhere nothing is removed)."""
    if pool_type not in DIRECTORY_TYPES or not path or not uri_is_local(ctx.uri) or os.path.lexists(path):
        return lambda: False
    return lambda: os.path.isdir(path) and not os.path.islink(path)


def remove_directory(ctx, name, path):
    """Remove the (empty) target directory this run made: libvirt's delete of a directory pool
    is an rmdir; a directory that is no longer empty stays."""
    try:
        os.rmdir(path)
    except OSError as exc:
        ctx.warn("could not remove the directory %s that building storage pool '%s' made: %s"
                 % (path, name, exc.strerror or exc))


class PoolResource(DefinedObjectResource):
    """One storage pool: definition, running state, autostart, and its removal."""

    kind = "pool"
    noun = "storage pool"
    root_tag = "pool"
    codec = Codec(model_from_xml, xml_from_model, apply_model)
    find = staticmethod(find_pool)
    define_method = "storagePoolDefineXML"
    define_args = (0,)
    inactive_flag = ("VIR_STORAGE_XML_INACTIVE", 1)
    check_name = staticmethod(validate_name)

    def _before_read(self, obj):
        refresh(obj)

    def _after_read(self, obj, current, active):
        current["_volumes"] = user_volumes(obj, current["type"]) if active else None

    def desired(self, current):
        state = self.requested_state()
        if state is None:
            return None
        model = desired_model(self.params, state, current, self._user_xml)
        if model.get("auth") is not None:
            # libvirt looks for the secret only when the pool starts: a missing one is refused now
            pool_type = model.get("type") or current["type"]
            secret_uuid(self.ctx, model["auth"]["secret"], "auth.secret", SECRET_USAGE[pool_type])
        return model

    def _user_xml(self, text):
        root = self._user_root(text)
        if not root.get("type"):
            raise InvalidInputError("xml: <pool> needs a type attribute")
        return _xml.to_string(root, pretty=True)

    def _live_differs(self, current, desired):
        """Whether the running pool differs from what the user specified (a restart would apply it)."""
        if desired.get("xml") is not None:
            return not _xml.xml_subset(_xml.parse(desired["xml"]), _xml.parse(current["_live_xml"]))
        wanted = dict((k, desired.get(k)) for k in ("type", "path", "source", "permissions", "auth"))
        return bool(compare_specified(wanted, current["_live"]))

    def plan(self, current, desired, diff, plan):
        """The steps, and whether a new definition waits for a restart (``restart_required``)."""
        restart_required = False
        if desired is None:
            if current is not None:
                self._plan_absent(current, plan)
        elif current is None:
            self._plan_create(desired, plan)
        else:
            restart_required = self._plan_update(current, desired, diff, plan)
        return Outcome(restart_required=restart_required)

    def _build_step(self, pool_type, plan, path=None):
        """Build (mkdir / mkfs / vgcreate) without ever overwriting: existing data means 'already built'.

        What the build made is removed again when it or a later step fails: a volume group it
        created, a target directory that was not there before (libvirt makes the directory of an
        fs pool before it looks at the device, so a refused or failed mkfs leaves one behind).
        """
        built = []
        made_dir = made_directory(self.ctx, pool_type, path)

        def build():
            with libvirt_errors("building storage pool '%s'" % self.name):
                pool = self._lookup()
                try:
                    pool.build(build_flags(pool_type))
                except libvirt.libvirtError as exc:
                    message = exc.get_error_message() or ""
                    if exc.get_error_code() == flag("VIR_ERR_STORAGE_POOL_BUILT", 76) and "does not match" not in message:
                        return  # already built: nothing was created but the directory, which undo removes
                    if exc.get_error_code() == flag("VIR_ERR_NO_SUPPORT", 3):
                        return  # this pool type has nothing to build
                    if made_dir():
                        remove_directory(self.ctx, self.name, path)  # a failed step is not undone by the plan
                    raise
            if pool_type not in DIRECTORY_TYPES or not uri_is_local(self.ctx.uri):
                built.append(True)  # a directory elsewhere: libvirt's delete (rmdir) is all we can do

        def undo():
            if built:
                self._call("deleting", "delete", 0)()
            elif made_dir():
                remove_directory(self.ctx, self.name, path)

        plan.add("build storage pool %s" % self.name, build, undo)

    def _pool_type(self, desired, current=None):
        if desired.get("xml") is not None:
            return _xml.parse(desired["xml"]).get("type")
        return desired.get("type") or (current or {}).get("type")

    @staticmethod
    def _target_path(desired, current=None):
        if desired.get("xml") is not None:
            return _xml.find_text(_xml.parse(desired["xml"]), "target/path")
        return desired.get("path") or (current or {}).get("path")

    def _plan_create(self, desired, plan):
        xml_text = self._definition_xml(desired)
        plan.add("define storage pool %s" % self.name, lambda: self._define(xml_text),
                 undo=self._call("undefining", "undefine"))
        if self.params.get("build", True):
            self._build_step(self._pool_type(desired), plan, self._target_path(desired))
        if desired.get("autostart"):
            plan.add("set autostart of storage pool %s to true" % self.name, self._call("setting autostart of", "setAutostart", 1))
        if desired.get("state") == "active":
            plan.add("start storage pool %s" % self.name, self._call("starting", "create", 0),
                     undo=self._call("stopping", "destroy"))

    def _plan_update(self, current, desired, diff, plan):
        if desired.get("type") is not None and desired["type"] != current["type"]:
            raise ConflictError(
                "storage pool '%s' exists with type %s; the type of a pool cannot be changed: remove it first (state: absent)"
                % (self.name, current["type"])
            )
        if desired.get("xml") is not None:
            xml_type = _xml.parse(desired["xml"]).get("type")
            if xml_type != current["type"]:
                raise ConflictError(
                    "storage pool '%s' exists with type %s, the xml says %s; remove it first (state: absent)" % (self.name, current["type"], xml_type)
                )
        old_xml = current["xml"]
        restart_required = False
        redefine = any(diff.touches(k) for k in DEFINITION_KEYS) or not current["persistent"]
        if redefine:
            uuid = _xml.find_text(_xml.parse(old_xml), "uuid")
            new_xml = self._definition_xml(desired, base_xml=None if desired.get("xml") else old_xml, uuid=uuid)
            plan.add("redefine storage pool %s" % self.name, lambda: self._define(new_xml),
                     undo=(lambda: self._define(old_xml)) if current["persistent"] else None)

        was_active = current["state"] == "active"
        will_be_active = desired.get("state") == "active" or (desired.get("state") is None and was_active)
        build = self.params.get("build", True)
        if was_active and desired.get("state") == "inactive":
            plan.add("stop storage pool %s" % self.name, self._call("stopping", "destroy"),
                     undo=self._call("starting", "create", 0))
        elif was_active and self._live_differs(current, desired):
            if self.params.get("restart"):
                def restore_and_start():
                    self._define(old_xml)
                    self._call("starting", "create", 0)()

                plan.add("stop storage pool %s to apply its new definition" % self.name, self._call("stopping", "destroy"),
                         undo=restore_and_start)
                if build:
                    self._build_step(self._pool_type(desired, current), plan, self._target_path(desired, current))
                plan.add("start storage pool %s" % self.name, self._call("starting", "create", 0))
            else:
                restart_required = True
                plan.warn(
                    "storage pool '%s' is active: its new definition takes effect when it is restarted "
                    "(set restart: true to let the module stop and start it)" % self.name
                )
        elif not was_active and will_be_active:
            if build:
                self._build_step(self._pool_type(desired, current), plan, self._target_path(desired, current))
            plan.add("start storage pool %s" % self.name, self._call("starting", "create", 0),
                     undo=self._call("stopping", "destroy"))

        self._plan_autostart(current, desired, diff, plan)
        return restart_required

    def _plan_absent(self, current, plan):
        purge = bool(self.params.get("purge"))
        active = current["state"] == "active"
        volumes = current["_volumes"] or []
        if not purge:
            if volumes:  # check mode: an earlier task (or item of apply) may remove them
                shown = ", ".join(volumes[:10]) + (", ..." if len(volumes) > 10 else "")
                self.ctx.assume(ConflictError(
                    "storage pool '%s' still holds %d volume(s) (%s): remove them first, or set purge: true to delete "
                    "them with the pool" % (self.name, len(volumes), shown),
                    volumes=volumes,
                ))
            if active:
                plan.add("stop storage pool %s" % self.name, self._call("stopping", "destroy"),
                         undo=self._call("starting", "create", 0))
            if current["persistent"]:
                old_xml = current["xml"]
                plan.add("undefine storage pool %s" % self.name, self._call("undefining", "undefine"),
                         undo=lambda: self._define(old_xml))
            return
        self._guard_purge(current, plan)
        if not active:
            plan.add("start storage pool %s to delete its volumes" % self.name, self._call("starting", "create", 0))
            plan.add("delete every volume of storage pool %s" % self.name, self._delete_all_volumes)
        else:
            for vol in volumes:
                plan.add("delete volume %s of storage pool %s" % (vol, self.name), self._delete_volume(vol))
        plan.add("stop storage pool %s" % self.name, self._call("stopping", "destroy"),
                 undo=self._call("starting", "create", 0))
        plan.add("delete the storage of pool %s (its target directory / volume group)" % self.name,
                 self._call("deleting", "delete", 0))
        if current["persistent"]:
            plan.add("undefine storage pool %s" % self.name, self._call("undefining", "undefine"))

    def _guard_purge(self, current, plan):
        """purge deletes every volume: not one a VM uses or another pool's volume is based on
        (an inactive pool's volumes are not listed: the files in its directory count)."""
        names = list(current["_volumes"] or [])
        paths = []
        if names:
            with libvirt_errors("listing the volumes of storage pool '%s'" % self.name):
                paths = [vol.path() for vol in self._object.listAllVolumes(0)]
        users, dependants = usage(self.ctx).users_of(paths, [(self.name, n) for n in names], [current.get("path")],
                                                     pools=[self.name])
        error = in_use_error("storage pool %r" % self.name, users, dependants,
                             advice="remove those VMs (or their disks) and volumes first",
                             action="delete its volumes", verbs=("holds volumes used by", "holds the backing files of"))
        guard(self.ctx, error, self.params.get("force"), plan.warn)

    def _delete_volume(self, vol_name):
        def delete():
            with libvirt_errors("deleting volume '%s' of storage pool '%s'" % (vol_name, self.name)):
                self._lookup().storageVolLookupByName(vol_name).delete(0)

        return delete

    def _delete_all_volumes(self):
        with libvirt_errors("listing the volumes of storage pool '%s'" % self.name):
            pool = self._lookup()
            refresh_pool(pool)
            names = user_volumes(pool, _xml.parse(pool.XMLDesc(0)).get("type"))
        for vol in names:
            self._delete_volume(vol)()

    def _absent_view(self, current):
        return {"state": current["state"], "type": current["type"], "path": current["path"],
                "volumes": list(current["_volumes"] or [])}

    def predict(self, current, desired):
        if desired is None:
            return None
        state = dict(current or {})
        for key in ("type", "path", "autostart"):
            if desired.get(key) is not None:
                state[key] = desired[key]
        if desired.get("state") is not None:
            state["state"] = desired["state"]
        state.setdefault("state", "inactive")
        state.setdefault("persistent", True)
        state["predicted"] = True
        return state

    def result(self, state, outcome):
        if state is None:
            return dict(pool=dict(name=self.name, state=ABSENT), restart_required=False)
        if state.get("predicted"):
            volumes = state.get("_volumes")  # the volumes read (predict() keeps what was current)
            pool = dict(
                name=self.name,
                uuid=_xml.find_text(_xml.parse(state["xml"]), "uuid") if state.get("xml") else None,
                type=state.get("type"),
                state=state["state"],
                autostart=bool(state.get("autostart")),
                persistent=True,
                path=state.get("path"),
                capacity=None,
                allocation=None,
                available=None,
                volume_count=len(volumes) if volumes is not None and state["state"] == "active" else None,
            )
            if pool["type"] is None and self.params.get("xml"):
                pool["type"] = _xml.parse(self.params["xml"]).get("type")
            if self._object is not None:
                with libvirt_errors("reading storage pool '%s'" % self.name):
                    _st, pool["capacity"], pool["allocation"], pool["available"] = self._object.info()
        else:
            pool = pool_facts(self._lookup())
            for key in ("libvirt_state", "active", "source", "permissions"):
                pool.pop(key, None)
        return dict(pool=pool, restart_required=bool(outcome is not None and outcome.values.get("restart_required")))
