# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Who uses what (_usage), against libvirt's test driver: VMs running, stopped and transient, their
disks, CD-ROMs, NVRAM, kernels, snapshots, backing chains and networks; and the guard."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import (
    Usage,
    describe,
    guard,
    guard_replace,
    in_use_error,
    usage,
)

POOL = "default-pool"
PREFIX = "use-"


def domain_xml(name, devices="", os_extra="", uuid=None):
    return ("<domain type='test'><name>%s</name>%s<memory>65536</memory><os><type>hvm</type>%s</os>"
            "<devices>%s</devices></domain>" % (name, "<uuid>%s</uuid>" % uuid if uuid else "", os_extra, devices))


def disk(path, target="vda", device="disk"):
    return ("<disk type='file' device='%s'><source file='%s'/><target dev='%s' bus='%s'/></disk>"
            % (device, path, target, "sata" if device == "cdrom" else "virtio"))


def volume_disk(volume, target="vda", pool=POOL):
    return ("<disk type='volume' device='disk'><source pool='%s' volume='%s'/><target dev='%s' bus='virtio'/></disk>"
            % (pool, volume, target))


def nic(network="default", mac="52:54:00:aa:bb:01", kind="network"):
    source = "network='%s'" % network if kind == "network" else "bridge='%s'" % network
    return "<interface type='%s'><mac address='%s'/><source %s/></interface>" % (kind, mac, source)


def volume_xml(name, backing=None):
    text = "<volume><name>%s</name><capacity>1048576</capacity><target><format type='qcow2'/></target>" % name
    if backing:
        text += "<backingStore><path>%s</path><format type='qcow2'/></backingStore>" % backing
    return text + "</volume>"


@pytest.fixture
def lab(test_conn):
    """Define/start domains and make volumes with the ``use-`` prefix; everything goes again."""

    class Lab:
        conn = test_conn

        @staticmethod
        def define(name, devices="", os_extra="", start=False):
            dom = test_conn.defineXML(domain_xml(PREFIX + name, devices, os_extra))
            if start:
                dom.create()
            return dom

        @staticmethod
        def transient(name, devices=""):
            return test_conn.createXML(domain_xml(PREFIX + name, devices), 0)

        @staticmethod
        def volume(name, backing=None):
            vol = test_conn.storagePoolLookupByName(POOL).createXML(volume_xml(PREFIX + name, backing), 0)
            return vol.path()

    def clean():
        for dom in test_conn.listAllDomains(0):
            if dom.name().startswith(PREFIX):
                persistent = dom.isPersistent()
                if dom.isActive():
                    dom.destroy()
                if persistent:
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        for vol in test_conn.storagePoolLookupByName(POOL).listAllVolumes(0):
            if vol.name().startswith(PREFIX):
                vol.delete(0)

    clean()
    yield Lab
    clean()


def ctx_of(conn, check=False, warned=None):
    return Context(conn=conn, params={}, check_mode=check, warn=(warned.append if warned is not None else None))


def roles(users):
    return sorted((u["vm"], u["role"], u.get("target"), u.get("snapshot"), u.get("via")) for u in users)


# --- what counts as a use -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["stopped", "running", "transient"])
def test_disk_of_a_vm_in_every_state(lab, kind):
    devices = disk("/srv/a.qcow2")
    if kind == "transient":
        lab.transient("t", devices)
    else:
        lab.define("t", devices, start=kind == "running")
    users, dependants = Usage(lab.conn).users_of(["/srv/a.qcow2"])
    assert dependants == []
    assert [(u["vm"], u["role"], u["target"], u["state"], u["persistent"]) for u in users] == [
        (PREFIX + "t", "disk", "vda", "running" if kind != "stopped" else "stopped", kind != "transient")]


def test_paths_are_compared_normalised(lab):
    lab.define("n", disk("/srv//images/./a.qcow2"))
    assert len(Usage(lab.conn).users_of(["/srv/images/a.qcow2"])[0]) == 1
    assert Usage(lab.conn).users_of(["/srv/images/b.qcow2"]) == ([], [])


