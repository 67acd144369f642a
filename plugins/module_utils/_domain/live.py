# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a running ``vm`` takes without a restart (memory balloon, vCPUs, CD-ROM media, title,
description, tags and metadata), and what waits for its next (re)start: ``pending_changes``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import codec_write as _codec_write
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.codec_devices import set_filterref
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.compare import by_target, compare_model, definition_model, predicted_definition
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.options import LIVE_KEYS
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.tuning import plan_live_pins
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors


def rename_step(ctx, old, new):
    def call():
        with libvirt_errors("renaming VM %r to %r" % (old, new)):
            ctx.conn.lookupByName(old).rename(new, 0)

    return call


def plan_live(vm, current, definition, diff, plan):
    """Changes a running guest takes without a restart: balloon, vCPUs, CD-ROM media, metadata.

    Memory is a balloon request the guest may not follow (no driver): it is sent when the
    definition's memory changes, never because the guest did not follow an earlier request.
    """
    live = current["_live"]
    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
    memory = definition.get("memory")
    if memory is not None and diff.touches("memory") and memory <= live["max_memory"]:
        plan.add("set memory of running VM %s to %d MiB" % (vm.name, memory),
                 vm._call("setting memory of", "setMemoryFlags", memory * 1024, flags))
    vcpus = definition.get("vcpus")
    if vcpus is not None and live["vcpus"] < vcpus <= live["max_vcpus"]:
        plan.add("set vCPUs of running VM %s to %d" % (vm.name, vcpus),
                 vm._call("setting vCPUs of", "setVcpusFlags", vcpus, flags))
    live_cdroms = by_target(live["cdroms"])
    for cdrom in definition.get("cdroms") or []:
        have = live_cdroms.get(cdrom["target"])
        if have is not None and have["bus"] == cdrom["bus"] and have["path"] != cdrom.get("path"):
            text = _xml.to_string(_codec_write.disk_element(cdrom, "cdrom"), pretty=False)
            what = "insert %s into" % cdrom["path"] if cdrom.get("path") else "eject the medium of"
            plan.add("%s CD-ROM %s of running VM %s" % (what, cdrom["target"], vm.name),
                     vm._call("changing the CD-ROM medium of", "updateDeviceFlags", text, flags))
    plan_live_filters(vm, current, definition, plan)
    plan_live_metadata(vm, live, definition, plan)
    plan_live_pins(vm, live, definition, plan)


def _same_nic(have, nic):
    return all(nic.get(k) is None or have.get(k) == nic.get(k) for k in ("type", "source", "mac"))


def plan_live_filters(vm, current, definition, plan):
    """A changed network filter of a running guest's interface: libvirt swaps it live (updateDeviceFlags
    with the interface as it runs and the new ``<filterref>``)."""
    live = current["_live"]
    nodes = None
    for index, nic in enumerate(definition.get("interfaces") or []):
        want = nic.get("filter")
        if want is None or index >= len(live["interfaces"]):
            continue
        have = live["interfaces"][index]
        if not _same_nic(have, nic) or (have.get("filter") or dict(name="", parameters=[])) == want:
            continue
        if nodes is None:
            nodes = _xml.parse(current["_live_xml"], "domain XML").findall("devices/interface")
        node = nodes[index]
        set_filterref(node, want)
        what = "set network filter %s on" % want["name"] if want["name"] else "remove the network filter of"
        plan.add("%s interface %s of running VM %s" % (what, have.get("mac") or index, vm.name),
                 vm._call("changing the network filter of", "updateDeviceFlags", _xml.to_string(node, pretty=False),
                          libvirt.VIR_DOMAIN_AFFECT_LIVE))


def plan_live_metadata(vm, live, definition, plan):
    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
    for key, kind in (("title", libvirt.VIR_DOMAIN_METADATA_TITLE),
                      ("description", libvirt.VIR_DOMAIN_METADATA_DESCRIPTION)):
        value = definition.get(key)
        if value is not None and value != live[key]:
            plan.add("set %s of running VM %s" % (key, vm.name),
                     vm._call("setting the %s of" % key, "setMetadata", kind, value or None, None, None, flags))
    tags = definition.get("tags")
    meta = definition.get("metadata")
    if (tags is not None and tags != live["tags"]) or (meta is not None and meta != live["metadata"]):
        node = _codec_write.metadata_element(tags if tags is not None else live["tags"],
                                             meta if meta is not None else live["metadata"], namespaced=False)
        text = _xml.to_string(node, pretty=False)
        plan.add("set tags and metadata of running VM %s" % vm.name,
                 vm._call("setting the metadata of", "setMetadata", libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                          text, "virtops", _xml.VIRTOPS_NS, flags))


def needs_reboot(vm, current, desired, handled=()):
    """(reboot, paths): whether the running guest differs from the definition in what cannot change
    live, and the paths that differ (none are named for a definition given as ``xml``).  ``handled``:
    the device paths (``disks.vdb``) this plan plugs in or out live (:mod:`.hotplug`)."""
    if desired.get("xml") is not None:
        if vm._xml_unchanged(current["_live"], desired):
            return False, []
        return not _xml.xml_subset(_xml.parse(desired["xml"]), _xml.parse(current["_live_xml"])), []
    definition = definition_model(predicted_definition(vm, current, desired))
    live = current["_live"]
    if (definition.get("cpu") or {}).get("mode") in ("host-model", None):
        definition.pop("cpu", None)  # the live XML shows the model host-model expanded to
    pending = compare_model(live, definition, live=True).paths
    blocking = []
    live_cdroms = by_target(live["cdroms"])
    for path in pending:
        parts = path.split(".")
        if ".".join(parts[:2]) in handled:
            continue
        if parts[0] in LIVE_KEYS:
            if parts[0] == "memory" and definition["memory"] > live["max_memory"]:
                blocking.append(path)
            elif parts[0] == "vcpus" and (definition["vcpus"] > live["max_vcpus"] or definition["vcpus"] < live["vcpus"]):
                blocking.append(path)
            continue
        if parts[0] == "cdroms" and len(parts) == 3 and parts[2] == "path" and parts[1] in live_cdroms:
            continue
        if parts[0] == "interfaces" and len(parts) >= 3 and parts[2] == "filter":
            continue  # plan_live_filters changes it
        blocking.append(path)
    return bool(blocking), blocking
