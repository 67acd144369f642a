# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Difference tracking: one object decides ``changed`` and produces the before/after diff.

Only what the user specified is compared: a key whose desired value is ``None`` is "not
specified" and never produces a difference, so libvirt's defaults never make a run noisy.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

#: marker for "the resource does not exist"
ABSENT = "absent"


def _norm(value):
    """Normalise scalars for comparison: strings that are numbers compare equal to numbers."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        stripped = value.strip()
        try:
            return int(stripped)
        except ValueError:
            return stripped
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return dict((k, _norm(v)) for k, v in value.items())
    return value


def values_equal(desired, current):
    return _norm(desired) == _norm(current)


class DifferenceTracker:
    """Collects ``(path, before, after)`` for every difference found.

    ``path`` is a tuple of keys (``('cpu', 'mode')``); ``changed`` is "the tracker is not empty".
    """

    def __init__(self):
        self._items = []

    def add(self, path, before, after):
        if isinstance(path, str):
            path = tuple(path.split("."))
        self._items.append((tuple(path), copy.deepcopy(before), copy.deepcopy(after)))

    def add_if_different(self, path, before, after):
        if not values_equal(after, before):
            self.add(path, before, after)
            return True
        return False

    def __bool__(self):
        return bool(self._items)

    __nonzero__ = __bool__

    def __len__(self):
        return len(self._items)

    def __iter__(self):
        return iter(self._items)

    @property
    def paths(self):
        return [".".join(str(p) for p in path) for path, _b, _a in self._items]

    def touches(self, *prefixes):
        """True when a difference is at or below one of the dotted ``prefixes``."""
        for path in self.paths:
            for prefix in prefixes:
                if path == prefix or path.startswith(prefix + "."):
                    return True
        return False

    def _nested(self, which):
        out = {}
        for path, before, after in self._items:
            value = before if which == "before" else after
            if not path:
                return value
            node = out
            for key in path[:-1]:
                nxt = node.get(key)
                if not isinstance(nxt, dict):
                    nxt = {}
                    node[key] = nxt
                node = nxt
            node[path[-1]] = value
        return out

    def before(self):
        return self._nested("before")

    def after(self):
        return self._nested("after")

    def as_list(self):
        return [dict(path=".".join(str(p) for p in path), before=b, after=a) for path, b, a in self._items]


def compare_specified(desired, current, tracker=None, path=()):
    """Record in ``tracker`` where ``current`` differs from what ``desired`` specifies.

    Dicts are walked key by key, skipping keys whose desired value is ``None``; everything else
    (scalars, lists) is compared as a whole after light normalisation.  Returns the tracker.
    """
    tracker = DifferenceTracker() if tracker is None else tracker
    if isinstance(desired, dict):
        cur = current if isinstance(current, dict) else {}
        for key, value in desired.items():
            if value is None:
                continue
            compare_specified(value, cur.get(key), tracker, path + (key,))
    elif desired is not None:
        tracker.add_if_different(path, current, desired)
    return tracker


def specified(desired):
    """``desired`` with every ``None`` (unspecified) value removed, recursively."""
    if isinstance(desired, dict):
        return dict((k, specified(v)) for k, v in desired.items() if v is not None)
    if isinstance(desired, list):
        return [specified(v) for v in desired]
    return desired


def project(current, desired):
    """The part of ``current`` that ``desired`` talks about (for a readable 'before')."""
    if not isinstance(desired, dict):
        return current
    if not isinstance(current, dict):
        return current
    out = {}
    for key, value in desired.items():
        if value is None:
            continue
        out[key] = project(current.get(key), value)
    return out


def merge(current, desired):
    """``current`` updated with what ``desired`` specifies: the predicted state after a change."""
    if not isinstance(desired, dict) or not isinstance(current, dict):
        return copy.deepcopy(current if desired is None else desired)
    out = copy.deepcopy(current)
    for key, value in desired.items():
        if value is None:
            continue
        out[key] = merge(current.get(key), value)
    return out
