# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``vm`` resource's comparison, prediction and ``--diff`` views.

Only what the user specified is compared (per device: the keys given; disks only grow); the
prediction is the definition the plan writes, read back the way ``read()`` reads one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import codec_write as _codec_write
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.options import DEFINITION_KEYS
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import ABSENT, DifferenceTracker, compare_specified, project, values_equal

MASK = "********"

#: model keys compared per device (``pool``/``volume``/``backing_*``/``size`` are resolved or handled apart)
NOT_COMPARED = ("pool", "volume", "backing_volume", "backing_pool", "size")


def by_target(devices):
    return dict((d["target"], d) for d in devices or [])


def strip(model, keys):
    return dict((k, v) for k, v in model.items() if k not in keys)


def device_view(dev):
    return dict((k, v) for k, v in dev.items() if v is not None and k not in ("pool", "volume", "backing_pool"))


def definition_model(desired):
    """The part of a desired model that is the persistent definition."""
    return dict((k, v) for k, v in desired.items() if k in DEFINITION_KEYS)


# --- compare ------------------------------------------------------------------------------------


def compare_model(current, desired, tracker=None, live=False):
    tracker = DifferenceTracker() if tracker is None else tracker
    plain = dict((k, v) for k, v in desired.items()
                 if k not in ("disks", "cdroms", "interfaces", "graphics", "xml") and not k.startswith("_"))
    if live:
        plain.pop("state", None)
        plain.pop("autostart", None)
    compare_specified(plain, current, tracker)
    compare_graphics(current.get("graphics") or {}, desired.get("graphics"), tracker)
    for key in ("disks", "cdroms"):
        if desired.get(key) is not None:
            compare_devices(key, by_target(current.get(key)), desired[key], tracker, live)
    if desired.get("interfaces") is not None:
        compare_interfaces(current.get("interfaces") or [], desired["interfaces"], tracker)
    return tracker


def compare_graphics(current, desired, tracker):
    if not desired:
        return
    for key, value in desired.items():
        if value is None:
            continue
        have = current.get(key)
        if not values_equal(value, have):
            if key == "password":
                tracker.add(("graphics", key), MASK if have else None, MASK if value else None)
            else:
                tracker.add(("graphics", key), have, value)


def compare_devices(key, current, desired, tracker, live):
    wanted = set()
    for dev in desired:
        wanted.add(dev["target"])
        have = current.get(dev["target"])
        if have is None:
            tracker.add((key, dev["target"]), ABSENT, device_view(dev))
            continue
        compare_specified(strip(dev, NOT_COMPARED), have, tracker, (key, dev["target"]))
        if key == "disks" and not live and dev.get("size") is not None and have.get("size") is not None:
            if dev["size"] > have["size"]:
                tracker.add((key, dev["target"], "size"), have["size"], dev["size"])
    for target, have in current.items():
        if target not in wanted:
            tracker.add((key, target), device_view(have), ABSENT)


def compare_interfaces(current, desired, tracker):
    for index, nic in enumerate(desired):
        if index >= len(current):
            tracker.add(("interfaces", str(index)), ABSENT, strip(dict((k, v) for k, v in nic.items() if v is not None), ()))
            continue
        have = current[index]
        if nic.get("filter") is not None and have.get("filter") is None:
            have = dict(have, filter=dict(name="", parameters=[]))
        compare_specified(nic, have, tracker, ("interfaces", str(index)))
    for index in range(len(desired), len(current)):
        tracker.add(("interfaces", str(index)), current[index], ABSENT)


# --- prediction ---------------------------------------------------------------------------------


def predicted_definition(vm, current, desired):
    """The VM with the definition the plan writes, read back the way read() reads one: what a real
    run returns (max_memory raised with memory, ...), and what the running guest is compared with."""
    definition = _domain.model_from_xml(prediction_xml(vm, current, desired))
    if current is None:
        base = definition
    else:
        base = copy.deepcopy(current)
        base.update((k, definition[k]) for k in DEFINITION_KEYS + ("nvram",))
        base["name"] = vm.name
    predict_sizes(base, current, desired)
    return base


def prediction_xml(vm, current, desired):
    if desired.get("xml") is not None:
        return desired["xml"]
    if current is not None:
        return _xml.to_string(vm.apply_model(_xml.parse(current["xml"], "domain XML"), definition_model(desired)))
    clone = desired["_run"].clone.info if desired.get("_run") is not None else None
    if clone is not None:
        return _xml.to_string(_codec_write.apply_model(_xml.parse(clone["xml"]), definition_model(desired)))
    return _xml.to_string(_codec_write.build_xml(vm.name, definition_model(desired)))


def predict_sizes(base, current, desired):
    """Disk sizes after the plan: a disk that stays keeps its size (or grows to the one asked for)."""
    have = by_target((current or {}).get("disks"))
    asked = by_target(desired.get("disks")) if desired.get("xml") is None else {}
    for disk in base["disks"]:
        old = have.get(disk["target"])
        sizes = [(asked.get(disk["target"]) or {}).get("size")]
        if old is not None and old.get("path") == disk.get("path"):
            sizes.append(old.get("size"))
        sizes = [size for size in sizes if size is not None]
        disk["size"] = max(sizes) if sizes else None


# --- --diff views -------------------------------------------------------------------------------


def device_diff_views(current, desired, before, after):
    """Devices in ``--diff``: per device only the keys the user gave (and whole added/removed ones)."""
    for key in ("disks", "cdroms", "interfaces"):
        wanted = desired.get(key)
        if wanted is None:
            continue
        if key == "interfaces":
            have = dict((str(i), n) for i, n in enumerate(current.get(key) or []))
            ids = [str(i) for i in range(len(wanted))]
        else:
            have = by_target(current.get(key))
            ids = [d["target"] for d in wanted]
        shown = [device_view(strip(d, NOT_COMPARED[:-1])) for d in wanted]
        for n, i in enumerate(ids):
            size = (have.get(i) or {}).get("size")
            if size is not None and shown[n].get("size") is not None and shown[n]["size"] < size:
                shown[n]["size"] = size  # disks are never shrunk
        before[key] = [project(have[i], shown[n]) for n, i in enumerate(ids) if i in have]
        before[key] += [device_view(h) for i, h in sorted(have.items()) if i not in ids]
        after[key] = shown


def implied_diff_views(vm, current, desired, before, after):
    """Values the user did not give that change with those given (``max_memory`` raised with
    ``memory``, ``max_vcpus`` with ``vcpus``, ...): shown, since the run changes them."""
    predicted = predicted_definition(vm, current, desired)
    for key in DEFINITION_KEYS:
        if desired.get(key) is not None or key in ("disks", "cdroms", "interfaces"):
            continue
        old, new = current.get(key), predicted.get(key)
        if not isinstance(new, dict) and not values_equal(new, old):
            before[key], after[key] = old, new
