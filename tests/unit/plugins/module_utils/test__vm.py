# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The vm resource, run through reconcile() against libvirt's test driver (test:///default).

Parameters are built the way AnsibleModule builds them, from the vm module's ARGUMENT_SPEC.

What the test driver cannot do, and so what is tested here only as far as the plan (check mode)
or not at all (the lab integration target covers it): it has no storage pool ``default`` (its
pool is ``default-pool``); its ``blockInfo`` says every disk is 1099506450432 bytes; it cannot
start a VM paused (createWithFlags with VIR_DOMAIN_START_PAUSED), change CD-ROM media
(updateDeviceFlags), grow a disk of a running VM (blockResize) or undefine with the NVRAM,
checkpoint and TPM flags (the ``vm`` fixture hides those three flags, as an older libvirt-python would); its
ACPI shutdown is immediate, so shutdown timeouts cannot happen; its host has 16 CPUs, 3 GiB of
memory and no KVM (new VMs get virt_type qemu); it does not expand host-model CPUs or canonicalise
machine types as qemu does.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import disks as _disks
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import normalize as _normalize
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OperationTimeoutError,
    VirtopsError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.power import PowerPlan
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.vm import MASK, VmResource, run_state
from ansible_collections.virtops.libvirt.plugins.modules.vm import ARGUMENT_SPEC

POOL = "default-pool"
PREFIX = "u-vm-"
#: what the test driver's blockInfo says about every disk
TEST_DRIVER_DISK_SIZE = 1099506450432


def module_params(**given):
    """Parameters as AnsibleModule hands them to the module: every option, defaults filled in, types converted."""
    result = ArgumentSpecValidator(ARGUMENT_SPEC).validate(given)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def run(conn, check=False, diff=True, **given):
    """One module run; ``module_warnings`` are the warnings sent through the context (module.warn)."""
    ctx = Context(conn=conn, params=module_params(**given), check_mode=check, diff=diff)
    result = reconcile(VmResource(ctx), check_mode=check, want_diff=diff)
    result["module_warnings"] = ctx.warnings
    return result


def four(conn, **given):
    """check, apply, check, apply: the two first change, the two last do not."""
    results = [run(conn, check=check, **given) for check in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False], [r["actions"] for r in results]
    assert results[0]["actions"] == results[1]["actions"]
    return results


def saved(conn, name):
    return _domain.model_from_xml(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))


def live(conn, name):
    return _domain.model_from_xml(conn.lookupByName(name).XMLDesc(0))


def state(conn, name):
    return run_state(conn.lookupByName(name))


def exists(conn, name):
    return name in [d.name() for d in conn.listAllDomains(0)]


def volumes(conn):
    """The volumes of these tests in the test driver's pool."""
    return sorted(name for name in conn.storagePoolLookupByName(POOL).listVolumes() if name.startswith(PREFIX))


@pytest.fixture
def vm(request, test_conn, undefine_for_test_driver):
    """A VM name of this test; every domain and volume whose name starts with it is removed afterwards."""
    name = PREFIX + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:80]
    yield name
    for dom in test_conn.listAllDomains(0):
        if dom.name().startswith(name):
            if dom.isActive():
                dom.destroy()
            if dom.isPersistent():
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
    for vol in test_conn.storagePoolLookupByName(POOL).listAllVolumes(0):
        if vol.name().startswith(name):
            vol.delete(0)


def disk(**extra):
    return dict(dict(size="16M", pool=POOL), **extra)


#: a definition for the ``xml`` option; ``{memory}``/``{unit}``, and ``{extra}`` after <memory>
XML = ("<domain type='test'><memory unit='{unit}'>{memory}</memory>{extra}<vcpu>1</vcpu><os><type>hvm</type></os>"
       "<devices></devices></domain>")
DISK_XML = "<disk type='file' device='disk'><source file='/srv/u-vm-shared.img'/><target dev='{target}' bus='virtio'/></disk>"
NIC_XML = "<interface type='network'><mac address='{mac}'/><source network='default'/></interface>"


def rows(table):
    """pytest parameters from ``(id, value...)`` rows; pytest.param rows pass as they are."""
    return [row if hasattr(row, "marks") else pytest.param(*row[1:], id=row[0]) for row in table]


# ----------------------------------------------------------------------------------- create ---

