# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``secret`` resource: one libvirt secret (usage, description, flags) and its value.

* Identity: ``uuid`` when given, else the usage (``usage_type`` + ``usage_id``), which libvirt keeps
  unique.  The usage, ``private`` and ``ephemeral`` of an existing secret are not changed (libvirt
  refuses to change ``private``): a different value is a conflict, remove the secret first.
* The value is compared without being shown (``update_value=when_changed``): read back for a
  non-private secret, by its fingerprint (``model``) for a private one.  ``always`` sets it on every
  run (always ``changed``), ``on_create`` only when the secret is created.
* The value is never in results, diffs, actions or messages; ``--diff`` shows ``value: (changed)``.
* Removal is refused while VM disks, encrypted volumes or storage pools use the secret, unless
  ``force`` (``_core.usage.Usage.secret_users``).  A removed private secret's value cannot be put back
  by a rollback: the removal is the plan's last step.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import ABSENT, DifferenceTracker
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Resource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import describe, guard, usage
from ansible_collections.virtops.libvirt.plugins.module_utils._secret.model import (
    check_usage,
    fingerprint,
    matches,
    model_from_xml,
    normalize_uuid,
    secret_xml,
    value_bytes,
)

USAGE_TYPES = dict(volume=("VIR_SECRET_USAGE_TYPE_VOLUME", 1), ceph=("VIR_SECRET_USAGE_TYPE_CEPH", 2),
                   iscsi=("VIR_SECRET_USAGE_TYPE_ISCSI", 3), tls=("VIR_SECRET_USAGE_TYPE_TLS", 4),
                   vtpm=("VIR_SECRET_USAGE_TYPE_VTPM", 5))
SHOWN = ("usage_type", "usage_id", "description", "private", "ephemeral")
HIDDEN = "(hidden)"
CHANGED = "(changed)"


def _missing(exc):
    return exc.get_error_code() == flag("VIR_ERR_NO_SECRET", 66)


def find_secret(conn, uuid=None, usage_type=None, usage_id=None):
    """The secret ``uuid``, or the one of that usage; None when there is none."""
    try:
        if uuid:
            return conn.secretLookupByUUIDString(uuid)
        return conn.secretLookupByUsage(flag(*USAGE_TYPES[usage_type]), usage_id)
    except libvirt.libvirtError as exc:
        if _missing(exc):
            return None
        with libvirt_errors("looking up secret %s" % (uuid or "%s %s" % (usage_type, usage_id))):
            raise


def in_use(subject, users, volumes, pools):
    if not (users or volumes or pools):
        return None
    parts = []
    if users:
        parts.append("is used by %s" % describe(users))
    if volumes:
        parts.append("is the key of encrypted volume(s) %s" % ", ".join(volumes))
    if pools:
        parts.append("authenticates storage pool(s) %s" % ", ".join(pools))
    what = "%s %s" % (subject, " and ".join(parts))
    error = ConflictError("%s: change or remove them first, or set force: true to remove it anyway" % what,
                          used_by=[dict((k, v) for k, v in u.items() if v is not None) for u in users],
                          volumes=list(volumes), pools=list(pools))
    error.in_use = what
    return error


