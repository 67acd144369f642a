# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Live hot-plug of disks, CD-ROM drives and NICs (``_domain/hotplug.py``), through reconcile().

libvirt 9.0's test driver has no attachDeviceFlags/detachDeviceFlags, so its running domain gets a
stand-in for the *live* half only (:class:`_LiveDom`): the persistent definition is the test
driver's own (defineXML, XMLDesc with VIR_DOMAIN_XML_INACTIVE), the live XML is kept here and
changed by attach/detach with VIR_DOMAIN_AFFECT_LIVE the way QEMU's driver changes it (a detach the
guest does not complete leaves the device: ``stuck``).  The lab target ``vm_hotplug`` runs the same
against QEMU with a booted guest.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import OperationTimeoutError, VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import hotplug as _hotplug
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.vm import VmResource
from ansible_collections.virtops.libvirt.plugins.modules.vm import ARGUMENT_SPEC

POOL = "default-pool"
PREFIX = "u-hp-"


class _LiveDom(object):
    """A running test-driver domain whose live XML is kept here (see the module doc)."""

    def __init__(self, dom, store):
        self._dom, self._store = dom, store

    def __getattr__(self, name):
        return getattr(self._dom, name)

    def _live(self):
        if "root" not in self._store:
            self._store["root"] = _xml.parse(self._dom.XMLDesc(0))
        return self._store["root"]

    def XMLDesc(self, flags=0):
        if flags & libvirt.VIR_DOMAIN_XML_INACTIVE or not self._dom.isActive():
            return self._dom.XMLDesc(flags)
        if "completes" in self._store:  # the guest answers the earlier request now
            self._remove(self._store.pop("completes"))
        return _xml.to_string(self._live())

    def _remove(self, node):
        devices = self._live().find("devices")
        for have in devices:
            if have.tag == node.tag and _key(have) == _key(node):
                devices.remove(have)
                return True
        return False

    def attachDeviceFlags(self, text, flags):
        assert flags == libvirt.VIR_DOMAIN_AFFECT_LIVE, flags
        self._store.setdefault("calls", []).append(("attach", text))
        if self._store.get("attach_fails") and "<interface" in text:
            raise libvirt.libvirtError("internal error: unable to execute QEMU command 'device_add': Bus 'pci.5' not found")
        node = _xml.parse(text)
        self._live().find("devices").append(node)

    def detachDeviceFlags(self, text, flags):
        assert flags == libvirt.VIR_DOMAIN_AFFECT_LIVE, flags
        self._store.setdefault("calls", []).append(("detach", text))
        if self._store.get("stuck") or self._dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
            return  # the guest does not answer the unplug request (a paused guest cannot)
        node = _xml.parse(text)
        if self._store.pop("pending", False):  # QEMU refuses a second request; the guest completes the first
            self._store["completes"] = node
            raise libvirt.libvirtError("internal error: unable to execute QEMU command 'device_del': Device net1 is "
                                       "already in the process of unplug")
        if not self._remove(node):
            raise libvirt.libvirtError("operation failed: device not found")


def _key(node):
    return (_xml.find_attr(node, "target", "dev"), _xml.find_attr(node, "mac", "address"))


def module_params(**given):
    result = ArgumentSpecValidator(ARGUMENT_SPEC).validate(given)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


@pytest.fixture
def vm(request, test_conn, undefine_for_test_driver):
    name = PREFIX + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:80]
    yield name
    for dom in test_conn.listAllDomains(0):
        if dom.name().startswith(name):
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
    for vol in test_conn.storagePoolLookupByName(POOL).listAllVolumes(0):
        if vol.name().startswith(name):
            vol.delete(0)


@pytest.fixture
def store():
    return {}


def run(conn, store, check=False, **given):
    ctx = Context(conn=conn, params=module_params(**given), check_mode=check, diff=True)
    resource = VmResource(ctx)
    plain = resource._lookup

    def lookup():
        dom = plain()
        return None if dom is None else _LiveDom(dom, store)

    resource._lookup = lookup
    return reconcile(resource, check_mode=check, want_diff=True)


def four(conn, store, **given):
    results = [run(conn, store, check=check, **given) for check in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False], [r["actions"] for r in results]
    assert results[0]["actions"] == results[1]["actions"]
    return results


