# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The apply module end to end in-process on libvirt's test driver: argument parsing, many kinds in one
run, check mode across dependent items, idempotency, a bad item among good ones, secrets, removal."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.virtops.libvirt.plugins.modules import apply

URI = "test:///default"


@pytest.fixture(autouse=True)
def clean(test_conn):
    def remove():
        for dom in test_conn.listAllDomains(0):
            if dom.name().startswith("ap-"):
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        for pool in test_conn.listAllStoragePools(0):
            if pool.name().startswith("ap-") or pool.name() == "default-pool":
                if pool.isActive():
                    for vol in pool.listAllVolumes(0):
                        vol.delete(0)
            if pool.name().startswith("ap-"):
                if pool.isActive():
                    pool.destroy()
                pool.undefine()
        for net in test_conn.listAllNetworks(0):
            if net.name().startswith("ap-"):
                if net.isActive():
                    net.destroy()
                net.undefine()

    remove()
    yield
    remove()


def run(capsys, resources, **args):
    with patch_module_args(dict(args, resources=resources, uri=URI)):
        with pytest.raises(SystemExit) as exit_info:
            apply.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def lab(vms=3):
    """A pool, a network, a base volume and VMs on linked clones, written in an order that is not the order
    they must be made in."""
    resources = [dict(kind="vm", name="ap-vm%d" % i, state="present", memory="64MiB",
                      disks=[dict(pool="ap-pool", volume="ap-vm%d.qcow2" % i)], interfaces=[dict(network="ap-net")])
                 for i in range(vms)]
    resources += [dict(kind="volume", pool="ap-pool", name="ap-vm%d.qcow2" % i, backing_volume="base.qcow2")
                  for i in range(vms)]
    resources += [dict(kind="volume", pool="ap-pool", name="base.qcow2", capacity="4M"),
                  dict(kind="pool", name="ap-pool", type="dir", path="/ap-pool"),
                  dict(kind="network", name="ap-net", forward_mode="nat", ipv4=dict(address="192.168.201.1", prefix=24))]
    return resources


def test_check_apply_check_apply(capsys, test_conn):
    resources = lab()
    runs = []
    for check in (True, False, True, False):
        rc, result = run(capsys, resources, parallel=4, _ansible_check_mode=check, _ansible_diff=True)
        assert rc == 0, result
        runs.append(result)
    assert [r["changed"] for r in runs] == [True, True, False, False]
    for result in runs[:2]:
        assert [r["changed"] for r in result["results"]] == [True] * len(resources)
    for result in runs[2:]:
        assert [r["changed"] for r in result["results"]] == [False] * len(resources)
        assert all(r["actions"] == [] for r in result["results"])
    # check mode predicted the items that need items of this task, without warnings
    predicted = runs[0]
    # (ansible-core keeps warnings of earlier in-process module runs in the same process: look at ours only)
    assert not [w for w in predicted.get("warnings", ()) if "resources[" in json.dumps(w)]
    assert predicted["results"][0]["actions"] == ["define VM ap-vm0"]
    assert any("storage pool 'ap-pool' does not exist" in a for a in predicted["results"][0]["assumptions"])
    assert [r["label"] for r in predicted["results"]][:1] == ["resources[0] (VM 'ap-vm0')"]
    # one diff per item, each with its own header
    assert len(predicted["diff"]) == len(resources)
    assert predicted["diff"][-1]["before_header"] == "network ap-net"
    assert predicted["diff"][3]["after"]["backing_volume"] == "base.qcow2"
    # the objects are there (libvirt is the oracle)
    pool = test_conn.storagePoolLookupByName("ap-pool")
    assert sorted(pool.listVolumes()) == ["ap-vm0.qcow2", "ap-vm1.qcow2", "ap-vm2.qcow2", "base.qcow2"]
    assert "<backingStore" in pool.storageVolLookupByName("ap-vm1.qcow2").XMLDesc(0)
    assert sorted(d.name() for d in test_conn.listAllDomains(0) if d.name().startswith("ap-")) == ["ap-vm0", "ap-vm1", "ap-vm2"]
    assert test_conn.networkLookupByName("ap-net").isActive()


def test_a_bad_item_among_good_ones(capsys, test_conn):
    resources = lab(vms=2)
    resources[1]["disks"][0]["volume"] = "ap-missing.qcow2"  # VM 1 uses a volume nobody makes
    rc, result = run(capsys, resources)
    assert rc == 1 and result["failed"] is True
    bad = result["results"][1]
    assert bad["failed"] and bad["changed"] is False and "ap-missing.qcow2" in bad["msg"]
    assert result["msg"].startswith("1 of %d resources failed: resources[1] (VM 'ap-vm1'): " % len(resources))
    assert [r["failed"] for r in result["results"]].count(True) == 1
    assert sorted(d.name() for d in test_conn.listAllDomains(0) if d.name().startswith("ap-")) == ["ap-vm0"]
    assert "Traceback" not in json.dumps(result)


