# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""OVF 1.0 descriptors and OVA manifests (_ovf).

No copy of the DMTF OVF schema (DSP8023) is available offline here, so ``check_structure`` checks
what DSP0243 (OVF 1.0/1.1) requires of the descriptor's structure: the envelope's namespace and
version, References first, every section starting with its Info, the order of the RASD/VSSD
elements (the CIM schemas declare them as an alphabetical xs:sequence), the mandatory RASD
elements, unique InstanceIDs, and that every reference (fileRef, HostResource, Parent,
Connection) resolves.  The VMware and VirtualBox samples below are written after what those
products' exports contain (ovftool 4.x, VirtualBox 6/7 "OVF 1.0" export).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest
from lxml import etree

from ansible_collections.virtops.libvirt.plugins.module_utils._export import ovf as _ovf
from ansible_collections.virtops.libvirt.plugins.module_utils._import import ovf as _ovf_read
from ansible_collections.virtops.libvirt.plugins.module_utils._tools import ovf as _ovf_tools
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError

NS = "{%s}" % _ovf_tools.OVF_NS
RASD = "{%s}" % _ovf_tools.RASD_NS
VSSD = "{%s}" % _ovf_tools.VSSD_NS

RASD_ORDER = ("Address", "AddressOnParent", "AllocationUnits", "AutomaticAllocation", "AutomaticDeallocation",
              "Caption", "Connection", "ConsumerVisibility", "Description", "ElementName", "HostResource",
              "InstanceID", "Limit", "MappingBehavior", "OtherResourceType", "Parent", "PoolID", "Reservation",
              "ResourceSubType", "ResourceType", "VirtualQuantity", "VirtualQuantityUnits", "Weight")
VSSD_ORDER = ("AutomaticRecoveryAction", "AutomaticShutdownAction", "AutomaticStartupAction",
              "AutomaticStartupActionDelay", "AutomaticStartupActionSequenceNumber", "Caption",
              "ConfigurationDataRoot", "ConfigurationFile", "ConfigurationID", "CreationTime", "Description",
              "ElementName", "InstanceID", "LogDataRoot", "Notes", "RecoveryFile", "SnapshotDataRoot",
              "SuspendDataRoot", "SwapFileDataRoot", "VirtualSystemIdentifier", "VirtualSystemType")
SECTIONS = ("DiskSection", "NetworkSection", "OperatingSystemSection", "VirtualHardwareSection")


def check_structure(data):
    """Assert the structural rules of DSP0243 on an OVF 1.0 descriptor; returns the root."""
    assert data.startswith(b"<?xml"), "an XML declaration"
    root = etree.fromstring(data)
    assert root.tag == NS + "Envelope"
    assert root.get(NS + "version") == "1.0"
    children = [c for c in root if isinstance(c.tag, str)]
    assert children[0].tag == NS + "References", "References comes first in the Envelope"
    assert children[-1].tag == NS + "VirtualSystem", "the content (one VirtualSystem) follows the sections"
    files = dict((f.get(NS + "id"), f) for f in children[0].findall(NS + "File"))
    assert len(files) == len(children[0].findall(NS + "File")), "File ids are unique"
    for f in files.values():
        assert f.get(NS + "href") and "/" not in f.get(NS + "href")
        assert int(f.get(NS + "size")) >= 0
    for section in root.iter(*[NS + s for s in SECTIONS]):
        first = [c for c in section if isinstance(c.tag, str)][0]
        assert first.tag == NS + "Info" and first.text, "%s starts with its Info" % section.tag
    disks = {}
    for disk in root.iter(NS + "Disk"):
        assert disk.get(NS + "diskId") not in disks
        assert int(disk.get(NS + "capacity")) > 0
        if disk.get(NS + "fileRef") is not None:
            assert disk.get(NS + "fileRef") in files, "Disk fileRef resolves"
            assert disk.get(NS + "format")
        disks[disk.get(NS + "diskId")] = disk
    networks = set(n.get(NS + "name") for n in root.iter(NS + "Network"))
    system = children[-1]
    assert system.get(NS + "id")
    sys_children = [c for c in system if isinstance(c.tag, str)]
    assert sys_children[0].tag == NS + "Info"
    hw = system.find(NS + "VirtualHardwareSection")
    vssd = [c.tag.replace(VSSD, "") for c in hw.find(NS + "System")]
    assert vssd == sorted(vssd, key=VSSD_ORDER.index), "VSSD elements in schema order"
    items = hw.findall(NS + "Item")
    ids = [i.findtext(RASD + "InstanceID") for i in items]
    assert len(ids) == len(set(ids)), "InstanceIDs are unique"
    for item in items:
        names = [c.tag.replace(RASD, "") for c in item]
        assert names == sorted(names, key=RASD_ORDER.index), "RASD elements in schema order: %s" % names
        for required in ("ElementName", "InstanceID", "ResourceType"):
            assert required in names
        if item.findtext(RASD + "Parent") is not None:
            assert item.findtext(RASD + "Parent") in ids, "Parent resolves"
        host = item.findtext(RASD + "HostResource")
        if host is not None:
            assert host.startswith("ovf:/disk/") and host[len("ovf:/disk/"):] in disks, "HostResource resolves"
        if item.findtext(RASD + "ResourceType") == "10" and item.findtext(RASD + "Connection"):
            assert item.findtext(RASD + "Connection") in networks, "a NIC's Connection is a listed network"
    types = [i.findtext(RASD + "ResourceType") for i in items]
    assert types.count("3") == 1 and types.count("4") == 1
    return root


