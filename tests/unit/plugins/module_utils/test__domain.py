# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The VM model: validation, disk target names, model <-> XML round trips (checked by libvirt's
schema and by defining them in libvirt's test driver), and updates of existing definitions."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import values_equal
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.codec_write import apply_model, build_xml, metadata_element
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.model import model_from_xml
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.normalize import (
    assign_targets,
    default_cdrom_bus,
    normalize,
    with_creation_defaults,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError

VIRT_XML_VALIDATE = "/usr/bin/virt-xml-validate"
UUID = "8d1c1a57-3f5e-4f4b-9a59-6f1a5c1f0b42"
NS = _xml.VIRTOPS_NS
OTHER_NS = "http://example.com/app/1"

#: a definition as libvirt's qemu driver writes it: addresses, controllers, elements the model does not know
EXISTING = """
<domain type='kvm'>
  <name>old</name>
  <uuid>%(uuid)s</uuid>
  <metadata>
    <app:info xmlns:app="%(other)s"><app:owner>team-a</app:owner></app:info>
    <virtops:vm xmlns:virtops="%(ns)s">
      <virtops:tags><virtops:tag>old</virtops:tag></virtops:tags>
      <virtops:meta key="owner">alice</virtops:meta>
    </virtops:vm>
  </metadata>
  <memory unit='KiB'>2097152</memory>
  <currentMemory unit='KiB'>2097152</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features><acpi/><apic/><hyperv mode='custom'><relaxed state='on'/></hyperv></features>
  <cpu mode='host-passthrough' check='none' migratable='on'/>
  <clock offset='localtime'><timer name='hypervclock' present='yes'/></clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='writeback' io='threads'/>
      <source file='/var/lib/libvirt/images/old-vda.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/libvirt/images/old-data.img'/>
      <target dev='sdb' bus='sata'/>
      <address type='drive' controller='0' bus='0' target='0' unit='1'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/iso/old.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>
    <controller type='usb' index='0' model='qemu-xhci' ports='15'>
      <address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>
    </controller>
    <controller type='sata' index='0'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x1f' function='0x2'/>
    </controller>
    <controller type='pci' index='0' model='pcie-root'/>
    <controller type='virtio-serial' index='0'>
      <address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>
    </controller>
    <interface type='network'>
      <mac address='52:54:00:12:34:56'/>
      <source network='default'/>
      <model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:12:34:57'/>
      <source bridge='br0'/>
      <model type='e1000e'/>
      <address type='pci' domain='0x0000' bus='0x05' slot='0x00' function='0x0'/>
    </interface>
    <serial type='pty'><target type='isa-serial' port='0'><model name='isa-serial'/></target></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
      <address type='virtio-serial' controller='0' bus='0' port='1'/>
    </channel>
    <input type='tablet' bus='usb'><address type='usb' bus='0' port='1'/></input>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='old-secret'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <video>
      <model type='virtio' heads='1' primary='yes'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/>
    </video>
    <memballoon model='virtio'>
      <address type='pci' domain='0x0000' bus='0x06' slot='0x00' function='0x0'/>
    </memballoon>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
      <address type='pci' domain='0x0000' bus='0x07' slot='0x00' function='0x0'/>
    </rng>
  </devices>
</domain>
""" % dict(uuid=UUID, ns=NS, other=OTHER_NS)

VDA = dict(target="vda", path="/var/lib/libvirt/images/old-vda.qcow2")
SDB = dict(target="sdb", bus="sata", path="/var/lib/libvirt/images/old-data.img")


def new_model(**params):
    """The model of a new VM, built the way the vm resource does: normalize, defaults, targets."""
    model = with_creation_defaults(normalize(params))
    return assign_targets(model, default_cdrom_bus(model["machine"]))


def update(base, params):
    """``(root, model)``: ``base`` (XML text) with ``params`` applied, as the vm resource does for an existing VM."""
    root = _xml.parse(base)
    model = assign_targets(normalize(params), default_cdrom_bus(_xml.find_attr(root, "os/type", "machine")),
                           model_from_xml(root))
    return apply_model(root, model), model


def updated(base=EXISTING, **params):
    return update(base, params)[0]


#: keys of the model that are not in the domain XML (volumes to create)
NOT_IN_XML = ("size", "backing_volume", "backing_pool")


def assert_specified(wanted, got, path="model"):
    """Every value ``wanted`` specifies (not None) is in ``got``: dicts key by key, device lists item by
    item (disks and cdroms by target: libvirt keeps the disks of one bus sorted by target)."""
    if isinstance(wanted, dict):
        for key, value in wanted.items():
            if value is not None and key not in NOT_IN_XML:
                assert_specified(value, (got or {}).get(key), "%s.%s" % (path, key))
    elif isinstance(wanted, list) and any(isinstance(item, dict) for item in wanted):
        assert isinstance(got, list) and len(got) == len(wanted), (path, wanted, got)
        if all(item.get("target") for item in wanted):
            got = sorted(got, key=lambda item: [w["target"] for w in wanted].index(item.get("target")))
        for index, item in enumerate(wanted):
            assert_specified(item, got[index], "%s[%d]" % (path, index))
    else:
        assert values_equal(wanted, got), (path, wanted, got)


def count(root, path):
    return len(root.findall(path, namespaces=dict(virtops=NS, app=OTHER_NS)))


@pytest.fixture
def assert_schema_valid(tmp_path):
    """``check(root)``: the XML passes libvirt's own RelaxNG schema (virt-xml-validate FILE domain)."""
    if not os.access(VIRT_XML_VALIDATE, os.X_OK):
        pytest.skip("%s (libvirt's schema checker, from libvirt-clients) is not installed" % VIRT_XML_VALIDATE)

    def check(root, valid=True):
        path = tmp_path / "domain.xml"
        path.write_text(root if isinstance(root, str) else _xml.to_string(root))
        proc = subprocess.run([VIRT_XML_VALIDATE, str(path), "domain"], capture_output=True, text=True, check=False)
        assert (proc.returncode == 0) == valid, proc.stdout + proc.stderr + path.read_text()

    return check


@pytest.fixture
def define(test_conn):
    """``define(root)``: define the XML in the test driver and return the saved definition (as XML text)."""
    defined = []

    def call(root):
        dom = test_conn.defineXML(root if isinstance(root, str) else _xml.to_string(root))
        defined.append(dom)
        return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)

    yield call
    for dom in defined:
        dom.undefine()