class SecretResource(Resource):
    """One secret; the plan's outcome has ``value_changed``."""

    kind = "secret"

    def __init__(self, ctx):
        super(SecretResource, self).__init__(ctx)
        self._value = value_bytes(self.params)
        self._set_value = False

    @property
    def name(self):
        return self.params.get("usage_id") or self.params.get("uuid")

    def _find(self, conn=None):
        params = self.params
        return find_secret(conn or self.ctx.conn, normalize_uuid(params.get("uuid")), params.get("usage_type"),
                           params.get("usage_id"))

    def read(self):
        params = self.params
        if params.get("usage_type") is not None or params.get("state") != "absent":
            check_usage(params.get("usage_type"), params.get("usage_id"))
        obj = self._find()
        if obj is None:
            return None
        with libvirt_errors("reading secret %s" % self.name):
            current = model_from_xml(obj.XMLDesc(0))
        return current

    def desired(self, current):
        params = self.params
        if params.get("state") == "absent":
            return None
        if params.get("value") is None and params.get("update_value") == "always":
            raise InvalidInputError("update_value: always needs a value")
        if current is not None:
            wrong = [k for k in ("usage_type", "usage_id") if params.get(k) is not None and params[k] != current[k]]
            if wrong:
                raise ConflictError("secret %s has usage %s %s, not %s %s: the usage of a secret is not changed"
                                    % (current["uuid"], current["usage_type"], current["usage_id"],
                                       params.get("usage_type"), params.get("usage_id")))
            fixed = [k for k in ("private", "ephemeral") if params.get(k) is not None and params[k] != current[k]]
            if fixed:
                raise ConflictError("secret %s exists with %s: libvirt does not change that on an existing secret; "
                                    "remove it (state: absent) and create it again"
                                    % (current["uuid"], ", ".join("%s=%s" % (k, current[k]) for k in fixed)))
        if current is None and self._value is None and params.get("private", True):
            self.ctx.warn("secret %s is created without a value (value not given)" % self.name)
        return dict(usage_type=params.get("usage_type"), usage_id=params.get("usage_id"),
                    description=params.get("description"),
                    private=params.get("private") if params.get("private") is not None else True,
                    ephemeral=bool(params.get("ephemeral")))

    def _value_differs(self, current):
        """Whether the value must be set (see the module doc); never says what it is."""
        if self._value is None:
            return False
        if current is None:
            return True
        mode = self.params.get("update_value") or "when_changed"
        if mode == "on_create":
            return False
        if mode == "always":
            return True
        if current["private"]:
            return not matches(self._value, current["_mark"])
        obj = self._find()
        try:
            return obj.value(0) != self._value
        except libvirt.libvirtError:
            return True  # no value yet

    def compare(self, current, desired):
        if current is None or desired is None:
            return super(SecretResource, self).compare(current, desired)
        tracker = DifferenceTracker()
        if desired.get("description") is not None:
            tracker.add_if_different(("description",), current["description"], desired["description"])
        self._set_value = self._value_differs(current)
        if self._set_value:
            tracker.add(("value",), HIDDEN, CHANGED)
        return tracker

    def plan(self, current, desired, diff, plan):
        if desired is None:
            if current is not None:
                self._plan_absent(current, plan)
            return None
        if current is None:
            self._set_value = self._value is not None
        if not diff:
            return None
        value = self._value if self._set_value else None
        model = dict(desired)
        if current is not None:
            model.update(usage_type=current["usage_type"], usage_id=current["usage_id"], private=current["private"],
                         ephemeral=current["ephemeral"])
            if model["description"] is None:
                model["description"] = current["description"]
        keep_mark = current["_mark"] if current is not None else None
        mark = fingerprint(value) if value is not None and model["private"] else keep_mark
        uuid = current["uuid"] if current is not None else normalize_uuid(self.params.get("uuid"))
        text = secret_xml(model, uuid, mark)
        if current is None:
            plan.add("define secret %s %s" % (model["usage_type"], model["usage_id"]), lambda: self._define(text),
                     undo=self._undefine)
        elif text != secret_xml(current, current["uuid"], keep_mark):
            old = secret_xml(current, current["uuid"], keep_mark)
            plan.add("redefine secret %s" % current["uuid"], lambda: self._define(text), undo=lambda: self._define(old))
        if value is not None:
            plan.add("set the value of secret %s %s" % (model["usage_type"], model["usage_id"]),
                     lambda: self._call("setting the value of", "setValue", value, 0))
        return None

    def _plan_absent(self, current, plan):
        users, volumes, pools = usage(self.ctx).secret_users(current["uuid"], current["usage_id"])
        error = in_use("secret %s (%s %s)" % (current["uuid"], current["usage_type"], current["usage_id"]),
                       users, volumes, pools)
        guard(self.ctx, error, self.params.get("force"), plan.warn)
        plan.add("undefine secret %s" % current["uuid"], lambda: self._call("removing", "undefine"))

    def _define(self, text):
        with libvirt_errors("defining secret %s" % self.name):
            self.ctx.conn.secretDefineXML(text, 0)

    def _call(self, what, method, *args):
        with libvirt_errors("%s secret %s" % (what, self.name)):
            obj = self._find()
            if obj is None:
                raise NotFoundError("secret %s disappeared" % self.name)
            return getattr(obj, method)(*args)

    def _undefine(self):
        self._call("removing", "undefine")

    def predict(self, current, desired):
        if desired is None:
            return None
        out = dict(current or {}, **dict((k, v) for k, v in desired.items() if v is not None))
        out.setdefault("uuid", normalize_uuid(self.params.get("uuid")))
        return out

    def refresh(self):
        return self.read()

    def diff_views(self, current, desired):
        value = {"value": CHANGED} if self._set_value else {}
        if desired is None:
            return ({"state": ABSENT} if current is None else dict(self._view(current), state="present")), {"state": ABSENT}
        if current is None:
            return {"state": ABSENT}, dict(self._view(desired), state="present", **value)
        shown = [k for k in SHOWN if desired.get(k) is not None and k not in ("private", "ephemeral")]
        before = dict((k, current.get(k)) for k in shown)
        after = dict((k, desired[k]) for k in shown)
        if value:
            before["value"] = HIDDEN
            after.update(value)
        return before, after

    @staticmethod
    def _view(model):
        return dict((k, model.get(k)) for k in SHOWN if model.get(k) is not None)

    def result(self, state, outcome):
        if state is None:
            return dict(secret=None)
        view = self._view(state)
        view.update(uuid=state.get("uuid"), private=bool(state.get("private")), ephemeral=bool(state.get("ephemeral")))
        return dict(secret=view, value_changed=self._set_value)