def test_create_check_apply_check_apply(test_conn, vm):
    given = dict(name=vm, memory="512", disks=[disk()], interfaces=[dict(network="default")],
                 graphics=dict(password="s3cret"), tags=["web"])
    actions = ["create qcow2 volume %s-vda.qcow2 in pool default-pool" % vm, "define VM %s" % vm, "start VM %s" % vm]
    first = run(test_conn, check=True, **given)
    assert (first["changed"], first["actions"], first["reboot_required"]) == (True, actions, False)
    assert (first["vm"]["state"], first["vm"]["uuid"], first["vm"]["memory"]) == ("running", None, 512)
    assert not exists(test_conn, vm) and volumes(test_conn) == []
    results = [first] + [run(test_conn, check=check, **given) for check in (False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[1]["actions"] == actions
    assert state(test_conn, vm) == "running" and volumes(test_conn) == ["%s-vda.qcow2" % vm]
    dom = test_conn.lookupByName(vm)
    assert results[3]["vm"]["uuid"] == dom.UUIDString() and results[3]["vm"]["tags"] == ["web"]
    mac = results[1]["vm"]["interfaces"][0]["mac"]
    assert mac.startswith("52:54:00:") and live(test_conn, vm)["interfaces"][0]["mac"] == mac
    assert "s3cret" not in repr(results) and "password" not in results[3]["vm"]["graphics"]


def test_new_vm_with_state_present_is_left_stopped(test_conn, vm):
    results = four(test_conn, name=vm, state="present")
    assert results[1]["actions"] == ["define VM %s" % vm] and state(test_conn, vm) == "stopped"
    assert results[0]["vm"]["state"] == "stopped"


EVERYTHING = dict(
    title="Web server", description="first line\nsecond line", vcpus=2, max_vcpus=4, memory="1GiB", max_memory="2048",
    cpu=dict(mode="host-passthrough", sockets=1, cores=2, threads=2), machine="q35", virt_type="qemu",
    firmware="uefi", secure_boot=True,
    disks=[disk(cache="none", discard="unmap", serial="root-1", boot_order=1),
           dict(path="/dev/vg0/data", format="raw", bus="scsi"),
           dict(path="/guest/diskimage1", format="raw", bus="sata", readonly=True)],
    cdroms=[{}, dict(path="/iso/install.iso", boot_order=2)],
    interfaces=[dict(network="default", mac="52:54:00:AA:BB:01", boot_order=3), dict(bridge="eth1", model="e1000e"),
                dict(direct="eth1", mode="vepa")],
    graphics=dict(type="spice", listen="0.0.0.0", port=5901, password="s3cret"),
    serial=dict(type="file", path="/var/log/libvirt/web.log"),
    guest_agent=True, rng=True, watchdog=dict(action="poweroff"),
    tags=["web", "prod"], metadata=dict(owner="ops", tier=3), autostart=True,
)


def test_everything_twice_is_unchanged(test_conn, vm):
    results = four(test_conn, name=vm, state="stopped", **EVERYTHING)
    assert results[1]["actions"] == ["create qcow2 volume %s-vda.qcow2 in pool default-pool" % vm, "define VM %s" % vm,
                                     "set autostart of VM %s to true" % vm]
    got = saved(test_conn, vm)
    assert (got["firmware"], got["secure_boot"], got["graphics"]["password"], got["tags"]) == ("uefi", True, "s3cret", ["prod", "web"])
    assert [d["target"] for d in got["disks"]] == ["vda", "sda", "sdb"] and test_conn.lookupByName(vm).autostart()


def test_diff_shows_only_what_is_specified_and_masks_passwords(test_conn, vm):
    created = run(test_conn, name=vm, state="stopped", memory="512", graphics=dict(type="vnc", password="old-pw"))
    assert created["diff"]["before"] == {"state": "absent"}
    assert created["diff"]["after"]["graphics"] == dict(type="vnc", password=MASK)
    given = dict(name=vm, state="stopped", memory="768", title="Web", graphics=dict(type="vnc", password="new-pw"))
    change = run(test_conn, check=True, **given)
    # max_memory is not given, but the run raises it with memory: the diff says so
    assert change["diff"]["before"] == dict(state="stopped", memory=512, max_memory=512, title="",
                                            graphics=dict(type="vnc", password=MASK))
    assert change["diff"]["after"] == dict(state="stopped", memory=768, max_memory=768, title="Web",
                                           graphics=dict(type="vnc", password=MASK))
    assert change["actions"] == ["redefine VM %s (graphics, memory, title)" % vm]
    run(test_conn, **given)
    same = run(test_conn, **given)
    assert not same["changed"] and same["diff"]["before"] == same["diff"]["after"]
    assert saved(test_conn, vm)["graphics"]["password"] == "new-pw"
    assert not any(secret in repr([created, change, same]) for secret in ("old-pw", "new-pw"))


EMPTY_REMOVES = [
    ("password", dict(graphics=dict(type="vnc", password="pw")), dict(graphics=dict(type="vnc", password="")),
     lambda got: got["graphics"]["password"]),
    ("kernel", dict(kernel="/boot/vmlinuz", cmdline="quiet"), dict(kernel="", cmdline=""), lambda got: got["kernel"] + got["cmdline"]),
    ("title", dict(title="T", description="D"), dict(title="", description=""), lambda got: got["title"] + got["description"]),
]


@pytest.mark.parametrize("before, after, value", rows(EMPTY_REMOVES))
def test_empty_string_removes_once(test_conn, vm, before, after, value):
    run(test_conn, name=vm, state="stopped", **before)
    four(test_conn, name=vm, state="stopped", **after)
    assert value(saved(test_conn, vm)) == ""


# ------------------------------------------------------------------------------ run states ---

TRANSITIONS = [
    # states the VM is brought into first, the state asked for, force, actions, state after
    ("running-to-paused", ["running"], "paused", False, ["pause VM {vm}"], "paused"),
    ("paused-to-running", ["running", "paused"], "running", False, ["resume VM {vm}"], "running"),
    ("running-to-stopped", ["running"], "stopped", False, ["shut down VM {vm} (ACPI, up to 120 s)"], "stopped"),
    ("running-to-stopped-force", ["running"], "stopped", True, ["shut down VM {vm} (ACPI, up to 120 s, then power off)"],
     "stopped"),
    ("paused-to-stopped", ["running", "paused"], "stopped", False,
     ["resume VM {vm} to shut it down", "shut down VM {vm} (ACPI, up to 120 s)"], "stopped"),
    ("paused-to-stopped-force", ["running", "paused"], "stopped", True, ["power off paused VM {vm}"], "stopped"),
    ("stopped-to-running", ["stopped"], "running", False, ["start VM {vm}"], "running"),
    ("stopped-stays-present", ["stopped"], "present", False, [], "stopped"),
    ("running-stays-present", ["running"], "present", False, [], "running"),
    ("paused-stays-present", ["running", "paused"], "present", False, [], "paused"),
]


@pytest.mark.parametrize("setup, wanted, force, actions, after", rows(TRANSITIONS))
def test_state_transitions(test_conn, vm, setup, wanted, force, actions, after):
    for step in setup:
        run(test_conn, name=vm, state=step)
    expected = [a.format(vm=vm) for a in actions]
    if expected:
        results = four(test_conn, name=vm, state=wanted, force=force)
        assert results[1]["actions"] == expected
    else:
        results = [run(test_conn, check=check, name=vm, state=wanted) for check in (True, False)]
        assert [r["changed"] for r in results] == [False, False]
    assert state(test_conn, vm) == after and results[0]["vm"]["state"] == after


@pytest.mark.parametrize("setup, actions", [
    (["stopped"], ["start VM {vm}"]),
    (["running"], ["shut down VM {vm} (ACPI, up to 120 s)", "start VM {vm}"]),
    (["running", "paused"], ["resume VM {vm} to shut it down", "shut down VM {vm} (ACPI, up to 120 s)", "start VM {vm}"]),
], ids=["from-stopped", "from-running", "from-paused"])
def test_restarted_always_changes(test_conn, vm, setup, actions):
    for step in setup:
        run(test_conn, name=vm, state=step)
    uuid = test_conn.lookupByName(vm).UUIDString()
    results = [run(test_conn, check=check, name=vm, state="restarted") for check in (True, False)]
    assert [(r["changed"], r["actions"]) for r in results] == [(True, [a.format(vm=vm) for a in actions])] * 2
    again = run(test_conn, name=vm, state="restarted")
    assert again["changed"] and state(test_conn, vm) == "running" and test_conn.lookupByName(vm).UUIDString() == uuid


def test_stopped_to_paused_is_planned_as_a_paused_start(test_conn, vm):
    run(test_conn, name=vm, state="stopped")
    result = run(test_conn, check=True, name=vm, state="paused")
    assert result["actions"] == ["start VM %s paused" % vm] and result["vm"]["state"] == "paused"
    # applying it needs createWithFlags(VIR_DOMAIN_START_PAUSED), which the test driver refuses


# ----------------------------------------------------------------- changes to a running VM ---

BASE = dict(memory="512", max_memory="1024", vcpus=1, max_vcpus=2)

LIVE_CHANGES = [
    # what changes, actions ({vm}: the name), reboot_required, pending_changes
    ("memory-within-max", dict(memory="768"),
     ["redefine VM {vm} (memory)", "set memory of running VM {vm} to 768 MiB"], False, []),
    ("memory-down", dict(memory="256"), ["redefine VM {vm} (memory)", "set memory of running VM {vm} to 256 MiB"], False, []),
    ("memory-above-max", dict(memory="1536", max_memory="2048"), ["redefine VM {vm} (max_memory, memory)"], True,
     ["memory", "max_memory"]),
    ("vcpus-within-max", dict(vcpus=2), ["redefine VM {vm} (vcpus)", "set vCPUs of running VM {vm} to 2"], False, []),
    ("vcpus-above-max", dict(vcpus=3, max_vcpus=4), ["redefine VM {vm} (max_vcpus, vcpus)"], True, ["vcpus", "max_vcpus"]),
    ("title", dict(title="Web"), ["redefine VM {vm} (title)", "set title of running VM {vm}"], False, []),
    ("tags", dict(tags=["b", "a"]), ["redefine VM {vm} (tags)", "set tags and metadata of running VM {vm}"], False, []),
    ("metadata", dict(metadata=dict(owner="ops")), ["redefine VM {vm} (metadata)", "set tags and metadata of running VM {vm}"],
     False, []),
    ("machine", dict(machine="pc"), ["redefine VM {vm} (machine)"], True, ["machine"]),
    ("interface-model", dict(interfaces=[dict(network="default", model="e1000")]), ["redefine VM {vm} (interfaces)"], True,
     ["interfaces.0.model"]),
]


@pytest.mark.parametrize("change, actions, reboot, pending", rows(LIVE_CHANGES))
def test_change_of_a_running_vm(test_conn, vm, change, actions, reboot, pending):
    run(test_conn, name=vm, interfaces=[dict(network="default")], **BASE)
    given = dict(BASE, name=vm, **change)
    results = four(test_conn, **given)
    assert results[1]["actions"] == [a.format(vm=vm) for a in actions]
    assert [(r["reboot_required"], r["pending_changes"]) for r in results] == [(reboot, pending)] * 4
    expected = _normalize.normalize(module_params(**given))
    for key in change:
        if key != "interfaces":
            assert saved(test_conn, vm)[key] == expected[key], key
            assert (live(test_conn, vm)[key] == expected[key]) != reboot, key


def test_apply_restart_clears_reboot_required(test_conn, vm):
    run(test_conn, name=vm, **BASE)
    given = dict(name=vm, memory="512", max_memory="1024", vcpus=3, max_vcpus=3)
    assert run(test_conn, **given)["reboot_required"]
    results = four(test_conn, apply="restart", **given)
    assert results[1]["actions"] == ["shut down VM %s (ACPI, up to 120 s)" % vm, "start VM %s" % vm]
    assert [r["reboot_required"] for r in results] == [False] * 4
    assert (live(test_conn, vm)["vcpus"], live(test_conn, vm)["max_vcpus"]) == (3, 3)


RESTARTS = [
    # states the VM is brought into first, the state asked for, actions, state after
    ("present", ["running"], "present", ["redefine VM {vm} (machine)", "shut down VM {vm} (ACPI, up to 120 s)", "start VM {vm}"],
     "running"),
    ("paused", ["running", "paused"], "paused", ["redefine VM {vm} (machine)", "resume VM {vm} to shut it down",
                                                 "shut down VM {vm} (ACPI, up to 120 s)", "start VM {vm}", "pause VM {vm}"],
     "paused"),
    # resumed first (before any live change), so it is shut down as a running VM: no second resume
    ("running-from-paused", ["running", "paused"], "running", ["resume VM {vm}", "redefine VM {vm} (machine)",
                                                               "shut down VM {vm} (ACPI, up to 120 s)", "start VM {vm}"],
     "running"),
]


@pytest.mark.parametrize("setup, wanted, actions, after", rows(RESTARTS))
def test_apply_restart_keeps_the_run_state(test_conn, vm, setup, wanted, actions, after):
    for step in setup:
        run(test_conn, name=vm, state=step)
    results = four(test_conn, name=vm, state=wanted, apply="restart", machine="pc")
    assert results[1]["actions"] == [a.format(vm=vm) for a in actions]
    assert (state(test_conn, vm), live(test_conn, vm)["machine"]) == (after, "pc")
    assert [r["reboot_required"] for r in results] == [False] * 4


GROWTH = [
    # given on a running VM of 512 MiB / 1 vCPU (max the same), what the definition gets, what waits for the reboot
    ("memory-and-vcpus", dict(memory="768", vcpus=2), dict(memory=768, max_memory=768, vcpus=2, max_vcpus=2),
     ["vcpus", "max_vcpus", "memory", "max_memory"]),
    ("memory", dict(memory="768"), dict(memory=768, max_memory=768, vcpus=1, max_vcpus=1), ["memory", "max_memory"]),
    ("vcpus", dict(vcpus=2), dict(memory=512, max_memory=512, vcpus=2, max_vcpus=2), ["vcpus", "max_vcpus"]),
    ("max-only", dict(max_memory="1024", max_vcpus=2), dict(memory=512, max_memory=1024, vcpus=1, max_vcpus=2),
     ["max_vcpus", "max_memory"]),
]


@pytest.mark.parametrize("given, after, pending", rows(GROWTH))
def test_growth_above_max_tells_one_story(test_conn, vm, given, after, pending):
    """Prediction (check mode), diff, result and pending_changes agree, on the run that changes and after."""
    run(test_conn, name=vm, memory="512", max_memory="512", vcpus=1, max_vcpus=1)
    results = four(test_conn, name=vm, **given)
    keys = sorted(after)
    for result in results:
        assert dict((k, result["vm"][k]) for k in keys) == after
        assert (result["reboot_required"], result["pending_changes"]) == (True, pending)
    assert dict((k, saved(test_conn, vm)[k]) for k in keys) == after
    assert dict((k, live(test_conn, vm)[k]) for k in keys) == dict(memory=512, max_memory=512, vcpus=1, max_vcpus=1)
    check, apply = results[0]["diff"], results[1]["diff"]
    assert check == apply
    initial = dict(memory=512, max_memory=512, vcpus=1, max_vcpus=1)
    changed = dict((k, v) for k, v in after.items() if v != initial[k])
    assert check["after"] == dict(changed, state="running")
    assert check["before"] == dict(dict((k, initial[k]) for k in changed), state="running")


class _StartGuard(object):
    """A test-driver domain whose starts fail while its definition boots ``broken`` (as QEMU fails on a
    kernel it cannot load, after libvirt accepted the definition)."""

    def __init__(self, dom, broken):
        self._dom, self._broken = dom, broken

    def __getattr__(self, name):
        return getattr(self._dom, name)

    def _check(self):
        if self._broken in self._dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE):
            raise libvirt.libvirtError("internal error: process exited while connecting to monitor: qemu: invalid kernel header")

    def create(self):
        self._check()
        return self._dom.create()

    def createWithFlags(self, flags):
        self._check()
        return self._dom.createWithFlags(flags)


def run_failing_start(conn, broken, check=False, **given):
    ctx = Context(conn=conn, params=module_params(**given), check_mode=check, diff=True)
    resource = VmResource(ctx)
    plain = resource._lookup

    def guarded():
        dom = plain()
        return None if dom is None else _StartGuard(dom, broken)

    resource._lookup = guarded
    return reconcile(resource, check_mode=check, want_diff=True)


RESTART_FAILURES = [
    # states first, what is asked, the message, the state after
    ("apply-restart", ["running"], dict(apply="restart"),
     "VM {vm} did not start with its new definition (starting VM '{vm}': internal error: process exited while connecting "
     "to monitor: qemu: invalid kernel header); its previous definition is restored and the VM runs again (the guest was "
     "restarted): nothing of the change was applied", "running"),
    ("restarted", ["running"], dict(state="restarted"),
     "VM {vm} did not start with its new definition (starting VM '{vm}': internal error: process exited while connecting "
     "to monitor: qemu: invalid kernel header); its previous definition is restored and the VM runs again", "running"),
    # the test driver cannot start a VM paused, so the restore of a paused VM fails too: the message says that
    ("paused", ["running", "paused"], dict(state="paused", apply="restart"),
     "VM {vm} did not start with its new definition (starting VM '{vm}': internal error: process exited while connecting "
     "to monitor: qemu: invalid kernel header); its previous definition is restored but did not start either", "stopped"),
]


@pytest.mark.parametrize("setup, given, message, after", rows(RESTART_FAILURES))
def test_restart_that_cannot_start_brings_the_previous_definition_back(test_conn, vm, tmp_path, setup, given, message, after):
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"not a kernel: it exists, so the checks before the restart pass")
    for step in setup:
        run(test_conn, name=vm, memory="512", state=step)
    old = saved(test_conn, vm)
    asked = dict(given, name=vm, memory="512", kernel=str(kernel))
    planned = run_failing_start(test_conn, str(kernel), check=True, **asked)
    assert planned["changed"] and "start VM %s" % vm in planned["actions"]
    with pytest.raises(VirtopsError) as info:
        run_failing_start(test_conn, str(kernel), **asked)
    assert info.value.msg.startswith(message.format(vm=vm)), info.value.msg
    assert (info.value.details["changed"], info.value.details["failed_step"]) == (True, "start VM %s" % vm)
    assert "rollback_errors" not in info.value.details
    assert state(test_conn, vm) == after and saved(test_conn, vm) == old and saved(test_conn, vm)["kernel"] == ""