def rows(table, *columns):
    """pytest parameters from a table of ``(id, value...)`` rows, only the values at ``columns`` when given
    (rows that are already pytest.param pass as they are)."""
    out = []
    for row in table:
        if not hasattr(row, "marks"):  # a plain row (pytest.param is a tuple too)
            values = row[1:]
            row = pytest.param(*([values[c] for c in columns] if columns else values), id=row[0])
        out.append(row)
    return out


def known_bug(reason, label, *values):
    """A table row that fails because of a bug not fixed here (strict: it must fail until the fix)."""
    return pytest.param(*values, id=label, marks=pytest.mark.xfail(strict=True, reason=reason))


# ------------------------------------------------------------------------------------- normalize ---

def disk(**extra):
    return dict(dict(size="1G"), **extra)


def nic(**extra):
    return dict(dict(network="default"), **extra)


BAD = [
    ("memory-junk", dict(memory="lots"), "memory: cannot read 'lots' as a size"),
    ("memory-zero", dict(memory="0"), "memory: must be greater than zero"),
    ("memory-not-mib", dict(memory="1000K"), "memory: '1000K' is not a whole number of MiB"),
    ("max-memory-unit", dict(max_memory="2X"), "max_memory: unknown unit 'x' in '2X'"),
    ("memory-above-max", dict(memory="4G", max_memory="2G"), "memory (4096 MiB) is above max_memory (2048 MiB)"),
    ("vcpus-zero", dict(vcpus=0), "vcpus: must be an integer of at least 1, got 0"),
    ("max-vcpus-bool", dict(max_vcpus=True), "max_vcpus: must be an integer of at least 1, got True"),
    ("vcpus-above-max", dict(vcpus=4, max_vcpus=2), "vcpus (4) is above max_vcpus (2)"),
    ("topology-partial", dict(cpu=dict(sockets=2)), "cpu: give sockets, cores and threads together"),
    ("topology-vs-vcpus", dict(vcpus=4, cpu=dict(sockets=1, cores=2, threads=1)),
     "cpu: sockets*cores*threads is 2 but the VM has 4 vCPUs at most"),
    ("topology-vs-max", dict(vcpus=2, max_vcpus=8, cpu=dict(sockets=1, cores=2, threads=2)),
     "cpu: sockets*cores*threads is 4 but the VM has 8 vCPUs at most"),
    ("topology-zero", dict(cpu=dict(sockets=0, cores=1, threads=1)), "cpu.sockets: must be an integer of at least 1"),
    ("model-not-custom", dict(cpu=dict(mode="host-model", model="Haswell")), "cpu.model: a named CPU model needs cpu.mode custom"),
    ("custom-no-model", dict(cpu=dict(mode="custom")), "cpu.mode custom needs cpu.model"),
    ("cpu-mode", dict(cpu=dict(mode="fast")), "cpu.mode: 'fast' is not one of host-passthrough"),
    ("mac-short", dict(interfaces=[nic(mac="52:54:00:12:34")]), "interfaces[0].mac: '52:54:00:12:34' is not a MAC address"),
    ("mac-multicast", dict(interfaces=[nic(), nic(mac="01:00:5E:00:00:01")]),
     "interfaces[1].mac: '01:00:5E:00:00:01' is a multicast address"),
    ("nic-two-sources", dict(interfaces=[nic(bridge="br0")]), "interfaces[0]: give exactly one of network, bridge or direct"),
    ("nic-three-sources", dict(interfaces=[nic(bridge="br0", direct="eth0")]), "interfaces[0]: give exactly one of"),
    ("nic-no-source", dict(interfaces=[dict(model="virtio")]), "interfaces[0]: give exactly one of"),
    ("nic-mode-not-direct", dict(interfaces=[dict(bridge="br0", mode="vepa")]),
     "interfaces[0].mode: only a direct (macvtap) interface has a mode"),
    ("nic-direct-mode", dict(interfaces=[dict(direct="eth0", mode="trunk")]), "interfaces[0].mode: 'trunk' is not one of"),
    ("nic-model", dict(interfaces=[nic(model="ne2k")]), "interfaces[0].model: 'ne2k' is not one of"),
    ("nic-boot-order", dict(interfaces=[nic(boot_order=0)]), "interfaces[0].boot_order: must be an integer of at least 1"),
    ("pci-short", dict(hostdevs=["01:00"]), "hostdevs[0]: '01:00' is not a PCI address such as 0000:01:00.0"),
    ("pci-function", dict(hostdevs=["0000:01:00.0", "01:00.8"]), "hostdevs[1]: '01:00.8' is not a PCI address"),
    ("disk-relative", dict(disks=[dict(path="images/a.qcow2")]), "disks[0].path: 'images/a.qcow2' must be an absolute path"),
    ("cdrom-relative", dict(cdroms=[dict(path="a.iso")]), "cdroms[0].path: 'a.iso' must be an absolute path"),
    ("kernel-relative", dict(kernel="vmlinuz"), "kernel: 'vmlinuz' must be an absolute path"),
    ("initrd-relative", dict(kernel="/boot/vmlinuz", initrd="initrd.img"), "initrd: 'initrd.img' must be an absolute path"),
    ("nvram-relative", dict(firmware="uefi", nvram_template="VARS.fd"), "nvram_template: 'VARS.fd' must be an absolute path"),
    ("serial-relative", dict(serial=dict(type="file", path="console.log")), "serial.path: 'console.log' must be an absolute path"),
    ("boot-and-order", dict(boot=["hd"], disks=[disk(boot_order=1)]),
     "boot cannot be combined with per-device boot_order"),
    ("boot-order-twice", dict(disks=[disk(boot_order=1)], interfaces=[nic(boot_order=1)]),
     "boot_order 1 is given to both disks[0] and interfaces[0]"),
    ("boot-order-zero", dict(cdroms=[dict(boot_order=0)]), "cdroms[0].boot_order: must be an integer of at least 1, got 0"),
    ("boot-device", dict(boot=["hd", "usb"]), "boot: 'usb' is not one of hd, cdrom, network, fd"),
    ("tag-space", dict(tags=["web server"]), "tags: 'web server' must be 1-64 letters"),
    ("tag-long", dict(tags=["x" * 65]), "tags: '%s' must be 1-64" % ("x" * 65)),
    ("tag-empty", dict(tags=[""]), "tags: '' must be 1-64"),
    ("meta-key-digit", dict(metadata={"1st": "a"}), "metadata: key '1st' must start with a letter or _"),
    ("meta-key-space", dict(metadata={"a b": "a"}), "metadata: key 'a b' must start with a letter or _"),
    ("meta-value-dict", dict(metadata={"a": {"b": 1}}), "metadata: value of 'a' must be a string, number or boolean"),
    ("meta-value-list", dict(metadata={"a": [1]}), "metadata: value of 'a' must be a string, number or boolean"),
    ("initrd-no-kernel", dict(initrd="/boot/initrd.img"), "initrd and cmdline need kernel"),
    ("cmdline-no-kernel", dict(cmdline="console=ttyS0"), "initrd and cmdline need kernel"),
    ("secure-boot-bios", dict(firmware="bios", secure_boot=True), "secure_boot needs firmware uefi"),
    ("nvram-bios", dict(firmware="bios", nvram_template="/usr/share/OVMF/OVMF_VARS.fd"), "nvram_template needs firmware uefi"),
    ("firmware", dict(firmware="coreboot"), "firmware: 'coreboot' is not one of bios, uefi"),
    ("arch-dash", dict(arch="x86-64"), "arch: 'x86-64' is not an architecture name"),
    ("arch-upper", dict(arch="X86_64"), "arch: 'X86_64' is not an architecture name"),
    ("disk-path-and-volume", dict(disks=[disk(), dict(path="/a.img", volume="a.img")]),
     "disks[1]: give either path or pool/volume, not both"),
    ("disk-backing-and-path", dict(disks=[dict(path="/a.img", backing_volume="base.qcow2")]),
     "disks[0]: backing_volume makes a new volume in a pool; it cannot be used with path"),
    ("disk-size-zero", dict(disks=[dict(size="0")]), "disks[0].size: must be greater than zero"),
    ("disk-size-junk", dict(disks=[dict(size="big")]), "disks[0].size: cannot read 'big' as a size"),
    ("disk-target", dict(disks=[disk(target="vd1")]), "disks[0].target: 'vd1' is not a disk target name"),
    ("disk-bus", dict(disks=[disk(bus="floppy")]), "disks[0].bus: 'floppy' is not one of"),
    ("disk-format", dict(disks=[disk(format="vmdk")]), "disks[0].format: 'vmdk' is not one of qcow2, raw"),
    ("disk-cache", dict(disks=[disk(cache="fast")]), "disks[0].cache: 'fast' is not one of"),
    ("disk-discard", dict(disks=[disk(discard="trim")]), "disks[0].discard: 'trim' is not one of unmap, ignore"),
    ("disk-serial", dict(disks=[disk(serial="has space")]), "disks[0].serial: 'has space' must be 1-20 letters"),
    ("disk-volume-name", dict(disks=[dict(pool="default", volume="a/b")]), "a/b"),
    ("cdrom-pool-only", dict(cdroms=[dict(pool="isos")]), "cdroms[0]: pool and volume go together"),
    ("cdrom-path-and-volume", dict(cdroms=[dict(path="/a.iso", pool="isos", volume="a.iso")]),
     "cdroms[0]: give either path or pool/volume, not both"),
    ("cdrom-bus", dict(cdroms=[dict(bus="virtio")]), "cdroms[0].bus: 'virtio' is not one of sata, ide, scsi, usb"),
    ("graphics-port", dict(graphics=dict(port=80)), "graphics.port: 80 is outside 5900-65535"),
    ("graphics-type", dict(graphics=dict(type="rdp")), "graphics.type: 'rdp' is not one of vnc, spice, none"),
    ("serial-file-no-path", dict(serial=dict(type="file")), "serial: type file needs path"),
    ("serial-pty-path", dict(serial=dict(type="pty", path="/var/log/vm.log")), "serial.path: only type file writes to a path"),
    ("serial-type", dict(serial=dict(type="tcp")), "serial.type: 'tcp' is not one of pty, file"),
    ("watchdog-model", dict(watchdog=dict(model="x")), "watchdog.model: 'x' is not one of i6300esb, itco, ib700"),
    ("watchdog-action", dict(watchdog=dict(action="explode")), "watchdog.action: 'explode' is not one of"),
]