def test_cdrom_seed_and_volume_disk(lab):
    path = lab.volume("seed.iso")
    lab.define("c", volume_disk(PREFIX + "seed.iso", "vdb") + disk("/srv/other-seed.iso", "sda", "cdrom"))
    answer = Usage(lab.conn)
    by_volume = answer.users_of(volumes=[(POOL, PREFIX + "seed.iso")])[0]
    by_path = answer.users_of([path])[0]
    assert roles(by_volume) == roles(by_path) == [(PREFIX + "c", "disk", "vdb", None, None)]
    assert roles(answer.users_of(["/srv/other-seed.iso"])[0]) == [(PREFIX + "c", "cdrom", "sda", None, None)]
    # every volume of a pool, as when the pool is purged
    assert roles(answer.uses_of(pools=[POOL])) == [(PREFIX + "c", "disk", "vdb", None, None)]


@pytest.mark.parametrize("tag", ["nvram", "kernel", "initrd", "dtb", "loader"])
def test_files_of_os(lab, tag):
    os_extra = "<%s>/var/lib/vm/%s.bin</%s>" % (tag, tag, tag)
    if tag == "nvram":
        os_extra = "<loader readonly='yes' type='pflash'>/usr/share/OVMF/CODE.fd</loader>" + os_extra
    lab.define("os", os_extra=os_extra)
    users = Usage(lab.conn).users_of(["/var/lib/vm/%s.bin" % tag])[0]
    assert roles(users) == [(PREFIX + "os", tag, None, None, None)]
    assert describe(users) == "VM %sos (stopped: %s)" % (PREFIX, tag)


def test_running_vm_with_a_changed_saved_definition_counts_both(lab):
    dom = lab.define("both", disk("/srv/live.qcow2"), start=True)
    lab.conn.defineXML(domain_xml(PREFIX + "both", disk("/srv/live.qcow2") + disk("/srv/next.qcow2", "vdb"),
                                  uuid=dom.UUIDString()))
    assert dom.isActive()
    answer = Usage(lab.conn)
    assert roles(answer.users_of(["/srv/next.qcow2"])[0]) == [(PREFIX + "both", "disk", "vdb", None, None)]
    assert len(answer.users_of(["/srv/live.qcow2"])[0]) == 1  # the same use from both definitions: once


def test_live_backing_chain_of_a_running_vm(lab):
    devices = ("<disk type='file' device='disk'><source file='/srv/top.qcow2'/><backingStore type='file'>"
               "<format type='qcow2'/><source file='/srv/base.qcow2'/><backingStore/></backingStore>"
               "<target dev='vda' bus='virtio'/></disk>")
    lab.define("chain", devices, start=True)
    users = Usage(lab.conn).users_of(["/srv/base.qcow2"])[0]
    assert roles(users) == [(PREFIX + "chain", "backing file", "vda", None, None)]
    assert describe(users) == "VM %schain (running: backing file of vda)" % PREFIX


def _external_snapshot(dom, name, overlay, memory=None):
    text = ("<domainsnapshot><name>%s</name><state>%s</state><creationTime>1</creationTime>"
            "<memory snapshot='%s'%s/><disks><disk name='vda' snapshot='external' type='file'><source file='%s'/>"
            "</disk></disks>%s</domainsnapshot>" % (
                name, "running" if memory else "shutoff", "external" if memory else "no", " file='%s'" % memory if memory else "", overlay,
                dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))
    return dom.snapshotCreateXML(text, libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE)


def test_snapshot_overlays_memory_and_saved_definitions(lab):
    dom = lab.define("snap", disk("/srv/base.qcow2"))
    _external_snapshot(dom, "s1", "/srv/base.s1", memory="/srv/s1.mem")
    # the VM goes on with another disk: its snapshot still needs the files it names
    lab.conn.defineXML(domain_xml(PREFIX + "snap", disk("/srv/new.qcow2"), uuid=dom.UUIDString()))
    answer = Usage(lab.conn)
    assert roles(answer.users_of(["/srv/base.s1"])[0]) == [(PREFIX + "snap", "overlay", "vda", "s1", None)]
    assert roles(answer.users_of(["/srv/s1.mem"])[0]) == [(PREFIX + "snap", "memory state", None, "s1", None)]
    saved = answer.users_of(["/srv/base.qcow2"])[0]
    assert roles(saved) == [(PREFIX + "snap", "disk", "vda", "s1", None)]
    assert describe(saved) == "VM %ssnap (stopped: disk vda in snapshot s1)" % PREFIX