def test_restart_without_a_new_definition_that_cannot_start_says_so(test_conn, vm, tmp_path):
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"not a kernel")
    run(test_conn, name=vm, memory="512", kernel=str(kernel))
    with pytest.raises(VirtopsError) as info:
        run_failing_start(test_conn, str(kernel), name=vm, state="restarted")
    assert info.value.msg.startswith("VM %s was shut down to restart and did not start again (starting VM" % vm)
    assert info.value.msg.endswith("; it is stopped") and info.value.details["changed"] is True
    assert state(test_conn, vm) == "stopped"


CHECKED_BEFORE_RESTART = [
    ("kernel", dict(kernel="/nonexistent/vmlinuz"), "kernel: /nonexistent/vmlinuz does not exist on the hypervisor"),
    ("initrd", dict(kernel="{tmp}/vmlinuz", initrd="/nonexistent/initrd.img"), "initrd: /nonexistent/initrd.img does not"),
    ("cdrom", dict(cdroms=[dict(path="/nonexistent/install.iso")]), "cdroms[sda]: /nonexistent/install.iso does not exist"),
    ("disk", dict(disks=[dict(path="/nonexistent/data.img", format="raw")]), "disks[vda]: /nonexistent/data.img does not"),
    ("pci-device", dict(hostdevs=["01:00.0"]), "hostdevs[0]: the host has no PCI device 0000:01:00.0"),
]