@pytest.mark.parametrize("params, fragment", rows(BAD))
def test_invalid_params_name_the_option(params, fragment):
    with pytest.raises(InvalidInputError) as info:
        normalize(params)
    assert fragment in info.value.msg


GOOD = [
    ("memory-int-is-mib", dict(memory=512), "memory", 512),
    ("memory-digits-are-mib", dict(memory="512"), "memory", 512),
    ("memory-gib", dict(memory="2GiB"), "memory", 2048),
    ("memory-decimal", dict(memory="1.5G"), "memory", 1536),
    ("max-memory-m", dict(max_memory="4096M"), "max_memory", 4096),
    ("mac-normalized", dict(interfaces=[nic(mac="52-54-00-AA-BB-CC")]), "interfaces", [
        dict(type="network", source="default", mode=None, model=None, mac="52:54:00:aa:bb:cc", boot_order=None, filter=None)]),
    ("direct-nic", dict(interfaces=[dict(direct="eth0", mode="passthrough")]), "interfaces", [
        dict(type="direct", source="eth0", mode="passthrough", model=None, mac=None, boot_order=None, filter=None)]),
    ("pci-domain-added", dict(hostdevs=["01:00.0", "0000:0A:1f.7"]), "hostdevs", ["0000:01:00.0", "0000:0a:1f.7"]),
    ("tags-sorted-unique", dict(tags=["web", "db", "web"]), "tags", ["db", "web"]),
    ("tags-empty", dict(tags=[]), "tags", []),
    ("metadata-strings", dict(metadata={"n": 3, "on": True, "off": False, "none": None}), "metadata",
     {"n": "3", "on": "true", "off": "false", "none": ""}),
    ("cpu-model-is-custom", dict(cpu=dict(model="qemu64")), "cpu",
     dict(mode="custom", model="qemu64", sockets=None, cores=None, threads=None)),
    ("cpu-empty", dict(cpu={}), "cpu", None),
    ("graphics-type-unset", dict(graphics=dict(password="pw")), "graphics",
     dict(type=None, listen=None, port=None, password="pw")),
    ("graphics-none", dict(graphics=dict(type="none", port=5901)), "graphics", dict(type="none")),
    ("graphics-autoport", dict(graphics=dict(port=-1)), "graphics", dict(type=None, listen=None, port=-1, password=None)),
    ("serial-default-pty", dict(serial=dict(path=None)), "serial", dict(type="pty", path=None)),
    ("watchdog-model-unset", dict(watchdog=dict(action="pause")), "watchdog", dict(model=None, action="pause")),
    ("boot-list", dict(boot=["cdrom", "hd"]), "boot", ["cdrom", "hd"]),
    ("secure-boot-means-uefi", dict(secure_boot=True), "firmware", "uefi"),
    ("nvram-template-means-uefi", dict(nvram_template="/usr/share/OVMF/OVMF_VARS.fd"), "firmware", "uefi"),
    ("secure-boot-off-says-nothing", dict(secure_boot=False), "firmware", None),
    ("unspecified-stays-none", dict(), "disks", None),
]


