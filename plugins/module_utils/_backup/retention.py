# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Retention of backup points: which points a policy keeps, as a pure function.

The policy (``keep_last``, ``keep_daily``, ``keep_weekly``, ``keep_monthly``) works as in restic and borg:
``keep_last: n`` keeps the n newest points; ``keep_daily: n`` keeps the newest point of each of the n most
recent days that have points (UTC), ``keep_weekly`` the same per ISO week, ``keep_monthly`` per calendar
month.  A point kept by any rule is kept.  The newest point is always kept (the next incremental point
builds on it).  Then every point a kept point needs (its parent, the parent's parent, down to its full
point) is kept too: retention never breaks a chain; such points are listed as ``needed_by``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError

RULES = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly")


def check_policy(policy):
    """The policy with the rules given (ints >= 0); None when no rule is given."""
    if not policy:
        return None
    out = {}
    for key, value in policy.items():
        if key not in RULES:
            raise InvalidInputError("retention: unknown rule %r (use %s)" % (key, ", ".join(RULES)))
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInputError("retention: %s must be a whole number >= 0, not %r" % (key, value))
        out[key] = value
    return out or None


def _bucket(rule, epoch):
    tm = time.gmtime(epoch)
    if rule == "keep_daily":
        return time.strftime("%Y-%m-%d", tm)
    if rule == "keep_weekly":
        year, week = _iso_week(epoch)
        return "%04d-W%02d" % (year, week)
    return time.strftime("%Y-%m", tm)


def _iso_week(epoch):
    iso = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).date().isocalendar()
    return iso[0], iso[1]


def plan_retention(points, policy):
    """``points``: dicts ``name``, ``time`` (epoch), ``parent`` (None for a full point), any order.

    Returns dict ``keep`` (names, oldest first), ``remove`` (names, oldest first), ``reasons`` (name -> list
    of why it is kept: ``last``, ``daily 2026-12-07``, ``needed by p3``...)."""
    ordered = sorted(points, key=lambda p: (p["time"], p["name"]))
    reasons = dict((p["name"], []) for p in ordered)
    if not policy:
        return dict(keep=[p["name"] for p in ordered], remove=[], reasons=reasons)
    newest_first = list(reversed(ordered))
    for point in newest_first[:policy.get("keep_last", 0)]:
        reasons[point["name"]].append("last")
    for rule in ("keep_daily", "keep_weekly", "keep_monthly"):
        wanted = policy.get(rule, 0)
        seen = []
        for point in newest_first:
            if len(seen) >= wanted:
                break
            bucket = _bucket(rule, point["time"])
            if bucket in seen:
                continue
            seen.append(bucket)
            reasons[point["name"]].append("%s %s" % (rule[5:], bucket))
    if newest_first:
        newest = newest_first[0]["name"]
        if not reasons[newest]:
            reasons[newest].append("newest")
    by_name = dict((p["name"], p) for p in ordered)
    for point in newest_first:
        if not reasons[point["name"]]:
            continue  # newest first: a point a kept one needs has its reason before it is reached
        parent = point.get("parent")
        child = point["name"]
        while parent and parent in by_name:
            text = "needed by %s" % child
            if text not in reasons[parent]:
                reasons[parent].append(text)
            child, parent = parent, by_name[parent].get("parent")
    keep = [p["name"] for p in ordered if reasons[p["name"]]]
    remove = [p["name"] for p in ordered if not reasons[p["name"]]]
    return dict(keep=keep, remove=remove, reasons=reasons)
