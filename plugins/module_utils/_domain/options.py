# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The options of the ``vm`` module, each declared once (:mod:`._core.options`).

The module's argument spec, ``mutually_exclusive`` and ``required_by`` are built from :data:`OPTIONS`;
so are the groups the resource code needs.  Meta keys of an option:

* ``model=True``: a VM model option (excludes ``xml``); ``definition=True``: a key of the persistent
  definition (:data:`DEFINITION_KEYS`); ``live=True``: a running guest takes it without a restart
  (:data:`LIVE_KEYS`); ``timeout=True``: a timeout in seconds (:data:`TIMEOUTS`).

The content options of ``cloud_init`` are the ``cloudinit`` module's (``SEED_ARGUMENT_SPEC``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.options import SEED_ARGUMENT_SPEC
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.options import Option, argument_spec, defaults, find, names
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.shares import TPM_MODELS
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.model import (
    BOOT_DEVICES,
    CACHE_MODES,
    CDROM_BUSES,
    CPU_MODES,
    DIRECT_MODES,
    DISCARD_MODES,
    DISK_BUSES,
    DISK_FORMATS,
    GRAPHICS_TYPES,
    INTERFACE_MODELS,
    WATCHDOG_ACTIONS,
    WATCHDOG_MODELS,
)


def _model(name, type="str", live=False, **kwargs):  # pylint: disable=redefined-builtin
    """An option of the VM model and its persistent definition."""
    return Option(name, type=type, model=True, definition=True, live=live, **kwargs)


DISK_OPTIONS = [
    Option("target"),
    Option("bus", choices=DISK_BUSES),
    Option("pool"),
    Option("volume"),
    Option("path", type="path"),
    Option("size"),
    Option("format", choices=DISK_FORMATS),
    Option("backing_volume"),
    Option("backing_pool"),
    Option("cache", choices=CACHE_MODES),
    Option("discard", choices=DISCARD_MODES),
    Option("serial"),
    Option("readonly", type="bool"),
    Option("boot_order", type="int"),
    Option("encryption", type="dict", suboptions=[Option("format", default="luks", choices=("luks",)),
                                                  Option("secret", required=True, no_log=False)]),
]

CDROM_OPTIONS = [
    Option("target"),
    Option("bus", choices=CDROM_BUSES),
    Option("path", type="path"),
    Option("pool"),
    Option("volume"),
    Option("boot_order", type="int"),
]

INTERFACE_OPTIONS = [
    Option("network"),
    Option("bridge"),
    Option("direct"),
    Option("mode", choices=DIRECT_MODES),
    Option("model", choices=INTERFACE_MODELS),
    Option("mac"),
    Option("boot_order", type="int"),
    Option("filter", type="dict", suboptions=[Option("name", required=True), Option("parameters", type="dict")]),
]

#: where the seed of ``cloud_init`` lives and how it is attached (its content options are the cloudinit module's)
SEED_LOCATION_OPTIONS = [
    Option("pool", default="default"),
    Option("volume"),
    Option("bus", choices=CDROM_BUSES + ("virtio",)),
    Option("detach", type="bool", default=False),
    Option("detach_timeout", type="int", default=900, timeout=True),
]