@pytest.mark.parametrize("params, key, expected", rows(GOOD))
def test_normalize(params, key, expected):
    assert normalize(params)[key] == expected


CREATION = [
    ("nothing", dict(), dict(vcpus=1, max_vcpus=1, memory=1024, max_memory=1024, machine="q35", firmware="bios",
                             guest_agent=True, rng=True, disks=[], cdroms=[], interfaces=[])),
    ("max-follows", dict(vcpus=3, memory=2048), dict(max_vcpus=3, max_memory=2048)),
    ("given-max-kept", dict(vcpus=1, max_vcpus=4, max_memory="8G"), dict(vcpus=1, max_vcpus=4, memory=1024, max_memory=8192)),
    ("topology-gives-vcpus", dict(cpu=dict(sockets=2, cores=2, threads=1)), dict(vcpus=4, max_vcpus=4)),
    ("secure-boot", dict(secure_boot=True), dict(firmware="uefi", secure_boot=True)),
    ("graphics", dict(), dict(graphics=dict(type="vnc", listen="127.0.0.1", port=-1, password=None))),
]


@pytest.mark.parametrize("params, expected", rows(CREATION))
def test_creation_defaults(params, expected):
    model = with_creation_defaults(normalize(params))
    assert dict((k, model[k]) for k in expected) == expected


def test_creation_defaults_are_copies():
    first = with_creation_defaults(normalize({}))
    first["disks"].append("x")
    first["graphics"]["port"] = 5999
    assert with_creation_defaults(normalize({}))["disks"] == []
    assert with_creation_defaults(normalize({}))["graphics"]["port"] == -1


# ---------------------------------------------------------------------------------- disk targets ---

TARGETS = [
    ("virtio-default", dict(disks=[disk(), disk(), disk()]), ["virtio:vda", "virtio:vdb", "virtio:vdc"]),
    ("sd-buses-share-letters", dict(disks=[disk(bus="sata"), disk(bus="scsi"), disk(bus="usb")]),
     ["sata:sda", "scsi:sdb", "usb:sdc"]),
    ("ide", dict(disks=[disk(bus="ide"), disk(bus="ide")]), ["ide:hda", "ide:hdb"]),
    ("cdrom-q35-sata", dict(disks=[disk()], cdroms=[{}, {}]), ["virtio:vda", "sata:sda", "sata:sdb"]),
    ("cdrom-pc-ide", dict(machine="pc", cdroms=[{}]), ["ide:hda"]),
    ("cdrom-i440fx-ide", dict(machine="pc-i440fx-8.2", disks=[disk(bus="ide")], cdroms=[{}]), ["ide:hda", "ide:hdb"]),
    ("cdrom-after-sata-disk", dict(disks=[disk(bus="sata")], cdroms=[{}]), ["sata:sda", "sata:sdb"]),
    ("explicit-kept-and-skipped", dict(disks=[disk(), disk(target="vda"), disk()]), ["virtio:vdb", "virtio:vda", "virtio:vdc"]),
    ("explicit-cdrom-skipped", dict(disks=[disk(bus="sata")], cdroms=[dict(target="sda")]), ["sata:sdb", "sata:sda"]),
    ("target-implies-ide", dict(disks=[disk(target="hdc")]), ["ide:hdc"]),
    ("target-implies-virtio", dict(disks=[disk(target="vdc"), disk()]), ["virtio:vdc", "virtio:vda"]),
    ("sd-target-disk", dict(disks=[disk(target="sdb")]), ["scsi:sdb"]),
    ("sd-target-cdrom-q35", dict(cdroms=[dict(target="sdc")]), ["sata:sdc"]),
    ("hd-target-cdrom-q35", dict(cdroms=[dict(target="hdc")]), ["ide:hdc"]),
]


def targets(model):
    return ["%s:%s" % (d["bus"], d["target"]) for d in model["disks"] + model["cdroms"]]


@pytest.mark.parametrize("params, expected", rows(TARGETS))
def test_assign_targets(params, expected):
    assert targets(new_model(**params)) == expected


def test_27th_disk_is_vdaa():
    got = targets(new_model(disks=[disk(serial="d%d" % index) for index in range(28)]))
    assert got[25:] == ["virtio:vdz", "virtio:vdaa", "virtio:vdab"]
    assert len(set(got)) == 28


BAD_TARGETS = [
    ("bus-mismatch", dict(disks=[disk(target="sda", bus="virtio")]), "disks: target sda does not fit bus virtio (use a vd* name)"),
    ("cdrom-ide-sd", dict(cdroms=[dict(target="sda", bus="ide")]), "cdroms: target sda does not fit bus ide (use a hd* name)"),
    ("xen-target", dict(disks=[disk(target="xvda")]), "target xvda does not fit bus virtio"),
    ("cdrom-virtio-target", dict(cdroms=[dict(target="vdc")]), "cdroms: target vdc is a virtio name; a CD-ROM drive is on"),
    ("two-disks", dict(disks=[disk(target="vdb"), disk(target="vdb")]), "disks: target vdb is used by another device"),
    ("disk-and-cdrom", dict(disks=[disk(target="sda", bus="sata")], cdroms=[dict(target="sda")]),
     "cdroms: target sda is used by another device"),
]


@pytest.mark.parametrize("params, message", rows(BAD_TARGETS))
def test_assign_targets_errors(params, message):
    with pytest.raises(InvalidInputError) as info:
        new_model(**params)
    assert message in info.value.msg


def devices(*specs):
    return [dict(zip(("target", "bus"), spec.split(":")[::-1])) for spec in specs]