def saved(conn, name):
    return _domain.model_from_xml(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def live(store):
    return _domain.model_from_xml(store["root"])


def disk(**extra):
    return dict(dict(size="16M", pool=POOL), **extra)


def nic():
    return dict(network="default")


def test_disk_and_nic_are_added_and_removed_live(test_conn, vm, store):
    run(test_conn, store, name=vm, disks=[disk()], interfaces=[nic()])
    added = four(test_conn, store, name=vm, disks=[disk(), disk()], interfaces=[nic(), nic()])
    mac = saved(test_conn, vm)["interfaces"][1]["mac"]
    assert added[1]["actions"] == [
        "create qcow2 volume %s-vdb.qcow2 in pool %s" % (vm, POOL),
        "redefine VM %s (disks, interfaces)" % vm,
        "attach disk vdb to running VM %s (live)" % vm,
        "attach interface 1 to running VM %s (live)" % vm,
    ]
    assert [(r["reboot_required"], r["pending_changes"]) for r in added] == [(False, [])] * 4
    assert [d["target"] for d in live(store)["disks"]] == ["vda", "vdb"]
    assert [n["mac"] for n in live(store)["interfaces"]] == [n["mac"] for n in saved(test_conn, vm)["interfaces"]]
    assert added[0]["diff"]["after"]["disks"][1]["target"] == "vdb"
    # the live disk is the saved definition's element: same path, same format
    assert live(store)["disks"][1]["path"] == saved(test_conn, vm)["disks"][1]["path"]

    removed = four(test_conn, store, name=vm, disks=[disk()], interfaces=[nic()])
    assert removed[1]["actions"] == [
        "detach disk vdb from running VM %s (live, waits up to 60 s for the guest)" % vm,
        "detach interface 1 (%s) from running VM %s (live, waits up to 60 s for the guest)" % (mac, vm),
        "redefine VM %s (disks, interfaces)" % vm,
    ]
    assert [d["target"] for d in live(store)["disks"]] == ["vda"] == [d["target"] for d in saved(test_conn, vm)["disks"]]
    assert len(live(store)["interfaces"]) == 1 == len(saved(test_conn, vm)["interfaces"])
    assert not removed[1]["reboot_required"]


def test_cdrom_drive_on_scsi_is_live_and_on_sata_waits_for_a_restart(test_conn, vm, store, tmp_path):
    iso = tmp_path / "a.iso"
    iso.write_bytes(b"iso")
    missing = dict(bus="scsi", path=str(tmp_path / "missing.iso"))
    run(test_conn, store, name=vm, cdroms=[dict(bus="scsi")])
    with pytest.raises(VirtopsError) as info:
        run(test_conn, store, name=vm, cdroms=[dict(bus="scsi"), missing])
    assert "cdroms[sdb]: %s does not exist on the hypervisor" % missing["path"] in info.value.msg
    assert "failed_step" not in info.value.details and "calls" not in store
    scsi = run(test_conn, store, name=vm, cdroms=[dict(bus="scsi"), dict(bus="scsi", path=str(iso))])
    assert scsi["actions"][-1] == "attach CD-ROM drive sdb to running VM %s (live)" % vm
    assert [c["path"] for c in live(store)["cdroms"]] == [None, str(iso)]
    sata = run(test_conn, store, name=vm, cdroms=[dict(bus="scsi"), dict(bus="scsi", path=str(iso)), dict(bus="sata")])
    assert sata["actions"] == ["redefine VM %s (cdroms)" % vm]
    assert (sata["reboot_required"], sata["pending_changes"]) == (True, ["cdroms.sdc"])


def test_a_detach_the_guest_does_not_complete_times_out_and_keeps_both_in_agreement(test_conn, vm, store, monkeypatch):
    run(test_conn, store, name=vm, disks=[disk(), disk()], interfaces=[nic()])
    run(test_conn, store, name=vm, disks=[disk(), disk()], interfaces=[nic(), nic()])  # NIC 1 plugged live
    clock = [0.0]
    monkeypatch.setattr(_hotplug.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(_hotplug.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    store["stuck"] = True
    with pytest.raises(OperationTimeoutError) as info:
        run(test_conn, store, name=vm, disks=[disk()], interfaces=[nic()], hotplug_timeout=5)
    assert info.value.msg == (
        "disk vdb of VM %s: the guest did not release it within 5 s (hotplug_timeout); the definition still has it, as "
        "the running VM does; QEMU keeps the unplug request: if the guest completes it later, run the task again to "
        "remove the device from the definition too" % vm)
    assert info.value.details["failed_step"].startswith("detach disk vdb")
    assert [d["target"] for d in saved(test_conn, vm)["disks"]] == ["vda", "vdb"] == [d["target"] for d in live(store)["disks"]]
    assert len(saved(test_conn, vm)["interfaces"]) == 2 == len(live(store)["interfaces"])
    # the guest completes the unplug later: the next run removes the disk from the definition only
    store["stuck"] = False
    store["root"].find("devices").remove([d for d in store["root"].findall("devices/disk") if _key(d)[0] == "vdb"][0])
    later = run(test_conn, store, name=vm, disks=[disk()], interfaces=[nic(), nic()])
    assert later["actions"] == ["redefine VM %s (disks)" % vm]
    assert not later["reboot_required"]


@pytest.fixture
def clock(monkeypatch):
    """hotplug's clock and sleep without real waiting: a detach that waits for nothing times out at once."""
    now = [0.0]
    monkeypatch.setattr(_hotplug.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(_hotplug.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    return now


def test_a_paused_vm_to_run_is_resumed_before_a_device_is_unplugged(test_conn, vm, store, clock):
    run(test_conn, store, name=vm, disks=[disk(), disk()], interfaces=[nic()])
    run(test_conn, store, name=vm, disks=[disk(), disk()], interfaces=[nic(), nic()])  # NIC 1 plugged live
    mac = saved(test_conn, vm)["interfaces"][1]["mac"]
    test_conn.lookupByName(vm).suspend()
    removed = four(test_conn, store, name=vm, disks=[disk()], interfaces=[nic()])
    assert removed[1]["actions"] == [
        "resume VM %s" % vm,
        "detach disk vdb from running VM %s (live, waits up to 60 s for the guest)" % vm,
        "detach interface 1 (%s) from running VM %s (live, waits up to 60 s for the guest)" % (mac, vm),
        "redefine VM %s (disks, interfaces)" % vm,
    ]
    assert test_conn.lookupByName(vm).state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert [d["target"] for d in live(store)["disks"]] == ["vda"] == [d["target"] for d in saved(test_conn, vm)["disks"]]
    assert len(live(store)["interfaces"]) == 1 == len(saved(test_conn, vm)["interfaces"])
    assert [r["vm"]["state"] for r in removed] == ["running"] * 4


def test_a_paused_vm_that_stays_paused_cannot_release_a_device(test_conn, vm, store, clock):
    run(test_conn, store, name=vm, disks=[disk()], interfaces=[nic()])
    run(test_conn, store, name=vm, disks=[disk()], interfaces=[nic(), nic()])
    test_conn.lookupByName(vm).suspend()
    with pytest.raises(OperationTimeoutError) as info:
        run(test_conn, store, name=vm, state="paused", disks=[disk()], interfaces=[nic()], hotplug_timeout=5)
    assert info.value.details["failed_step"].startswith("detach interface 1")
    assert test_conn.lookupByName(vm).state()[0] == libvirt.VIR_DOMAIN_PAUSED
    assert len(live(store)["interfaces"]) == 2 == len(saved(test_conn, vm)["interfaces"])


def test_a_failed_detach_after_the_resume_pauses_the_vm_again(test_conn, vm, store, clock):
    run(test_conn, store, name=vm, disks=[disk()], interfaces=[nic()])
    run(test_conn, store, name=vm, disks=[disk()], interfaces=[nic(), nic()])
    test_conn.lookupByName(vm).suspend()
    store["stuck"] = True  # the guest runs, but holds the NIC
    with pytest.raises(OperationTimeoutError) as info:
        run(test_conn, store, name=vm, disks=[disk()], interfaces=[nic()], hotplug_timeout=5)
    assert info.value.details["failed_step"].startswith("detach interface 1")
    assert test_conn.lookupByName(vm).state()[0] == libvirt.VIR_DOMAIN_PAUSED  # the resume undone
    assert len(live(store)["interfaces"]) == 2 == len(saved(test_conn, vm)["interfaces"])


def test_an_unplug_request_still_pending_is_waited_for(test_conn, vm, store, clock):
    """An earlier run timed out on a paused VM; this one resumes it, and QEMU refuses the second request
    while the guest answers the first: the step waits for that one instead of failing."""
    run(test_conn, store, name=vm, disks=[disk()], interfaces=[nic()])
    run(test_conn, store, name=vm, disks=[disk()], interfaces=[nic(), nic()])
    mac = saved(test_conn, vm)["interfaces"][1]["mac"]
    test_conn.lookupByName(vm).suspend()
    store["pending"] = True
    result = run(test_conn, store, name=vm, disks=[disk()], interfaces=[nic()])
    assert result["actions"][:2] == [
        "resume VM %s" % vm, "detach interface 1 (%s) from running VM %s (live, waits up to 60 s for the guest)" % (mac, vm)]
    assert "pending" not in store and "completes" not in store
    assert len(live(store)["interfaces"]) == 1 == len(saved(test_conn, vm)["interfaces"])


def test_a_later_failure_detaches_what_the_run_attached(test_conn, vm, store):
    run(test_conn, store, name=vm, disks=[disk()], interfaces=[nic()])
    before_saved = saved(test_conn, vm)
    # the disk attaches, the NIC does not: the disk is detached again, the definition restored, the volume deleted
    store["attach_fails"] = True
    with pytest.raises(VirtopsError) as info:
        run(test_conn, store, name=vm, disks=[disk(), disk()], interfaces=[nic(), nic()])
    assert info.value.details["failed_step"] == "attach interface 1 to running VM %s (live)" % vm
    assert "rollback_errors" not in info.value.details
    assert [d["target"] for d in live(store)["disks"]] == ["vda"]
    assert saved(test_conn, vm)["disks"] == before_saved["disks"]
    assert saved(test_conn, vm)["interfaces"] == before_saved["interfaces"]
    assert "%s-vdb.qcow2" % vm not in test_conn.storagePoolLookupByName(POOL).listVolumes()


def test_a_later_failure_attaches_again_what_the_run_detached(test_conn, vm, store):
    run(test_conn, store, name=vm, disks=[disk(), disk()])
    run(test_conn, store, name=vm, disks=[disk(), disk()], interfaces=[nic()])  # NIC 0 plugged live
    store["attach_fails"] = True
    with pytest.raises(VirtopsError) as info:
        # vdb leaves, a new NIC 1 cannot come: vdb is plugged back and the definition restored
        run(test_conn, store, name=vm, disks=[disk()], interfaces=[nic(), nic()])
    assert info.value.details["failed_step"] == "attach interface 1 to running VM %s (live)" % vm
    assert [d["target"] for d in live(store)["disks"]] == ["vda", "vdb"] == [d["target"] for d in saved(test_conn, vm)["disks"]]
    assert [c[0] for c in store["calls"]][-3:] == ["detach", "attach", "attach"]


def test_check_mode_predicts_and_changes_nothing(test_conn, vm, store):
    run(test_conn, store, name=vm, disks=[disk()])
    before = copy.deepcopy(saved(test_conn, vm))
    planned = run(test_conn, store, check=True, name=vm, disks=[disk(), disk()])
    assert planned["changed"] and not planned["reboot_required"]
    assert [d["target"] for d in planned["vm"]["disks"]] == ["vda", "vdb"]
    assert saved(test_conn, vm) == before
    assert "calls" not in store


def test_a_stopped_vm_is_redefined_only(test_conn, vm, store):
    run(test_conn, store, name=vm, state="stopped", disks=[disk()])
    result = run(test_conn, store, name=vm, state="stopped", disks=[disk(), disk()])
    assert result["actions"] == ["create qcow2 volume %s-vdb.qcow2 in pool %s" % (vm, POOL), "redefine VM %s (disks)" % vm]


Q35 = """<domain><devices>
<controller type='pci' index='0' model='pcie-root'/>
<controller type='pci' index='1' model='pcie-root-port'><address type='pci' bus='0x00' slot='0x01'/></controller>
<controller type='pci' index='2' model='pcie-root-port'><address type='pci' bus='0x00' slot='0x01' function='0x1'/></controller>
<controller type='pci' index='3' model='pcie-root-port'><address type='pci' bus='0x00' slot='0x01' function='0x2'/></controller>
<interface type='network'><address type='pci' bus='0x01' slot='0x00'/></interface>
<disk type='file' device='disk'><address type='pci' bus='0x02' slot='0x00'/></disk>
</devices></domain>"""


@pytest.mark.parametrize("text, ports", [
    (Q35, 1),
    (Q35.replace("bus='0x02'", "bus='0x03'"), 1),
    (Q35.replace("<controller type='pci' index='3'", "<controller type='pci' index='9'"), 1),
    (Q35.replace("bus='0x02' slot='0x00'/></disk>", "bus='0x03' slot='0x00'/></disk><disk><address type='pci' bus='0x02'/></disk>"), 0),
    ("<domain><devices><controller type='pci' index='0' model='pci-root'/></devices></domain>", 1000),
])
def test_free_pcie_root_ports(text, ports):
    assert _hotplug.pci_ports(_xml.parse(text)) == ports


def test_no_free_root_port_means_a_restart(test_conn, vm, store):
    run(test_conn, store, name=vm, disks=[disk()])
    dom = _LiveDom(test_conn.lookupByName(vm), store)
    root = dom._live()
    devices = root.find("devices")
    devices.append(_xml.parse("<controller type='pci' index='0' model='pcie-root'/>"))
    result = run(test_conn, store, name=vm, disks=[disk(), disk()], interfaces=[nic()])
    assert result["actions"][-1] == "redefine VM %s (disks, interfaces)" % vm
    assert [w for w in result["warnings"] if "shrunk" not in w] == [
        "disk vdb of VM %s is added at its next start: the running VM has no free PCIe root port for it" % vm,
        "interface 0 of VM %s is added at its next start: the running VM has no free PCIe root port for it" % vm]
    assert (result["reboot_required"], result["pending_changes"]) == (True, ["disks.vdb", "interfaces.0"])
