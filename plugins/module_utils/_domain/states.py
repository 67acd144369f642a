# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run state of a VM as libvirt reports it: state and reason names, and small readers that the
agent, address and run-time fact files share.  Everything takes a raw ``virDomain`` and raises our
exceptions; nothing here changes a VM.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag

# virDomainState and, per state, its reason enum, by libvirt constant name.  The numbers come
# from the installed binding; a name it lacks (older libvirt) is left out and reads "unknown".
# (VIR_DOMAIN_SHUTDOWN_* other than UNKNOWN/USER are shutdown *flags*, not reasons.)
_STATE_TABLE = (
    ("NOSTATE", ("UNKNOWN",)),
    ("RUNNING", ("UNKNOWN", "BOOTED", "MIGRATED", "RESTORED", "FROM_SNAPSHOT", "UNPAUSED",
                 "MIGRATION_CANCELED", "SAVE_CANCELED", "WAKEUP", "CRASHED", "POSTCOPY", "POSTCOPY_FAILED")),
    ("BLOCKED", ("UNKNOWN",)),
    ("PAUSED", ("UNKNOWN", "USER", "MIGRATION", "SAVE", "DUMP", "IOERROR", "WATCHDOG", "FROM_SNAPSHOT",
                "SHUTTING_DOWN", "SNAPSHOT", "CRASHED", "STARTING_UP", "POSTCOPY", "POSTCOPY_FAILED",
                "API_ERROR")),
    ("SHUTDOWN", ("UNKNOWN", "USER")),
    ("SHUTOFF", ("UNKNOWN", "SHUTDOWN", "DESTROYED", "CRASHED", "MIGRATED", "SAVED", "FAILED",
                 "FROM_SNAPSHOT", "DAEMON")),
    ("CRASHED", ("UNKNOWN", "PANICKED")),
    ("PMSUSPENDED", ("UNKNOWN",)),
)


def _state_names():
    """``{state number: (state name, {reason number: reason name})}`` from the binding's constants."""
    table = {}
    if libvirt is None:
        return table
    for state, reasons in _STATE_TABLE:
        number = flag("VIR_DOMAIN_" + state, None)
        if number is None:
            continue
        names = {}
        for reason in reasons:
            value = flag("VIR_DOMAIN_%s_%s" % (state, reason), None)
            if value is not None:
                names[value] = reason.lower()
        table[number] = (state.lower(), names)
    return table


STATE_NAMES = _state_names()


def state_names(state, reason):
    """``(1, 1)`` -> ``('running', 'booted')``; numbers libvirt may add later read ``'unknown'``."""
    name, reasons = STATE_NAMES.get(state, ("unknown", {}))
    return name, reasons.get(reason, "unknown")


def state_of(dom):
    """The domain's state and the reason for it: ``('running', 'booted')``, ``('shutoff', 'destroyed')``."""
    with libvirt_errors("reading the state of VM '%s'" % dom.name()):
        state, reason = dom.state(0)[:2]
    return state_names(state, reason)


def is_active(dom):
    with libvirt_errors("reading the state of VM '%s'" % dom.name()):
        return bool(dom.isActive())


def has_code(exc, name):
    """Whether the libvirtError ``exc`` carries the error code ``libvirt.<name>``."""
    return libvirt is not None and exc.get_error_code() == flag(name, None)


def error_message(exc):
    """The message of the libvirtError ``exc`` on one line."""
    return " ".join(str(exc.get_error_message() or exc).split())