TARGETS_ON_EXISTING = [
    # what the VM has, what is asked, what it gets
    ("same-position-same-target", dict(disks=devices("virtio:vda", "virtio:vdb")), dict(disks=[{}, {}]),
     ["virtio:vda", "virtio:vdb"]),
    ("bus-is-what-the-list-says", dict(disks=devices("virtio:vda", "sata:sdb")), dict(disks=[{}, {}]),
     ["virtio:vda", "virtio:vdb"]),
    ("bus-given-keeps-its-disk", dict(disks=devices("virtio:vda", "sata:sdb")), dict(disks=[{}, dict(bus="sata")]),
     ["virtio:vda", "sata:sdb"]),
    ("added-after", dict(disks=devices("virtio:vda")), dict(disks=[{}, disk()]), ["virtio:vda", "virtio:vdb"]),
    ("explicit-first", dict(disks=devices("virtio:vda", "virtio:vdb")), dict(disks=[dict(target="vdb"), {}]),
     ["virtio:vdb", "virtio:vda"]),
    ("unlisted-kind-stays-taken", dict(disks=devices("virtio:vda"), cdroms=devices("sata:sda")), dict(disks=[{}, disk(bus="sata")]),
     ["virtio:vda", "sata:sdb"]),
    ("other-bus-takes-a-name", dict(disks=devices("virtio:vda", "sata:sda")), dict(disks=[{}, disk(bus="scsi")]),
     ["virtio:vda", "scsi:sda"]),
    ("cdrom-by-position", dict(cdroms=devices("sata:sdc")), dict(cdroms=[{}]), ["sata:sdc"]),
    # libvirt keeps the disks of one bus together, sorted by target: [virtio, sata, virtio] comes back
    # as vda, vdb, sda; matching per bus keeps each disk on its target
    ("libvirt-order", dict(disks=devices("virtio:vda", "virtio:vdb", "sata:sda")),
     dict(disks=[disk(), disk(bus="sata"), disk()]), ["virtio:vda", "sata:sda", "virtio:vdb"]),
]


@pytest.mark.parametrize("current, params, expected", rows(TARGETS_ON_EXISTING))
def test_assign_targets_on_an_existing_vm(current, params, expected):
    model = assign_targets(normalize(params), "sata", current)
    assert ["%s:%s" % (d["bus"], d["target"]) for d in (model["disks"] or []) + (model["cdroms"] or [])] == expected


# ------------------------------------------------------------------------- model <-> XML round trip ---

EVERYTHING = dict(
    title="Web server", description="first line\nsecond line", vcpus=2, max_vcpus=4,
    cpu=dict(mode="host-passthrough", sockets=1, cores=2, threads=2),
    memory="1GiB", max_memory="2048", machine="q35", arch="x86_64", virt_type="kvm", firmware="uefi", secure_boot=True,
    disks=[dict(path="/var/lib/libvirt/images/root.qcow2", format="qcow2", cache="none", discard="unmap", serial="root-1",
                boot_order=1),
           dict(path="/dev/vg0/data", format="raw", bus="scsi"),
           dict(path="/var/lib/libvirt/images/shared.img", format="raw", bus="sata", readonly=True)],
    cdroms=[{}, dict(path="/iso/install.iso", boot_order=2)],
    interfaces=[nic(mac="52:54:00:AA:BB:01", boot_order=3), dict(bridge="br0", model="e1000e"), dict(direct="eth0", mode="vepa")],
    graphics=dict(type="spice", listen="0.0.0.0", port=5901, password="s3cret"),
    serial=dict(type="file", path="/var/log/libvirt/web.log"),
    guest_agent=True, rng=True, watchdog=dict(model="i6300esb", action="poweroff"),
    hostdevs=["01:00.0", "0000:02:00.1"], tags=["web", "prod"], metadata=dict(owner="ops", tier=3),
)

MODELS = [
    ("minimal", dict(), {"devices/graphics[@type='vnc']": 1, "devices/serial[@type='pty']": 1, "devices/memballoon": 1,
                         "devices/channel": 1, "devices/rng": 1, "features/acpi": 1, "os/loader": 0}),
    ("everything", EVERYTHING, {"os[@firmware='efi']": 1, "features/smm[@state='on']": 1,
                                "devices/controller[@type='scsi'][@model='virtio-scsi']": 1,
                                "devices/disk[@type='block']/source[@dev='/dev/vg0/data']": 1,
                                "devices/console[@type='file']": 1, "metadata/virtops:vm/virtops:tags/virtops:tag": 2}),
    ("direct-kernel-boot", dict(kernel="/boot/vmlinuz", initrd="/boot/initrd.img", cmdline="console=ttyS0 root=/dev/vda1",
                                boot=["hd", "network"], firmware="bios"), {"os/boot": 2, "os/loader": 0}),
    ("uefi-template", dict(firmware="uefi", nvram_template="/usr/share/OVMF/OVMF_VARS.fd"),
     {"os/nvram[@template='/usr/share/OVMF/OVMF_VARS.fd']": 1, "os/firmware/feature[@enabled='no']": 2}),
    ("scsi-disks-and-cdrom", dict(disks=[disk(path="/a.qcow2", format="qcow2", bus="scsi"), dict(path="/b.img", target="sdc")],
                                  cdroms=[dict(bus="scsi")]),
     {"devices/controller[@type='scsi'][@model='virtio-scsi']": 1, "devices/disk/target[@bus='scsi']": 3}),
    ("cdroms-empty-file-volume", dict(cdroms=[{}, dict(path="/iso/a.iso"), dict(pool="isos", volume="b.iso", boot_order=1)]),
     {"devices/disk[@device='cdrom']/source": 2, "devices/disk[@type='volume']/source[@pool='isos']": 1,
      "devices/disk[@device='cdrom']/readonly": 3}),
    ("pool-volume-disk", dict(disks=[dict(pool="default", volume="data.qcow2", format="qcow2")]),
     {"devices/disk[@type='volume']/source[@volume='data.qcow2']": 1}),
    ("pc-machine", dict(machine="pc", cdroms=[{}], disks=[disk(path="/a.img", format="raw", bus="ide")]),
     {"devices/disk/target[@bus='ide']": 2}),
    ("interfaces", dict(interfaces=[nic(mac="52:54:00:00:00:0a", model="rtl8139"), dict(bridge="br0"),
                                    dict(direct="enp1s0", mode="passthrough", boot_order=1)]),
     {"devices/interface/mac": 1, "devices/interface/model[@type='virtio']": 2}),
    ("spice-password", dict(graphics=dict(type="spice", password="pw", port=-1)),
     {"devices/graphics[@type='spice'][@passwd='pw'][@autoport='yes']": 1}),
    ("vnc-fixed-port", dict(graphics=dict(type="vnc", listen="0.0.0.0", port=5910)),
     {"devices/graphics[@port='5910'][@autoport='no']/listen[@address='0.0.0.0']": 1}),
    ("no-graphics-agent-rng", dict(graphics=dict(type="none"), guest_agent=False, rng=False),
     {"devices/graphics": 0, "devices/channel": 0, "devices/rng": 0}),
    ("serial-file", dict(serial=dict(type="file", path="/var/log/vm.log")),
     {"devices/serial/source[@path='/var/log/vm.log']": 1, "devices/console/source[@path='/var/log/vm.log']": 1}),
    # (itco needs libvirt 9.2; the schema of libvirt 9.0 refuses it)
    ("watchdog", dict(watchdog=dict(model="ib700", action="pause")), {"devices/watchdog[@model='ib700']": 1}),
    ("hostdevs", dict(hostdevs=["0000:03:00.0", "04:00.1"]), {"devices/hostdev[@type='pci'][@managed='yes']": 2}),
    ("tags-metadata", dict(tags=["b", "a"], metadata={"owner": "ops", "cost_center": "42"}),
     {"metadata/virtops:vm/virtops:meta": 2}),
    ("custom-cpu", dict(max_vcpus=4, cpu=dict(model="Haswell-noTSX", sockets=2, cores=2, threads=1)),
     {"cpu[@mode='custom'][@match='exact']/model[@fallback='forbid']": 1, "cpu/topology[@sockets='2']": 1}),
    ("host-model-cpu", dict(cpu=dict(mode="host-model"), memory="3G", max_memory="4G", vcpus=2, max_vcpus=8),
     {"cpu[@mode='host-model']": 1, "vcpu[@current='2']": 1}),
    ("qemu-tcg", dict(virt_type="qemu", arch="aarch64", machine="virt"), {"os/type[@arch='aarch64'][@machine='virt']": 1}),
]


