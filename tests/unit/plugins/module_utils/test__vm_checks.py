# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The checks made before a VM definition is written or started (``_vm_checks``), one table per check.

The test driver lists no machine types and has no domain capabilities, so those two checks get a
capabilities document and a connection stand-in of the shape QEMU's driver gives (libvirt 9.0).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import checks as _vm_checks

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context

MIB = 1024 * 1024
HOST = dict(cpus=4, memory=2048 * MIB)


def rows(table):
    return [pytest.param(*row[1:], id=row[0]) for row in table]


def expect(call, error, message):
    """``call()`` passes when ``message`` is None, else raises ``error`` matching it."""
    if message is None:
        call()
        return
    with pytest.raises(error, match=message):
        call()


# ------------------------------------------------------------------------------- host limits ---

LIMITS = [
    ("fits", dict(memory=2048, max_memory=2048, vcpus=4, max_vcpus=4), None),
    ("memory", dict(memory=2049), r"memory: 2049 MiB is more than the host's memory \(2048 MiB\)"),
    ("max-memory", dict(memory=512, max_memory=4096), "max_memory: 4096 MiB is more than"),
    ("vcpus", dict(vcpus=5), "vcpus: 5 is more than the 4 CPUs of the host"),
    ("max-vcpus", dict(vcpus=1, max_vcpus=64), "max_vcpus: 64 is more than the 4 CPUs"),
    ("unspecified", dict(memory=None, vcpus=None), None),
]


@pytest.mark.parametrize("model, message", rows(LIMITS))
def test_host_limits(model, message):
    expect(lambda: _vm_checks.check_host_limits(HOST, model), InvalidInputError, message)


def _domain(memory="524288", vcpu="1", extra=""):
    return _xml.parse("<domain type='kvm'><name>x</name><memory>%s</memory><vcpu>%s</vcpu>%s<os><type>hvm</type></os>"
                      "</domain>" % (memory, vcpu, extra))


XML_LIMITS = [
    ("fits", _domain(), None),
    ("too-much", _domain(memory="104857000"), r"xml: memory: 102399 MiB is more than the host's memory"),
    ("unit", _domain(extra="<currentMemory unit='TiB'>99999</currentMemory>"), r"xml: memory: 104856551424 MiB is more"),
    ("vcpus", _domain(vcpu="4096"), "xml: vcpus: 4096 is more than the 4 CPUs"),
    ("hotplug", _domain(extra="<maxMemory slots='16' unit='TiB'>4</maxMemory>"), r"xml: <maxMemory>: 4194304 MiB is more"),
    ("hotplug-junk", _domain(extra="<maxMemory unit='KiB'>lots</maxMemory>"), "xml: <maxMemory>: 'lots' is not a size"),
]


@pytest.mark.parametrize("root, message", rows(XML_LIMITS))
def test_xml_limits(root, message):
    expect(lambda: _vm_checks.check_xml_limits(HOST, root), InvalidInputError, message)


# ----------------------------------------------------------------- machine type, CPU model ---

CAPS = _xml.parse("""<capabilities><host><cpu><arch>x86_64</arch></cpu></host>
<guest><os_type>hvm</os_type><arch name='x86_64'><wordsize>64</wordsize>
  <machine maxCpus='255'>pc-i440fx-7.2</machine><machine canonical='pc-i440fx-7.2' maxCpus='255'>pc</machine>
  <machine maxCpus='288'>pc-q35-7.2</machine><machine canonical='pc-q35-7.2' maxCpus='288'>q35</machine>
  <machine maxCpus='288'>pc-q35-6.2</machine>
  <domain type='qemu'/><domain type='kvm'><machine>pc-q35-kvm-only</machine></domain></arch></guest>
<guest><os_type>hvm</os_type><arch name='i686'><machine>isapc</machine><domain type='qemu'/></arch></guest>
</capabilities>""")

MACHINES = [
    ("alias", "q35", None, None),
    ("canonical", "pc-q35-7.2", None, None),
    ("older", "pc-q35-6.2", None, None),
    ("kvm-domain-list", "pc-q35-kvm-only", None, None),
    ("unknown", "foo", None,
     r"machine: 'foo' is not a machine type of this hypervisor for x86_64; it offers pc \(pc-i440fx-7.2\), q35 "
     r"\(pc-q35-7.2\) and 4 versioned ones"),
    ("other-arch", "isapc", None, "not a machine type of this hypervisor for x86_64"),
    ("asked-arch", "isapc", "i686", None),
    ("no-list", "anything", "aarch64", None),  # the driver lists none for that arch: libvirt decides
]