VM = {
    "name": "web1", "vcpus": 2, "memory_mib": 1024, "firmware": "bios", "os_hint": "debian12",
    "disks": [{"file": "web1-disk1.vmdk", "size": 123456, "capacity": 10 * 1024 ** 3, "bus": "virtio"}],
    "nics": [{"network": "default", "model": "virtio"}],
}


def variant(**changes):
    vm = copy.deepcopy(VM)
    vm.update(changes)
    return vm


@pytest.mark.parametrize("vm", [
    VM,
    variant(firmware="uefi", os_hint=None),
    variant(os_hint="ubuntu22.04", nics=[]),
    variant(os_hint="win10", nics=[{"network": "lan", "model": "e1000"},
                                   {"network": "default", "model": "vmxnet3"},
                                   {"network": "lan", "model": "e1000e"}]),
    variant(disks=[{"file": "a.vmdk", "size": 1, "capacity": 1024 ** 3, "bus": "sata"},
                   {"file": "b.vmdk", "size": 2, "capacity": 2 * 1024 ** 3, "bus": "scsi"},
                   {"file": "c.vmdk", "size": 3, "capacity": 3 * 1024 ** 3, "bus": "ide"},
                   {"file": "d.vmdk", "size": 4, "capacity": 4 * 1024 ** 3, "bus": "virtio"},
                   {"file": "e.vmdk", "size": 5, "capacity": 5 * 1024 ** 3, "bus": "sata"}]),
    variant(disks=[], nics=[{"network": "default", "model": None}]),
    variant(name="a&b <c>", os_hint="rhel9", vcpus=16, memory_mib=65536),
], ids=["plain", "uefi", "ubuntu-no-nic", "windows-nics", "buses", "no-disk", "escaping"])
def test_round_trip(vm):
    data = _ovf.build_ovf(vm)
    check_structure(data)
    assert _ovf_read.parse_ovf(data) == vm
    assert _ovf_read.parse_ovf(data.decode("utf-8")) == vm


def test_build_descriptor_details():
    root = check_structure(_ovf.build_ovf(variant(firmware="uefi")))
    disk = root.find("%sDiskSection/%sDisk" % (NS, NS))
    assert disk.get(NS + "format") == _ovf.VMDK_STREAM_FORMAT
    assert disk.get(NS + "capacityAllocationUnits") == "byte"
    assert root.findtext(".//%sVirtualSystemType" % VSSD) == "vmx-10"
    assert root.find(".//%sOperatingSystemSection" % NS).get(NS + "id") == "96"
    items = root.findall(".//%sItem" % NS)
    by_type = dict((i.findtext(RASD + "ResourceType"), i) for i in items)
    assert by_type["4"].findtext(RASD + "AllocationUnits") == "byte * 2^20"
    assert by_type["4"].findtext(RASD + "VirtualQuantity") == "1024"
    assert by_type["20"].findtext(RASD + "ResourceSubType") == "AHCI"  # virtio disks sit on SATA for others
    config = root.find(".//{%s}Config" % _ovf_tools.VMW_NS)
    assert config.get("{%s}value" % _ovf_tools.VMW_NS) == "efi"