@pytest.mark.parametrize("params, paths", rows(MODELS))
def test_build_xml_round_trip(params, paths):
    model = new_model(**params)
    root = build_xml("rt", model, uuid=UUID)
    back = model_from_xml(_xml.to_string(root))
    assert_specified(model, back)
    assert (back["name"], back["uuid"]) == ("rt", UUID)
    assert dict((path, count(root, path)) for path in paths) == paths


@pytest.mark.parametrize("params", rows(MODELS, 0))
def test_built_xml_passes_libvirt_schema(assert_schema_valid, params):
    assert_schema_valid(build_xml("schema", new_model(**params)))


def test_schema_oracle_can_fail(assert_schema_valid):
    assert_schema_valid("<domain type='kvm'><name>x</name><memory>1</memory><os><type>hvm</type></os>"
                        "<devices><disk type='nonsense'/></devices></domain>", valid=False)


DEFINABLE = ["minimal", "everything", "direct-kernel-boot", "scsi-disks-and-cdrom", "cdroms-empty-file-volume", "interfaces",
             "tags-metadata", "custom-cpu"]


@pytest.mark.parametrize("params", rows([m for m in MODELS if m[0] in DEFINABLE], 0))
def test_test_driver_defines_built_xml(define, params):
    model = new_model(**params)
    saved = model_from_xml(define(build_xml("u-domain-define", model)))
    assert_specified(model, saved)


def test_model_from_libvirt_test_domain(test_conn):
    got = model_from_xml(test_conn.lookupByName("test").XMLDesc(0))
    assert (got["memory"], got["max_memory"], got["vcpus"], got["firmware"], got["boot"]) == (2048, 8192, 2, "bios", ["hd"])
    assert got["disks"][0]["path"] == "/guest/diskimage1" and got["disks"][0]["cache"] == "default"
    assert got["interfaces"][0]["mac"] == "aa:bb:cc:dd:ee:ff"
    assert (got["graphics"], got["tags"], got["metadata"], got["title"]) == (dict(type="none"), [], {}, "")


@pytest.mark.parametrize("text", ["<network><name>x</name></network>", "<domain", ""])
def test_model_from_xml_rejects_what_is_not_a_domain(text):
    with pytest.raises(InvalidInputError):
        model_from_xml(text)


# ------------------------------------------------------------------------ updating a definition ---

def device_key(node, position):
    """Identity of a device across an update: disks by target, controllers by type and index, others by position."""
    if node.tag == "disk":
        return "disk:" + _xml.find_attr(node, "target", "dev")
    if node.tag == "controller":
        return "controller:%s:%s" % (node.get("type"), node.get("index"))
    return "%s:%d" % (node.tag, position)


def device_facts(root):
    """``[(key, address attributes, mac)]`` of every device, in document order."""
    out, positions = [], {}
    for node in root.find("devices"):
        position = positions[node.tag] = positions.get(node.tag, -1) + 1
        address = node.find("address")
        out.append((device_key(node, position), dict(address.attrib) if address is not None else None,
                    _xml.find_attr(node, "mac", "address")))
    return out


