# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""module_utils/_inventory reads in bulk: which libvirt calls a listing makes (counted on real test driver
connections), and that the bulk path and the lean reading give the facts the full ones give."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import Counter

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._cluster import inventory as _inventory
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection, libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.tests.unit.plugins.inventory.nodes import domain_element

OPTIONS = dict(ip_source="lease")
#: what a domain object answers from what it holds, without asking libvirtd
LOCAL = ("UUIDString", "name", "ID")


def fleet(count):
    """``count`` VMs: running ones with a NIC and a pool volume as disk, stopped and paused ones."""
    vms = []
    for n in range(count):
        state = ("running", "stopped", "paused")[n % 3]
        vms.append(dict(name="vm%02d" % n, state=state, memory=64, tags=["t%d" % (n % 2)], metadata=dict(n=str(n)),
                        interfaces=[dict(network="default", mac="52:54:00:00:10:%02x" % n)],
                        disks=[dict(path="/var/lib/virtops-test/default/vm%02d.qcow2" % n, format="qcow2"),
                               dict(path="/srv/shared.iso", format="raw")]))
    return vms


class Counting(object):
    """A libvirt object (connection or domain) that counts the calls made through it, by method name."""

    def __init__(self, real, calls, kind):
        self._real, self._calls, self._kind = real, calls, kind

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self._calls[(self._kind, name)] += 1
            return self._wrap(attr(*args, **kwargs))
        return call

    def _wrap(self, value):
        if isinstance(value, libvirt.virDomain):
            return Counting(value, self._calls, "domain")
        if isinstance(value, list):
            return [self._wrap(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self._wrap(v) for v in value)
        return value


def counting_connection(calls):
    class CountingConnection(Connection):
        def open(self):
            return Counting(super(CountingConnection, self).open(), calls, "connection")
    return CountingConnection


def listing_calls(make_node, count):
    uri = make_node("kvm%d" % count, domains=fleet(count),
                    volumes={"default": ["vm%02d.qcow2" % n for n in range(count)]})
    calls = Counter()
    result = _inventory.list_hypervisor(uri, OPTIONS, name="kvm", connection_class=counting_connection(calls))
    assert len(result["vms"]) == count
    return calls, result


def fixed_calls(calls):
    """The connection's calls but the disk path lookups."""
    return dict((name, n) for (kind, name), n in calls.items() if kind == "connection" and name != "storageVolLookupByPath")


def test_no_per_vm_round_trip_where_one_call_serves_all(make_node):
    small, _result = listing_calls(make_node, 3)
    big, result = listing_calls(make_node, 9)
    per_vm = dict((name, n) for (kind, name), n in big.items() if kind == "domain" and name not in LOCAL)
    active = sum(1 for vm in result["vms"] if vm["active"])  # running and paused
    # one definition per VM (nothing else has tags, disks, NICs), one address request per active VM
    assert per_vm.pop("XMLDesc") == 9
    assert per_vm.pop("interfaceAddresses") == active == 6
    assert per_vm == {}, "per-VM calls came back: %s" % per_vm
    # per connection: the same calls whatever the number of VMs, but for the disk paths (each asked once)
    assert fixed_calls(big) == fixed_calls(small)
    assert big[("connection", "getAllDomainStats")] == 1
    assert big[("connection", "listAllDomains")] == 2  # persistent, autostart
    assert big[("connection", "storageVolLookupByPath")] == 9 + 1  # /srv/shared.iso once for all VMs


def test_chosen_variables_without_the_definition_read_none(make_node):
    uri = make_node("kvm9", domains=fleet(9))
    calls = Counter()
    options = dict(OPTIONS, variables=["name", "state", "active"])
    result = _inventory.list_hypervisor(uri, options, name="kvm", connection_class=counting_connection(calls))
    assert sorted(vm["state"] for vm in result["vms"]) == ["paused"] * 3 + ["running"] * 3 + ["stopped"] * 3
    assert sorted(result["vms"][0]) == ["active", "name", "state", "uuid"]
    assert result["variables"] == ["active", "name", "state"]
    assert [name for (kind, name) in calls if kind == "domain" and name not in LOCAL] == []
    assert sorted(name for (kind, name) in calls if kind == "connection") == [
        "getAllDomainStats", "getHostname"]


class NoBulkStats(Connection):
    """A driver without getAllDomainStats."""

    def open(self):
        conn = super(NoBulkStats, self).open()

        def unsupported(*args, **kwargs):
            raise libvirt.libvirtError("this function is not supported by the connection driver: getAllDomainStats")
        conn.getAllDomainStats = unsupported
        return conn


def test_listing_without_bulk_stats_gives_the_same_facts(make_node):
    uri = make_node("kvm1", domains=fleet(6), volumes={"default": ["vm%02d.qcow2" % n for n in range(6)]})
    bulk = _inventory.list_hypervisor(uri, OPTIONS, name="kvm1")
    one_by_one = _inventory.list_hypervisor(uri, OPTIONS, name="kvm1", connection_class=NoBulkStats)
    for result in (bulk, one_by_one):
        del result["seconds"]
        for vm in result["vms"]:
            del vm["uuid"]  # each test:///FILE connection makes its own copy of the node, UUIDs made anew
    assert bulk == one_by_one
    assert [vm["state"] for vm in bulk["vms"]] == ["running", "stopped", "paused"] * 2
    assert [d["pool"] for d in bulk["vms"][0]["disks"]] == ["default", None]


def test_record_keys_are_the_documented_variables(make_node):
    uri = make_node("kvm1", domains=fleet(1))
    vm = _inventory.list_hypervisor(uri, OPTIONS, name="kvm1")["vms"][0]
    assert sorted(list(vm) + ["hypervisor", "uri"]) == sorted(_inventory.VARIABLES)


# --- the lean reading of a definition against the full one ------------------------------------


HAND_WRITTEN = [
    """<domain type='kvm'><name>a</name><uuid>8f1b2c3d-0000-4000-8000-000000000001</uuid>
         <title> A title </title><description>one
         two</description>
         <memory unit='GiB'>2</memory><currentMemory unit='MiB'>1536</currentMemory>
         <vcpu placement='static' current='2'>4</vcpu>
         <os firmware='efi'><type arch='aarch64' machine='virt'>hvm</type></os>
         <devices>
           <disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>
             <source pool='images' volume='a.qcow2'/><target dev='vda' bus='virtio'/></disk>
           <disk type='block' device='disk'><driver name='qemu' type='raw' cache='none'/>
             <source dev='/dev/vg0/a'/><target dev='sda' bus='scsi'/></disk>
           <disk type='file' device='cdrom'><source file='/srv/a.iso'/><target dev='sdb' bus='sata'/></disk>
           <disk type='file'><source file='/srv/b.img'/><target dev='vdb' bus='virtio'/></disk>
           <interface type='bridge'><mac address='52:54:00:AA:BB:CC'/><source bridge='br0'/><model type='e1000'/></interface>
           <interface type='direct'><source dev='eth0' mode='vepa'/></interface>
           <interface type='user'/>
         </devices></domain>""",
    """<domain type='qemu'><name>b</name><uuid>8f1b2c3d-0000-4000-8000-000000000002</uuid>
         <memory>65536</memory><vcpu>1</vcpu>
         <os><type>hvm</type><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader></os>
       </domain>""",
    """<domain type='kvm'><name>c</name><memory unit='KiB'>1048576</memory></domain>""",
]


def _built(**params):
    root = domain_element(**params)
    return _xml.to_string(root)


@pytest.mark.parametrize("text", HAND_WRITTEN + [
    _built(name="web1", state="running", memory=512, vcpus=2, tags=["web", "prod"], metadata=dict(role="frontend"),
           interfaces=[dict(network="default", mac="52:54:00:00:01:01"), dict(bridge="br0", model="e1000")],
           disks=[dict(path="/srv/web1.qcow2", format="qcow2"), dict(pool="default", volume="x.raw", format="raw")],
           cdroms=[dict(path="/srv/boot.iso")], title="Web", description="the front"),
    _built(name="tiny", state="stopped", memory=64),
])
def test_summary_is_the_models_subset(text):
    root = _xml.parse(text)
    model = _domain.model_from_xml(root)
    assert _domain.summary_from_xml(root) == dict((key, model[key]) for key in _domain.SUMMARY_KEYS)


def test_summary_refuses_what_the_model_refuses():
    root = _xml.parse("<network><name>n</name></network>")
    with pytest.raises(Exception, match="root element must be <domain>"):
        _domain.model_from_xml(root)
    with pytest.raises(Exception, match="root element must be <domain>"):
        _domain.summary_from_xml(root)