def test_empty_disk_without_file():
    vm = variant(disks=[{"file": None, "size": None, "capacity": 1024 ** 3, "bus": "virtio"}])
    data = _ovf.build_ovf(vm)
    check_structure(data)
    assert _ovf_read.parse_ovf(data) == vm


@pytest.mark.parametrize("vm, message", [
    (variant(name=""), "needs name"),
    (variant(firmware="coreboot"), "firmware"),
    (variant(disks=[{"file": "x.vmdk", "size": 1, "capacity": 1, "bus": "usb"}]), "bus"),
    (variant(disks=[{"file": "../x.vmdk", "size": 1, "capacity": 1, "bus": "sata"}]), "plain file name"),
    (variant(disks=[{"file": "x.vmdk", "size": 1, "capacity": 0, "bus": "sata"}]), "capacity"),
])
def test_build_refuses(vm, message):
    with pytest.raises(InvalidInputError, match=message):
        _ovf.build_ovf(vm)


VMWARE_OVF = b"""<?xml version="1.0" encoding="UTF-8"?>
<!--Generated by VMware ovftool 4.4.3 (build-18663434), UTC time: 2023-05-02T10:11:12.123456Z-->
<Envelope vmw:buildId="build-18663434" xmlns="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common"
  xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vmw="http://www.vmware.com/schema/ovf"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="photon-disk1.vmdk" ovf:id="file1" ovf:size="317412864"/>
    <File ovf:href="photon-disk2.vmdk" ovf:id="file2" ovf:size="68096"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="vmdisk1" ovf:fileRef="file1"
      ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" ovf:populatedSize="1034682368"/>
    <Disk ovf:capacity="512" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk2" ovf:fileRef="file2"
      ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The VM Network network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="photon-5">
    <Info>A virtual machine</Info>
    <Name>photon-5</Name>
    <OperatingSystemSection ovf:id="36" ovf:version="5" vmw:osType="vmwarePhoton64Guest">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>photon-5</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>4 virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>4</rasd:VirtualQuantity>
        <vmw:CoresPerSocket ovf:required="false">2</vmw:CoresPerSocket>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>2048MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>2048</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:Address>1</rasd:Address>
        <rasd:Description>IDE Controller</rasd:Description>
        <rasd:ElementName>VirtualIDEController 1</rasd:ElementName>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item ovf:required="false">
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>false</rasd:AutomaticAllocation>
        <rasd:ElementName>CD-ROM 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:Parent>4</rasd:Parent>
        <rasd:ResourceSubType>vmware.cdrom.remotepassthrough</rasd:ResourceSubType>
        <rasd:ResourceType>15</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>6</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
        <vmw:Config ovf:required="false" vmw:key="backing.writeThrough" vmw:value="false"/>
      </Item>
      <Item>
        <rasd:AddressOnParent>1</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 2</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk2</rasd:HostResource>
        <rasd:InstanceID>7</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>7</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:Description>VmxNet3 ethernet adapter on &quot;VM Network&quot;</rasd:Description>
        <rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>8</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
        <vmw:Config ovf:required="false" vmw:key="wakeOnLanEnabled" vmw:value="true"/>
      </Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
      <vmw:Config ovf:required="false" vmw:key="tools.syncTimeWithHost" vmw:value="false"/>
    </VirtualHardwareSection>
    <AnnotationSection ovf:required="false">
      <Info>A human-readable annotation</Info>
      <Annotation>Photon OS</Annotation>
    </AnnotationSection>
  </VirtualSystem>
</Envelope>
"""