def test_invalid_items_make_nothing(capsys, test_conn):
    resources = lab(vms=1) + [dict(kind="volume", pool="ap-pool", name="x", capacity="1M", colour="red")]
    rc, result = run(capsys, resources)
    assert rc == 1 and "resources[5] (volume 'x' in pool 'ap-pool'): unsupported option colour" in result["msg"]
    assert "ap-pool" not in test_conn.listStoragePools() + test_conn.listDefinedStoragePools()


def test_secrets_are_masked(capsys, test_conn, tmp_path):
    seed = str(tmp_path / "seed.iso")
    resources = [dict(kind="cloudinit", path=seed, hostname="h", password="Seed-Secret-1"),
                 dict(kind="volume", pool="default-pool", name="ap-src.img",
                      source="http://user:Url-Secret-2@127.0.0.1:9/none.img", timeout=1)]
    rc, result = run(capsys, resources)
    text = json.dumps(result)
    assert "Seed-Secret-1" not in text and "Url-Secret-2" not in text
    assert result["results"][0]["changed"] is True  # the seed on a path needs no libvirt and was written
    assert result["results"][1]["failed"] is True  # nothing listens there: the download fails
    assert rc == 1


def test_removal_in_one_task_goes_users_first(capsys, test_conn):
    resources = lab(vms=0)
    resources.append(dict(kind="volume", pool="ap-pool", name="ap-data.qcow2", backing_volume="base.qcow2"))
    assert run(capsys, resources)[0] == 0
    rc, result = run(capsys, [dict(r, state="absent") for r in resources])
    assert rc == 0, result
    assert all(r["changed"] for r in result["results"])
    assert "ap-pool" not in test_conn.listStoragePools() + test_conn.listDefinedStoragePools()
    assert "ap-net" not in test_conn.listNetworks() + test_conn.listDefinedNetworks()
    rc, again = run(capsys, [dict(r, state="absent") for r in resources])
    assert rc == 0 and again["changed"] is False


def test_removal_of_vms_whose_items_name_no_storage_goes_first(capsys, test_conn):
    resources = lab(vms=2)
    assert run(capsys, resources)[0] == 0
    # the pool, network and volumes first in the list; the VMs name neither their disks nor their network
    removal = [dict(r, state="absent") for r in resources if r["kind"] != "vm"]
    removal += [dict(kind="vm", name=r["name"], state="absent") for r in resources if r["kind"] == "vm"]
    rc, predicted = run(capsys, removal, _ansible_check_mode=True)
    assert rc == 0, predicted
    # the pool's volumes and the network's VMs are assumptions of those items, no warnings: the VMs go first
    # (ansible-core keeps warnings of earlier in-process module runs in the same process: look at ours only)
    assert not [w for w in predicted.get("warnings", ()) if "resources[" in json.dumps(w)]
    assert all(r["changed"] for r in predicted["results"])
    assert "still holds 3 volume(s)" in predicted["results"][3]["assumptions"][0]
    assert "ap-net" in test_conn.listNetworks()  # check mode removed nothing
    # (the test driver cannot undefine with flags: the real removal is in the integration target apply)


def test_a_linked_clone_of_a_base_the_task_makes_is_predicted_as_made(capsys, test_conn):
    resources = [dict(kind="vm", name="ap-vm0", state="present", memory="64MiB",
                      disks=[dict(pool="ap-pool", volume="ap-vm0.qcow2", backing_volume="base.qcow2")]),
                 dict(kind="volume", pool="ap-pool", name="base.qcow2", capacity="4M"),
                 dict(kind="pool", name="ap-pool", type="dir", path="/ap-pool")]
    rc, predicted = run(capsys, resources, _ansible_check_mode=True)
    assert rc == 0, predicted
    rc, applied = run(capsys, resources)
    assert rc == 0, applied
    assert "create qcow2 volume ap-vm0.qcow2 in pool ap-pool on backing volume base.qcow2" in applied["results"][0]["actions"]
    assert predicted["results"][0]["actions"] == applied["results"][0]["actions"]


def test_empty_list_is_no_change(capsys, test_conn):
    rc, result = run(capsys, [])
    assert rc == 0 and result["changed"] is False and result["results"] == []


def test_check_mode_warns_of_an_assumption_no_item_covers(capsys, test_conn, monkeypatch):
    said = []
    monkeypatch.setattr(apply.AnsibleModule, "warn", lambda self, text: said.append(text))
    rc, result = run(capsys, [dict(kind="volume", pool="ap-nowhere", name="v", capacity="1M")], _ansible_check_mode=True)
    assert rc == 0 and result["changed"] is True
    assert len(said) == 1 and said[0].startswith("resources[0] (volume 'v' in pool 'ap-nowhere'): check mode: storage pool")