@pytest.mark.parametrize("given, message", rows(CHECKED_BEFORE_RESTART))
def test_a_restart_is_checked_before_the_vm_is_stopped(test_conn, vm, tmp_path, given, message):
    (tmp_path / "vmlinuz").write_bytes(b"kernel")
    run(test_conn, name=vm, memory="512")
    old, uuid = saved(test_conn, vm), test_conn.lookupByName(vm).UUIDString()
    given = dict((k, v.format(tmp=tmp_path) if isinstance(v, str) else v) for k, v in given.items())
    with pytest.raises(VirtopsError) as info:
        run(test_conn, name=vm, memory="512", apply="restart", **given)
    assert message in info.value.msg and "failed_step" not in info.value.details
    assert state(test_conn, vm) == "running" and saved(test_conn, vm) == old
    assert test_conn.lookupByName(vm).UUIDString() == uuid


def test_stopping_a_vm_clears_reboot_required(test_conn, vm):
    run(test_conn, name=vm)
    assert run(test_conn, name=vm, machine="pc")["reboot_required"]
    result = run(test_conn, name=vm, machine="pc", state="stopped")
    assert (result["reboot_required"], result["pending_changes"]) == (False, [])


def test_cdrom_media_change_is_planned_live_and_rolled_back(test_conn, vm):
    run(test_conn, name=vm, cdroms=[{}])
    given = dict(name=vm, cdroms=[dict(path="/iso/install.iso")])
    planned = run(test_conn, check=True, **given)
    assert planned["actions"] == ["redefine VM %s (cdroms)" % vm, "insert /iso/install.iso into CD-ROM sda of running VM %s" % vm]
    assert not planned["reboot_required"]
    # the test driver has no updateDeviceFlags: the live step fails and the new definition is undone
    with pytest.raises(InvalidInputError) as info:
        run(test_conn, **given)
    assert info.value.details["failed_step"] == planned["actions"][1]
    assert saved(test_conn, vm)["cdroms"][0]["path"] is None


def test_disk_growth_and_shrink_warning(test_conn, vm):
    run(test_conn, name=vm, state="stopped", disks=[disk()])
    grow = run(test_conn, check=True, name=vm, state="stopped", disks=[disk(size="2T")])
    assert grow["actions"] == ["grow disk vda of VM %s from %d to 2199023255552 bytes" % (vm, TEST_DRIVER_DISK_SIZE)]
    shrink = run(test_conn, name=vm, state="stopped", disks=[disk(size="1G")])
    assert not shrink["changed"]
    assert shrink["warnings"] == ["disk vda is %d bytes, more than size 1073741824: disks are never shrunk" % TEST_DRIVER_DISK_SIZE]


def test_disks_left_out_are_detached_and_kept(test_conn, vm):
    run(test_conn, name=vm, state="stopped", disks=[disk(), disk()])
    results = four(test_conn, name=vm, state="stopped", disks=[disk()])
    assert results[1]["actions"] == ["redefine VM %s (disks)" % vm]
    assert [d["target"] for d in saved(test_conn, vm)["disks"]] == ["vda"]
    assert volumes(test_conn) == ["%s-vda.qcow2" % vm, "%s-vdb.qcow2" % vm]


# -------------------------------------------------------------- found by these tests, fixed ---

def test_reboot_required_stays_true_on_a_later_run(test_conn, vm):
    run(test_conn, name=vm, **BASE)
    run(test_conn, name=vm, machine="pc")
    later = run(test_conn, name=vm)
    assert (later["reboot_required"], later["pending_changes"]) == (True, ["machine"])


def test_disks_on_two_buses_twice_is_unchanged(test_conn, vm):
    four(test_conn, name=vm, state="stopped", disks=[disk(), disk(bus="sata"), disk()])


def test_graphics_password_alone_keeps_the_console_type(test_conn, vm):
    run(test_conn, name=vm, state="stopped", graphics=dict(type="spice", password="old"))
    run(test_conn, name=vm, state="stopped", graphics=dict(password="new"))
    assert saved(test_conn, vm)["graphics"]["type"] == "spice"


def test_diff_never_shows_a_disk_shrinking(test_conn, vm):
    run(test_conn, name=vm, state="stopped", disks=[disk()])
    result = run(test_conn, check=True, name=vm, state="stopped", disks=[disk()], memory="512")
    assert result["diff"]["after"]["disks"][0]["size"] == TEST_DRIVER_DISK_SIZE


def test_disks_name_their_pool_and_volume(test_conn, vm):
    """``pool``/``volume`` of disks and CD-ROMs: filled from libvirt, for disks given by path too, in the
    check-mode prediction as in the result."""
    for name in ("data.img", "media.iso"):
        test_conn.storagePoolLookupByName(POOL).createXML(
            "<volume><name>%s-%s</name><capacity>1048576</capacity></volume>" % (vm, name), 0)
    given = dict(name=vm, state="stopped", disks=[disk(), dict(path="/default-pool/%s-data.img" % vm, format="raw"),
                                                  dict(path="/srv/%s-outside.img" % vm, format="raw")],
                 cdroms=[dict(path="/default-pool/%s-media.iso" % vm), {}])
    results = four(test_conn, **given)
    for result in results:
        assert [(d["pool"], d["volume"]) for d in result["vm"]["disks"]] == [
            (POOL, "%s-vda.qcow2" % vm), (POOL, "%s-data.img" % vm), (None, None)]
        assert [(d["pool"], d["volume"]) for d in result["vm"]["cdroms"]] == [(POOL, "%s-media.iso" % vm), (None, None)]


# ---------------------------------------------------------------------------------- errors ---

