# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sources for the vm_import target, made the way other tools make them.

  build_source.py archive OUT DOMAIN_XML TARGET=IMAGE[,FORMAT]... [--hostile KIND] [--hostile-xml KIND,... --mark DIR]
      an archive of the collection's own format (tar, or tar.zst when OUT ends in .zst); with
      --hostile, a damaged one: symlink (a disk member that is a link to /etc/shadow), dotdot (an
      extra member ../../tmp/...), checksum (one byte of the disk changed after its digest was taken);
      with --hostile-xml, DOMAIN_XML gets hostile elements (HOSTILE_XML below) naming files DIR/pwned-*

Needs PYTHONPATH to hold the directory with ansible_collections/virtops/libvirt (the installed
collection) and the zstd command for .zst.
"""
from __future__ import absolute_import, division, print_function

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive as _archive


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def add_bytes(tar, name, data, **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def virtual_size(path, fmt):
    out = subprocess.check_output(["qemu-img", "info", "-f", fmt, "--output=json", path])
    return json.loads(out)["virtual-size"]


QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
# kind -> (where, snippet); {mark} is the directory the named files would appear in
HOSTILE_XML = {
    "serial-file": ("devices", "<serial type='file'><source path='{mark}/pwned-serial'/><target port='1'/></serial>"),
    "console-file": ("devices", "<console type='file'><source path='{mark}/pwned-console'/>"
                                "<target type='virtio' port='1'/></console>"),
    "channel-unix": ("devices", "<channel type='unix'><source mode='bind' path='{mark}/pwned-channel'/>"
                                "<target type='virtio' name='org.virtops.pwned'/></channel>"),
    "parallel-file": ("devices", "<parallel type='file'><source path='{mark}/pwned-parallel'/><target port='0'/>"
                                 "</parallel>"),
    "qemu-commandline": ("domain", "<qemu:commandline xmlns:qemu='%s'><qemu:arg value='-chardev'/>"
                                   "<qemu:arg value='file,id=pwned,path={mark}/pwned-qemu'/></qemu:commandline>" % QEMU_NS),
    "kernel": ("os", "<kernel>{mark}/pwned-kernel</kernel><initrd>{mark}/pwned-initrd</initrd>"),
    "filesystem": ("devices", "<filesystem type='mount' accessmode='passthrough'><source dir='{mark}'/>"
                              "<target dir='pwned'/></filesystem>"),
    "hostdev": ("devices", "<hostdev mode='subsystem' type='usb'><source><vendor id='0x1d6b'/>"
                           "<product id='0x0002'/></source></hostdev>"),
    "rng-file": ("devices", "<rng model='virtio'><backend model='random'>{mark}/pwned-rng</backend></rng>"),
    "graphics-listen": ("devices", "<graphics type='spice' autoport='yes' listen='0.0.0.0'>"
                                   "<listen type='address' address='0.0.0.0'/><gl enable='no' rendernode='{mark}/pwned-gl'/>"
                                   "</graphics>"),
    "interface-script": ("devices", "<interface type='bridge'><source bridge='vitimp0'/>"
                                    "<script path='{mark}/pwned-script'/><model type='virtio'/></interface>"),
    "seclabel-none": ("domain", "<seclabel type='none' model='dac'/>"),
    # refused
    "interface-ethernet": ("devices", "<interface type='ethernet'><script path='{mark}/pwned-script'/></interface>"),
    "launch-security": ("domain", "<launchSecurity type='sev'><policy>0x0003</policy></launchSecurity>"),
    "doctype": ("doctype", "<!DOCTYPE domain [<!ENTITY pwned SYSTEM 'file://{mark}/pwned-entity'>]>"),
    "duplicate-disk": ("devices", "<disk type='file' device='disk'><source file='{mark}/pwned-disk'/>"
                                  "<target dev='vda' bus='virtio'/></disk>"),
}


def add_hostile_xml(xml, kinds, mark):
    text = xml.decode("utf-8")
    for kind in kinds:
        where, snippet = HOSTILE_XML[kind]
        snippet = snippet.replace("{mark}", mark)
        if where == "doctype":
            text = snippet + text
        elif where == "os":
            text = text.replace("</os>", snippet + "</os>", 1)
        elif where == "devices":
            text = text.replace("</devices>", snippet + "</devices>", 1)
        else:
            text = text.replace("</domain>", snippet + "</domain>", 1)
    return text.encode("utf-8")


def build_archive(out, domain_xml, disks, hostile=None, hostile_xml=(), mark="/tmp"):
    with open(domain_xml, "rb") as handle:
        xml = add_hostile_xml(handle.read(), hostile_xml, mark)
    from lxml import etree  # pylint: disable=import-outside-toplevel

    root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True))
    entries, files = [], []
    for spec in disks:
        target, rest = spec.split("=", 1)
        path, fmt = (rest.split(",", 1) + ["qcow2"])[:2]
        entries.append(dict(target=target, format=fmt, virtual_size=virtual_size(path, fmt), size=os.path.getsize(path),
                            sha256=sha256_file(path), bus="virtio", device="disk"))
        files.append((_archive.disk_member_name(target, fmt), path))
    vcpu = root.find("vcpu")
    memory = root.find("memory")
    manifest = _archive.build_manifest(dict(name=root.findtext("name"), uuid=root.findtext("uuid"),
                                            vcpus=int(vcpu.text) if vcpu is not None else 1,
                                            memory_mib=int(memory.text) // 1024 if memory is not None else 0,
                                            firmware="bios", arch="x86_64"), entries)
    tar_path = out[:-4] if out.endswith(".zst") else out
    with tarfile.open(tar_path + ".part", "w", format=tarfile.PAX_FORMAT) as tar:
        add_bytes(tar, _archive.MANIFEST_NAME, manifest)
        add_bytes(tar, _archive.DOMAIN_XML_NAME, xml)
        for index, (member, path) in enumerate(files):
            if hostile == "symlink" and index == 0:
                add_bytes(tar, member, b"", type=tarfile.SYMTYPE, linkname="/etc/shadow")
                continue
            if hostile == "checksum" and index == 0:
                with open(path, "rb") as handle:
                    data = bytearray(handle.read())
                data[len(data) // 2] ^= 0x01
                add_bytes(tar, member, bytes(data))
                continue
            tar.add(path, arcname=member)
        if hostile == "dotdot":
            add_bytes(tar, "disks/../../../../tmp/virtops-import-escaped", b"escaped\n")
    os.rename(tar_path + ".part", tar_path)
    if out.endswith(".zst"):
        subprocess.check_call(["zstd", "-q", "-f", "--rm", "-T0", tar_path, "-o", out])


def main(argv):
    if argv[1] == "archive":
        args = argv[2:]
        options = {"--hostile": None, "--hostile-xml": "", "--mark": "/tmp"}
        for name in options:
            if name in args:
                index = args.index(name)
                options[name] = args[index + 1]
                del args[index:index + 2]
        build_archive(args[0], args[1], args[2:], options["--hostile"],
                      [k for k in options["--hostile-xml"].split(",") if k], options["--mark"])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