@pytest.mark.parametrize("machine, arch, message", rows(MACHINES))
def test_machine_types(machine, arch, message):
    expect(lambda: _vm_checks.check_machine(CAPS, machine, arch), InvalidInputError, message)


class _DomcapsConn(object):
    """getDomainCapabilities of a host whose KVM cannot provide Skylake-Server."""

    def __init__(self, fails=False):
        self.fails = fails

    def getDomainCapabilities(self, emulator, arch, machine, virt_type, flags):
        if self.fails:
            raise libvirt.libvirtError("this function is not supported by the connection driver")
        return ("<domainCapabilities><cpu><mode name='custom' supported='yes'>"
                "<model usable='yes' vendor='unknown'>qemu64</model><model usable='yes' vendor='Intel'>Haswell</model>"
                "<model usable='no' vendor='Intel'>Skylake-Server</model></mode></cpu></domainCapabilities>")


CPU_MODELS = [
    ("usable", dict(mode="custom", model="Haswell"), "kvm", False, None, None),
    ("unknown", dict(mode="custom", model="FooCPU"), "kvm", False, InvalidInputError,
     "cpu.model: 'FooCPU' is not a CPU model of this hypervisor \\(kvm, x86_64\\); it offers Haswell, qemu64"),
    ("not-usable-define", dict(mode="custom", model="Skylake-Server"), "kvm", False, None, None),
    ("not-usable-start", dict(mode="custom", model="Skylake-Server"), "kvm", True, ConflictError,
     "'Skylake-Server' is not usable on this host's CPU under KVM"),
    ("not-usable-tcg", dict(mode="custom", model="Skylake-Server"), "qemu", True, None, None),
    ("host-model", dict(mode="host-model", model=None), "kvm", True, None, None),
]


@pytest.mark.parametrize("cpu, virt_type, usable, error, message", rows(CPU_MODELS))
def test_cpu_models(cpu, virt_type, usable, error, message):
    expect(lambda: _vm_checks.check_cpu_model(_DomcapsConn(), cpu, "x86_64", "q35", virt_type, usable=usable), error, message)


def test_cpu_model_unchecked_without_domain_capabilities():
    _vm_checks.check_cpu_model(_DomcapsConn(fails=True), dict(mode="custom", model="FooCPU"), "x86_64", None, "kvm")


# -------------------------------------------------------------------------- one VM's disks ---

def _disk(target, path=None, readonly=False, **extra):
    return dict(dict(target=target, path=path, readonly=readonly), **extra)


DISK_FILES = [
    ("distinct", dict(disks=[_disk("vda", "/a"), _disk("vdb", "/b")]), None),
    ("same-writable-twice", dict(disks=[_disk("vda", "/a"), _disk("vdb", "/a")]),
     r"disks\[vdb\]: /a is also disks\[vda\] of this VM"),
    ("writable-and-readonly", dict(disks=[_disk("vda", "/a", True), _disk("vdb", "/a")]), r"disks\[vdb\]: /a is also"),
    ("readonly-twice", dict(disks=[_disk("vda", "/a", True), _disk("vdb", "/a", True)]), None),
    ("disk-and-cdrom", dict(disks=[_disk("vda", "/a.iso")], cdroms=[_disk("sda", "/a.iso")]), r"cdroms\[sda\]: /a.iso"),
    ("cdroms-share-media", dict(cdroms=[_disk("sda", "/a.iso"), _disk("sdb", "/a.iso")]), None),
    ("pool-volume-twice", dict(disks=[_disk("vda", pool="p", volume="v"), _disk("vdb", pool="p", volume="v")]),
     "volume v of pool p is also"),
    ("empty-cdroms", dict(cdroms=[_disk("sda"), _disk("sdb")]), None),
]


@pytest.mark.parametrize("model, message", rows(DISK_FILES))
def test_disk_files(model, message):
    expect(lambda: _vm_checks.check_disk_files(model), InvalidInputError, message)