def test_backing_dependants_and_their_users(lab):
    base = lab.volume("base.qcow2")
    mid = lab.volume("mid.qcow2", backing=base)
    top = lab.volume("top.qcow2", backing=mid)
    lab.volume("other.qcow2", backing=top)
    lab.define("leaf", volume_disk(PREFIX + "top.qcow2"))
    lab.define("direct", disk(base, "vdb"), start=True)
    users, dependants = Usage(lab.conn).users_of([base], [(POOL, PREFIX + "base.qcow2")])
    assert dependants == ["%s/%s%s" % (POOL, PREFIX, n) for n in ("mid.qcow2", "top.qcow2", "other.qcow2")]
    assert roles(users) == [(PREFIX + "direct", "disk", "vdb", None, None),
                            (PREFIX + "leaf", "disk", "vda", None, "%s/%stop.qcow2" % (POOL, PREFIX))]
    assert describe(users) == ("VM %sdirect (running: disk vdb), VM %sleaf (stopped: disk vda through %s/%stop.qcow2)"
                               % (PREFIX, PREFIX, POOL, PREFIX))
    # the leaf's own volume: no dependants but 'other', and excluded volumes do not count
    assert Usage(lab.conn).users_of([top], exclude_volumes=["%s/%sother.qcow2" % (POOL, PREFIX)])[1] == []


def test_relative_backing_file_is_resolved(lab):
    base = lab.volume("rbase.qcow2")
    lab.volume("rtop.qcow2", backing=PREFIX + "rbase.qcow2")
    assert Usage(lab.conn).users_of([base])[1] == ["%s/%srtop.qcow2" % (POOL, PREFIX)]


def test_dependants_of_a_directory_leave_its_own_volumes_out(lab):
    base = lab.volume("dbase.qcow2")
    lab.volume("dtop.qcow2", backing=base)
    answer = Usage(lab.conn)
    # the whole pool directory: its volumes are deleted together, so none of them is a dependant
    assert answer.users_of(dirs=["/" + POOL], pools=[POOL])[1] == []
    assert answer.users_of([base])[1] == ["%s/%sdtop.qcow2" % (POOL, PREFIX)]


def test_exclude_vms(lab):
    lab.define("me", disk("/srv/shared.img"))
    lab.define("you", disk("/srv/shared.img"))
    users = Usage(lab.conn).users_of(["/srv/shared.img"], exclude_vms=[PREFIX + "me"])[0]
    assert [u["vm"] for u in users] == [PREFIX + "you"]


def test_network_users_running_stopped_transient_and_bridge(lab):
    lab.define("run", nic(mac="52:54:00:aa:bb:01"), start=True)
    lab.define("off", nic(mac="52:54:00:aa:bb:02"))
    lab.transient("tr", nic(mac="52:54:00:aa:bb:03"))
    lab.define("br", nic("virbr0", "52:54:00:aa:bb:04", kind="bridge"))
    lab.define("other", nic("elsewhere", "52:54:00:aa:bb:05"))
    answer = Usage(lab.conn)

    def mine(users):
        return sorted((u["vm"], u["state"], u["mac"]) for u in users if u["vm"].startswith(PREFIX))

    assert mine(answer.network_users("default")) == [
        (PREFIX + "off", "stopped", "52:54:00:aa:bb:02"),
        (PREFIX + "run", "running", "52:54:00:aa:bb:01"),
        (PREFIX + "tr", "running", "52:54:00:aa:bb:03")]
    assert mine(answer.network_users("default", bridge="virbr0"))[0] == (PREFIX + "br", "stopped", "52:54:00:aa:bb:04")
    assert mine(answer.network_users("default", exclude_vms=[PREFIX + "run", PREFIX + "tr", PREFIX + "off"])) == []


class CountingConn:
    """A connection that counts what is read through it."""

    def __init__(self, conn):
        self.conn = conn
        self.calls = []

    def listAllDomains(self, flags):
        self.calls.append("listAllDomains")
        return [CountingDomain(d, self.calls) for d in self.conn.listAllDomains(flags)]

    def __getattr__(self, name):
        return getattr(self.conn, name)


class CountingDomain:
    def __init__(self, dom, calls):
        self.dom = dom
        self.calls = calls

    def XMLDesc(self, flags):
        self.calls.append("XMLDesc")
        return self.dom.XMLDesc(flags)

    def __getattr__(self, name):
        return getattr(self.dom, name)


