# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Waiting until a VM's interfaces have addresses (:func:`wait_for_addresses`): what ``vm`` does with
``wait_for_ip``.  The sources are read by ``addresses``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, OperationTimeoutError
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.addresses import (
    AGENT_TIMEOUT,
    check_source,
    domain_nics,
    read_any,
    read_source,
    usable,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.states import is_active, state_of

FAMILIES = ("ipv4", "ipv6", "any")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def _has_family(items, mac, family):
    return any(usable(a, family) for item in items if item["mac"] == mac for a in item["addresses"])


def _describe(items, macs, family):
    parts = []
    for mac in macs:
        found = [a for item in items if item["mac"] == mac for a in item["addresses"]]
        text = ", ".join("%s/%s" % (a["address"], a["prefix"]) for a in found) or "no address"
        ok = "" if _has_family(items, mac, family) else " (missing %s)" % family
        parts.append("%s: %s%s" % (mac, text, ok))
    return "; ".join(parts) or "nothing"


def _normalize_macs(macs):
    out = []
    for mac in macs:
        text = str(mac).strip().lower().replace("-", ":")
        if not _MAC.match(text):
            raise InvalidInputError("%r is not a MAC address (expected 52:54:00:xx:xx:xx)" % (mac,))
        out.append(text)
    return out


def wait_for_addresses(conn, dom, source="any", timeout=300, macs=None, family="ipv4",
                       sleep=time.sleep, clock=time.monotonic, agent_timeout=AGENT_TIMEOUT):
    """Poll :func:`interface_addresses` until every MAC in ``macs`` has an address of ``family``.

    ``macs`` defaults to every interface of the domain (live XML).  ``family`` is ``ipv4``,
    ``ipv6`` or ``any``; link-local addresses (169.254/16, fe80::/10) do not count.  Polls every
    0.5 s, doubling up to 5 s.  While the agent is not connected yet (booting guest) it keeps
    waiting; a permanent problem (no agent channel, unsupported source) fails at once, and so does
    the domain stopping.  On timeout: OperationTimeoutError saying what was seen.
    """
    check_source(source)
    if family not in FAMILIES:
        raise InvalidInputError("address family must be one of %s, got %r" % (", ".join(FAMILIES), family))
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        raise InvalidInputError("timeout must be a number of seconds, got %r" % (timeout,))
    if timeout < 0:
        raise InvalidInputError("timeout must not be negative, got %s" % timeout)
    name = dom.name()
    if not is_active(dom):
        raise ConflictError("VM '%s' is not running (%s, %s): start it before waiting for its addresses"
                            % ((name,) + state_of(dom)))
    if macs is None:
        macs = [nic[0] for nic in domain_nics(dom)]
        if not macs:
            raise InvalidInputError("VM '%s' has no network interface: there is no address to wait for" % name)
    macs = _normalize_macs(macs)
    deadline = clock() + timeout
    interval = 0.5
    while True:
        bound = max(min(agent_timeout, deadline - clock()), 1)
        if source == "any":
            items, problems = read_any(conn, dom, bound)
        else:
            items, problem = read_source(conn, dom, source, bound)
            problems = {}
            if problem is not None:
                error, transient = problem
                if not transient:
                    raise error
                problems[source] = error.msg
        if all(_has_family(items, mac, family) for mac in macs):
            return items
        now = clock()
        if now >= deadline:
            seen = _describe(items, macs, family)
            notes = "".join("; %s: %s" % (src, msg) for src, msg in sorted(problems.items()))
            raise OperationTimeoutError(
                "timed out after %g s waiting for an %s address on %s of VM '%s' (source %s); seen: %s%s"
                % (timeout, family if family != "any" else "IP", "every interface" if len(macs) != 1 else macs[0],
                   name, source, seen, notes),
                interfaces=items, missing=[m for m in macs if not _has_family(items, m, family)],
            )
        sleep(min(interval, max(deadline - now, 0)))
        interval = min(interval * 2, 5.0)
        if not is_active(dom):
            state, reason = state_of(dom)
            raise ConflictError("VM '%s' stopped (%s, %s) while waiting for its addresses" % (name, state, reason),
                                state=state, reason=reason)
