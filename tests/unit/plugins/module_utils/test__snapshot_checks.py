# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The snapshot module's decisions without libvirt: the tree questions and why a deletion waits."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot import checks as _checks


def snap(name, parent=None, children=(), external=False):
    return dict(name=name, parent=parent, children=list(children), external=external, disks=[])


#: a -> b -> c, and a -> d
TREE = [snap("a", children=["b", "d"]), snap("b", "a", ["c"]), snap("c", "b"), snap("d", "a")]


@pytest.mark.parametrize("name, depth", [("a", 0), ("b", 1), ("c", 2), ("d", 1)])
def test_depth(name, depth):
    by_name = dict((f["name"], f) for f in TREE)
    assert _checks.depth(by_name[name], TREE) == depth


@pytest.mark.parametrize("name, ancestor, expected", [
    ("c", "a", True), ("c", "b", True), ("d", "a", True), ("d", "b", False), ("a", "a", False), ("b", "c", False),
])
def test_descends_from(name, ancestor, expected):
    by_name = dict((f["name"], f) for f in TREE)
    assert _checks.descends_from(by_name[name], ancestor, TREE) is expected


def test_descends_from_stops_at_a_missing_parent():
    orphan = snap("o", parent="gone")
    assert _checks.descends_from(orphan, "a", [orphan]) is False


@pytest.mark.parametrize("facts, active, why", [
    (snap("x", external=True, children=["y"]), False, "external (disk_only) snapshot with child snapshots (y) and VM vm1 is stopped"),
    (snap("x", external=True, children=["y"]), True, None),  # merged while the VM runs
    (snap("x", external=True), False, None),  # a leaf goes in either state
    (snap("x", children=["y"]), False, None),  # internal
])
def test_unmergeable(facts, active, why):
    got = _checks.unmergeable(facts, dict(active=active, vm_state="running" if active else "stopped"), "vm1")
    if why is None:
        assert got is None
    else:
        assert why in got


def test_internal_snapshots_are_always_deletable():
    # no libvirt call is made for an internal snapshot (conn is not used)
    assert _checks.check_deletable(None, "vm1", snap("x"), dict(disks=[]), []) is None