def test_every_domain_is_read_once_per_run(lab):
    lab.define("once", disk("/srv/once.img") + nic())
    counting = CountingConn(lab.conn)
    ctx = Context(conn=counting, params={})
    usage(ctx).users_of(["/srv/once.img"])
    first = list(counting.calls)
    usage(ctx).users_of(["/srv/other.img"])
    usage(ctx).network_users("default")
    assert counting.calls == first and first.count("listAllDomains") == 1
    assert first.count("XMLDesc") == len(lab.conn.listAllDomains(0)) + 1  # the running 'test' VM: live and saved


# --- the refusal and the guard --------------------------------------------------------------------


def test_in_use_error_names_the_vms_and_carries_them():
    assert in_use_error("volume 'x'", [], []) is None
    users = [dict(vm="vm%d" % i, state="stopped", active=False, persistent=True, role="disk", target="vda",
                  path="/x", pool=None, volume=None, snapshot=None) for i in range(10)]
    error = in_use_error("volume 'x'", users, ["p/a", "p/b"], advice="remove them", action="delete it")
    assert error.msg.startswith("volume 'x' is used by VM vm0 (stopped: disk vda), ")
    assert "and 2 more VM(s) and is the backing file of volume(s) p/a, p/b: remove them, or set force: true to " \
           "delete it anyway" in error.msg
    assert error.details["dependants"] == ["p/a", "p/b"] and len(error.details["used_by"]) == 10
    assert "pool" not in error.details["used_by"][0]  # None values are left out


def test_guard_real_run_check_mode_and_force():
    error = in_use_error("network 'n'", [dict(vm="a", state="running", mac="m")], advice="stop a", action="stop it")
    with pytest.raises(ConflictError):
        guard(ctx_of(None), error, force=False)
    warned = []
    ctx = ctx_of(None, check=True, warned=warned)
    guard(ctx, error, force=False)
    assert ctx.assumptions == warned == ["check mode: %s; assumed to be done by an earlier task (a real run fails if "
                                         "it is not)" % error.msg]
    forced = []
    guard(ctx_of(None), error, force=True, warn=forced.append)
    assert forced == ["network 'n' is used by VM a (running: interface m); done anyway (force: true)"]
    guard(ctx_of(None), None, force=False)  # nothing in use


def test_guard_replace(lab, tmp_path):
    own = tmp_path / "disk.qcow2"
    own.write_text("x")
    other = tmp_path / "other.qcow2"
    other.write_text("y")
    lab.define("rep", disk(str(other)))
    ctx = ctx_of(lab.conn)
    guard_replace(ctx, [str(tmp_path / "new.qcow2")], [str(own)], "VM 'v'")  # nothing there yet
    for check in (False, True):
        with pytest.raises(ConflictError, match="is a file of VM 'v', which is what is read"):
            guard_replace(ctx_of(lab.conn, check), [str(own)], [str(tmp_path / "." / "disk.qcow2")], "VM 'v'")
    with pytest.raises(ConflictError) as info:
        guard_replace(ctx_of(lab.conn), [str(other)], [str(own)], "VM 'v'")
    assert info.value.msg == ("dest: %s is used by VM %srep (stopped: disk vda): choose another dest (force does not "
                              "replace a file in use)" % (other, PREFIX))
    warned = []
    guard_replace(ctx_of(lab.conn, True, warned), [str(other)], [str(own)], "VM 'v'")  # an earlier task may remove it
    assert len(warned) == 1 and warned[0].startswith("check mode: dest: %s is used by VM" % other)


def test_usage_follows_the_context(lab):
    ctx = Context(conn=lab.conn, params={})
    assert usage(ctx) is usage(ctx)
    assert usage(Context(conn=lab.conn, params={})) is not usage(ctx)


def test_xml_of_a_vm_gone_meanwhile_is_skipped(lab):
    class Gone:
        def __getattr__(self, _name):
            def call(*_args):
                raise libvirt.libvirtError("Domain not found")
            return call

    class Conn(CountingConn):
        def listAllDomains(self, flags):
            return [Gone()] + self.conn.listAllDomains(flags)

    lab.define("stay", disk("/srv/stay.img"))
    assert [u["vm"] for u in Usage(Conn(lab.conn)).users_of(["/srv/stay.img"])[0]] == [PREFIX + "stay"]