# ------------------------------------------------------------------------------------ MACs ---

def _nic(mac, network="default", kind="network"):
    return dict(type=kind, source=network, mac=mac)


MACS = [
    # the 'test' domain of the test driver has aa:bb:cc:dd:ee:ff on network 'default'
    ("unique", [_nic("52:54:00:00:00:01"), _nic("52:54:00:00:00:02")], {"52:54:00:00:00:01"}, None, None),
    ("zero", [_nic("00:00:00:00:00:00")], set(), InvalidInputError, r"interfaces\[0\].mac: '00:00:00:00:00:00' is all zeros"),
    ("multicast", [_nic("01:00:5e:00:00:01")], set(), InvalidInputError, "is a multicast address"),
    ("broadcast", [_nic("ff:ff:ff:ff:ff:ff")], set(), InvalidInputError, "is a multicast address"),
    ("twice", [_nic("52:54:00:00:00:01"), _nic("52:54:00:00:00:01", "other")], set(), InvalidInputError,
     r"interfaces\[1\].mac: 52:54:00:00:00:01 is also the MAC of interfaces\[0\]"),
    ("other-vm-same-network", [_nic("aa:bb:cc:dd:ee:ff")], {"aa:bb:cc:dd:ee:ff"}, ConflictError,
     r"interfaces\[0\].mac: aa:bb:cc:dd:ee:ff is already the MAC of VM 'test' on network 'default'"),
    ("other-vm-upper-case", [_nic("aa:bb:cc:dd:ee:ff")], {"aa:bb:cc:dd:ee:ff"}, ConflictError, "VM 'test'"),
    ("other-vm-other-network", [_nic("aa:bb:cc:dd:ee:ff", "isolated")], {"aa:bb:cc:dd:ee:ff"}, None, None),
    ("other-vm-bridge", [_nic("aa:bb:cc:dd:ee:ff", "br0", "bridge")], {"aa:bb:cc:dd:ee:ff"}, None, None),
    ("kept-mac-not-looked-up", [_nic("aa:bb:cc:dd:ee:ff")], set(), None, None),
]


@pytest.mark.parametrize("nics, new, error, message", rows(MACS))
def test_macs(test_conn, nics, new, error, message):
    expect(lambda: _vm_checks.check_macs(test_conn, nics, new, skip=("u-vmc",)), error, message)


def test_macs_of_the_vm_itself_are_no_conflict(test_conn):
    _vm_checks.check_macs(test_conn, [_nic("aa:bb:cc:dd:ee:ff")], {"aa:bb:cc:dd:ee:ff"}, skip=("test",))


# ------------------------------------------------------------------------- before a start ---

def _startable(kernel=None, disk=None, cdrom=None, hostdev=False, network=None, nvram_template=None):
    os_part = "<type>hvm</type>"
    if kernel:
        os_part += "<kernel>%s</kernel>" % kernel
    if nvram_template:
        os_part += "<nvram template='%s'/>" % nvram_template
    devices = ""
    if disk:
        devices += "<disk type='file' device='disk'><source file='%s'/><target dev='vda' bus='virtio'/></disk>" % disk
    if cdrom:
        devices += "<disk type='file' device='cdrom'><source file='%s'/><target dev='sda' bus='sata'/></disk>" % cdrom
    devices += "<disk type='file' device='cdrom'><target dev='sdb' bus='sata'/></disk>"  # empty drive: nothing to check
    if hostdev:
        devices += ("<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x01' "
                    "slot='0x00' function='0x0'/></source></hostdev>")
    if network:
        devices += "<interface type='network'><source network='%s'/></interface>" % network
    return _xml.parse("<domain type='test'><name>u-vmc</name><memory>65536</memory><os>%s</os><devices>%s</devices></domain>"
                      % (os_part, devices))


@pytest.fixture
def inactive_net(test_conn):
    net = test_conn.networkDefineXML("<network><name>u-vmc-off</name><bridge name='uvmcoff0'/></network>")
    yield "u-vmc-off"
    net.undefine()


