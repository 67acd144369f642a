# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The allow-list for archived domain XML (_import_xml) and rewrite_domain_xml, with hostile variants.

Every hostile variant carries the marker ``virtops-hostile`` in what it names (a path, an argument,
a socket); the rebuilt XML must not contain it, must name what was left out in a note (or be
refused with a clear message) and must pass ``virt-xml-validate``.  The base document is what
libvirt 9.0's QEMU driver returns for a VM the collection made (``dumpxml --inactive --security-info``).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import subprocess

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain

from ansible_collections.virtops.libvirt.plugins.module_utils._import.definition import rewrite_domain_xml

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError

MARK = "virtops-hostile"
QEMU = "http://libvirt.org/schemas/domain/qemu/1.0"
DISKS = {"vda": dict(path="/pool/new-vda.qcow2", format="qcow2")}

BASE = """<domain type='kvm'>
  <name>src</name>
  <uuid>e8d2eaa1-62b9-49f4-8488-ab2e1e868548</uuid>
  <metadata>
    <virtops:vm xmlns:virtops="https://virtops.dev/xmlns/libvirt/1.0" xml-sha256="00">
      <virtops:tags><virtops:tag>web</virtops:tag></virtops:tags>
      <virtops:meta key="owner">ops</virtops:meta>
    </virtops:vm>
  </metadata>
  <memory unit='KiB'>262144</memory>
  <currentMemory unit='KiB'>262144</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features><acpi/><apic/><vmport state='off'/></features>
  <cpu mode='host-passthrough' check='none' migratable='on'/>
  <clock offset='utc'><timer name='rtc' tickpolicy='catchup'/><timer name='hpet' present='no'/></clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <pm><suspend-to-mem enabled='no'/><suspend-to-disk enabled='no'/></pm>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='/var/lib/libvirt/images/src-vda.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
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
    <controller type='pci' index='1' model='pcie-root-port'>
      <model name='pcie-root-port'/>
      <target chassis='1' port='0x10'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0' multifunction='on'/>
    </controller>
    <controller type='virtio-serial' index='0'>
      <address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>
    </controller>
    <interface type='network'>
      <mac address='52:54:00:12:34:56'/>
      <source network='default'/>
      <model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </interface>
    <serial type='pty'>
      <target type='isa-serial' port='0'><model name='isa-serial'/></target>
    </serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
      <address type='virtio-serial' controller='0' bus='0' port='1'/>
    </channel>
    <input type='tablet' bus='usb'><address type='usb' bus='0' port='1'/></input>
    <input type='mouse' bus='ps2'/>
    <input type='keyboard' bus='ps2'/>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='vnc-secret'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <audio id='1' type='none'/>
    <video>
      <model type='virtio' heads='1' primary='yes'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/>
    </video>
    <watchdog model='i6300esb' action='reset'/>
    <memballoon model='virtio'><address type='pci' domain='0x0000' bus='0x05' slot='0x00' function='0x0'/></memballoon>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
      <address type='pci' domain='0x0000' bus='0x06' slot='0x00' function='0x0'/>
    </rng>
  </devices>
</domain>
"""


def with_parts(devices="", top="", os_part="", root_attrs="", head=""):
    text = BASE.replace("</devices>", devices + "</devices>").replace("</on_crash>", "</on_crash>" + top)
    text = text.replace("<boot dev='hd'/>", "<boot dev='hd'/>" + os_part)
    if root_attrs:
        text = text.replace("<domain type='kvm'>", "<domain type='kvm' %s>" % root_attrs)
    return head + text