ERRORS = [
    ("unknown-pool", dict(disks=[disk(pool="no-such-pool")]), NotFoundError, "disks[vda]: storage pool 'no-such-pool' does not exist"),
    ("no-default-pool", dict(disks=[dict(size="1G")]), NotFoundError, "disks[vda]: storage pool 'default' does not exist"),
    ("unknown-volume", dict(disks=[dict(pool=POOL, volume="nope.qcow2")]), NotFoundError,
     "disks[vda]: volume 'nope.qcow2' does not exist in pool 'default-pool'; give size (or backing_volume) to create it"),
    ("unknown-backing", dict(disks=[disk(backing_volume="base.qcow2")]), NotFoundError,
     "disks[vda]: backing_volume 'base.qcow2' does not exist in pool 'default-pool'"),
    ("unknown-cdrom-volume", dict(cdroms=[dict(pool=POOL, volume="x.iso")]), NotFoundError,
     "cdroms[sda]: volume 'x.iso' does not exist in pool 'default-pool'"),
    ("unknown-network", dict(interfaces=[dict(network="no-such-net")]), NotFoundError,
     "interfaces[0]: libvirt network 'no-such-net' does not exist"),
    ("unknown-bridge", dict(interfaces=[dict(network="default"), dict(bridge="nobr0")]), NotFoundError,
     "interfaces[1]: the host has no interface 'nobr0'"),
    ("disk-of-another-vm", dict(disks=[dict(path="/guest/diskimage1", format="raw")]), ConflictError,
     "disks[vda]: /guest/diskimage1 is already a disk of VM 'test'; a writable disk cannot be shared (give readonly: true)"),
    ("path-without-format", dict(disks=[dict(path="/srv/images/a.img")]), InvalidInputError,
     "disk /srv/images/a.img is not a volume of any libvirt storage pool: give its format (qcow2 or raw)"),
    ("max-memory-above-host", dict(max_memory="8G"), InvalidInputError,
     "max_memory: 8192 MiB is more than the host's memory (3072 MiB)"),
    ("memory-above-host", dict(memory="4G"), InvalidInputError, "4096 MiB is more than the host's memory (3072 MiB)"),
    ("vcpus-above-host", dict(vcpus=32), InvalidInputError, "32 is more than the 16 CPUs of the host"),
    ("memory-above-host-named", dict(memory="4G"), InvalidInputError, "^memory: 4096 MiB is more"),
    ("vcpus-above-host-named", dict(vcpus=32), InvalidInputError, "^vcpus: 32 is more"),
    ("duplicate-targets", dict(disks=[disk(target="vdb"), disk(target="vdb")]), InvalidInputError,
     "disks: target vdb is used by another device"),
    ("disk-and-cdrom-target", dict(disks=[disk(bus="sata", target="sda")], cdroms=[dict(target="sda")]), InvalidInputError,
     "cdroms: target sda is used by another device"),
    ("bad-input", dict(interfaces=[dict(network="default", mac="01:00:00:00:00:01")]), InvalidInputError,
     "interfaces[0].mac: '01:00:00:00:00:01' is a multicast address"),
    ("clone-running", dict(clone_from="test"), ConflictError, "clone_from: VM 'test' is running; stop it first"),
    ("clone-unknown", dict(clone_from="u-vm-no-such-vm"), NotFoundError, "clone_from: VM 'u-vm-no-such-vm' does not exist"),
    ("xml-other-name", dict(xml="<domain type='test'><name>other</name></domain>"), InvalidInputError,
     "xml: <name>other</name> does not match name"),
    ("bad-name", dict(name="a/b"), InvalidInputError, "a/b"),
    # found by the hostile-input review (issue 14), fixed
    ("xml-memory-above-host", dict(xml=XML.format(extra="", memory="99999", unit="TiB")), InvalidInputError,
     "^xml: memory: 104856551424 MiB is more than the host's memory (3072 MiB)"),
    ("xml-vcpus-above-host", dict(xml=XML.format(extra="", memory="64", unit="MiB").replace("<vcpu>1", "<vcpu>64")),
     InvalidInputError, "^xml: vcpus: 64 is more than the 16 CPUs of the host"),
    ("xml-hotplug-memory-above-host", dict(xml=XML.format(extra="<maxMemory slots='4' unit='GiB'>64</maxMemory>",
                                                          memory="64", unit="MiB")),
     InvalidInputError, "^xml: <maxMemory>: 65536 MiB is more"),
    ("xml-same-disk-twice", dict(xml=XML.format(memory="64", unit="MiB", extra="") .replace(
        "<devices>", "<devices>" + DISK_XML.format(target="vda") + DISK_XML.format(target="vdb"))), InvalidInputError,
     "disks[vdb]: /srv/u-vm-shared.img is also disks[vda] of this VM"),
    ("xml-zero-mac", dict(xml=XML.format(memory="64", unit="MiB", extra="").replace("<devices>", "<devices>" + NIC_XML.format(
        mac="00:00:00:00:00:00"))), InvalidInputError, "interfaces[0].mac: '00:00:00:00:00:00' is all zeros"),
    ("xml-mac-of-other-vm", dict(xml=XML.format(memory="64", unit="MiB", extra="").replace("<devices>", "<devices>" + NIC_XML.format(
        mac="AA:BB:CC:DD:EE:FF"))), ConflictError, "aa:bb:cc:dd:ee:ff is already the MAC of VM 'test' on network 'default'"),
    ("same-volume-twice", dict(disks=[disk(volume="u-vm-twice.qcow2"), disk(volume="u-vm-twice.qcow2")]), InvalidInputError,
     "disks[vdb]: /default-pool/u-vm-twice.qcow2 is also disks[vda] of this VM"),
    ("same-path-twice", dict(disks=[dict(path="/srv/u-vm-a.img", format="raw"),
                                    dict(path="/srv/u-vm-a.img", format="raw", readonly=True)]), InvalidInputError,
     "disks[vdb]: /srv/u-vm-a.img is also disks[vda] of this VM"),
    ("zero-mac", dict(interfaces=[dict(network="default", mac="00:00:00:00:00:00")]), InvalidInputError,
     "interfaces[0].mac: '00:00:00:00:00:00' is all zeros"),
    ("duplicate-macs", dict(interfaces=[dict(network="default", mac="52:54:00:00:00:0a"),
                                        dict(bridge="eth1", mac="52:54:00:00:00:0A")]), InvalidInputError,
     "interfaces[1].mac: 52:54:00:00:00:0a is also the MAC of interfaces[0]"),
    ("mac-of-other-vm", dict(interfaces=[dict(network="default", mac="aa:bb:cc:dd:ee:ff")]), ConflictError,
     "interfaces[0].mac: aa:bb:cc:dd:ee:ff is already the MAC of VM 'test' on network 'default'"),
    ("shutdown-timeout-zero", dict(shutdown_timeout=0), InvalidInputError,
     "shutdown_timeout: must be a positive number of seconds, got 0"),
    ("shutdown-timeout-negative", dict(shutdown_timeout=-5), InvalidInputError, "shutdown_timeout: must be a positive"),
    ("wait-for-ip-timeout", dict(wait_for_ip_timeout=-1), InvalidInputError, "wait_for_ip_timeout: must be a positive"),
    ("detach-timeout", dict(cloud_init=dict(hostname="h", pool=POOL, detach_timeout=-1)), InvalidInputError,
     "cloud_init.detach_timeout: must be a positive number of seconds, got -1"),
    ("missing-kernel", dict(kernel="/nonexistent/vmlinuz"), NotFoundError,
     "kernel: /nonexistent/vmlinuz does not exist on the hypervisor, so VM"),
    ("missing-disk-file", dict(disks=[dict(path="/nonexistent/u-vm.img", format="raw")]), NotFoundError,
     "disks[vda]: /nonexistent/u-vm.img does not exist on the hypervisor"),
    ("missing-pci-device", dict(hostdevs=["01:00.0"]), NotFoundError, "hostdevs[0]: the host has no PCI device 0000:01:00.0"),
]


#: what a check-mode run predicts with a warning, as an earlier task could provide it (a file)
ASSUMED_IN_CHECK_MODE = ("missing-kernel", "missing-disk-file")


@pytest.mark.parametrize("given, error, fragment", rows(ERRORS))
@pytest.mark.parametrize("check", [True, False], ids=["check", "apply"])
def test_errors_change_nothing(request, test_conn, vm, given, error, fragment, check):
    before = (sorted(d.name() for d in test_conn.listAllDomains(0)), volumes(test_conn))
    if check and request.node.callspec.id.split("-", 1)[1] in ASSUMED_IN_CHECK_MODE:
        result = run(test_conn, check=True, **dict(dict(name=vm), **given))
        assert result["changed"] and any(fragment in w for w in result["module_warnings"])
        assert (sorted(d.name() for d in test_conn.listAllDomains(0)), volumes(test_conn)) == before
        return
    if check and error is NotFoundError and not given.get("hostdevs"):
        # a missing pool, volume, network or interface that an earlier task may create: check mode predicts
        result = run(test_conn, check=check, **dict(dict(name=vm), **given))
        assert result["changed"] and len(result["assumptions"]) == 1, result
        assert fragment.split("]: ", 1)[-1] in result["assumptions"][0]
    else:
        with pytest.raises(error) as info:
            run(test_conn, check=check, **dict(dict(name=vm), **given))
        assert info.value.msg.startswith(fragment[1:]) if fragment.startswith("^") else fragment in info.value.msg
    assert (sorted(d.name() for d in test_conn.listAllDomains(0)), volumes(test_conn)) == before
    assert state(test_conn, "test") == "running"


def test_failed_step_undoes_the_run(test_conn, vm):
    """A new VM asked paused: the test driver cannot start it paused, so the volume and definition go again."""
    with pytest.raises(InvalidInputError) as info:
        run(test_conn, name=vm, state="paused", disks=[disk()])
    assert info.value.details["failed_step"] == "start VM %s paused" % vm
    assert "rollback_errors" not in info.value.details
    assert not exists(test_conn, vm) and volumes(test_conn) == []


# ------------------------------------------------------------------- clone, rename, absent ---

@pytest.mark.parametrize("mode, action", [
    ("full", "copy volume {vm}-vda.qcow2 to {vm}-clone-vda.qcow2 in pool default-pool"),
    ("linked", "create qcow2 volume {vm}-clone-vda.qcow2 in pool default-pool on backing file /default-pool/{vm}-vda.qcow2"),
], ids=["full", "linked"])
def test_clone(test_conn, vm, mode, action):
    run(test_conn, name=vm, state="stopped", disks=[disk()], interfaces=[dict(network="default")],
        graphics=dict(type="spice", password="pw"), tags=["source"])
    clone = vm + "-clone"
    results = four(test_conn, name=clone, clone_from=vm, clone_mode=mode, state="stopped", memory="256")
    assert results[1]["actions"] == [action.format(vm=vm), "define VM %s as a %s clone of %s" % (clone, mode, vm)]
    source, copy = saved(test_conn, vm), saved(test_conn, clone)
    assert copy["disks"][0]["path"] == "/default-pool/%s-vda.qcow2" % clone and copy["memory"] == 256
    assert source["uuid"] != copy["uuid"] and source["interfaces"][0]["mac"] != copy["interfaces"][0]["mac"]
    assert (copy["tags"], copy["graphics"]["type"], copy["graphics"]["password"]) == (["source"], "vnc", "")
    assert source["memory"] == 1024 and volumes(test_conn) == ["%s-vda.qcow2" % clone, "%s-vda.qcow2" % vm]


