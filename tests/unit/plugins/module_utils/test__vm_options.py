# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The vm option table (``_domain/options.py``): the module's argument spec is built from it and agrees
with the module's DOCUMENTATION (type, default, choices, elements, no_log-free docs), and the key groups
the resource uses derive from it."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
import yaml

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import options as _options
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.options import names
from ansible_collections.virtops.libvirt.plugins.modules import vm as vm_module


def _doc_options():
    return yaml.safe_load(vm_module.DOCUMENTATION)["options"]


def _walk(spec, docs, path=""):
    """(path, spec entry, doc entry) of every option, suboptions included."""
    for name, entry in sorted(spec.items()):
        doc = docs.get(name)
        yield path + name, entry, doc
        if entry.get("options") and doc is not None:
            yield from _walk(entry["options"], doc.get("suboptions") or {}, path + name + ".")


SPEC = vm_module.ARGUMENT_SPEC


def _fragment_options():
    """Options a doc fragment documents (the connection's ``uri``)."""
    return set(COMMON_ARGS)


@pytest.mark.parametrize("path, entry, doc", [p for p in _walk(SPEC, _doc_options()) if p[0] not in _fragment_options()],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_spec_matches_documentation(path, entry, doc):
    assert doc is not None, "%s is not documented" % path
    assert entry.get("type", "str") == doc.get("type", "str"), path
    assert entry.get("default") == doc.get("default"), path
    assert sorted(entry.get("choices") or []) == sorted(doc.get("choices") or []), path
    assert entry.get("elements") == doc.get("elements"), path
    assert bool(entry.get("required")) == bool(doc.get("required")), path


def test_every_documented_option_is_in_the_spec():
    documented = set(_doc_options())
    assert documented <= set(SPEC), documented - set(SPEC)


def test_model_keys_derive_from_the_table():
    assert _options.DEFINITION_KEYS == (
        "title", "description", "vcpus", "max_vcpus", "cpu", "memory", "max_memory", "machine", "arch",
        "virt_type", "firmware", "secure_boot", "nvram_template", "boot", "kernel", "initrd", "cmdline",
        "disks", "cdroms", "interfaces", "graphics", "serial", "guest_agent", "rng", "watchdog",
        "hostdevs", "tpm", "filesystems", "pinning", "numa", "hugepages", "tags", "metadata",
    )
    assert _options.MODEL_OPTIONS == _options.DEFINITION_KEYS + ("cloud_init",)
    assert set(_options.LIVE_KEYS) == set(("memory", "vcpus", "title", "description", "tags", "metadata", "pinning"))
    assert _options.TIMEOUTS == dict(shutdown_timeout=120, wait_for_ip_timeout=300, wait_for_timeout=600, hotplug_timeout=60)
    assert _options.STATES == ("present", "running", "stopped", "paused", "restarted", "absent")
    assert _options.SEED_KEYS == ("pool", "volume", "bus", "detach", "detach_timeout")
    assert _options.DETACH_TIMEOUT == 900


def test_defaults_are_declared_once():
    assert _options.DEFAULTS["shutdown_timeout"] == SPEC["shutdown_timeout"]["default"] == 120
    assert _options.DEFAULTS["state"] == "running" and _options.DEFAULTS["clone_mode"] == "full"
    assert SPEC["cloud_init"]["options"]["detach_timeout"]["default"] == _options.DETACH_TIMEOUT


def test_xml_excludes_every_model_option():
    pairs = set(tuple(p) for p in _options.MUTUALLY_EXCLUSIVE)
    for name in names(_options.OPTIONS, model=True) + ("clone_from",):
        assert ("xml", name) in pairs
    assert ("clone_from", "disks") in pairs and ("clone_from", "rename_from") in pairs
    assert _options.REQUIRED_BY == dict(clone_snapshot="clone_from")


def test_seed_content_options_come_from_cloudinit():
    from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit import options as _cloudinit
    seed = SPEC["cloud_init"]["options"]
    for name in _cloudinit.SEED_OPTIONS:
        assert seed[name] == _cloudinit.SEED_ARGUMENT_SPEC[name]
    assert seed["pool"] == dict(type="str", default="default")
    assert SPEC["graphics"]["options"]["password"]["no_log"] is True