OPTIONS = [
    Option("name", required=True),
    Option("state", default="running", choices=("present", "running", "stopped", "paused", "restarted", "absent")),
    _model("title", live=True),
    _model("description", live=True),
    _model("vcpus", type="int", live=True),
    _model("max_vcpus", type="int"),
    _model("cpu", type="dict", suboptions=[
        Option("mode", choices=CPU_MODES),
        Option("model"),
        Option("sockets", type="int"),
        Option("cores", type="int"),
        Option("threads", type="int"),
    ]),
    _model("memory", live=True),
    _model("max_memory"),
    _model("machine"),
    _model("arch"),
    _model("virt_type", choices=("kvm", "qemu", "auto")),
    _model("firmware", choices=("bios", "uefi")),
    _model("secure_boot", type="bool"),
    _model("nvram_template", type="path"),
    _model("boot", type="list", elements="str", choices=BOOT_DEVICES),
    _model("kernel", type="path"),
    _model("initrd", type="path"),
    _model("cmdline"),
    _model("disks", type="list", elements="dict", suboptions=DISK_OPTIONS),
    _model("cdroms", type="list", elements="dict", suboptions=CDROM_OPTIONS),
    _model("interfaces", type="list", elements="dict", suboptions=INTERFACE_OPTIONS),
    _model("graphics", type="dict", suboptions=[
        Option("type", choices=GRAPHICS_TYPES),
        Option("listen"),
        Option("port", type="int"),
        Option("password", no_log=True),
    ]),
    _model("serial", type="dict", suboptions=[
        Option("type", choices=("pty", "file")),
        Option("path", type="path"),
    ]),
    _model("guest_agent", type="bool"),
    _model("rng", type="bool"),
    _model("watchdog", type="dict", suboptions=[
        Option("model", choices=WATCHDOG_MODELS),
        Option("action", choices=WATCHDOG_ACTIONS),
    ]),
    _model("hostdevs", type="list", elements="str"),
    _model("tpm", type="dict", suboptions=[Option("model", default="tpm-crb", choices=TPM_MODELS + ("none",))]),
    _model("filesystems", type="list", elements="dict", suboptions=[
        Option("source", type="path", required=True),
        Option("target", required=True),
        Option("readonly", type="bool", default=False),
    ]),
    _model("pinning", type="dict", live=True, suboptions=[
        Option("vcpus", type="list", elements="dict", suboptions=[
            Option("vcpu", type="int", required=True),
            Option("cpuset", required=True),
        ]),
        Option("emulator"),
    ]),
    _model("numa", type="list", elements="dict", suboptions=[
        Option("cpus", required=True),
        Option("memory", required=True),
    ]),
    _model("hugepages"),
    _model("tags", type="list", elements="str", live=True),
    _model("metadata", type="dict", live=True),
    Option("xml"),
    Option("autostart", type="bool"),
    Option("shutdown_timeout", type="int", default=120, timeout=True),
    Option("hotplug_timeout", type="int", default=60, timeout=True),
    Option("pcie_spare_ports", type="int", default=4),
    Option("force", type="bool", default=False),
    Option("remove_storage", type="bool", default=False),
    Option("apply", default="config", choices=("config", "restart")),
    Option("rename_from"),
    Option("clone_from"),
    Option("clone_snapshot"),
    Option("clone_mode", default="full", choices=("full", "linked")),
    Option("template"),
    Option("template_pool", default="default"),
    Option("cloud_init", type="dict", model=True, suboptions=SEED_LOCATION_OPTIONS),
    Option("wait_for_ip", type="bool", default=False),
    Option("wait_for_ip_timeout", type="int", default=300, timeout=True),
    Option("ip_source", default="any", choices=("lease", "agent", "arp", "any")),
    Option("wait_for", type="list", elements="str", choices=("agent", "cloud_init", "ip")),
    Option("wait_for_timeout", type="int", default=600, timeout=True),
]

#: the values of ``state``
STATES = tuple(find(OPTIONS, "state").choices)
#: options of the VM model: none of them goes with ``xml``
MODEL_OPTIONS = names(OPTIONS, model=True)
#: keys of the model that are part of the persistent definition
DEFINITION_KEYS = names(OPTIONS, definition=True)
#: model paths that a running guest takes without a restart
LIVE_KEYS = names(OPTIONS, live=True)
#: timeouts of the module and their defaults (seconds)
TIMEOUTS = dict((name, find(OPTIONS, name).default) for name in names(OPTIONS, timeout=True))
#: defaults of the options that have one
DEFAULTS = defaults(OPTIONS)
#: the options of ``cloud_init`` that say where the seed lives and how it is attached
SEED_KEYS = tuple(o.name for o in SEED_LOCATION_OPTIONS)
#: seconds a detach waits for cloud-init in the guest by default
DETACH_TIMEOUT = find(SEED_LOCATION_OPTIONS, "detach_timeout").default

MUTUALLY_EXCLUSIVE = ([("xml", k) for k in MODEL_OPTIONS + ("clone_from",)]
                      + [("clone_from", "disks"), ("clone_from", "rename_from")]
                      + [("template", k) for k in ("xml", "clone_from", "disks", "rename_from")])
REQUIRED_BY = dict(clone_snapshot="clone_from")


def vm_argument_spec():
    """The ``vm`` module's argument spec: the table, the connection options, the seed's content options."""
    spec = argument_spec(OPTIONS, **COMMON_ARGS)
    spec["cloud_init"]["options"] = dict(SEED_ARGUMENT_SPEC, **spec["cloud_init"]["options"])
    return spec
