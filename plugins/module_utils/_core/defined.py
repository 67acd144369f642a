# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every persistent libvirt object with an XML definition and a running state shares
(storage pools, networks): lookup, reading the saved and the live definition, the requested
state, comparison (with ``xml`` passthrough compared as a subset), define/start/stop calls as plan
steps, autostart, and the ``--diff`` views.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import (
    ABSENT,
    DifferenceTracker,
    compare_specified,
    project,
    specified,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Resource

STATES = ("present", "active", "inactive", "absent")


def inactive_xml(obj, inactive_flag):
    """The persistent definition (what the next start uses); the live XML where that is not offered."""
    try:
        return obj.XMLDesc(inactive_flag)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG):
            return obj.XMLDesc(0)
        raise


class Codec:
    """How a resource's model and its libvirt XML convert into each other: three functions.

    ``model_from_xml(text)`` -> model; ``xml_from_model(name, model, uuid)`` -> element of a new
    definition; ``apply_model(root, model)`` -> the saved definition ``root`` with the model's
    specified keys applied.
    """

    __slots__ = ("model_from_xml", "xml_from_model", "apply_model")

    def __init__(self, model_from_xml, xml_from_model, apply_model):
        self.model_from_xml = model_from_xml
        self.xml_from_model = xml_from_model
        self.apply_model = apply_model