def test_clone_from_internal_snapshot_plan(test_conn, vm):
    """The test driver keeps internal snapshots; copying one needs qemu-img on real files, so the plan only."""
    run(test_conn, name=vm, state="stopped", disks=[disk()], memory="512")
    dom = test_conn.lookupByName(vm)
    dom.snapshotCreateXML("<domainsnapshot><name>s1</name></domainsnapshot>", 0)
    run(test_conn, name=vm, memory="256", state="stopped")  # changed after the snapshot: the clone gets the snapshot's definition
    clone = vm + "-snap"
    result = run(test_conn, check=True, name=clone, clone_from=vm, clone_snapshot="s1", state="stopped")
    assert result["changed"] and result["actions"] == [
        "copy internal snapshot s1 of volume {vm}-vda.qcow2 to {clone}-vda.qcow2 in pool default-pool".format(vm=vm, clone=clone),
        "define VM %s as a full clone of snapshot s1 of %s" % (clone, vm),
    ]
    assert not exists(test_conn, clone)


@pytest.mark.parametrize("given, error, fragment", [
    (dict(clone_snapshot="nope"), NotFoundError, "clone_snapshot: VM '{vm}' has no snapshot 'nope'"),
    (dict(clone_snapshot="s1", clone_mode="linked"), InvalidInputError, "a linked clone needs an external (disk_only) snapshot"),
    (dict(clone_snapshot="bad/name"), InvalidInputError, "clone_snapshot: 'bad/name' is not a valid snapshot name"),
], ids=["unknown", "linked-internal", "bad-name"])
def test_clone_from_snapshot_errors(test_conn, vm, given, error, fragment):
    run(test_conn, name=vm, state="stopped", disks=[disk()])
    test_conn.lookupByName(vm).snapshotCreateXML("<domainsnapshot><name>s1</name></domainsnapshot>", 0)
    with pytest.raises(error, match=re.escape(fragment.format(vm=vm))):
        run(test_conn, name=vm + "-snap", clone_from=vm, **given)
    assert not exists(test_conn, vm + "-snap")


def test_clone_from_internal_snapshot_of_running_vm_is_refused(test_conn, vm):
    run(test_conn, name=vm, state="running", disks=[disk()])
    test_conn.lookupByName(vm).snapshotCreateXML("<domainsnapshot><name>s1</name></domainsnapshot>", 0)
    with pytest.raises(ConflictError, match="snapshot 's1' is internal .* stop the VM first"):
        run(test_conn, name=vm + "-snap", clone_from=vm, clone_snapshot="s1")


def test_clone_from_internal_snapshot_needs_a_local_uri(test_conn, vm):
    run(test_conn, name=vm, state="stopped", disks=[disk()])
    test_conn.lookupByName(vm).snapshotCreateXML("<domainsnapshot><name>s1</name></domainsnapshot>", 0)
    ctx = Context(conn=test_conn, params=module_params(name=vm + "-snap", clone_from=vm, clone_snapshot="s1"),
                  uri="qemu+ssh://kvm1/system")
    with pytest.raises(InvalidInputError, match="run the task there with a local URI"):
        reconcile(VmResource(ctx), check_mode=True)


def test_rename(test_conn, vm):
    run(test_conn, name=vm, state="stopped", disks=[disk()])
    uuid = test_conn.lookupByName(vm).UUIDString()
    new = vm + "-new"
    results = four(test_conn, name=new, rename_from=vm, state="stopped")
    assert results[1]["actions"] == ["rename VM %s to %s" % (vm, new)]
    assert not exists(test_conn, vm) and test_conn.lookupByName(new).UUIDString() == uuid


def test_rename_of_a_running_vm_is_refused(test_conn, vm):
    run(test_conn, name=vm)
    with pytest.raises(ConflictError) as info:
        run(test_conn, name=vm + "-new", rename_from=vm)
    assert info.value.msg == "rename_from: VM %r is running; a VM is renamed only while it is stopped" % vm
    assert state(test_conn, vm) == "running" and not exists(test_conn, vm + "-new")


@pytest.mark.parametrize("check", [True, False], ids=["check", "apply"])
def test_rename_from_a_missing_vm_is_refused(test_conn, vm, check):
    with pytest.raises(NotFoundError, match="rename_from: neither VM '%s-gone' nor VM '%s' exists" % (vm, vm)):
        run(test_conn, check=check, name=vm, rename_from=vm + "-gone", state="stopped")
    assert not exists(test_conn, vm)


def test_rename_from_a_missing_vm_is_done_when_the_new_name_exists(test_conn, vm):
    run(test_conn, name=vm, state="stopped")
    result = run(test_conn, name=vm, rename_from=vm + "-gone", state="stopped")
    assert not result["changed"]


@pytest.mark.parametrize("setup, remove_storage, actions", [
    ("running", False, ["power off VM {vm}", "undefine VM {vm}"]),
    ("stopped", False, ["undefine VM {vm}"]),
    ("running", True, ["power off VM {vm}", "undefine VM {vm}", "delete volume /default-pool/{vm}-vda.qcow2"]),
], ids=["running", "stopped", "remove-storage"])
def test_absent(test_conn, vm, setup, remove_storage, actions):
    run(test_conn, name=vm, state=setup, disks=[disk()])
    results = four(test_conn, name=vm, state="absent", remove_storage=remove_storage)
    assert results[1]["actions"] == [a.format(vm=vm) for a in actions]
    assert results[1]["vm"] is None
    assert (results[0]["diff"]["before"], results[0]["diff"]["after"]) == (dict(state=setup), dict(state="absent"))
    assert not exists(test_conn, vm) and volumes(test_conn) == ([] if remove_storage else ["%s-vda.qcow2" % vm])


def test_absent_keeps_storage_others_use(test_conn, vm):
    disks = [disk(), dict(path="/srv/%s.img" % vm, format="raw"), dict(path="/guest/diskimage1", format="raw", readonly=True)]
    run(test_conn, name=vm, state="stopped", disks=disks)
    user = vm + "-user"
    test_conn.defineXML("<domain type='test'><name>%s</name><memory>65536</memory><os><type>hvm</type></os><devices>"
                        "<disk type='file' device='disk'><source file='/default-pool/%s-vda.qcow2'/><target dev='vda'/>"
                        "<readonly/></disk></devices></domain>" % (user, vm))
    result = run(test_conn, name=vm, state="absent", remove_storage=True)
    assert result["actions"] == ["undefine VM %s" % vm]
    assert result["warnings"] == ["kept /default-pool/%s-vda.qcow2: VM %s uses it too (VM %s (stopped: disk vda))"
                                  % (vm, user, user),
                                  "kept /srv/%s.img: it is not a volume of a libvirt storage pool" % vm]
    assert volumes(test_conn) == ["%s-vda.qcow2" % vm] and exists(test_conn, "test")


# ------------------------------------------------------------------- cloud-init seed, detached ---

SEED = dict(hostname="h1", pool=POOL, detach=True)


def test_seed_detach_is_planned_after_the_boot(test_conn, vm):
    result = run(test_conn, check=True, name=vm, disks=[disk()], cloud_init=SEED)
    seed = "/default-pool/%s-seed.iso" % vm
    actions = result["actions"]
    assert actions[actions.index("start VM %s" % vm) + 1:] == [
        "wait for cloud-init of instance %s to finish in VM %s" % (result["cloud_init"]["instance_id"], vm),
        "detach the cloud-init seed %s from VM %s" % (seed, vm),
        "delete the cloud-init seed volume %s" % seed,
        "record in VM %s that seed %s was used" % (vm, result["cloud_init"]["instance_id"]),
    ]
    assert not exists(test_conn, vm)