def validate(tmp_path, text):
    path = tmp_path / "domain.xml"
    path.write_text(text)
    proc = subprocess.run(["virt-xml-validate", str(path), "domain"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          check=False)
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode() + text


def rewrite(text, network=None, keep_uuid=True):
    return rewrite_domain_xml(text, "dst", keep_uuid, DISKS, network=network, virt_type="qemu")


def test_what_libvirt_writes_is_kept_without_a_note(tmp_path):
    out, notes = rewrite(BASE)
    assert notes == []
    validate(tmp_path, out)
    root = _xml.parse(out)
    model = _domain.model_from_xml(root)
    assert model["name"] == "dst" and model["uuid"] == "e8d2eaa1-62b9-49f4-8488-ab2e1e868548"
    assert [(d["target"], d["path"], d["format"]) for d in model["disks"]] == [("vda", "/pool/new-vda.qcow2", "qcow2")]
    assert model["interfaces"][0]["mac"] == "52:54:00:12:34:56" and model["interfaces"][0]["source"] == "default"
    assert model["guest_agent"] and model["rng"] and model["serial"]["type"] == "pty"
    assert model["graphics"] == dict(type="vnc", listen="127.0.0.1", port=-1, password="vnc-secret")
    assert model["tags"] == ["web"] and model["metadata"] == {"owner": "ops"}
    assert model["xml_sha256"] is None, "the archive's record of its user XML is not carried over"
    assert root.find("devices/emulator") is None, "this host's emulator is used"
    for path in ("features/vmport", "clock/timer", "pm/suspend-to-mem", "devices/controller/target", "devices/audio",
                 "devices/input", "devices/memballoon/address", "devices/video/model", "cpu"):
        assert root.find(path) is not None, path


# (name, where, snippet, expected note (regex)); the rebuilt XML must not contain MARK
DROPPED = [
    ("serial file", "devices", "<serial type='file'><source path='/etc/cron.d/virtops-hostile'/><target port='1'/></serial>",
     r"serial 1 became a pty: the old one was of type 'file' naming '/etc/cron.d/virtops-hostile'"),
    ("serial unix", "devices", "<serial type='unix'><source mode='bind' path='/run/virtops-hostile.sock'/>"
                               "<target port='1'/></serial>", r"serial 1 became a pty.*'unix'"),
    ("serial dev", "devices", "<serial type='dev'><source path='/dev/virtops-hostile'/><target port='1'/></serial>",
     r"serial 1 became a pty.*'dev'"),
    ("serial pipe", "devices", "<serial type='pipe'><source path='/tmp/virtops-hostile'/><target port='1'/></serial>",
     r"became a pty.*'pipe'"),
    ("serial tcp", "devices", "<serial type='tcp'><source mode='bind' host='virtops-hostile.example' service='2445'/>"
                              "<protocol type='raw'/><target port='1'/><alias name='ua-serial1'/></serial>",
     r"became a pty: the old one was of type 'tcp' naming 'virtops-hostile.example:2445'"),
    ("serial log", "devices", "<serial type='pty'><log file='/var/log/virtops-hostile.log' append='on'/>"
                              "<target port='1'/></serial>", r"devices/serial/log \('/var/log/virtops-hostile.log'\) was left out: it names a file"),
    ("console file", "devices", "<console type='file'><source path='/etc/virtops-hostile'/>"
                                "<target type='virtio' port='1'/></console>", r"console 1 became a pty.*'file'"),
    ("agent channel path", "devices", "<channel type='unix'><source mode='bind' path='/etc/virtops-hostile'/>"
                                      "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>",
     r"channel/source.*was left out: it names a file"),
    ("channel file", "devices", "<channel type='file'><source path='/etc/virtops-hostile'/>"
                                "<target type='virtio' name='x.y'/></channel>", r"devices/channel type='file'"),
    ("channel guestfwd", "devices", "<channel type='tcp'><source mode='connect' host='127.0.0.1' service='22'/>"
                                    "<target type='guestfwd' address='10.0.2.1' port='4600'/>"
                                    "<alias name='ua-virtops-hostile'/></channel>", r"devices/channel type='tcp'"),
    ("parallel file", "devices", "<parallel type='file'><source path='/etc/virtops-hostile'/><target port='0'/></parallel>",
     r"devices/parallel type='file' \('/etc/virtops-hostile'\) was left out: it names a file"),
    ("kernel", "os", "<kernel>/boot/virtops-hostile</kernel><initrd>/boot/virtops-hostile.img</initrd>"
                     "<cmdline>init=/virtops-hostile</cmdline><dtb>/boot/virtops-hostile.dtb</dtb>",
     r"os/kernel \('/boot/virtops-hostile'\) was left out: it names a file"),
    ("bios rom", "os", "<loader type='rom'>/etc/virtops-hostile</loader>", r"os/loader type='rom'.*was left out"),
    ("acpi table", "os", "<acpi><table type='slic'>/etc/virtops-hostile</table></acpi>", r"os/acpi.*was left out"),
    ("smbios host", "os", "<smbios mode='host'/>", r"os/smbios was left out: it copies the host's SMBIOS"),
    ("bootloader", "top", "<bootloader>/usr/bin/virtops-hostile</bootloader><bootloader_args>-x</bootloader_args>",
     r"bootloader \('/usr/bin/virtops-hostile'\) was left out"),
    ("qemu commandline", "top", "<qemu:commandline xmlns:qemu='%s'><qemu:arg value='-chardev'/>"
                                "<qemu:arg value='file,id=h,path=/etc/virtops-hostile'/>"
                                "<qemu:env name='X' value='virtops-hostile'/></qemu:commandline>" % QEMU,
     r"qemu:commandline \('-chardev file,id=h,path=/etc/virtops-hostile X=virtops-hosti\.\.\.'\) was left out: "
     r"it passes raw arguments"),
    ("qemu commandline other prefix", "top", "<q:commandline xmlns:q='%s'><q:arg value='-virtops-hostile'/>"
                                             "</q:commandline>" % QEMU, r"qemu:commandline.*raw arguments"),
    ("qemu capabilities", "top", "<qemu:capabilities xmlns:qemu='%s'><qemu:add capability='virtops-hostile'/>"
                                 "</qemu:capabilities>" % QEMU, r"qemu:capabilities was left out: it passes raw"),
    ("qemu override", "top", "<qemu:override xmlns:qemu='%s'><qemu:device alias='ua-x'><qemu:frontend>"
                             "<qemu:property name='virtops-hostile' type='string' value='x'/></qemu:frontend>"
                             "</qemu:device></qemu:override>" % QEMU, r"qemu:override was left out"),
    ("qemu namespace in devices", "devices", "<qemu:arg xmlns:qemu='%s' value='-virtops-hostile'/>" % QEMU,
     r"devices/qemu:arg.*raw arguments"),
    ("filesystem", "devices", "<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/>"
                              "<source dir='/etc/virtops-hostile'/><target dir='etc'/></filesystem>",
     r"devices/filesystem type='mount' \('/etc/virtops-hostile'\) was left out: it names a file"),
    ("hostdev pci", "devices", "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
                               "<address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source>"
                               "<rom file='/etc/virtops-hostile'/></hostdev>", r"devices/hostdev type='pci'.*old host"),
    ("hostdev usb", "devices", "<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0x5678'/>"
                               "</source><alias name='ua-virtops-hostile'/></hostdev>", r"hostdev type='usb'"),
    ("hostdev scsi", "devices", "<hostdev mode='subsystem' type='scsi'><source><adapter name='scsi_host0'/>"
                                "<address bus='0' target='0' unit='0'/></source><alias name='ua-virtops-hostile'/>"
                                "</hostdev>", r"hostdev type='scsi'"),
    ("hostdev block", "devices", "<hostdev mode='capabilities' type='storage'><source>"
                                 "<block>/dev/virtops-hostile</block></source></hostdev>", r"hostdev type='storage'"),
    ("redirdev", "devices", "<redirdev bus='usb' type='tcp'><source mode='connect' host='10.0.0.1' service='4000'/>"
                            "<alias name='ua-virtops-hostile'/></redirdev>", r"redirdev type='tcp'.*old host"),
    ("smartcard", "devices", "<smartcard mode='host-certificates'><certificate>cert1</certificate>"
                             "<database>/etc/virtops-hostile</database></smartcard>", r"devices/smartcard"),
    ("shmem", "devices", "<shmem name='virtops-hostile'><model type='ivshmem-doorbell'/>"
                         "<server path='/tmp/virtops-hostile.sock'/></shmem>", r"devices/shmem.*names a file"),
    ("nvdimm", "devices", "<memory model='nvdimm'><source><path>/dev/virtops-hostile</path></source>"
                          "<target><size unit='KiB'>524288</size><node>0</node></target></memory>", r"devices/memory"),
    ("memory backing", "top", "<memoryBacking><source type='file'/><access mode='shared'/>"
                              "<hugepages><page size='1' unit='G' nodeset='0'/></hugepages></memoryBacking>",
     r"memoryBacking was left out: it tunes"),
    ("tpm passthrough", "devices", "<tpm model='tpm-tis'><backend type='passthrough'>"
                                   "<device path='/dev/virtops-hostile'/></backend></tpm>",
     r"devices/tpm \('/dev/virtops-hostile'\) was left out: it passes the host's TPM through"),
    ("input evdev", "devices", "<input type='evdev'><source dev='/dev/input/virtops-hostile' grab='all'/></input>",
     r"devices/input type='evdev' \('/dev/input/virtops-hostile'\) was left out: it names a file"),
    ("input passthrough", "devices", "<input type='passthrough' bus='virtio'><source evdev='/dev/virtops-hostile'/>"
                                     "</input>", r"input type='passthrough'"),
    ("rng file", "devices", "<rng model='virtio'><backend model='random'>/etc/virtops-hostile</backend></rng>",
     r"random number generator reads this host's /dev/urandom \(the old one read '/etc/virtops-hostile'\)"),
    ("rng egd", "devices", "<rng model='virtio'><backend model='egd' type='unix'>"
                           "<source mode='connect' path='/tmp/virtops-hostile'/></backend></rng>",
     r"/dev/urandom \(the old one had a backend of model 'egd'\)"),
    ("graphics socket", "devices", "<graphics type='vnc' socket='/etc/virtops-hostile'/>",
     r"graphics socket='/etc/virtops-hostile' was left out: it names a file"),
    ("graphics listen socket", "devices", "<graphics type='vnc'><listen type='socket' socket='/etc/virtops-hostile'/>"
                                          "</graphics>", r"listened on '/etc/virtops-hostile'; it listens on 127.0.0.1"),
    ("graphics everywhere", "devices", "<graphics type='spice' autoport='yes' listen='0.0.0.0' keymap='virtops-hostile'>"
                                       "<listen type='address' address='0.0.0.0'/><gl enable='yes' "
                                       "rendernode='/dev/dri/virtops-hostile'/></graphics>",
     r"the spice console listened on '0.0.0.0'.*127.0.0.1"),
    ("graphics sdl", "devices", "<graphics type='sdl' display=':0' xauth='/root/.Xauthority-virtops-hostile'/>",
     r"graphics type='sdl'.*was left out"),
    ("graphics egl", "devices", "<graphics type='egl-headless'><gl rendernode='/dev/dri/virtops-hostile'/></graphics>",
     r"graphics type='egl-headless'.*names a file"),
    ("audio file", "devices", "<audio id='2' type='file' path='/etc/virtops-hostile'/>"
                              "<sound model='ich9'><audio id='2'/></sound>", r"devices/audio type='file'.*names a file"),
    ("video vhostuser", "devices", "<video><driver name='vhostuser'/><model type='virtio' heads='1'/>"
                                   "<source type='unix' path='/tmp/virtops-hostile'/></video>",
     r"video/driver name='vhostuser' was left out"),
    ("sysinfo fwcfg", "top", "<sysinfo type='fwcfg'><entry name='opt/x' file='/etc/virtops-hostile'/></sysinfo>",
     r"sysinfo type='fwcfg' \('/etc/virtops-hostile'\) was left out"),
    ("resource", "top", "<resource><partition>/virtops-hostile</partition></resource>", r"resource.*left out"),
    ("blkiotune", "top", "<blkiotune><device><path>/dev/virtops-hostile</path><weight>500</weight></device></blkiotune>",
     r"blkiotune was left out: it tunes"),
    ("cputune", "top", "<cputune><vcpupin vcpu='0' cpuset='1'/></cputune><numatune><memory nodeset='0'/></numatune>"
                       "", r"cputune was left out: it tunes"),
    ("perf", "top", "<perf><event name='cmt' enabled='yes'/></perf>", r"perf was left out"),
    ("seclabel none", "top", "<seclabel type='none' model='dac'/>",
     r"seclabel type='none' was left out: it sets the host's security confinement"),
    ("seclabel static", "top", "<seclabel type='static' model='selinux' relabel='no'><label>virtops-hostile</label>"
                               "</seclabel>", r"seclabel type='static'"),
    ("lease", "devices", "<lease><lockspace>x</lockspace><key>y</key><target path='/etc/virtops-hostile'/></lease>",
     r"devices/lease \('/etc/virtops-hostile'\)"),
    ("vsock", "devices", "<vsock model='virtio'><cid auto='yes'/></vsock><watchdog model='itco' "
                         "action='dump'/><panic model='isa'/><alias name='virtops-hostile'/>",
     r"devices/vsock was left out: it gives the guest a socket"),
    ("pstore", "devices", "<pstore backend='acpi-erst'><path>/etc/virtops-hostile</path><size unit='KiB'>8</size>"
                          "</pstore>", r"devices/pstore"),
    ("emulator", "devices", "<emulator>/tmp/virtops-hostile</emulator>",
     r"devices/emulator \('/tmp/virtops-hostile'\) was left out: it names a file"),
    ("nic script", "devices", "<interface type='bridge'><source bridge='br0'/><script path='/etc/virtops-hostile'/>"
                              "<downscript path='/etc/virtops-hostile.down'/><backend tap='/dev/virtops-hostile'/>"
                              "<rom file='/etc/virtops-hostile.rom'/><target dev='virtops-hostile'/>"
                              "<model type='virtio'/></interface>", r"interface/script \('/etc/virtops-hostile'\)"),
    ("nic target", "devices", "<interface type='network'><source network='default'/><target dev='virtops-hostile'/>"
                              "</interface>", r"interface/target \('virtops-hostile'\) was left out: it names a network "
                                              r"device of the host"),
    ("nic model", "devices", "<interface type='network'><source network='default'/>"
                             "<model type='virtio-net-pci,romfile=/virtops-hostile'/></interface>",
     r"NIC model 'virtio-net-pci,romfile=/virtops-hostile' is not kept: the imported NIC is an e1000"),
    ("disk not archived", "devices", "<disk type='file' device='disk'><source file='/etc/virtops-hostile'/>"
                                     "<target dev='vdb' bus='virtio'/></disk>",
     r"disk vdb \('/etc/virtops-hostile'\) of the archived VM is not in the archive: left out"),
    ("disk dir", "devices", "<disk type='dir' device='disk'><source dir='/etc/virtops-hostile'/>"
                            "<target dev='vdc' bus='virtio'/></disk>", r"disk vdc \('/etc/virtops-hostile'\)"),
    ("disk lun", "devices", "<disk type='block' device='lun' rawio='yes'><source dev='/dev/virtops-hostile'/>"
                            "<target dev='sdz' bus='scsi'/></disk>", r"devices/disk.*passes a block device"),
    ("cdrom", "devices", "<disk type='file' device='cdrom'><source file='/etc/virtops-hostile'/>"
                         "<target dev='sdc' bus='sata'/><readonly/></disk>",
     r"CD-ROM sdc was emptied \(it held '/etc/virtops-hostile' of the old host\)"),
    ("floppy", "devices", "<disk type='file' device='floppy'><source file='/etc/virtops-hostile'/>"
                          "<target dev='fda' bus='fdc'/></disk>", r"floppy fda was emptied"),
    ("foreign metadata", "metadata", "<app:x xmlns:app='urn:app'>/etc/virtops-hostile</app:x>",
     r"metadata/x was left out: it is another application's metadata"),
    ("two devices", "end", "<devices><serial type='file'><source path='/etc/virtops-hostile'/></serial></devices>",
     r"devices \('/etc/virtops-hostile'\) was left out: it is given twice"),
    ("coredump", "top", "<on_lockfailure>poweroff</on_lockfailure>", r"on_lockfailure was left out"),
    ("foreign element", "devices", "<serial xmlns='urn:evil' type='file'><source path='/etc/virtops-hostile'/></serial>",
     r"devices/serial type='file'.*another XML namespace \('urn:evil'\)"),
    ("namespaced attribute", "devices", "<hub type='usb' xmlns:e='urn:e' e:file='/etc/virtops-hostile'/>",
     r"devices/hub file='/etc/virtops-hostile' was left out: it names a file"),
    ("xinclude", "devices", "<xi:include xmlns:xi='http://www.w3.org/2001/XInclude' href='/etc/virtops-hostile'/>",
     r"another XML namespace"),
]


def _inject(snippets):
    """BASE with snippets (where, text) added: where is devices, os, metadata or top (top-level)."""
    parts = dict(devices="", os="", metadata="", top="", end="")
    for where, snippet in snippets:
        parts[where] += snippet
    return with_parts(devices=parts["devices"], os_part=parts["os"], top=parts["top"]).replace(
        "</metadata>", parts["metadata"] + "</metadata>").replace("</domain>", parts["end"] + "</domain>")


@pytest.mark.parametrize("name, where, snippet, note", DROPPED, ids=[v[0] for v in DROPPED])
def test_hostile_element_is_left_out_with_a_note(tmp_path, name, where, snippet, note):
    text = _inject([(where, snippet)])
    out, notes = rewrite(text)
    assert MARK not in out, out
    assert any(re.search(note, n) for n in notes), notes
    validate(tmp_path, out)


def test_all_droppable_elements_at_once(tmp_path):
    text = _inject([(where, snippet) for name, where, snippet, _note in DROPPED if name not in ("bios rom", "two devices")])
    out, notes = rewrite(text)
    assert MARK not in out
    assert len(notes) >= len(DROPPED) - 2
    validate(tmp_path, out)
    devices = _xml.parse(out).find("devices")
    assert [c.get("type") for c in devices if c.tag == "serial"] == ["pty"] * 7
    assert devices.find("channel[@type='unix']") is not None, "the guest agent channel stays"
    assert devices.find("graphics").get("listen") == "127.0.0.1"


REFUSED = [
    ("doctype", "<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/virtops-hostile'>]>" + BASE.replace(
        "<title>", "<title>"), r"has a DOCTYPE"),
    ("entity", BASE.replace("<name>src</name>", "<name>&virtops;</name>"), r"not well-formed"),
    ("lxc", BASE.replace("type='kvm'", "type='lxc'", 1), r"domain of type 'lxc': only kvm and qemu"),
    ("xen", BASE.replace("type='kvm'", "type='xen'", 1), r"type 'xen'"),
    ("no type", BASE.replace(" type='kvm'", "", 1), r"type \(none\)"),
    ("os exe", BASE.replace(">hvm<", ">exe<"), r"OS type 'exe'"),
    ("namespaced root", BASE.replace("<domain type='kvm'>", "<domain type='kvm' xmlns='urn:virtops-hostile'>"),
     r"not <domain>"),
    ("launch security", with_parts(top="<launchSecurity type='sev'><policy>0x0003</policy></launchSecurity>"),
     r"launchSecurity type='sev'.*memory encryption.*refused"),
    ("two disks one target", with_parts(devices="<disk type='file' device='disk'><source file='/etc/virtops-hostile'/>"
                                                "<target dev='vda' bus='virtio'/></disk>"), r"two disks with target vda"),
    ("vcpu text", BASE.replace("'static'>1<", "'static'>1;virtops-hostile<"), r"vcpu '1;virtops-hostile' is not valid"),
    ("memory text", BASE.replace(">262144</memory>", ">2e9</memory>"), r"memory '2e9' is not valid"),
]
for _kind in ("ethernet", "direct", "vhostuser", "user", "mcast", "server", "hostdev", "vdpa"):
    REFUSED.append(("nic " + _kind, with_parts(devices="<interface type='%s'><source dev='virtops-hostile' "
                                                       "path='/tmp/virtops-hostile'/></interface>" % _kind),
                    r"interface 2 of the archived VM is of type '%s'.*give network" % _kind))


@pytest.mark.parametrize("name, text, message", REFUSED, ids=[v[0] for v in REFUSED])
def test_refused(name, text, message):
    with pytest.raises(InvalidInputError, match=message):
        rewrite(text)


@pytest.mark.parametrize("kind", ["ethernet", "direct", "vhostuser", "user", "hostdev"])
def test_any_interface_is_moved_to_the_network_given(tmp_path, kind):
    text = with_parts(devices="<interface type='%s'><mac address='52:54:00:aa:bb:cc'/><source dev='virtops-hostile' "
                              "path='/tmp/virtops-hostile'/><script path='/etc/virtops-hostile'/>"
                              "<target dev='virtops-hostile'/><virtualport type='openvswitch'/>"
                              "<model type='e1000'/></interface>" % kind)
    out, notes = rewrite(text, network="lan", keep_uuid=False)
    assert MARK not in out
    assert any("script" in n for n in notes)
    model = _domain.model_from_xml(out)
    assert [(n["type"], n["source"], n["mac"]) for n in model["interfaces"]] == [("network", "lan", None)] * 2
    assert model["interfaces"][1]["model"] == "e1000"
    validate(tmp_path, out)


def test_uefi_is_kept_without_the_old_hosts_files(tmp_path):
    text = with_parts(os_part="<loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/virtops-hostile.fd"
                              "</loader><nvram template='/etc/virtops-hostile'>/var/lib/libvirt/qemu/nvram/virtops-hostile"
                              "</nvram>")
    out, notes = rewrite(text)
    assert MARK not in out and notes == []
    model = _domain.model_from_xml(out)
    assert (model["firmware"], model["secure_boot"], model["nvram"]) == ("uefi", True, None)
    validate(tmp_path, out)
    text = with_parts(os_part="<firmware><feature enabled='no' name='secure-boot'/></firmware>").replace(
        "<os>", "<os firmware='efi'>")
    model = _domain.model_from_xml(rewrite(text)[0])
    assert (model["firmware"], model["secure_boot"]) == ("uefi", False)


def test_tpm_emulator_is_kept_empty(tmp_path):
    out, notes = rewrite(with_parts(devices="<tpm model='tpm-crb'><backend type='emulator' version='2.0' "
                                            "persistent_state='yes'><encryption secret='6dd3e4a5-1d76-44ce-961f-"
                                            "f119f5aad935'/></backend></tpm>"))
    assert _xml.parse(out).find("devices/tpm/backend").attrib == {"type": "emulator", "version": "2.0"}
    assert any("new, empty emulated" in n for n in notes)
    validate(tmp_path, out)


def test_unknown_lifecycle_action_is_left_out(tmp_path):
    out, notes = rewrite(BASE.replace("<on_crash>destroy", "<on_crash>coredump-destroy"))
    assert notes == ["the archived domain XML's on_crash 'coredump-destroy' was left out: libvirt's default applies"]
    assert _xml.parse(out).find("on_crash") is None
    validate(tmp_path, out)


def test_comments_and_processing_instructions_are_not_copied():
    out, notes = rewrite(BASE.replace("<devices>", "<devices><!-- virtops-hostile --><?virtops virtops-hostile?>"))
    assert MARK not in out and notes == []


def test_notes_show_values_safely():
    long_path = "/tmp/" + "x" * 200
    _out, notes = rewrite(with_parts(devices="<parallel type='file'><source path='&#x202e;%s'/></parallel>" % long_path))
    assert len(notes) == 1 and len(notes[0]) < 250 and "\u202e" not in notes[0] and "..." in notes[0]
    assert "'\\x202e/tmp/xxx" in notes[0]


def test_bridged_interface_and_portgroup_are_kept(tmp_path):
    out, notes = rewrite(with_parts(devices="<interface type='bridge'><mac address='52:54:00:aa:bb:cc'/>"
                                            "<source bridge='br0'/><virtualport type='openvswitch'/>"
                                            "<model type='virtio'/><filterref filter='clean-traffic'/></interface>"
                                            "<interface type='network'><source network='lan' portgroup='web'/>"
                                            "<bandwidth><inbound average='1000'/></bandwidth></interface>"))
    assert notes == []
    root = _xml.parse(out)
    assert root.find("devices/interface[@type='bridge']/source").attrib == {"bridge": "br0"}
    assert root.find("devices/interface[@type='bridge']/filterref").get("filter") == "clean-traffic"
    assert root.find("devices/interface/source[@portgroup='web']") is not None
    validate(tmp_path, out)


@pytest.mark.parametrize("old, new, note", [
    ("<memory unit='KiB'>", "<memory unit='KiB' dumpCore='on'>",
     "memory dumpCore='on' was left out: it writes the guest's memory into the host's core dumps"),
    ("<vcpu placement='static'>", "<vcpu placement='static' cpuset='0-1'>", "vcpu cpuset='0-1' was left out: it tunes"),
    ("<rng model='virtio'>", "<rng model='egd'>", "devices/rng model='egd' was left out"),
    ("<watchdog model='i6300esb' action='reset'/>", "<watchdog model='i6300esb' action='dump'/>",
     "devices/watchdog action='dump' was left out"),
])
def test_host_attributes_are_left_out(tmp_path, old, new, note):
    out, notes = rewrite(BASE.replace(old, new))
    assert any(note in n for n in notes), notes
    validate(tmp_path, out)