class DefinedObjectResource(Resource):
    """Base of the resources with a libvirt XML definition and a running state (pool, network, VM).

    A subclass declares what differs instead of implementing hooks:

    * ``noun`` (messages, action descriptions) and ``root_tag`` (the root element of its XML);
    * ``codec``: a :class:`Codec`;
    * ``find``: ``staticmethod(find(conn, name))`` -> the libvirt object or None (``_core.lookups``);
    * ``define_method`` (``"networkDefineXML"``) and ``define_args`` (more arguments after the XML);
    * ``inactive_flag``: ``(name, fallback)`` of libvirt's flag for the persistent definition;
    * ``check_name``: ``staticmethod(check(name))``, raising InvalidInputError.

    ``_live_xml``, ``_before_read``, ``_after_read`` and ``_absent_view`` are optional hooks; a
    subclass may still override any of the methods below (a VM reads its definitions with secrets).
    """

    noun = "object"
    #: root element of the object's XML (``pool``, ``network``, ``domain``)
    root_tag = None
    codec = None
    find = None
    define_method = None
    define_args = ()
    inactive_flag = None
    check_name = None

    def __init__(self, ctx):
        super(DefinedObjectResource, self).__init__(ctx)
        self._object = None
        self._current = None

    # --- from the declarations ------------------------------------------------------------------

    def validate_name(self, name):
        self.check_name(name)

    def _lookup(self):
        return self.find(self.ctx.conn, self.name)

    def _define_call(self, xml_text):
        return getattr(self.ctx.conn, self.define_method)(xml_text, *self.define_args)

    def _inactive_xml(self, obj):
        return inactive_xml(obj, flag(*self.inactive_flag))

    def model_from_xml(self, text):
        return self.codec.model_from_xml(text)

    def xml_from_model(self, model, uuid=None):
        return self.codec.xml_from_model(self.name, model, uuid)

    def apply_model(self, root, model):
        return self.codec.apply_model(root, model)

    # --- optional hooks -------------------------------------------------------------------------

    def _live_xml(self, obj):
        """The running definition (a VM reads it with its secrets, to compare passwords)."""
        return obj.XMLDesc(0)

    def _before_read(self, obj):
        """Called inside ``read()`` before anything is read (a pool refreshes itself here)."""

    def _after_read(self, obj, current, active):
        """Called inside ``read()`` with the model just read."""

    # --- read -----------------------------------------------------------------------------------

    def read(self):
        self.validate_name(self.name)
        obj = self._lookup()
        self._object = obj
        if obj is None:
            return None
        with libvirt_errors("reading %s '%s'" % (self.noun, self.name)):
            self._before_read(obj)
            active = bool(obj.isActive())
            config_xml = self._inactive_xml(obj)
            live_xml = self._live_xml(obj)
            current = self.model_from_xml(config_xml)
            current.update(
                state="active" if active else "inactive",
                autostart=bool(obj.autostart()),
                persistent=bool(obj.isPersistent()),
                xml=config_xml,
                _live=self.model_from_xml(live_xml),
                _live_xml=live_xml,
            )
            self._after_read(obj, current, active)
        self._current = current
        return current

    def requested_state(self):
        """``state`` checked against STATES; None for absent."""
        state = self.params.get("state") or "active"
        if state not in STATES:
            raise InvalidInputError("state: %r is not one of %s" % (state, ", ".join(STATES)))
        return None if state == "absent" else state

    # --- compare --------------------------------------------------------------------------------

    def compare(self, current, desired):
        if current is None or desired is None:
            return super(DefinedObjectResource, self).compare(current, desired)
        tracker = DifferenceTracker()
        if desired.get("xml") is not None:
            if not _xml.xml_subset(_xml.parse(desired["xml"]), _xml.parse(current["xml"])):
                tracker.add(("xml",), _xml.pretty(current["xml"]), desired["xml"])
        rest = dict((k, v) for k, v in desired.items() if k != "xml")
        return compare_specified(rest, current, tracker)

    # --- plan building blocks -------------------------------------------------------------------

    def plan(self, current, desired, diff, plan):
        if desired is None:
            if current is not None:
                self._plan_absent(current, plan)
            return
        if current is None:
            self._plan_create(desired, plan)
            return
        self._plan_update(current, desired, diff, plan)

    def _plan_absent(self, current, plan):
        raise NotImplementedError

    def _plan_create(self, desired, plan):
        raise NotImplementedError

    def _plan_update(self, current, desired, diff, plan):
        raise NotImplementedError

    def _user_root(self, text):
        """The user's ``xml`` parsed: the right root element, and ``<name>`` added or matching."""
        root = _xml.parse(text, "xml")
        if root.tag != self.root_tag:
            raise InvalidInputError("xml: the root element must be <%s>, not <%s>" % (self.root_tag, root.tag))
        xml_name = _xml.find_text(root, "name")
        if xml_name is None:
            root.insert(0, _xml.element("name", self.name))
        elif xml_name != self.name:
            raise InvalidInputError("xml: <name>%s</name> does not match name %r" % (xml_name, self.name))
        return root

    def _define(self, xml_text):
        with libvirt_errors("defining %s '%s'" % (self.noun, self.name)):
            return self._define_call(xml_text)

    def _call(self, what, method, *args):
        """A plan action calling ``method(*args)`` on the object, looked up when the step runs."""

        def call():
            with libvirt_errors("%s %s '%s'" % (what, self.noun, self.name)):
                obj = self._lookup()
                if obj is None:
                    raise NotFoundError("%s '%s' disappeared" % (self.noun, self.name))
                return getattr(obj, method)(*args)

        return call

    def _definition_xml(self, desired, base_xml=None, uuid=None):
        """The XML to define: the user's ``xml`` (with the UUID kept), the saved definition with the
        specified changes applied, or a new definition from the model."""
        if desired.get("xml") is not None:
            root = _xml.parse(desired["xml"], "xml")
            if uuid and root.find("uuid") is None:
                root.find("name").addnext(_xml.element("uuid", uuid))
            return _xml.to_string(root)
        if base_xml is not None:
            return _xml.to_string(self.apply_model(_xml.parse(base_xml, "%s XML" % self.noun), desired))
        return _xml.to_string(self.xml_from_model(desired, uuid))

    def _plan_autostart(self, current, desired, diff, plan):
        if desired.get("autostart") is not None and (diff.touches("autostart") or not current["persistent"]):
            value = bool(desired["autostart"])
            plan.add("set autostart of %s %s to %s" % (self.noun, self.name, str(value).lower()),
                     self._call("setting autostart of", "setAutostart", 1 if value else 0),
                     undo=self._call("setting autostart of", "setAutostart", 0 if value else 1))

    # --- results --------------------------------------------------------------------------------

    def _absent_view(self, current):
        """What ``--diff`` shows as 'before' when the object is removed."""
        return {"state": current["state"]}

    def diff_views(self, current, desired):
        if desired is None:
            before = {"state": ABSENT} if current is None else self._absent_view(current)
            return before, {"state": ABSENT}
        shown = dict((k, v) for k, v in desired.items() if k != "xml")
        if current is None:
            after = specified(shown)
            if desired.get("xml") is not None:
                after["xml"] = desired["xml"]
            return {"state": ABSENT}, after
        before = project(current, shown)
        after = specified(shown)
        for key, value in before.items():
            if isinstance(value, dict) and isinstance(after.get(key), dict):
                merged = dict(value)
                merged.update(after[key])
                after[key] = merged
        if desired.get("xml") is not None:
            before["xml"] = _xml.pretty(current["xml"])
            after["xml"] = desired["xml"]
        return before, after