def test_seed_detach_keeps_a_seed_another_vm_uses(test_conn, vm):
    seed = "/default-pool/%s-seed.iso" % vm
    other = vm + "-other"
    test_conn.defineXML("<domain type='test'><name>%s</name><memory unit='MiB'>64</memory><os><type>hvm</type></os>"
                        "<devices><disk type='file' device='cdrom'><source file='%s'/><target dev='sda' bus='sata'/>"
                        "<readonly/></disk></devices></domain>" % (other, seed))
    try:
        result = run(test_conn, check=True, name=vm, disks=[disk()], cloud_init=SEED)
        assert "detach the cloud-init seed %s from VM %s" % (seed, vm) in result["actions"]
        assert "delete the cloud-init seed volume %s" % seed not in result["actions"]
        assert any("is kept when it is detached: it is also used by VM %s (stopped: cdrom sda)" % other in w
                   for w in result["warnings"])
    finally:
        test_conn.lookupByName(other).undefine()


def test_a_used_seed_is_not_made_again(test_conn, vm):
    from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit import seed as _cloudinit
    from ansible_collections.virtops.libvirt.plugins.module_utils._domain import seed as _seed
    run(test_conn, name=vm, disks=[disk()])
    iid = _cloudinit.build_seed(dict(hostname="h1"), "volume:%s/%s-seed.iso" % (POOL, vm)).instance_id
    test_conn.lookupByName(vm).setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, '<cloud-init detached="%s"/>' % iid,
                                           "virtops-ci", _seed.SEED_NS,
                                           libvirt.VIR_DOMAIN_AFFECT_CONFIG | libvirt.VIR_DOMAIN_AFFECT_LIVE)
    result = run(test_conn, name=vm, cloud_init=SEED)
    assert not result["changed"] and result["actions"] == []
    assert result["cloud_init"]["detached"] and result["cloud_init"]["instance_id"] == iid
    assert "%s-seed.iso" % vm not in volumes(test_conn)
    # new content is a new instance: the seed is made and attached again
    again = run(test_conn, check=True, name=vm, cloud_init=dict(SEED, hostname="h2"))
    assert again["changed"] and again["cloud_init"]["instance_id"] != iid


@pytest.mark.parametrize("given, fragment", [
    (dict(cloud_init=dict(volume="x.iso", pool=POOL, detach=True)), "cloud_init.detach: give the seed's content"),
    (dict(cloud_init=SEED, state="stopped"), "the VM must run"),
    (dict(cloud_init=dict(SEED, detach_timeout=0)), "cloud_init.detach_timeout: must be a positive number of seconds"),
], ids=["no-content", "stopped", "timeout"])
def test_seed_detach_bad_input(test_conn, vm, given, fragment):
    with pytest.raises(InvalidInputError, match=re.escape(fragment)):
        run(test_conn, name=vm, disks=[disk()], **given)
    assert not exists(test_conn, vm)


class _Dom(object):
    """A domain whose run state follows a script of isActive() answers (the last one repeats)."""

    def __init__(self, active, destroy_fails=False):
        self.active = list(active)
        self.destroy_fails = destroy_fails
        self.destroyed = 0
        self.shutdowns = 0

    def isActive(self):
        return self.active.pop(0) if len(self.active) > 1 else self.active[0]

    def shutdown(self):
        self.shutdowns += 1

    def destroy(self):
        self.destroyed += 1
        if self.destroy_fails:
            raise libvirt.libvirtError("domain is not running")


class _Clock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def _shutdown(dom, force, timeout=5):
    holder = type("Holder", (), dict(name="vsnap", _lookup=lambda self: dom,
                                     _acpi_shutdown=staticmethod(PowerPlan._acpi_shutdown)))()
    clock = _Clock()
    PowerPlan._shutdown(holder, timeout, force, sleep=clock.sleep, clock=clock)()


@pytest.mark.parametrize("force", [False, True])
def test_shutdown_that_ends_right_at_the_deadline_is_no_timeout(force):
    # running at the first look and at the five inside the wait, off at the look after the deadline
    dom = _Dom([True] * 6 + [False])
    _shutdown(dom, force)
    assert dom.destroyed == 0 and dom.shutdowns > 1


def test_shutdown_timeout_powers_off_with_force_and_fails_without():
    dom = _Dom([True])
    _shutdown(dom, force=True)
    assert dom.destroyed == 1
    with pytest.raises(OperationTimeoutError, match="did not shut down within 5 s"):
        _shutdown(_Dom([True]), force=False)


def test_shutdown_power_off_racing_the_guest_is_no_error():
    # still running after the wait, gone when destroy() is called: libvirt's error is not ours
    dom = _Dom([True] * 7 + [False], destroy_fails=True)
    _shutdown(dom, force=True)
    assert dom.destroyed == 1


# --------------------------------------------------------------------------------------- secrets ---


def test_secrets_of_cloud_init_and_xml_are_masked(test_conn, vm):
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.secrets import vm_secrets

    cloud_init = dict(pool="nopool-" + vm, password="Pw-default-1", users=[dict(name="ops", password="Pw-ops-2")],
                      user_data={"chpasswd": {"list": "root:Pw-chpasswd-3"}})
    given = dict(name=vm, disks=[disk()], cloud_init=cloud_init)
    assert vm_secrets(module_params(**given)) == {"Pw-default-1", "Pw-ops-2", "Pw-chpasswd-3"}
    with pytest.raises(NotFoundError) as info:
        run(test_conn, check=False, **given)
    assert info.value.msg == "cloud_init: storage pool 'nopool-%s' does not exist" % vm, "ordinary words stay readable"
    seeded = dict(given)
    seeded["cloud_init"] = dict(cloud_init, pool=POOL)
    result = run(test_conn, check=True, **seeded)
    shown = json.dumps(result)
    assert "define VM %s" % vm in result["actions"]
    assert [s for s in ("Pw-default-1", "Pw-ops-2", "Pw-chpasswd-3", "$6$") if s in shown] == []
    xml = ("<domain type='test'><name>%s</name><memory unit='MiB'>64</memory><os><type>hvm</type></os><devices>"
           "<graphics type='vnc' passwd='Xml-pw-4'/></devices></domain>" % vm)
    first = run(test_conn, name=vm, xml=xml)
    second = run(test_conn, name=vm, xml=xml.replace("Xml-pw-4", "Xml-pw-5"))
    assert second["changed"] and "Xml-pw" not in json.dumps([first, second])
    for view in ("before", "after"):
        assert re.search("passwd=[\"']\\*{8}[\"']", second["diff"][view]["xml"]), second["diff"][view]["xml"]


# ------------------------------------------------------------------ untrusted volumes ---
# The test driver's volumes have no files: these are checked from libvirt's report (_trust.check_reported),
# as on a remote hypervisor.  The checks of the files themselves are in test__trust.py.

def _volume(conn, name, fmt="qcow2", backing=None, backing_format="raw"):
    from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
    from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_write import build_volume_xml
    xml = build_volume_xml(name, 16 * 1024 ** 2, fmt, backing_path=backing, backing_format=backing_format if backing else None)
    conn.storagePoolLookupByName(POOL).createXML(_xml.to_string(xml), 0)


UNTRUSTED_VOLUMES = [
    ("backing-outside-pools", dict(backing="/etc/shadow"), {}, "backing file outside the storage pools"),
    ("backing-by-protocol", dict(backing="/dev/nbd0"), {}, "backing file outside the storage pools"),
    ("raw-over-qcow2", {}, dict(format="raw"), "declared as raw, but its content is a qcow2 image header"),
    ("qcow2-over-raw", dict(fmt="raw"), dict(format="qcow2"), "declared as qcow2, but its content is a raw image"),
    ("vmdk", dict(fmt="vmdk"), {}, "is a vmdk image: VM disks are qcow2 or raw"),
    ("vdi-declared-raw", dict(fmt="vdi"), dict(format="raw"), "declared as raw, but its content is a vdi image header"),
]