UPDATES = [
    ("memory-vcpus", dict(memory="3G", max_memory="4G", vcpus=4), {"vcpu[@current]": 0}),
    ("title-description", dict(title="New", description="Text"), {"title": 1, "description": 1}),
    ("tags", dict(tags=["new"]), {"metadata/app:info": 1, "metadata/virtops:vm/virtops:meta[@key='owner']": 1,
                                  "metadata/virtops:vm/virtops:tags/virtops:tag": 1}),
    ("metadata", dict(metadata={"team": "b"}), {"metadata/app:info": 1, "metadata/virtops:vm/virtops:meta": 1,
                                                "metadata/virtops:vm/virtops:tags/virtops:tag": 1}),
    ("cpu-model", dict(cpu=dict(model="Haswell-noTSX", sockets=1, cores=2, threads=1)),
     {"cpu/model": 1, "cpu/topology": 1, "cpu[@migratable]": 0}),
    ("cpu-topology", dict(cpu=dict(sockets=1, cores=2, threads=1)), {"cpu[@mode='host-passthrough'][@migratable='on']": 1}),
    ("same-disks", dict(disks=[VDA, SDB]), {"devices/disk[@device='disk']": 2}),
    ("disk-cache", dict(disks=[dict(VDA, cache="none"), SDB]), {"devices/disk/driver[@cache='none'][@io='threads']": 1}),
    ("add-disk", dict(disks=[VDA, SDB, dict(path="/var/lib/libvirt/images/new.qcow2", format="qcow2")]),
     {"devices/disk/target[@dev='vdb']": 1, "devices/disk[@device='disk']": 3}),
    ("remove-disk", dict(disks=[VDA]), {"devices/disk[@device='disk']": 1, "devices/disk/target[@dev='sdb']": 0,
                                        "devices/controller[@type='sata']": 1}),
    ("no-disks", dict(disks=[]), {"devices/disk[@device='disk']": 0, "devices/disk[@device='cdrom']": 1}),
    ("eject-cdrom", dict(cdroms=[dict(target="sda")]), {"devices/disk[@device='cdrom']/source": 0,
                                                        "devices/disk[@device='cdrom']/address": 1}),
    ("change-cdrom", dict(cdroms=[dict(target="sda", path="/iso/new.iso")]),
     {"devices/disk[@device='cdrom']/source[@file='/iso/new.iso']": 1}),
    ("no-cdroms", dict(cdroms=[]), {"devices/disk[@device='cdrom']": 0, "devices/disk[@device='disk']": 2}),
    ("add-cdrom", dict(cdroms=[dict(target="sda", path="/iso/old.iso"), {}]), {"devices/disk[@device='cdrom']": 2}),
    ("nic-model", dict(interfaces=[nic(model="e1000e"), dict(bridge="br0")]), {"devices/interface/model[@type='e1000e']": 2}),
    ("nic-type-change", dict(interfaces=[dict(bridge="br1"), dict(bridge="br0")]), {"devices/interface[@type='bridge']": 2}),
    ("nic-removed", dict(interfaces=[nic()]), {"devices/interface": 1}),
    ("nic-added", dict(interfaces=[nic(), dict(bridge="br0"), dict(direct="eth0")]), {"devices/interface": 3}),
    ("graphics-listen", dict(graphics=dict(type="vnc", listen="0.0.0.0")),
     {"devices/graphics/listen[@address='0.0.0.0']": 1, "devices/graphics[@passwd='old-secret']": 1}),
    ("graphics-spice", dict(graphics=dict(type="spice")), {"devices/graphics[@type='spice']": 1, "devices/graphics": 1}),
    ("graphics-none", dict(graphics=dict(type="none")), {"devices/graphics": 0, "devices/video": 1}),
    ("graphics-fixed-port", dict(graphics=dict(type="vnc", port=5905)),
     {"devices/graphics[@port='5905'][@autoport='no'][@passwd='old-secret']": 1}),
    ("same-serial-kept", dict(serial=dict(type="pty"), guest_agent=True, rng=True),
     {"devices/serial/target/model[@name='isa-serial']": 1, "devices/channel": 1, "devices/rng": 1}),
    ("virt-type", dict(virt_type="qemu"), {"os/type[@arch='x86_64']": 1}),
    ("uefi", dict(firmware="uefi"), {"os[@firmware='efi']": 1, "os/firmware/feature[@enabled='no']": 2}),
    ("serial-file", dict(serial=dict(type="file", path="/var/log/old.log")),
     {"devices/serial[@type='file']": 1, "devices/console[@type='file']": 1}),
    ("watchdog-hostdevs", dict(watchdog=dict(model="i6300esb", action="reset"), hostdevs=["01:00.0"]),
     {"devices/watchdog": 1, "devices/hostdev": 1}),
    ("agent-rng-off", dict(guest_agent=False, rng=False), {"devices/channel": 0, "devices/rng": 0}),
    ("machine", dict(machine="pc-q35-8.2"), {"os/type[@machine='pc-q35-8.2'][@arch='x86_64']": 1}),
    ("kernel", dict(kernel="/boot/vmlinuz", initrd="/boot/initrd.img", cmdline="quiet"), {"os/kernel": 1, "os/boot": 1}),
    ("boot-order", dict(disks=[dict(VDA, boot_order=1), SDB]), {"os/boot": 0, "devices/disk/boot[@order='1']": 1}),
    ("boot-list", dict(boot=["cdrom", "hd"]), {"os/boot": 2}),
]


@pytest.mark.parametrize("params, paths", rows(UPDATES))
def test_apply_model_changes_what_is_specified_and_keeps_the_rest(assert_schema_valid, params, paths):
    before = _xml.parse(EXISTING)
    after, model = update(EXISTING, params)
    assert_specified(model, model_from_xml(after))
    assert dict((path, count(after, path)) for path in paths) == paths
    for path in ("uuid", "features/hyperv", "clock/timer", "on_reboot", "devices/emulator", "devices/input",
                 "devices/controller", "metadata/app:info"):
        assert count(after, path) == count(before, path), path
    # devices that stay keep their place, their PCI/drive address and their MAC (unless a MAC was given)
    old = dict((key, (address, mac)) for key, address, mac in device_facts(before))
    new = device_facts(after)
    staying = [key for key, _a, _m in new if key in old]
    assert staying == [key for key, _a, _m in device_facts(before) if key in staying]
    for key, address, mac in new:
        assert old.get(key, (address, mac)) == (address, mac), key
    assert_schema_valid(after)


@pytest.mark.parametrize("params", rows(UPDATES, 0))
def test_test_driver_defines_updated_xml(define, params):
    root, model = update(EXISTING, params)
    saved = model_from_xml(define(root))
    assert saved["uuid"] == UUID
    assert_specified(model, saved)


DISK_CHANGES = [
    ("cache", dict(cache="none"), dict(name="qemu", type="qcow2", cache="none", io="threads")),
    ("cache-default", dict(cache="default"), dict(name="qemu", type="qcow2", io="threads")),
    ("discard", dict(discard="unmap"), dict(name="qemu", type="qcow2", cache="writeback", io="threads", discard="unmap")),
    ("format", dict(format="raw"), dict(name="qemu", type="raw", cache="writeback", io="threads")),
    ("serial", dict(serial="abc"), dict(name="qemu", type="qcow2", cache="writeback", io="threads")),
    ("readonly", dict(readonly=True), dict(name="qemu", type="qcow2", cache="writeback", io="threads")),
]


@pytest.mark.parametrize("change, driver", rows(DISK_CHANGES))
def test_matched_disk_changes_only_the_given_attributes(change, driver):
    def vda(root):
        return [node for node in root.findall("devices/disk") if _xml.find_attr(node, "target", "dev") == "vda"][0]

    old = vda(_xml.parse(EXISTING))
    new = vda(updated(disks=[dict(VDA, **change), SDB]))
    assert dict(new.find("driver").attrib) == driver
    for child in ("source", "target", "address"):
        assert _xml.to_string(new.find(child)) == _xml.to_string(old.find(child)), child
    assert (_xml.find_text(new, "serial"), new.find("readonly") is not None) == (
        change.get("serial"), bool(change.get("readonly")))


BUS_MOVES = [
    ("sata-to-scsi", "scsi", None),
    ("sata-to-usb", "usb", None),
    ("sata-stays", "sata", dict(type="drive", controller="0", bus="0", target="0", unit="1")),
]


@pytest.mark.parametrize("bus, address", rows(BUS_MOVES))
def test_disk_moved_to_another_bus_drops_its_address(bus, address):
    root = updated(disks=[VDA, dict(SDB, bus=bus)])
    node = [n for n in root.findall("devices/disk") if _xml.find_attr(n, "target", "dev") == "sdb"][0]
    assert _xml.find_attr(node, "target", "bus") == bus
    assert (dict(node.find("address").attrib) if node.find("address") is not None else None) == address