VIRTUALBOX_OVF = b"""<?xml version="1.0"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <References>
    <File ovf:id="file1" ovf:href="ubuntu-disk001.vmdk"/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="26843545600" ovf:diskId="vmdisk1" ovf:fileRef="file1"
      ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
      vbox:uuid="2b1d7c3a-9f6e-4c55-8a3f-0e1c9d2b7a11"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks used in the package</Info>
    <Network ovf:name="NAT">
      <Description>Logical network used by this appliance.</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="ubuntu">
    <Info>A virtual machine</Info>
    <OperatingSystemSection ovf:id="94">
      <Info>The kind of installed guest operating system</Info>
      <Description>Ubuntu_64</Description>
      <vbox:OSType ovf:required="false">Ubuntu_64</vbox:OSType>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>ubuntu</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:Caption>1 virtual CPU</rasd:Caption>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:ElementName>1 virtual CPU</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>1</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>
        <rasd:Caption>4096 MB of memory</rasd:Caption>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>4096 MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>4096</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Caption>ideController0</rasd:Caption>
        <rasd:Description>IDE Controller</rasd:Description>
        <rasd:ElementName>ideController0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>PIIX4</rasd:ResourceSubType>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Caption>sataController0</rasd:Caption>
        <rasd:Description>SATA Controller</rasd:Description>
        <rasd:ElementName>sataController0</rasd:ElementName>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:ResourceSubType>AHCI</rasd:ResourceSubType>
        <rasd:ResourceType>20</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Caption>Ethernet adapter on 'NAT'</rasd:Caption>
        <rasd:Connection>NAT</rasd:Connection>
        <rasd:ElementName>Ethernet adapter on 'NAT'</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>E1000</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:Caption>disk1</rasd:Caption>
        <rasd:Description>Disk Image</rasd:Description>
        <rasd:ElementName>disk1</rasd:ElementName>
        <rasd:HostResource>/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>6</rasd:InstanceID>
        <rasd:Parent>4</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>1</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Caption>cdrom1</rasd:Caption>
        <rasd:Description>CD-ROM Drive</rasd:Description>
        <rasd:ElementName>cdrom1</rasd:ElementName>
        <rasd:InstanceID>7</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>15</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def test_parse_vmware():
    vm = _ovf_read.parse_ovf(VMWARE_OVF)
    assert vm == {
        "name": "photon-5", "vcpus": 4, "memory_mib": 2048, "firmware": "uefi", "os_hint": "vmwarePhoton64Guest",
        "disks": [{"file": "photon-disk1.vmdk", "size": 317412864, "capacity": 16 * 1024 ** 3, "bus": "scsi"},
                  {"file": "photon-disk2.vmdk", "size": 68096, "capacity": 512 * 1024 ** 2, "bus": "scsi"}],
        "nics": [{"network": "VM Network", "model": "vmxnet3"}],
    }


def test_parse_virtualbox():
    vm = _ovf_read.parse_ovf(VIRTUALBOX_OVF)
    assert vm == {
        "name": "ubuntu", "vcpus": 1, "memory_mib": 4096, "firmware": "bios", "os_hint": "Ubuntu_64",
        "disks": [{"file": "ubuntu-disk001.vmdk", "size": None, "capacity": 26843545600, "bus": "sata"}],
        "nics": [{"network": "NAT", "model": "e1000"}],
    }


def test_parse_ovf2_items():
    """OVF 2.0 names its namespace .../envelope/2 and may use StorageItem / EthernetPortItem."""
    data = VMWARE_OVF.replace(b"http://schemas.dmtf.org/ovf/envelope/1", b"http://schemas.dmtf.org/ovf/envelope/2")
    data = data.replace(b"<Item>\n        <rasd:AddressOnParent>7", b"<EthernetPortItem>\n        <rasd:AddressOnParent>7")
    data = data.replace(b'vmw:key="wakeOnLanEnabled" vmw:value="true"/>\n      </Item>',
                        b'vmw:key="wakeOnLanEnabled" vmw:value="true"/>\n      </EthernetPortItem>')
    vm = _ovf_read.parse_ovf(data)
    assert vm["nics"] == [{"network": "VM Network", "model": "vmxnet3"}]
    assert len(vm["disks"]) == 2


def test_cim_os_id_only():
    data = VMWARE_OVF.replace(b' vmw:osType="vmwarePhoton64Guest"', b"").replace(b'ovf:id="36"', b'ovf:id="96"')
    assert _ovf_read.parse_ovf(data)["os_hint"] == "debian"


@pytest.mark.parametrize("units, factor", [
    (None, 1), ("byte", 1), ("byte * 2^30", 1024 ** 3), ("byte*2^20", 1024 ** 2), ("byte * 10^9", 10 ** 9),
    ("MegaBytes", 1024 ** 2), ("GigaBytes", 1024 ** 3), ("KiloBytes", 1024), ("  BYTE  ", 1),
])
def test_unit_factor(units, factor):
    assert _ovf_read.unit_factor(units) == factor


@pytest.mark.parametrize("units", ["bit", "byte * 3^2", "byte * 2^99", "hertz * 10^6", "byte / 2"])
def test_unit_factor_refuses(units):
    with pytest.raises(InvalidInputError, match="unsupported"):
        _ovf_read.unit_factor(units)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: b"<nope/>", "not <Envelope>"),
    (lambda d: b"<Envelope", "not well-formed"),
    (lambda d: d.replace(b'ovf:fileRef="file2"', b'ovf:fileRef="file9"'), "References does not list"),
    (lambda d: d.replace(b"ovf:/disk/vmdisk2", b"ovf:/disk/vmdisk7"), "DiskSection does not list"),
    (lambda d: d.replace(b"ovf:/disk/vmdisk2", b"file:///etc/shadow"), "does not point at a disk"),
    (lambda d: d.replace(b'ovf:capacity="512"', b'ovf:capacity="${disk2size}"'), "property"),
    (lambda d: d.replace(b'ovf:size="68096"', b'ovf:size="68096" ovf:compression="gzip"'), "compressed"),
    (lambda d: d.replace(b'ovf:size="68096"', b'ovf:size="68096" ovf:chunkSize="1000"'), "chunks"),
    (lambda d: d.replace(b'ovf:size="68096"', b'ovf:size="many"'), "not a whole number"),
    (lambda d: d.replace(b"<rasd:ResourceType>4</rasd:ResourceType>", b"<rasd:ResourceType>99</rasd:ResourceType>"),
     "no memory item"),
    (lambda d: d.replace(b"</VirtualSystem>", b"</VirtualSystem><VirtualSystem ovf:id='b'><Info>x</Info></VirtualSystem>"),
     "2 virtual systems"),
    (lambda d: d.replace(b'<!DOCTYPE', b'') .replace(b'<?xml version="1.0" encoding="UTF-8"?>',
                                                     b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>')
     .replace(b"<Name>photon-5</Name>", b"<Name>&x;</Name>"), None),
])
def test_parse_refuses(mutate, message):
    data = mutate(VMWARE_OVF)
    if message is None:
        # an external entity is never expanded: the name does not become the content of a host file
        vm = _ovf_read.parse_ovf(data)
        assert "root:" not in (vm["name"] or "")
        return
    with pytest.raises(InvalidInputError, match=message):
        _ovf_read.parse_ovf(data)


def test_manifest_round_trip():
    files = {"web1.ovf": "a" * 64, "web1-disk1.vmdk": "B" * 64}
    data = _ovf_tools.manifest(files)
    assert data == ("SHA256(web1.ovf)= %s\nSHA256(web1-disk1.vmdk)= %s\n" % ("a" * 64, "b" * 64)).encode()
    assert _ovf_tools.parse_manifest(data) == {"web1.ovf": "a" * 64, "web1-disk1.vmdk": "b" * 64}


def test_parse_manifest_other_writers():
    data = ("SHA1(old.ovf)= %s\r\n\r\nSHA256 (x.vmdk) = %s\nSHA512(y.vmdk)= %s\n" % ("1" * 40, "2" * 64, "3" * 128)).encode()
    assert _ovf_tools.parse_manifest(data) == {"old.ovf": "sha1:" + "1" * 40, "x.vmdk": "2" * 64, "y.vmdk": "sha512:" + "3" * 128}


@pytest.mark.parametrize("data, message", [
    (b"MD5(x)= abc\n", "line 1"),
    (b"SHA256(x)= abc\n", "64"),
    (("SHA256(x)= %s\nSHA256(x)= %s\n" % ("a" * 64, "a" * 64)).encode(), "twice"),
    (b"\xff\xfe", "UTF-8"),
])
def test_parse_manifest_refuses(data, message):
    with pytest.raises(InvalidInputError, match=message):
        _ovf_tools.parse_manifest(data)


@pytest.mark.parametrize("files", [{"a/b": "a" * 64}, {"x": "zz"}])
def test_manifest_refuses(files):
    with pytest.raises(InvalidInputError):
        _ovf_tools.manifest(files)