STARTS = [
    # given, error, message, assumed (check mode: a warning, since an earlier task could provide it)
    ("all-there", dict(kernel="{tmp}/vmlinuz", disk="{tmp}/disk.img", cdrom="{tmp}/disk.img"), None, None, False),
    ("kernel", dict(kernel="/nonexistent/vmlinuz"), NotFoundError,
     "kernel: /nonexistent/vmlinuz does not exist on the hypervisor, so VM 'u-vmc' could not start", True),
    ("disk", dict(disk="/nonexistent/disk.img"), NotFoundError, r"disks\[vda\]: /nonexistent/disk.img does not exist", True),
    ("cdrom", dict(cdrom="/nonexistent/install.iso"), NotFoundError, r"cdroms\[sda\]: /nonexistent/install.iso", True),
    ("nvram-template", dict(nvram_template="/nonexistent/VARS.fd"), NotFoundError, "nvram_template: /nonexistent/VARS.fd",
     True),
    ("made-by-the-plan", dict(disk="/nonexistent/new.qcow2"), None, None, False),
    ("pool-volume", dict(disk="/default-pool/u-vmc-vda.img"), None, None, False),
    ("hostdev", dict(hostdev=True), NotFoundError, r"hostdevs: the host has no PCI device 0000:01:00.0 \(pci_0000_01_00_0\)",
     False),
    ("active-network", dict(network="default"), None, None, False),
    ("inactive-network", dict(network="u-vmc-off"), ConflictError,
     r"interfaces\[0\]: libvirt network 'u-vmc-off' is not active, so VM 'u-vmc' could not start", True),
]


@pytest.mark.parametrize("check", [False, True], ids=["apply", "check"])
@pytest.mark.parametrize("given, error, message, assumed", rows(STARTS))
def test_startable(test_conn, tmp_path, inactive_net, given, error, message, assumed, check):
    (tmp_path / "vmlinuz").write_bytes(b"kernel")
    (tmp_path / "disk.img").write_bytes(b"disk")
    vol = test_conn.storagePoolLookupByName("default-pool").createXML(
        "<volume><name>u-vmc-vda.img</name><capacity>1024</capacity></volume>", 0)
    try:
        root = _startable(**dict((k, v.format(tmp=tmp_path) if isinstance(v, str) else v) for k, v in given.items()))
        ctx = Context(conn=test_conn, check_mode=check, uri="test:///default")
        if error is None or (check and assumed):
            _vm_checks.check_startable(ctx, root, skip_paths={"/nonexistent/new.qcow2"})
            assert [w.startswith("check mode: ") for w in ctx.warnings] == ([True] if error else [])
        else:
            with pytest.raises(error, match=message):
                _vm_checks.check_startable(ctx, root)
    finally:
        vol.delete(0)


class _CpuConn(_DomcapsConn):
    """The test driver for everything but the domain capabilities."""

    def __init__(self, conn):
        super(_CpuConn, self).__init__()
        self._conn = conn

    def __getattr__(self, name):
        return getattr(self._conn, name)


@pytest.mark.parametrize("check, error", [(None, ConflictError), ("partial", ConflictError), ("full", ConflictError),
                                          ("none", None)])
def test_startable_cpu_model_unless_libvirt_does_not_check_it(test_conn, check, error):
    """Seen in the lab: a KVM domain with libvirt's default CPU (qemu64, check='none') runs although the
    domain capabilities call qemu64 not usable; with check='partial' the same start fails ("Host CPU does
    not provide required features")."""
    root = _xml.parse("<domain type='kvm'><name>u-vmc</name><memory>65536</memory><os><type arch='x86_64'>hvm</type></os>"
                      "<cpu mode='custom' match='exact'%s><model fallback='forbid'>Skylake-Server</model></cpu></domain>"
                      % (" check='%s'" % check if check else ""))
    ctx = Context(conn=_CpuConn(test_conn), uri="test:///default")
    expect(lambda: _vm_checks.check_startable(ctx, root), error,
           error and "'Skylake-Server' is not usable on this host's CPU under KVM")


def test_remote_files_of_no_pool_are_not_checked(test_conn):
    ctx = Context(conn=test_conn, uri="qemu+ssh://kvm1/system")
    _vm_checks.check_startable(ctx, _startable(kernel="/nonexistent/vmlinuz"))
    assert _vm_checks.file_exists(test_conn, "/nonexistent/vmlinuz", local=False) is None
