# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every destructive path asks _usage: refused (the VMs named, as data too), a warning in check mode
(an earlier task may remove those VMs), done with force; and check mode assumes what an earlier task
creates while absent stays absent.  Against libvirt's test driver."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import subprocess

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.resource import CloudInitResource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._export.export import ExportResource
from ansible_collections.virtops.libvirt.plugins.module_utils._network.resource import NetworkResource
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.pool import PoolResource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot.resource import SnapshotResource
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.vm import VmResource
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume import VolumeResource
from ansible_collections.virtops.libvirt.plugins.modules.network import ARGUMENT_SPEC as NETWORK_SPEC
from ansible_collections.virtops.libvirt.plugins.modules.pool import ARGUMENT_SPEC as POOL_SPEC
from ansible_collections.virtops.libvirt.plugins.modules.snapshot import ARGUMENT_SPEC as SNAPSHOT_SPEC
from ansible_collections.virtops.libvirt.plugins.modules.vm import ARGUMENT_SPEC as VM_SPEC

POOL = "default-pool"
PREFIX = "grd-"
ASSUMED = "; assumed to be done by an earlier task (a real run fails if it is not)"

VOLUME_DEFAULTS = dict(uri="test:///default", state="present", capacity=None, format=None, preallocation=None,
                       source=None, source_format=None, checksum=None, validate_certs=True, timeout=60,
                       backing_volume=None, clone_from=None, allow_shrink=False, force=False, wipe=False)
EXPORT_DEFAULTS = dict(uri="test:///default", vm=None, volume=None, pool=None, format="qcow2", compressed=False,
                       dest=None, force=False, quiesce=False, verify=False, overlay_dir=None, tmp_dir=None,
                       progress_file=None)


