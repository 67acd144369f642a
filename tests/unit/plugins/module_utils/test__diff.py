# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import (
    DifferenceTracker,
    compare_specified,
    merge,
    project,
    specified,
)

CURRENT = {
    "name": "web1",
    "memory": 1073741824,
    "vcpus": 2,
    "cpu": {"mode": "host-model", "model": None, "cores": 2},
    "autostart": False,
    "tags": ["a", "b"],
    "uuid": "1234",  # libvirt-owned: users never specify it
}


@pytest.mark.parametrize(
    "desired, paths",
    [
        ({}, []),
        ({"vcpus": None, "memory": None}, []),  # unspecified never differs
        ({"vcpus": 2}, []),
        ({"vcpus": "2"}, []),  # module params may arrive as strings
        ({"vcpus": 4}, ["vcpus"]),
        ({"cpu": {"mode": "host-model"}}, []),
        ({"cpu": {"mode": "host-passthrough", "cores": None}}, ["cpu.mode"]),
        ({"cpu": {"cores": 4, "mode": "custom"}}, ["cpu.cores", "cpu.mode"]),
        ({"tags": ["b", "a"]}, ["tags"]),  # lists compare as a whole, order matters
        ({"autostart": True}, ["autostart"]),
        ({"autostart": False}, []),
        ({"new_key": "x"}, ["new_key"]),
    ],
)
def test_compare_specified_only_looks_at_specified_keys(desired, paths):
    tracker = compare_specified(desired, CURRENT)
    assert tracker.paths == paths
    assert bool(tracker) == bool(paths)


def test_tracker_builds_nested_before_after():
    tracker = compare_specified({"cpu": {"mode": "host-passthrough"}, "vcpus": 4}, CURRENT)
    assert tracker.before() == {"cpu": {"mode": "host-model"}, "vcpus": 2}
    assert tracker.after() == {"cpu": {"mode": "host-passthrough"}, "vcpus": 4}
    assert tracker.touches("cpu")
    assert not tracker.touches("cp")
    assert tracker.as_list()[1] == {"path": "vcpus", "before": 2, "after": 4}


def test_tracker_copies_values():
    value = {"a": [1]}
    tracker = DifferenceTracker()
    tracker.add("x", None, value)
    value["a"].append(2)
    assert tracker.after() == {"x": {"a": [1]}}


def test_add_if_different():
    tracker = DifferenceTracker()
    assert not tracker.add_if_different("a", 1, "1")
    assert tracker.add_if_different("a", 1, 2)
    assert len(tracker) == 1


def test_projection_merge_and_specified():
    desired = {"vcpus": 4, "cpu": {"mode": "custom", "model": None}, "memory": None}
    assert project(CURRENT, desired) == {"vcpus": 2, "cpu": {"mode": "host-model"}}
    merged = merge(CURRENT, desired)
    assert merged["vcpus"] == 4 and merged["cpu"] == {"mode": "custom", "model": None, "cores": 2}
    assert merged["uuid"] == "1234"
    assert CURRENT["vcpus"] == 2  # merge does not modify its input
    assert specified(desired) == {"vcpus": 4, "cpu": {"mode": "custom"}}
