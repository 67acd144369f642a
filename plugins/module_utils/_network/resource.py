# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``network`` resource: one virtual network's definition, running state, autostart and removal.

The options are the model of ``model`` (XML through ``codec``).  DHCP host reservations and DNS
host entries are changed live (``live``); everything else is changed by redefining the network
with its UUID, MAC address and bridge name kept.  A restart re-plugs the running VMs' interfaces
(``live.reattach_interfaces``).  Port forwards (``port_forwards``) live in ``firewall``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._network import firewall as _firewall
from ansible_collections.virtops.libvirt.plugins.module_utils._network.codec import (
    apply_model,
    check_xml_reservations,
    model_from_xml,
    subnets,
    xml_from_model,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._network.firewall_rules import port_forwards_for
from ansible_collections.virtops.libvirt.plugins.module_utils._network.live import (
    plan_live_updates,
    reattach_interfaces,
    update_flags,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._network.model import (
    DEFINITION_KEYS,
    LIVE_PATHS,
    OWN_BRIDGE_MODES,
    normalize_model,
    validate_bridge_name,
    validate_name,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._network.view import (
    check_overlap,
    interface_summary,
    network_summary,
    running_interfaces,
)

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.defined import Codec, DefinedObjectResource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_network
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import ABSENT, compare_specified
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Outcome
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import guard, in_use_error, usage


class NetworkResource(DefinedObjectResource):
    """One virtual network: definition, running state, autostart, live DHCP/DNS hosts, removal.

    ``plan`` returns an Outcome whose values are ``restart_required`` (the new definition waits for
    a restart) and ``reattached`` (the running VMs' interfaces re-plugged after a restart).
    """

    kind = "network"
    noun = "network"
    root_tag = "network"
    codec = Codec(model_from_xml, xml_from_model, apply_model)
    find = staticmethod(find_network)
    define_method = "networkDefineXML"
    inactive_flag = ("VIR_NETWORK_XML_INACTIVE", 1)
    check_name = staticmethod(validate_name)
    #: libvirt's configuration directory on the hypervisor (hooks, port forward records)
    firewall_etc = _firewall.ETC_LIBVIRT

    def __init__(self, ctx):
        super(NetworkResource, self).__init__(ctx)
        self._forwards = None  # _firewall.PortForwards when port_forwards is managed

    def desired(self, current):
        params = self.params
        state = self.requested_state()
        if state is None:
            return None
        model = normalize_model(params)
        model["xml"] = None
        if params.get("xml") is not None:
            given = [k for k in DEFINITION_KEYS if k != "xml" and model.get(k) is not None]
            if given:
                raise InvalidInputError("xml cannot be combined with %s: put those into the XML" % ", ".join(given))
            model["xml"] = self._user_xml(params["xml"])
        elif model["forward_mode"] == "bridge":
            self._check_host_bridge(model["bridge"])
        model.update(state=state if state in ("active", "inactive") else None, autostart=params.get("autostart"))
        model["port_forwards"] = self._desired_port_forwards(current, model)
        return model

    def _desired_port_forwards(self, current, model):
        """Validate ``port_forwards`` against the network it will be; read what is in effect now."""
        items = self.params.get("port_forwards")
        if items is None:
            return None
        wanted = model_from_xml(model["xml"]) if model.get("xml") is not None else model
        mode = wanted.get("forward_mode") or (current["forward_mode"] if current else "isolated")
        forwards = port_forwards_for(items, self.name, mode, wanted.get("ipv4") or (current or {}).get("ipv4"))
        self._forwards = _firewall.PortForwards(self.ctx, self.name, self.firewall_etc)
        with libvirt_errors("reading the libvirt version"):
            version = self.ctx.conn.getLibVersion()
        self._forwards.require_usable(version)
        in_effect = self._forwards.read(current is not None and current["state"] == "active")
        if current is not None:
            current["port_forwards"] = in_effect
        return forwards

    def _user_xml(self, text):
        root = self._user_root(text)
        validate_bridge_name(_xml.find_attr(root, "bridge", "name"))
        check_xml_reservations(root)
        return _xml.to_string(root, pretty=True)

    def _check_host_bridge(self, bridge):
        """Best effort: ask libvirt's interface driver whether the host bridge exists."""
        try:
            self.ctx.conn.interfaceLookupByName(bridge)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_INTERFACE:  # check mode: an earlier task may create it
                self.ctx.assume(InvalidInputError(
                    "bridge: the host has no interface %r for forward_mode bridge (create the bridge first)" % bridge
                ))
                return
            self.ctx.warn("could not check that host bridge %r exists (%s)" % (bridge, " ".join(str(exc).split())))

    # --- compare ----------------------------------------------------------------------------

    @staticmethod
    def _definition(desired):
        return dict((k, desired.get(k)) for k in DEFINITION_KEYS if k != "xml")

    def _live_differences(self, current, desired):
        if desired.get("xml") is not None:
            return ["xml"] if not _xml.xml_subset(_xml.parse(desired["xml"]), _xml.parse(current["_live_xml"])) else []
        return compare_specified(self._definition(desired), current["_live"]).paths

    # --- plan -------------------------------------------------------------------------------

    def plan(self, current, desired, diff, plan):
        outcome = Outcome(restart_required=False, reattached=[])
        if desired is None:
            if current is not None:
                self._plan_absent(current, plan)
            _firewall.plan_recorded_forwards(self.ctx, self.name, plan, True, self.firewall_etc)
            return outcome
        starts = False
        if current is None:
            self._plan_create(desired, plan)
        else:
            starts = self._plan_changes(current, desired, diff, plan, outcome)
        if self._forwards is not None:
            if desired.get("state") is not None:
                active_after = desired["state"] == "active"
            else:
                active_after = current is not None and current["state"] == "active"
            uuid = self._object.UUIDString() if self._object is not None else None
            self._forwards.plan(plan, desired["port_forwards"], uuid, self._uuid, active_after, starts)
        elif starts and current is not None:
            _firewall.plan_recorded_forwards(self.ctx, self.name, plan, False, self.firewall_etc)
        return outcome

    def _plan_create(self, desired, plan):
        xml_text = self._definition_xml(desired)
        check_overlap(self.ctx.conn, self.name, subnets(_xml.parse(xml_text)))
        plan.add("define network %s" % self.name, lambda: self._define(xml_text),
                 undo=self._call("undefining", "undefine"))
        if desired.get("autostart"):
            plan.add("set autostart of network %s to true" % self.name, self._call("setting autostart of", "setAutostart", 1))
        if desired.get("state") == "active":
            plan.add("start network %s" % self.name, self._call("starting", "create"),
                     undo=self._call("stopping", "destroy"))

    def _update_call(self, command, section, parent_index, node, flags):
        text = _xml.to_string(node, pretty=False)

        def call():
            self._call("updating", "update", command, section, parent_index, text, flags)()

        return call

    def _plan_changes(self, current, desired, diff, plan, outcome):
        """Steps that change an existing network; True when they (re)start it."""
        definition_paths = [p for p in diff.paths if p.split(".")[0] in DEFINITION_KEYS]
        was_active = current["state"] == "active"
        live_only = (
            definition_paths
            and current["persistent"]
            and all(p in LIVE_PATHS for p in definition_paths)
            and (current.get("ipv4") is not None or "ipv4.dhcp_hosts" not in definition_paths)
        )
        applied_live = []
        old_xml = new_xml = current["xml"]
        if live_only:
            plan_live_updates(plan, self.name, current, desired, update_flags(was_active), self._update_call)
            applied_live = list(LIVE_PATHS)
        elif definition_paths or not current["persistent"]:
            new_xml = self._definition_xml(desired, base_xml=None if desired.get("xml") else old_xml)
            plan.add("redefine network %s" % self.name, lambda: self._define(new_xml),
                     undo=(lambda: self._define(old_xml)) if current["persistent"] else None)

        will_be_active = desired.get("state") == "active" or (desired.get("state") is None and was_active)
        new_subnets = subnets(_xml.parse(new_xml))
        if (not was_active and will_be_active) or set(new_subnets) != set(subnets(_xml.parse(old_xml))):
            check_overlap(self.ctx.conn, self.name, new_subnets)
        live_diff = [p for p in self._live_differences(current, desired) if p not in applied_live] if was_active else []
        starts = False
        if was_active and desired.get("state") == "inactive":
            self._guard_users(current, plan, "stop it")
            plan.add("stop network %s" % self.name, self._call("stopping", "destroy"), undo=self._call("starting", "create"))
        elif live_diff:
            if self.params.get("restart"):
                plan.add("stop network %s to apply its new definition" % self.name, self._call("stopping", "destroy"),
                         undo=self._start_if_inactive)
                plan.add("start network %s" % self.name, self._call("starting", "create"))
                starts = True
                self._plan_reattach(desired, current, plan, outcome)
            else:
                outcome.values["restart_required"] = True
                plan.warn("network '%s' is active: its new definition takes effect when it is restarted "
                          "(set restart: true to let the module stop and start it)" % self.name)
        elif not was_active and will_be_active:
            plan.add("start network %s" % self.name, self._call("starting", "create"), undo=self._call("stopping", "destroy"))
            starts = True
            self._plan_reattach(desired, current, plan, outcome)

        self._plan_autostart(current, desired, diff, plan)
        return starts

    def _start_if_inactive(self):
        net = self._lookup()
        if net is not None and not net.isActive():
            with libvirt_errors("starting network '%s'" % self.name):
                net.create()

    def _plan_reattach(self, desired, current, plan, outcome):
        """After the network (re)starts: re-plug the running VMs' interfaces into its new bridge."""
        found = running_interfaces(self.ctx.conn, self.name)
        if not found:
            return
        mode = desired.get("forward_mode")
        if desired.get("xml") is not None:
            mode = model_from_xml(desired["xml"])["forward_mode"]
        mode = mode or current["forward_mode"]
        names = sorted(set(dom.name() for dom, _iface in found))
        if mode not in OWN_BRIDGE_MODES:
            plan.warn("network '%s' (forward mode %s) was restarted: check the interfaces of the running VM(s) %s"
                      % (self.name, mode, ", ".join(names)))
            return
        outcome.values["reattached"] = [interface_summary(dom.name(), iface) for dom, iface in found]

        def reattach():
            outcome.values["reattached"], failures = reattach_interfaces(self.ctx.conn, self.name)
            if failures:
                raise BackendError("network '%s' was restarted but some interfaces could not be reattached to its bridge: %s"
                                   % (self.name, "; ".join(failures)), reattached=outcome.values["reattached"])

        plan.add("reattach the interfaces of the running domain(s) %s to network %s" % (", ".join(names), self.name), reattach)

    def _uuid(self):
        net = self._lookup()
        if net is None:
            raise NotFoundError("network '%s' disappeared" % self.name)
        return net.UUIDString()

    def _guard_users(self, current, plan, action):
        """Stopping or removing a network that VMs use (running: they lose their connection; stopped:
        they cannot start) is refused unless ``force`` (see :func:`_usage.guard`)."""
        bridge = current.get("bridge") if current.get("forward_mode") in OWN_BRIDGE_MODES else None
        users = usage(self.ctx).network_users(self.name, bridge)
        error = in_use_error("network '%s'" % self.name, users,
                             advice="remove those VMs or detach their interfaces first (a running VM loses its "
                             "connection, a stopped one cannot start)", action=action)
        if error is not None:
            error.details["attached_domains"] = sorted(set(u["vm"] for u in users if u["active"]))
        guard(self.ctx, error, self.params.get("force"), plan.warn)

    def _plan_absent(self, current, plan):
        active = current["state"] == "active"
        self._guard_users(current, plan, "remove it")
        if active:
            plan.add("stop network %s" % self.name, self._call("stopping", "destroy"), undo=self._call("starting", "create"))
        if current["persistent"]:
            old_xml = current["xml"]
            plan.add("undefine network %s" % self.name, self._call("undefining", "undefine"),
                     undo=lambda: self._define(old_xml))

    # --- results ----------------------------------------------------------------------------

    def _absent_view(self, current):
        return {"state": current["state"], "forward_mode": current["forward_mode"], "bridge": current["bridge"]}

    def predict(self, current, desired):
        if desired is None:
            return None
        state = dict(current or {})
        for key in ("forward_mode", "bridge", "autostart"):
            if desired.get(key) is not None:
                state[key] = desired[key]
        if desired.get("state") is not None:
            state["state"] = desired["state"]
        if desired.get("port_forwards") is not None:
            state["port_forwards"] = desired["port_forwards"]
        state.setdefault("state", "inactive")
        state["predicted"] = True
        return state

    def result(self, state, outcome):
        values = outcome.values if outcome is not None else {}
        restart_required = bool(values.get("restart_required"))
        reattached = list(values.get("reattached") or [])
        if state is None:
            return dict(network=dict(name=self.name, state=ABSENT), restart_required=False, reattached=[])
        if state.get("predicted"):
            network = dict(
                name=self.name,
                uuid=self._object.UUIDString() if self._object is not None else None,
                state=state["state"],
                autostart=bool(state.get("autostart")),
                persistent=True,
                forward_mode=state.get("forward_mode"),
                bridge=state.get("bridge"),
            )
        else:
            network = network_summary(self._lookup(), self.name)
        if self._forwards is not None:
            if state.get("predicted"):
                network["port_forwards"] = state.get("port_forwards")
            else:
                network["port_forwards"] = self._forwards.read(network["state"] == "active")
        return dict(network=network, restart_required=restart_required, reattached=reattached)