UEFI = """<domain type='kvm'><name>u</name><memory>1048576</memory>
<os><type arch='x86_64' machine='q35'>hvm</type>
<loader readonly='yes' secure='%s' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>
<nvram template='/usr/share/OVMF/OVMF_VARS.fd'>/var/lib/libvirt/qemu/nvram/u_VARS.fd</nvram><boot dev='hd'/></os>
<features><acpi/><smm state='on'/></features><devices/></domain>"""

FIRMWARE = [
    # base, params, expected (firmware, secure_boot), loader elements, nvram elements, os firmware attribute
    ("bios-to-uefi", EXISTING, dict(firmware="uefi"), ("uefi", False), 0, 0, "efi"),
    ("bios-to-secure-uefi", EXISTING, dict(firmware="uefi", secure_boot=True), ("uefi", True), 0, 0, "efi"),
    ("bios-secure-boot-alone", EXISTING, dict(secure_boot=True), ("uefi", True), 0, 0, "efi"),
    ("uefi-stays", UEFI % "no", dict(firmware="uefi"), ("uefi", False), 1, 1, None),
    ("uefi-secure-on", UEFI % "no", dict(secure_boot=True), ("uefi", True), 0, 1, "efi"),
    ("uefi-secure-off", UEFI % "yes", dict(secure_boot=False), ("uefi", False), 0, 1, "efi"),
    ("uefi-to-bios", UEFI % "yes", dict(firmware="bios"), ("bios", False), 0, 0, None),
]


@pytest.mark.parametrize("base, params, expected, loaders, nvrams, attribute", rows(FIRMWARE))
def test_firmware_switches(assert_schema_valid, base, params, expected, loaders, nvrams, attribute):
    root = updated(base, **params)
    got = model_from_xml(root)
    assert (got["firmware"], got["secure_boot"]) == expected
    assert (count(root, "os/loader"), count(root, "os/nvram"), root.find("os").get("firmware")) == (loaders, nvrams, attribute)
    assert_schema_valid(root)


def test_max_vcpus_alone_keeps_the_vcpus_the_vm_has():
    got = model_from_xml(updated(max_vcpus=8))
    assert (got["vcpus"], got["max_vcpus"]) == (2, 8)
    got = model_from_xml(updated(vcpus=6))
    assert (got["vcpus"], got["max_vcpus"]) == (6, 6)


LSI = EXISTING.replace("<controller type='pci' index='0' model='pcie-root'/>",
                       "<controller type='pci' index='0' model='pcie-root'/><controller type='scsi' index='0' model='lsilogic'/>")


@pytest.mark.parametrize("base, models", [(EXISTING, ["virtio-scsi"]), (LSI, ["lsilogic"])], ids=["added", "existing-kept"])
def test_scsi_disk_uses_the_scsi_controller_there_is(define, base, models):
    root = updated(base, disks=[VDA, SDB, dict(path="/var/lib/libvirt/images/s.img", format="raw", bus="scsi")])
    assert [c.get("model") for c in root.findall("devices/controller[@type='scsi']")] == models
    define(root)


@pytest.mark.parametrize("base_params, params, os_boot, device_boot", [
    (dict(), dict(disks=[dict(VDA, boot_order=1), SDB]), [], ["1"]),
    (dict(disks=[dict(VDA, boot_order=2), SDB]), dict(boot=["network"]), ["network"], []),
], ids=["boot-order-drops-os-boot", "boot-drops-boot-order"])
def test_boot_and_boot_order_never_meet(define, base_params, params, os_boot, device_boot):
    root = updated(_xml.to_string(updated(**base_params)), **params)
    assert [b.get("dev") for b in root.findall("os/boot")] == os_boot
    assert [b.get("order") for b in root.findall("devices/*/boot")] == device_boot
    define(root)


def test_setting_tags_keeps_other_namespaces_and_the_other_half():
    root = updated(tags=["x", "a"])
    assert _xml.find_text(root, "metadata/{%s}info/{%s}owner" % (OTHER_NS, OTHER_NS)) == "team-a"
    got = model_from_xml(root)
    assert (got["tags"], got["metadata"]) == (["a", "x"], {"owner": "alice"})
    assert count(root, "metadata/virtops:vm") == 1
    got = model_from_xml(updated(_xml.to_string(root), metadata={}, tags=[]))
    assert (got["tags"], got["metadata"]) == ([], {})


def test_empty_strings_remove_title_description_and_kernel():
    base = _xml.to_string(updated(title="T", description="D", kernel="/boot/vmlinuz", cmdline="quiet"))
    root = updated(base, title="", description="", kernel="", cmdline="")
    assert [count(root, p) for p in ("title", "description", "os/kernel", "os/cmdline")] == [0, 0, 0, 0]
    got = model_from_xml(root)
    assert (got["title"], got["description"], got["kernel"], got["cmdline"]) == ("", "", "", "")


def test_unspecified_model_changes_nothing():
    assert _xml.xml_equal(updated(), EXISTING)


METADATA = [
    ("empty", [], {}, '<vm><tags/></vm>'),
    ("tags-and-meta", ["a", "b"], {"z": "1", "k": "v"},
     '<vm><tags><tag>a</tag><tag>b</tag></tags><meta key="k">v</meta><meta key="z">1</meta></vm>'),
    ("escaped", ["x"], {"k": "<&>"}, '<vm><tags><tag>x</tag></tags><meta key="k">&lt;&amp;&gt;</meta></vm>'),
]


@pytest.mark.parametrize("tags, meta, text", rows(METADATA))
def test_metadata_element(tags, meta, text):
    assert _xml.to_string(metadata_element(tags, meta, namespaced=False), pretty=False) == text
    node = metadata_element(tags, meta)
    assert node.nsmap == {"virtops": NS} and all(el.tag.startswith("{%s}" % NS) for el in node.iter())
    assert [el.tag.split("}")[1] for el in node.iter()] == [el.tag for el in _xml.parse(text).iter()]


@pytest.mark.parametrize("tags, meta", rows(METADATA, 0, 1))
def test_set_metadata_takes_metadata_element(define, test_conn, tags, meta):
    define(build_xml("u-domain-meta", new_model(tags=["old"])))
    dom = test_conn.lookupByName("u-domain-meta")
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, _xml.to_string(metadata_element(tags, meta, namespaced=False)),
                    "virtops", NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    got = model_from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert (got["tags"], got["metadata"]) == (tags, meta)