@pytest.mark.parametrize("vol, declared, message", rows(UNTRUSTED_VOLUMES))
def test_untrusted_volume_is_not_attached(test_conn, vm, vol, declared, message):
    _volume(test_conn, vm + "-d.img", **vol)
    given = dict(name=vm, memory="256", disks=[dict(dict(pool=POOL, volume=vm + "-d.img"), **declared)])
    for check in (True, False):
        with pytest.raises(InvalidInputError, match=message):
            run(test_conn, check=check, **given)
    assert not exists(test_conn, vm) and volumes(test_conn) == [vm + "-d.img"]


def test_untrusted_base_of_a_linked_clone_is_refused(test_conn, vm):
    _volume(test_conn, vm + "-base.qcow2", backing="/etc/shadow")
    given = dict(name=vm, memory="256", disks=[dict(pool=POOL, volume=vm + "-vda.qcow2", backing_volume=vm + "-base.qcow2")])
    with pytest.raises(InvalidInputError, match="backing_volume .*outside the storage pools"):
        run(test_conn, **given)
    assert not exists(test_conn, vm) and volumes(test_conn) == [vm + "-base.qcow2"]


def test_a_disk_of_the_vm_is_not_checked_again(test_conn, vm, monkeypatch):
    from ansible_collections.virtops.libvirt.plugins.module_utils._storage import trust as _trust
    _volume(test_conn, vm + "-d.qcow2")
    given = dict(name=vm, memory="256", disks=[dict(pool=POOL, volume=vm + "-d.qcow2")])
    run(test_conn, **given)
    assert saved(test_conn, vm)["disks"][0]["format"] == "qcow2"
    checked = []
    monkeypatch.setattr(_trust, "trusted_volume", lambda *a, **k: checked.append(a))
    assert run(test_conn, **given)["changed"] is False and checked == []


@pytest.mark.parametrize("make, declared, message", [
    (["create", "-q", "-f", "qcow2", "-b", "/etc/hostname", "-F", "raw"], "qcow2", "backing file outside the storage pools"),
    (["create", "-q", "-f", "qcow2"], "raw", "declared as raw, but its content is a qcow2 image header"),
    (["create", "-q", "-f", "raw"], "qcow2", "cannot be read as qcow2"),
    (["create", "-q", "-f", "qcow2", "-o", "data_file=DATA"], "qcow2", "external data file"),
])
def test_untrusted_file_is_not_attached(test_conn, vm, tmp_path, make, declared, message):
    import subprocess
    path = str(tmp_path / "disk.img")
    argv = ["qemu-img"] + [a.replace("DATA", str(tmp_path / "data.raw")) for a in make] + [path, "1M"]
    subprocess.check_call(argv)
    ctx = Context(conn=test_conn, params=module_params(name=vm, memory="256", disks=[dict(path=path, format=declared)]),
                  run_command=lambda argv, **kw: _run(argv))
    with pytest.raises(InvalidInputError, match=message):
        reconcile(VmResource(ctx), check_mode=False)
    assert not exists(test_conn, vm)


def test_trusted_file_is_attached(test_conn, vm, tmp_path):
    import subprocess
    path = str(tmp_path / "disk.raw")
    subprocess.check_call(["qemu-img", "create", "-q", "-f", "raw", path, "1M"])
    ctx = Context(conn=test_conn, params=module_params(name=vm, memory="256", state="stopped",
                                                       disks=[dict(path=path, format="raw")]),
                  run_command=lambda argv, **kw: _run(argv))
    assert reconcile(VmResource(ctx), check_mode=False)["changed"]
    assert saved(test_conn, vm)["disks"][0]["format"] == "raw"


def _run(argv):
    import subprocess
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def test_a_disk_the_vm_has_is_not_checked_again_but_a_new_shared_one_is(test_conn, vm, monkeypatch):
    """An unchanged VM costs no listing of every VM's disks (O(n^2) over a task of n VMs); a disk it
    would newly attach is still checked against the other VMs."""
    other = vm + "-owner"
    disk_xml = "<disk type='file' device='disk'><source file='/srv/%s-%s.img'/><target dev='%s' bus='virtio'/></disk>"
    domain = "<domain type='test'><name>%s</name><memory unit='MiB'>64</memory><os><type>hvm</type></os><devices>%s</devices></domain>"
    test_conn.defineXML(domain % (other, disk_xml % (vm, "shared", "vda")))
    test_conn.defineXML(domain % (vm, disk_xml % (vm, "shared", "vda")))  # shared by hand, outside the module
    listings = []
    real = _disks.disk_users
    monkeypatch.setattr(_disks, "disk_users", lambda conn: listings.append(1) or real(conn))
    try:
        same = domain % (vm, disk_xml % (vm, "shared", "vda"))
        run(test_conn, check=True, name=vm, xml=same, state="stopped")
        assert listings == []
        grown = domain % (vm, disk_xml % (vm, "shared", "vda") + disk_xml % (vm, "other", "vdb"))
        test_conn.lookupByName(other).undefine()
        test_conn.defineXML(domain % (other, disk_xml % (vm, "other", "vda")))
        with pytest.raises(ConflictError, match=r"xml: disks\[vdb\]: /srv/.*-other.img is already a disk of VM '%s'" % other):
            run(test_conn, check=True, name=vm, xml=grown, state="stopped")
        assert listings == [1]
    finally:
        test_conn.lookupByName(other).undefine()


def test_xml_with_a_writable_disk_of_another_vm_is_refused(test_conn, vm):
    other = vm + "-owner"
    disk_xml = "<disk type='file' device='disk'><source file='/srv/%s-shared.img'/><target dev='vda' bus='virtio'/></disk>" % vm
    domain = "<domain type='test'><name>%s</name><memory unit='MiB'>64</memory><os><type>hvm</type></os><devices>%s</devices></domain>"
    test_conn.defineXML(domain % (other, disk_xml))
    try:
        for check in (True, False):
            with pytest.raises(ConflictError, match=r"xml: disks\[vda\]: /srv/.*-shared.img is already a disk of VM '%s'" % other):
                run(test_conn, check=check, name=vm, xml=domain % (vm, disk_xml))
        assert not exists(test_conn, vm)
        shared = disk_xml.replace("</disk>", "<readonly/></disk>")
        assert run(test_conn, check=True, name=vm, xml=domain % (vm, shared))["changed"]
    finally:
        test_conn.lookupByName(other).undefine()


# ------------------------------------------------------------------- the resource contract ---

def test_plan_returns_what_the_run_found_in_its_outcome(test_conn, vm):
    """reboot_required, pending_changes and removed_volumes are the Outcome of plan(), not fields of the
    resource; desired(current) needs no read() before it."""
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import DifferenceTracker
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Plan
    run(test_conn, name=vm, disks=[disk()], **BASE)
    ctx = Context(conn=test_conn, params=module_params(name=vm, memory="512", max_memory="1024", vcpus=3, max_vcpus=3))
    resource = VmResource(ctx)
    current = resource.read()
    desired = VmResource(ctx).desired(current)
    outcome = resource.plan(current, desired, resource.compare(current, desired), Plan())
    assert outcome.reboot_required and outcome.pending_changes == ["vcpus", "max_vcpus"]
    assert resource.result(current, outcome)["reboot_required"]
    assert not hasattr(resource, "reboot_required") and not hasattr(resource, "pending_changes")
    ctx = Context(conn=test_conn, params=module_params(name=vm, state="absent", remove_storage=True))
    resource = VmResource(ctx)
    current = resource.read()
    outcome = resource.plan(current, None, DifferenceTracker(), Plan())
    assert outcome.removed_volumes == ["/default-pool/%s-vda.qcow2" % vm]
    assert not hasattr(resource, "removed_volumes")


def test_desired_twice_plans_each_volume_once(test_conn, vm):
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Plan
    ctx = Context(conn=test_conn, params=module_params(name=vm, disks=[disk()]), check_mode=True)
    resource = VmResource(ctx)
    resource.desired(None)
    desired = resource.desired(None)
    plan = Plan()
    resource.plan(None, desired, resource.compare(None, desired), plan)
    assert [d for d in plan.descriptions if d.startswith("create ")] == ["create qcow2 volume %s-vda.qcow2 in pool %s" % (vm, POOL)]
    assert "_run" not in resource.diff_views(None, desired)[1]
