# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The changes the ``snapshot`` module makes, as plan actions: create, describe, revert (with the
revert marker in the VM's metadata) and delete snapshots of one VM, and let the storage pools see
overlay files that came or went.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot.view import REVERT_KEY, REVERT_NS, lookup_snapshot

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._host.facts import run_state


class SnapshotCalls:
    """Plan actions on the snapshots of the VM ``dom`` (called ``vm_name``); ``model`` is its model
    (its disks tell which pools to refresh)."""

    def __init__(self, conn, dom, vm_name, model):
        self.conn = conn
        self.dom = dom
        self.vm_name = vm_name
        self.model = model

    def create(self, name, text, flags, disk_only):
        def call():
            with libvirt_errors("creating snapshot %s of VM %s" % (name, self.vm_name)):
                self.dom.snapshotCreateXML(text, flags)
            if disk_only:
                self.refresh_pools()

        return call

    def delete_created(self, name):
        def call():
            snap = lookup_snapshot(self.dom, name)
            if snap is not None:
                with libvirt_errors("deleting snapshot %s of VM %s again" % (name, self.vm_name)):
                    snap.delete(0)

        return call

    def redefine_description(self, name, description):
        def call():
            with libvirt_errors("updating snapshot %s of VM %s" % (name, self.vm_name)):
                snap = self.dom.snapshotLookupByName(name, 0)
                is_current = snap.isCurrent(0)
                root = _xml.parse(snap.getXMLDesc(flag("VIR_DOMAIN_SNAPSHOT_XML_SECURE", 1)), "snapshot XML")
                node = root.find("description")
                if node is None:
                    node = _xml.element("description")
                    root.insert(1, node)
                node.text = description
                flags = flag("VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE", 1)
                if is_current:
                    flags |= flag("VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT", 2)
                self.dom.snapshotCreateXML(_xml.to_string(root), flags)

        return call

    def refresh_pools(self):
        """Let the pools that hold the VM's disks see overlays that came or went."""
        try:
            pools = self.conn.listAllStoragePools(flag("VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE", 2))
        except libvirt.libvirtError:
            return
        dirs = set(d["path"].rsplit("/", 1)[0] for d in self.model["disks"] if d.get("path"))
        for pool in pools:
            try:
                target = _xml.find_text(_xml.parse(pool.XMLDesc(0)), "target/path")
                if target in dirs:
                    pool.refresh(0)
            except libvirt.libvirtError:
                continue

    def revert(self, name, wanted, memory):
        def call():
            dom = self.dom
            flags = 0
            if wanted == "running":
                flags = flag("VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING", 1)
            elif wanted == "paused" or (wanted == "stopped" and memory):
                # a snapshot with memory is restored paused, then stopped: the guest never runs
                flags = flag("VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED", 2)
            with libvirt_errors("reverting VM %s to snapshot %s" % (self.vm_name, name)):
                snap = dom.snapshotLookupByName(name, 0)
                dom.revertToSnapshot(snap, flags)
                # make sure of the run state, whatever the driver did with the flags
                have = run_state(dom)
                if wanted == "stopped" and dom.isActive():
                    dom.destroy()
                elif wanted == "running" and have == "paused":
                    dom.resume()
                elif wanted == "running" and not dom.isActive():
                    dom.create()
                elif wanted == "paused" and have == "running":
                    dom.suspend()
                elif wanted == "paused" and not dom.isActive():
                    dom.createWithFlags(flag("VIR_DOMAIN_START_PAUSED", 1))
                self._mark_reverted(name)

        return call

    def _mark_reverted(self, name):
        node = _xml.element("snapshot", attrs={"reverted-to": name})
        flags = flag("VIR_DOMAIN_AFFECT_CONFIG", 2) if self.dom.isPersistent() else 0
        if self.dom.isActive():
            flags |= flag("VIR_DOMAIN_AFFECT_LIVE", 1)
        self.dom.setMetadata(flag("VIR_DOMAIN_METADATA_ELEMENT", 2), _xml.to_string(node, pretty=False),
                             REVERT_KEY, REVERT_NS, flags)

    def delete(self, names, external):
        """Delete the snapshots ``names`` one by one, in this order."""
        def call():
            for name in names:
                with libvirt_errors("deleting snapshot %s of VM %s" % (name, self.vm_name)):
                    self.dom.snapshotLookupByName(name, 0).delete(0)
            if external:
                self.refresh_pools()

        return call