def spec_params(spec, given):
    result = ArgumentSpecValidator(spec).validate(dict(given))
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def run_argv(argv, **_kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def run(resource, conn, params, check=False):
    ctx = Context(conn=conn, params=params, check_mode=check, diff=True, run_command=run_argv)
    result = reconcile(resource(ctx), check_mode=check, want_diff=True)
    result["module_warnings"] = ctx.warnings
    return result


def volume(conn, check=False, **given):
    return run(VolumeResource, conn, dict(VOLUME_DEFAULTS, **given), check)


def pool(conn, check=False, **given):
    return run(PoolResource, conn, spec_params(POOL_SPEC, given), check)


def network(conn, check=False, **given):
    return run(NetworkResource, conn, spec_params(NETWORK_SPEC, given), check)


def vm(conn, check=False, **given):
    return run(VmResource, conn, spec_params(VM_SPEC, given), check)


def snapshot(conn, check=False, **given):
    return run(SnapshotResource, conn, spec_params(SNAPSHOT_SPEC, given), check)


def export(conn, check=False, **given):
    return run(ExportResource, conn, dict(EXPORT_DEFAULTS, **given), check)


def seed(conn, check=False, **given):
    params = dict(uri="test:///default", name=None, pool=None, path=None, mode=None, state="present", force=False,
                  iso_builder="auto", user_data=None, meta_data=None, network_config=None, vendor_data=None,
                  hostname=None, users=None, password=None, ssh_authorized_keys=None, packages=None, runcmd=None,
                  write_files=None)
    params.update(given)
    return run(CloudInitResource, conn, params, check)


def define(conn, name, devices, start=False):
    dom = conn.defineXML("<domain type='test'><name>%s%s</name><memory>65536</memory><os><type>hvm</type></os>"
                         "<devices>%s</devices></domain>" % (PREFIX, name, devices))
    if start:
        dom.create()
    return dom


def file_disk(path, target="vdb", device="disk"):
    return ("<disk type='file' device='%s'><source file='%s'/><target dev='%s' bus='%s'/></disk>"
            % (device, path, target, "sata" if device == "cdrom" else "virtio"))


@pytest.fixture
def clean(test_conn, undefine_for_test_driver):
    # the test driver undefines with these two flags unknown

    def wipe():
        for dom in test_conn.listAllDomains(0):
            if dom.name().startswith(PREFIX):
                persistent = dom.isPersistent()
                if dom.isActive():
                    dom.destroy()
                if persistent:
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        for net in test_conn.listAllNetworks(0):
            if net.name().startswith(PREFIX):
                if net.isActive():
                    net.destroy()
                net.undefine()
        for obj in test_conn.listAllStoragePools(0):
            if obj.name() == POOL:
                for vol in obj.listAllVolumes(0):
                    if vol.name().startswith(PREFIX):
                        vol.delete(0)
            elif obj.name().startswith(PREFIX):
                if obj.isActive():
                    for vol in obj.listAllVolumes(0):
                        vol.delete(0)
                    obj.destroy()
                obj.undefine()

    wipe()
    yield test_conn
    wipe()


def assume_then_refuse(call, message):
    """The check-mode run predicts a change and warns with the refusal; the real run refuses; both name it."""
    predicted = call(True)
    assert predicted["changed"], predicted
    assert [a for a in predicted["assumptions"] if message in a and a.endswith(ASSUMED)], predicted["assumptions"]
    with pytest.raises(ConflictError) as info:
        call(False)
    assert message in info.value.msg
    return info.value


# --- volume -----------------------------------------------------------------------------------


def test_volume_used_by_a_stopped_vm(clean):
    volume(clean, name=PREFIX + "d.qcow2", pool=POOL, capacity="1M")
    define(clean, "user", file_disk("/%s/%sd.qcow2" % (POOL, PREFIX)))
    error = assume_then_refuse(lambda check: volume(clean, check, name=PREFIX + "d.qcow2", pool=POOL, state="absent"),
                               "volume '%sd.qcow2' of pool '%s' is used by VM %suser (stopped: disk vdb)"
                               % (PREFIX, POOL, PREFIX))
    assert [u["vm"] for u in error.details["used_by"]] == [PREFIX + "user"]
    assert PREFIX + "d.qcow2" in clean.storagePoolLookupByName(POOL).listVolumes()
    forced = volume(clean, name=PREFIX + "d.qcow2", pool=POOL, state="absent", force=True)
    assert forced["changed"] and forced["warnings"][0].endswith("done anyway (force: true)")
    assert PREFIX + "d.qcow2" not in clean.storagePoolLookupByName(POOL).listVolumes()


def test_volume_used_through_an_overlay(clean):
    base = volume(clean, name=PREFIX + "b.qcow2", pool=POOL, capacity="1M")["volume"]
    volume(clean, name=PREFIX + "o.qcow2", pool=POOL, backing_volume=PREFIX + "b.qcow2")
    define(clean, "leaf", file_disk("/%s/%so.qcow2" % (POOL, PREFIX)), start=True)
    error = assume_then_refuse(lambda check: volume(clean, check, name=PREFIX + "b.qcow2", pool=POOL, state="absent"),
                               "is used by VM %sleaf (running: disk vdb through %s/%so.qcow2) and is the backing file "
                               "of volume(s) %s/%so.qcow2" % (PREFIX, POOL, PREFIX, POOL, PREFIX))
    assert error.details["dependants"] == ["%s/%so.qcow2" % (POOL, PREFIX)]
    assert base["path"] in [v.path() for v in clean.storagePoolLookupByName(POOL).listAllVolumes(0)]


def test_volume_of_a_missing_pool(clean):
    for check in (True, False):  # absent is absent
        result = volume(clean, check, name="x.qcow2", pool=PREFIX + "nopool", state="absent")
        assert not result["changed"] and "assumptions" not in result and result["volume"] is None
    predicted = volume(clean, True, name="x.qcow2", pool=PREFIX + "nopool", capacity="1M")
    assert predicted["changed"] and predicted["assumptions"] == [
        "check mode: storage pool '%snopool' does not exist%s" % (PREFIX, ASSUMED)]
    with pytest.raises(NotFoundError, match="storage pool '%snopool' does not exist" % PREFIX):
        volume(clean, name="x.qcow2", pool=PREFIX + "nopool", capacity="1M")
    overlay = volume(clean, True, name="o.qcow2", pool=PREFIX + "nopool", backing_volume="base.qcow2")
    assert overlay["actions"] == ["create volume 'o.qcow2' as a qcow2 overlay on 'base.qcow2'"]


def test_volume_on_a_missing_base(clean):
    for key in ("backing_volume", "clone_from"):
        predicted = volume(clean, True, name=PREFIX + "new.qcow2", pool=POOL, **{key: PREFIX + "base.qcow2"})
        assert predicted["changed"] and predicted["assumptions"] == [
            "check mode: %s '%sbase.qcow2' does not exist in pool '%s'%s" % (key, PREFIX, POOL, ASSUMED)]
        with pytest.raises(NotFoundError):
            volume(clean, name=PREFIX + "new.qcow2", pool=POOL, **{key: PREFIX + "base.qcow2"})


# --- pool -------------------------------------------------------------------------------------


def test_pool_purge_with_a_volume_in_use(clean):
    name = PREFIX + "pool"
    pool(clean, name=name, path="/" + name)
    volume(clean, name="used.img", pool=name, capacity="1M", format="raw")
    volume(clean, name="free.img", pool=name, capacity="1M", format="raw")
    define(clean, "pooluser", file_disk("/%s/used.img" % name, "sda", "cdrom"))
    error = assume_then_refuse(lambda check: pool(clean, check, name=name, state="absent", purge=True),
                               "storage pool '%s' holds volumes used by VM %spooluser (stopped: cdrom sda)" % (name, PREFIX))
    assert error.details["used_by"][0]["path"] == "/%s/used.img" % name
    assert sorted(clean.storagePoolLookupByName(name).listVolumes()) == ["free.img", "used.img"]
    forced = pool(clean, name=name, state="absent", purge=True, force=True)
    assert forced["changed"] and "done anyway (force: true)" in forced["warnings"][0]


def test_inactive_pool_purge_counts_the_files_of_its_directory(clean):
    name = PREFIX + "ipool"
    pool(clean, name=name, path="/" + name, state="inactive")
    define(clean, "ipooluser", "<disk type='volume' device='disk'><source pool='%s' volume='v.img'/>"
                               "<target dev='vdc' bus='virtio'/></disk>" % name + file_disk("/%s/f.img" % name))
    error = assume_then_refuse(lambda check: pool(clean, check, name=name, state="absent", purge=True),
                               "holds volumes used by VM %sipooluser (stopped: disk vdb, disk vdc)" % PREFIX)
    assert len(error.details["used_by"]) == 2


# --- network ----------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["inactive", "absent"])
def test_network_used_by_a_stopped_vm(clean, state):
    name = PREFIX + "net-" + state
    network(clean, name=name, ipv4=dict(address="192.168.%d.1" % (230 if state == "absent" else 231), prefix=24))
    define(clean, "off-" + state, "<interface type='network'><mac address='52:54:00:00:00:0a'/>"
                                  "<source network='%s'/></interface>" % name)
    error = assume_then_refuse(lambda check: network(clean, check, name=name, state=state),
                               "network '%s' is used by VM %soff-%s (stopped: interface 52:54:00:00:00:0a)"
                               % (name, PREFIX, state))
    assert error.details["attached_domains"] == [] and error.details["used_by"][0]["vm"] == PREFIX + "off-" + state
    assert clean.networkLookupByName(name).isActive()
    forced = network(clean, name=name, state=state, force=True)
    assert forced["changed"] and forced["warnings"][0].endswith("done anyway (force: true)")


def test_network_of_a_teardown_in_check_mode(clean):
    """The teardown as a user writes it: the VM's removal comes first, so check mode predicts the network's."""
    name = PREFIX + "net-td"
    network(clean, name=name, ipv4=dict(address="192.168.232.1", prefix=24))
    define(clean, "td", "<interface type='network'><source network='%s'/></interface>" % name, start=True)
    removed = vm(clean, True, name=PREFIX + "td", state="absent")
    gone = network(clean, True, name=name, state="absent")
    assert removed["changed"] and gone["changed"] and gone["actions"] == ["stop network %s" % name,
                                                                          "undefine network %s" % name]
    assert gone["assumptions"][0].startswith("check mode: network '%s' is used by VM %std (running" % (name, PREFIX))


# --- cloud-init seeds -------------------------------------------------------------------------


def test_seed_file_attached_to_a_vm(clean, tmp_path):
    path = str(tmp_path / "seed.iso")
    seed(clean, path=path, hostname="h1")
    define(clean, "seeded", file_disk(path, "sda", "cdrom"))
    assume_then_refuse(lambda check: seed(clean, check, path=path, state="absent"),
                       "seed file %s is used by VM %sseeded (stopped: cdrom sda)" % (path, PREFIX))
    assert (tmp_path / "seed.iso").exists()


# --- vm remove_storage ------------------------------------------------------------------------


def test_remove_storage_keeps_what_a_snapshot_of_another_vm_needs(clean):
    path = "/%s/%skeep.qcow2" % (POOL, PREFIX)
    volume(clean, name=PREFIX + "keep.qcow2", pool=POOL, capacity="1M")
    dom = define(clean, "snapper", file_disk("/srv/snapper.qcow2", "vda"))
    dom.snapshotCreateXML("<domainsnapshot><name>s1</name><state>shutoff</state><creationTime>1</creationTime>"
                          "<memory snapshot='no'/><disks><disk name='vda' snapshot='external' type='file'><source "
                          "file='%s'/></disk></disks>%s</domainsnapshot>" % (path, dom.XMLDesc(0)),
                          libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE)
    define(clean, "owner", file_disk(path, "vda"))
    result = vm(clean, name=PREFIX + "owner", state="absent", remove_storage=True)
    assert result["warnings"] == ["kept %s: VM %ssnapper uses it too (VM %ssnapper (stopped: overlay of vda in "
                                  "snapshot s1))" % (path, PREFIX, PREFIX)]
    assert PREFIX + "keep.qcow2" in clean.storagePoolLookupByName(POOL).listVolumes()


# --- what an earlier task creates, and absent is absent ---------------------------------------


def test_snapshot_of_a_missing_vm(clean):
    for check in (True, False):
        gone = snapshot(clean, check, vm=PREFIX + "novm", name="s1", state="absent")
        assert not gone["changed"] and gone["snapshots"] == [] and "assumptions" not in gone
    predicted = snapshot(clean, True, vm=PREFIX + "novm", name="s1")
    assert predicted["changed"] and predicted["actions"] == ["create snapshot s1 of VM %snovm" % PREFIX]
    assert predicted["assumptions"] == ["check mode: vm: VM '%snovm' does not exist%s" % (PREFIX, ASSUMED)]
    with pytest.raises(NotFoundError):
        snapshot(clean, vm=PREFIX + "novm", name="s1")


def test_export_of_a_missing_source(clean, tmp_path):
    for given in (dict(vm=PREFIX + "novm"), dict(volume="x.qcow2", pool=PREFIX + "nopool"),
                  dict(volume=PREFIX + "none.qcow2", pool=POOL)):
        predicted = export(clean, True, dest=str(tmp_path) + "/", **given)
        assert predicted["changed"] and len(predicted["assumptions"]) == 1 and predicted["artefacts"] == []
        with pytest.raises((NotFoundError, ConflictError)):
            export(clean, dest=str(tmp_path) + "/", **given)
    assert list(tmp_path.iterdir()) == []


def test_vm_on_what_earlier_tasks_create(clean):
    given = dict(name=PREFIX + "later", state="stopped", memory="64M",
                 disks=[dict(pool=PREFIX + "pool-later", backing_volume="base.qcow2")],
                 interfaces=[dict(network=PREFIX + "net-later")],
                 cloud_init=dict(pool=PREFIX + "pool-later", hostname="later"))
    predicted = vm(clean, True, **given)
    assert predicted["changed"] and predicted["assumptions"] == [
        "check mode: storage pool '%spool-later' does not exist%s" % (PREFIX, ASSUMED),
        "check mode: interfaces[0]: libvirt network '%snet-later' does not exist%s" % (PREFIX, ASSUMED)]
    assert "define VM %slater" % PREFIX in predicted["actions"]
    with pytest.raises(NotFoundError, match="storage pool '%spool-later' does not exist" % PREFIX):
        vm(clean, **given)
    assert PREFIX + "later" not in [d.name() for d in clean.listAllDomains(0)]
