# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Moving a VM to another hypervisor: the ``migrate`` module's parameters (:func:`normalize`), where
the VM is (:func:`summary` on both hosts) and what a run does about it (:func:`decide`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import check_uri, libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import lookup_or_none
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.names import validate_object_name
from ansible_collections.virtops.libvirt.plugins.module_utils._core.timeouts import timeout_seconds
from ansible_collections.virtops.libvirt.plugins.module_utils._host.facts import DOMAIN_STATES

COPY_STORAGE = ("none", "all", "incremental")
_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


# --- parameters ---------------------------------------------------------------------------------


def _non_negative(params, key, minimum):
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError("%s: must be an integer of at least %d, got %r" % (key, minimum, value))
    return value


def normalize(params):
    """The module parameters checked and completed (``peer_uri`` defaults to ``dest_uri``)."""
    validate_object_name(params.get("name"), "VM")
    uri = params.get("uri") or "qemu:///system"
    dest_uri = (params.get("dest_uri") or "").strip()
    if not dest_uri:
        raise InvalidInputError("dest_uri: the destination hypervisor's URI is required")
    if dest_uri == uri:
        raise InvalidInputError("dest_uri: %r is the source URI (uri) itself; name another hypervisor" % dest_uri)
    check_uri(dest_uri, "dest_uri")
    if (params.get("peer_uri") or "").strip():
        check_uri(params["peer_uri"].strip(), "peer_uri")
    copy_storage = params.get("copy_storage") or "none"
    if copy_storage not in COPY_STORAGE:
        raise InvalidInputError("copy_storage: %r is not one of %s" % (copy_storage, ", ".join(COPY_STORAGE)))
    migration_uri = params.get("migration_uri")
    if migration_uri is not None and not _SCHEME_RE.match(migration_uri.strip()):
        raise InvalidInputError("migration_uri: %r is not a URI such as tcp://10.0.0.12 or tcp://kvm2:49152"
                                % migration_uri)
    undefine_source = params.get("undefine_source", True) is not False
    remove_source_storage = bool(params.get("remove_source_storage"))
    if remove_source_storage and not undefine_source:
        raise InvalidInputError("remove_source_storage: the source keeps the VM's definition (undefine_source: "
                                "false), so its disks must stay too")
    if remove_source_storage and copy_storage == "none":
        raise InvalidInputError("remove_source_storage: only disks copied by copy_storage are removed; "
                                "with copy_storage: none the destination uses the same disks")
    return dict(
        name=params["name"],
        uri=uri,
        dest_uri=dest_uri,
        peer_uri=(params.get("peer_uri") or "").strip() or dest_uri,
        migration_uri=migration_uri.strip() if migration_uri else None,
        live=params.get("live", True) is not False,
        copy_storage=copy_storage,
        remove_source_storage=remove_source_storage,
        bandwidth=_non_negative(params, "bandwidth", 1),
        max_downtime=_non_negative(params, "max_downtime", 1),
        timeout=timeout_seconds(params.get("timeout"), "timeout"),
        auto_converge=bool(params.get("auto_converge")),
        compressed=bool(params.get("compressed")),
        tls=bool(params.get("tls")),
        unsafe=bool(params.get("unsafe")),
        persistent=params.get("persistent", True) is not False,
        undefine_source=undefine_source,
        reserve_memory=_non_negative(params, "reserve_memory", 0) or 0,
    )


# --- where the VM is, and what to do ------------------------------------------------------------


def find_domain(conn, name, where):
    return lookup_or_none(conn.lookupByName, name, libvirt.VIR_ERR_NO_DOMAIN, "VM on the %s" % where)


def summary(dom):
    """``dict(uuid, state, active, persistent)`` of a domain, or None."""
    if dom is None:
        return None
    with libvirt_errors("reading VM '%s'" % dom.name()):
        state = DOMAIN_STATES.get(dom.state()[0], "nostate")
        return dict(
            uuid=dom.UUIDString(),
            state={"shutoff": "stopped", "blocked": "running"}.get(state, state),
            active=bool(dom.isActive()),
            persistent=bool(dom.isPersistent()),
        )


class Decision:
    """What a run does: ``action`` is ``none``, ``migrate`` or ``undefine_source``."""

    __slots__ = ("action", "mode", "reason")

    def __init__(self, action, mode=None, reason=None):
        self.action = action
        self.mode = mode
        self.reason = reason

    def __repr__(self):
        return "Decision(%r, %r, %r)" % (self.action, self.mode, self.reason)


def decide(name, src, dst, opts):
    """The action for a VM found as ``src`` on the source and ``dst`` on the destination
    (:func:`summary` dicts or None).  Raises when the state is one the module must not touch."""
    if src is None and dst is None:
        raise NotFoundError("VM '%s' exists neither on the source (%s) nor on the destination (%s)"
                            % (name, opts["uri"], opts["dest_uri"]))
    if src is None:
        return Decision("none", reason="VM '%s' is already on the destination" % name)
    if dst is not None and dst["uuid"] != src["uuid"]:
        raise ConflictError("name clash: the destination has another VM named '%s' (UUID %s; the source's is %s): "
                            "rename or remove one of them" % (name, dst["uuid"], src["uuid"]))
    if dst is None:
        if src["active"]:
            return Decision("migrate", mode="live" if opts["live"] else "paused")
        if not opts["persistent"]:
            raise InvalidInputError("persistent: VM '%s' is stopped, and a stopped VM moves as its persistent "
                                    "definition; persistent: false needs a running VM" % name)
        return Decision("migrate", mode="offline")
    # the same VM (same UUID) on both hosts
    if src["active"] and dst["active"]:
        raise ConflictError("VM '%s' (UUID %s) is running on both the source and the destination: stop one of "
                            "them by hand" % (name, src["uuid"]))
    if src["active"]:
        # a stale definition on the destination: libvirt replaces it with the incoming VM
        return Decision("migrate", mode="live" if opts["live"] else "paused",
                        reason="the destination's stopped definition of VM '%s' is replaced" % name)
    if dst["active"]:
        if opts["undefine_source"] and src["persistent"]:
            return Decision("undefine_source", reason="VM '%s' runs on the destination; its stopped definition is "
                                                      "left on the source" % name)
        return Decision("none", reason="VM '%s' runs on the destination" % name)
    if opts["undefine_source"]:
        raise ConflictError("VM '%s' (UUID %s) is defined and stopped on both the source and the destination, so "
                            "which copy is current is unknown: undefine one of them, or set undefine_source: false "
                            "to keep both" % (name, src["uuid"]))
    return Decision("none", reason="VM '%s' is defined on both hosts (undefine_source: false)" % name)
