# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_import (_import) against libvirt's test driver, with real images made by qemu-img.

The test driver cannot upload into a volume (virStorageVolUpload is not supported), so the upload
is replaced by a copy into a directory of this test (``uploads``): what would have reached the
volume is compared with the source image using ``qemu-img compare``.  Everything else (archive
reading, checks, conversion, volume creation, the VM definition, undo) is the real code.  Booting
an imported guest is left to the lab integration target.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive as _archive

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import codec_write as _codec_write
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import normalize as _normalize

from ansible_collections.virtops.libvirt.plugins.module_utils._import import vm_import as _import
from ansible_collections.virtops.libvirt.plugins.module_utils._import.definition import rewrite_domain_xml
from ansible_collections.virtops.libvirt.plugins.module_utils._import.source import assign_targets

from ansible_collections.virtops.libvirt.plugins.module_utils._export import ovf as _ovf
from ansible_collections.virtops.libvirt.plugins.module_utils._tools import ovf as _ovf_tools

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.modules.vm_import import ARGUMENT_SPEC

POOL = "default-pool"
PREFIX = "u-imp-"
VIRT_XML_VALIDATE = "/usr/bin/virt-xml-validate"
needs_zstd = pytest.mark.skipif(shutil.which("zstd") is None, reason="the zstd command is not installed")
MIB = 1024 * 1024


def run_command(argv, **_kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def module_params(**given):
    result = ArgumentSpecValidator(ARGUMENT_SPEC).validate(given)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def run(conn, check=False, **given):
    ctx = Context(conn=conn, params=module_params(uri="test:///default", **given), check_mode=check, diff=True,
                  run_command=run_command)
    result = reconcile(_import.ImportResource(ctx), check_mode=check, want_diff=True)
    result["module_warnings"] = ctx.warnings
    return result


def four(conn, **given):
    results = [run(conn, check=check, **given) for check in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False], [r["actions"] for r in results]
    assert results[0]["actions"] == results[1]["actions"]
    return results


@pytest.fixture
def uploads(tmp_path, monkeypatch):
    """Volume uploads land here (by volume name), since the test driver cannot upload."""
    target = tmp_path / "uploads"
    target.mkdir()

    def fake_upload(conn, vol, path, sparse):
        subprocess.check_call(["cp", "--sparse=always" if sparse else "--sparse=never", path, str(target / vol.name())])

    monkeypatch.setattr(_import, "upload_file", fake_upload)
    return target


@pytest.fixture
def conn(test_conn, undefine_for_test_driver):
    # the test driver cannot undefine with these flags (an older libvirt-python has no such names)
    yield test_conn
    for dom in test_conn.listAllDomains(0):
        if dom.name().startswith(PREFIX):
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    pool = test_conn.storagePoolLookupByName(POOL)
    for vol in pool.listAllVolumes(0):
        if vol.name().startswith(PREFIX):
            vol.delete(0)


def volumes(conn):
    return sorted(v.name() for v in conn.storagePoolLookupByName(POOL).listAllVolumes(0) if v.name().startswith(PREFIX))


def domains(conn):
    return sorted(d.name() for d in conn.listAllDomains(0) if d.name().startswith(PREFIX))


def saved_xml(conn, name):
    return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def validate(tmp_path, text):
    path = tmp_path / "domain.xml"
    path.write_text(text)
    proc = subprocess.run([VIRT_XML_VALIDATE, str(path), "domain"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()


# --- images and archives ------------------------------------------------------------------------


def make_image(tmp_path, name, fmt="qcow2", size=64 * MIB, marker=b"virtops-import-test", options=None):
    """An image of ``size`` bytes holding ``marker`` at 1 MiB, in ``fmt``."""
    raw = tmp_path / (name + ".src.raw")
    with open(str(raw), "wb") as handle:
        handle.truncate(size)
        handle.seek(MIB)
        handle.write(marker)
    if fmt == "raw":
        out = tmp_path / name
        os.rename(str(raw), str(out))
        return str(out)
    out = tmp_path / name
    argv = ["qemu-img", "convert", "-q", "-f", "raw", "-O", fmt]
    if options:
        argv += ["-o", options]
    subprocess.check_call(argv + [str(raw), str(out)])
    raw.unlink()
    return str(out)


def same_content(first, second):
    return subprocess.run(["qemu-img", "compare", "-q", first, second], check=False).returncode == 0


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def add(tar, name, data=b"", **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def make_ova(tmp_path, vm_name="appliance", disks=None, nics=None, extra=None, tamper=None, with_mf=True,
             firmware="bios", bus="virtio", name="x.ova", mode="w"):
    disks = disks or [make_image(tmp_path, "%s-disk1.vmdk" % vm_name, "vmdk", options="subformat=streamOptimized")]
    vm = dict(name=vm_name, vcpus=2, memory_mib=256, firmware=firmware, os_hint="debian12",
              disks=[dict(file=os.path.basename(d), size=os.path.getsize(d), capacity=64 * MIB, bus=bus) for d in disks],
              nics=nics if nics is not None else [dict(network="default", model="virtio")])
    ovf = _ovf.build_ovf(vm)
    files = {"%s.ovf" % vm_name: hashlib.sha256(ovf).hexdigest()}
    for d in disks:
        files[os.path.basename(d)] = sha256(d)
    if tamper:
        files.update(tamper)
    path = str(tmp_path / name)
    with tarfile.open(path, mode, format=tarfile.USTAR_FORMAT) as tar:
        add(tar, "%s.ovf" % vm_name, ovf)
        if with_mf:
            add(tar, "%s.mf" % vm_name, _ovf_tools.manifest(files))
        for d in disks:
            tar.add(d, arcname=os.path.basename(d))
        for member in extra or []:
            add(tar, *member[:2], **(member[2] if len(member) > 2 else {}))
    return path


def domain_xml(name, disks, uuid="0b7d1c0e-4f2a-4c55-9e1c-2d3b4a5f6e70", mac="52:54:00:12:34:56"):
    model = _normalize.with_creation_defaults(_normalize.normalize(dict(
        memory=256, vcpus=1, virt_type="kvm",
        disks=[dict(target=t, bus="virtio", path="/var/lib/libvirt/images/old-%s.qcow2" % t, format="qcow2") for t in disks],
        cdroms=[dict(target="sda", bus="sata", path="/srv/iso/installer.iso")],
        interfaces=[dict(network="default", mac=mac)],
    )))
    model["machine"] = None
    root = _codec_write.build_xml(name, model, uuid)
    nvram = _xml.sub(root.find("os"), "nvram")
    nvram.text = "/var/lib/libvirt/qemu/nvram/%s_VARS.fd" % name
    root.find("devices").insert(0, _xml.element("emulator", "/usr/libexec/qemu-kvm"))
    return _xml.to_string(root).encode()


def make_archive(tmp_path, vm_name, targets=("vda",), fmt="tar", members_hook=None, name=None, disk_fmt="qcow2"):
    images = dict((t, make_image(tmp_path, "%s-%s.%s" % (vm_name.replace("/", "_"), t, disk_fmt), disk_fmt,
                                 marker=t.encode() * 8))
                  for t in targets)
    entries = [dict(target=t, format=disk_fmt, virtual_size=64 * MIB, size=os.path.getsize(p), sha256=sha256(p),
                    bus="virtio", device="disk") for t, p in images.items()]
    manifest = _archive.build_manifest(dict(name=vm_name, uuid="0b7d1c0e-4f2a-4c55-9e1c-2d3b4a5f6e70", vcpus=1,
                                            memory_mib=256, firmware="bios", arch="x86_64"), entries)
    members = [(_archive.MANIFEST_NAME, manifest), (_archive.DOMAIN_XML_NAME, domain_xml(vm_name, targets))]
    for t, p in images.items():
        with open(p, "rb") as handle:
            members.append((_archive.disk_member_name(t, disk_fmt), handle.read()))
    if members_hook:
        members = members_hook(members)
    path = str(tmp_path / (name or "%s.tar" % vm_name.replace("/", "_")))
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            add(tar, *member[:2], **(member[2] if len(member) > 2 else {}))
    if fmt == "tar.gz":
        subprocess.check_call(["gzip", "-f", "-n", path])
        path += ".gz"
    elif fmt == "tar.zst":
        subprocess.check_call(["zstd", "-q", "-f", "--rm", path, "-o", path + ".zst"])
        path += ".zst"
    return path, images


# --- OVA ----------------------------------------------------------------------------------------


def test_ova_four_runs(conn, tmp_path, uploads):
    name = PREFIX + "ova"
    ova = make_ova(tmp_path, vm_name=name)
    results = four(conn, src=ova, pool=POOL)
    check, applied = results[0], results[1]
    assert check["actions"] == [
        "read and verify %s" % ova,
        "create qcow2 volume %s-vda.qcow2 in pool %s from disk vda (vmdk, converted)" % (name, POOL),
        "define VM %s" % name,
        "remove temporary files",
    ]
    assert check["vm"]["vcpus"] == 2 and check["vm"]["memory"] == 256
    assert applied["source"] == dict(path=ova, type="ova", format="tar", name=name)
    assert applied["disks"][0]["source_format"] == "vmdk" and applied["disks"][0]["capacity"] == 64 * MIB
    assert results[2]["disks"] == [] and results[2]["vm"]["name"] == name
    assert run(conn, src=ova, pool=POOL, name=name)["source"] is None, "with name given, the source is not read"
    saved = _domain.model_from_xml(saved_xml(conn, name))
    assert saved["vcpus"] == 2 and saved["memory"] == 256 and saved["virt_type"] == "qemu"
    assert [(d["target"], d["bus"], d["format"], d["path"]) for d in saved["disks"]] == [
        ("vda", "virtio", "qcow2", "/default-pool/%s-vda.qcow2" % name)]
    assert [(n["type"], n["source"], n["model"]) for n in saved["interfaces"]] == [("network", "default", "virtio")]
    assert "debian12" in saved["description"]
    validate(tmp_path, saved_xml(conn, name))
    uploaded = str(uploads / ("%s-vda.qcow2" % name))
    assert json.loads(subprocess.check_output(["qemu-img", "info", "--output=json", uploaded]))["format"] == "qcow2"
    assert same_content(uploaded, str(tmp_path / ("%s-disk1.vmdk" % name)))
    assert volumes(conn) == ["%s-vda.qcow2" % name]


def test_ova_ide_disks_uefi_and_overrides(conn, tmp_path, uploads):
    name = PREFIX + "ova-ide"
    disks = [make_image(tmp_path, "a.vmdk", "vmdk", options="subformat=streamOptimized"),
             make_image(tmp_path, "b.vmdk", "vmdk", options="subformat=streamOptimized", marker=b"second")]
    ova = make_ova(tmp_path, vm_name="vbox", disks=disks, bus="ide", firmware="uefi",
                   nics=[dict(network="NAT", model="pcnet")])
    with pytest.raises(NotFoundError, match="'NAT'.*give network"):
        run(conn, src=ova, pool=POOL, name=name)
    result = run(conn, src=ova, pool=POOL, name=name, network="default", vcpus=1, memory="512")
    saved = _domain.model_from_xml(saved_xml(conn, name))
    assert [(d["target"], d["bus"]) for d in saved["disks"]] == [("sda", "sata"), ("sdb", "sata")]
    assert saved["firmware"] == "uefi" and saved["vcpus"] == 1 and saved["memory"] == 512
    assert [(n["source"], n["model"]) for n in saved["interfaces"]] == [("default", "e1000")]
    assert any("pcnet" in w for w in result["module_warnings"])
    assert same_content(str(uploads / ("%s-sdb.qcow2" % name)), disks[1])


def test_ova_raw_pool_format_and_disk_bus(conn, tmp_path, uploads):
    name = PREFIX + "ova-raw"
    ova = make_ova(tmp_path, vm_name="r", bus="scsi")
    result = run(conn, src=ova, pool=POOL, name=name, disk_format="raw", disk_bus="virtio")
    assert result["disks"][0]["volume"] == "%s-vda.img" % name
    saved = _domain.model_from_xml(saved_xml(conn, name))
    assert [(d["target"], d["bus"], d["format"]) for d in saved["disks"]] == [("vda", "virtio", "raw")]
    uploaded = str(uploads / ("%s-vda.img" % name))
    assert os.path.getsize(uploaded) == 64 * MIB
    assert os.stat(uploaded).st_blocks * 512 < 8 * MIB, "the raw image stays sparse"
    assert same_content(uploaded, str(tmp_path / "r-disk1.vmdk"))


def test_ovf_with_files_beside(conn, tmp_path, uploads):
    name = PREFIX + "ovf"
    disk = make_image(tmp_path, "d1.vmdk", "vmdk", options="subformat=streamOptimized")
    vm = dict(name=name, vcpus=1, memory_mib=128, firmware="bios", os_hint=None,
              disks=[dict(file="d1.vmdk", size=os.path.getsize(disk), capacity=64 * MIB, bus="sata")], nics=[])
    ovf = tmp_path / "vm.ovf"
    ovf.write_bytes(_ovf.build_ovf(vm))
    (tmp_path / "vm.mf").write_bytes(_ovf_tools.manifest({"vm.ovf": sha256(str(ovf)), "d1.vmdk": "0" * 64}))
    with pytest.raises(InvalidInputError, match="checksum mismatch for %s" % disk):
        run(conn, src=str(ovf), pool=POOL)
    assert domains(conn) == [] and volumes(conn) == []
    (tmp_path / "vm.mf").write_bytes(_ovf_tools.manifest({"vm.ovf": sha256(str(ovf)), "d1.vmdk": sha256(disk)}))
    result = run(conn, src=str(ovf), pool=POOL)
    assert result["source"]["type"] == "ovf"
    assert _domain.model_from_xml(saved_xml(conn, name))["disks"][0]["bus"] == "sata"
    (tmp_path / "vm.mf").unlink()
    result = run(conn, src=str(ovf), pool=POOL, force=True)
    assert result["replaced"] and any("not checksum-verified" in w for w in result["module_warnings"])


def test_ovf_file_outside_its_directory(conn, tmp_path, uploads):
    outside = make_image(tmp_path, "secret.raw", "raw")
    sub = tmp_path / "ovf"
    sub.mkdir()
    os.symlink(outside, str(sub / "d1.vmdk"))
    vm = dict(name=PREFIX + "ovf-link", vcpus=1, memory_mib=128, firmware="bios", os_hint=None,
              disks=[dict(file="d1.vmdk", size=None, capacity=64 * MIB, bus="sata")], nics=[])
    (sub / "vm.ovf").write_bytes(_ovf.build_ovf(vm))
    with pytest.raises(InvalidInputError, match="outside the directory"):
        run(conn, src=str(sub / "vm.ovf"), pool=POOL)


# --- own archives -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["tar", "tar.gz", pytest.param("tar.zst", marks=needs_zstd)])
def test_archive_same_name_keeps_uuid_and_macs(conn, tmp_path, uploads, fmt):
    name = PREFIX + "arch-" + fmt.replace(".", "")
    path, images = make_archive(tmp_path, name, targets=("vda", "vdb"), fmt=fmt)
    results = four(conn, src=path, pool=POOL)
    assert results[1]["source"]["format"] == fmt
    saved = _domain.model_from_xml(saved_xml(conn, name))
    assert saved["uuid"] == "0b7d1c0e-4f2a-4c55-9e1c-2d3b4a5f6e70"
    assert saved["interfaces"][0]["mac"] == "52:54:00:12:34:56"
    assert saved["virt_type"] == "qemu", "the test host has no KVM"
    assert [(d["target"], d["path"]) for d in saved["disks"]] == [
        ("vda", "/default-pool/%s-vda.qcow2" % name), ("vdb", "/default-pool/%s-vdb.qcow2" % name)]
    assert saved["cdroms"][0]["path"] is None, "the old host's ISO is not kept"
    assert saved["nvram"] is None
    root = _xml.parse(saved_xml(conn, name))
    assert _xml.find_text(root, "devices/emulator") != "/usr/libexec/qemu-kvm", "the old host's emulator is dropped"
    assert any("CD-ROM sda was emptied" in w for w in results[1]["module_warnings"])
    assert any("virt_type qemu" in w for w in results[1]["module_warnings"])
    validate(tmp_path, saved_xml(conn, name))
    for target, image in images.items():
        assert same_content(str(uploads / ("%s-%s.qcow2" % (name, target))), image)


def test_archive_renamed_gets_new_identity_and_network(conn, tmp_path, uploads):
    path, _images = make_archive(tmp_path, PREFIX + "orig")
    conn.networkCreateXML("<network><name>%snet</name><bridge name='uimp0'/></network>" % PREFIX)
    try:
        new = PREFIX + "copy"
        result = run(conn, src=path, pool=POOL, name=new, network=PREFIX + "net", vcpus=2, memory="384")
        saved = _domain.model_from_xml(saved_xml(conn, new))
        assert saved["uuid"] != "0b7d1c0e-4f2a-4c55-9e1c-2d3b4a5f6e70"
        assert saved["interfaces"][0]["mac"] != "52:54:00:12:34:56"
        assert saved["interfaces"][0]["source"] == PREFIX + "net"
        assert saved["vcpus"] == 2 and saved["memory"] == 384
        assert result["vm"]["name"] == new
        assert volumes(conn) == ["%s-vda.qcow2" % new]
    finally:
        conn.networkLookupByName(PREFIX + "net").destroy()


def test_archive_uuid_taken_by_another_vm(conn, tmp_path, uploads):
    path, _images = make_archive(tmp_path, PREFIX + "first")
    holder = _xml.parse(domain_xml(PREFIX + "holder", []))
    holder.find("os").remove(holder.find("os/nvram"))
    conn.defineXML(_xml.to_string(holder))  # another VM has the archived UUID
    result = run(conn, src=path, pool=POOL)
    assert "UUID" in " ".join(result["module_warnings"])
    assert conn.lookupByName(PREFIX + "first").UUIDString() != conn.lookupByName(PREFIX + "holder").UUIDString()
    assert _domain.model_from_xml(saved_xml(conn, PREFIX + "first"))["interfaces"][0]["mac"] != "52:54:00:12:34:56"


def test_archive_network_missing(conn, tmp_path, uploads):
    def other_net(members):
        xml = members[1][1].replace(b'network="default"', b'network="nowhere"')
        return [members[0], (members[1][0], xml)] + members[2:]

    path, _images = make_archive(tmp_path, PREFIX + "nonet", members_hook=other_net)
    with pytest.raises(NotFoundError, match="'nowhere'.*give network"):
        run(conn, src=path, pool=POOL)
    run(conn, src=path, pool=POOL, network="default")


HOSTILE_DEVICES = (b"<serial type='file'><source path='/etc/cron.d/virtops-hostile'/><target port='0'/></serial>"
                   b"<filesystem type='mount'><source dir='/etc'/><target dir='virtops-hostile'/></filesystem>"
                   b"<rng model='virtio'><backend model='random'>/etc/virtops-hostile</backend></rng>")
HOSTILE_TOP = (b"<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
               b"<qemu:arg value='-virtops-hostile'/></qemu:commandline>")


def hostile_xml(devices=HOSTILE_DEVICES, top=HOSTILE_TOP, os_part=b"<kernel>/boot/virtops-hostile</kernel>"):
    def hook(members):
        xml = members[1][1].replace(b"</devices>", devices + b"</devices>").replace(b"</domain>", top + b"</domain>")
        xml = xml.replace(b"</os>", os_part + b"</os>")
        return [members[0], (members[1][0], xml)] + members[2:]

    return hook


@pytest.mark.parametrize("check", [True, False])
def test_archive_with_hostile_domain_xml(conn, tmp_path, uploads, check):
    name = PREFIX + "hostile-" + str(check).lower()
    path, _images = make_archive(tmp_path, name, members_hook=hostile_xml())
    result = run(conn, check=check, src=path, pool=POOL)
    warnings = "\n".join(result["module_warnings"])
    for text in ("serial 0 became a pty: the old one was of type 'file' naming '/etc/cron.d/virtops-hostile'",
                 "devices/filesystem type='mount' ('/etc') was left out",
                 "qemu:commandline ('-virtops-hostile') was left out: it passes raw arguments",
                 "os/kernel ('/boot/virtops-hostile') was left out",
                 "the old one read '/etc/virtops-hostile'"):
        assert text in warnings
    if check:
        assert domains(conn) == [] and volumes(conn) == []
        return
    saved = saved_xml(conn, name)
    assert "virtops-hostile" not in saved and "/etc" not in saved
    validate(tmp_path, saved)


@pytest.mark.parametrize("devices, message", [
    (b"<interface type='ethernet'><script path='/etc/virtops-hostile'/></interface>",
     "interface 2 of the archived VM is of type 'ethernet'.*give network"),
    (b"<disk type='file' device='disk'><source file='/etc/shadow'/><target dev='vda' bus='virtio'/></disk>",
     "two disks with target vda"),
])
def test_archive_with_refused_domain_xml_makes_nothing(conn, tmp_path, uploads, devices, message):
    path, _images = make_archive(tmp_path, PREFIX + "refused", members_hook=hostile_xml(devices, b"", b""))
    for check in (True, False):
        with pytest.raises(InvalidInputError, match=message):
            run(conn, check=check, src=path, pool=POOL)
    assert domains(conn) == [] and volumes(conn) == []


def test_existing_vm_is_left_alone_and_state_running(conn, tmp_path, uploads):
    path, _images = make_archive(tmp_path, PREFIX + "idem")
    run(conn, src=path, pool=POOL)
    os.unlink(path)
    result = run(conn, src=path, pool=POOL, name=PREFIX + "idem")
    assert not result["changed"] and result["vm"]["state"] == "stopped"
    results = [run(conn, check=c, src=path, name=PREFIX + "idem", state="running") for c in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[0]["vm"]["state"] == "running" and results[1]["actions"] == ["start VM %s" % (PREFIX + "idem")]
    assert conn.lookupByName(PREFIX + "idem").isActive()


def test_import_and_start(conn, tmp_path, uploads):
    path, _images = make_archive(tmp_path, PREFIX + "run")
    result = run(conn, src=path, pool=POOL, state="running")
    assert result["actions"][-2:] == ["start VM %s" % (PREFIX + "run"), "remove temporary files"]
    assert result["vm"]["state"] == "running"


def test_force_replaces_and_removes_old_volumes(conn, tmp_path, uploads):
    name = PREFIX + "force"
    path, _images = make_archive(tmp_path, name, targets=("vda", "vdb"))
    run(conn, src=path, pool=POOL, state="running")
    path2, images2 = make_archive(tmp_path, name, targets=("vda",), name="second.tar")
    check = run(conn, check=True, src=path2, pool=POOL, force=True)
    assert check["changed"] and check["replaced"]
    assert "replace: power off VM %s" % name in check["actions"]
    assert "replace: delete volume /default-pool/%s-vdb.qcow2" % name in check["actions"]
    assert volumes(conn) == ["%s-vda.qcow2" % name, "%s-vdb.qcow2" % name], "check mode changed nothing"
    result = run(conn, src=path2, pool=POOL, force=True)
    assert result["replaced"] and result["changed"]
    assert volumes(conn) == ["%s-vda.qcow2" % name]
    assert [d["target"] for d in _domain.model_from_xml(saved_xml(conn, name))["disks"]] == ["vda"]
    assert same_content(str(uploads / ("%s-vda.qcow2" % name)), images2["vda"])


def test_volume_of_someone_else_is_not_overwritten(conn, tmp_path, uploads):
    name = PREFIX + "taken"
    path, _images = make_archive(tmp_path, name)
    conn.storagePoolLookupByName(POOL).createXML(
        "<volume><name>%s-vda.qcow2</name><capacity>1024</capacity><target><format type='qcow2'/></target></volume>" % name, 0)
    with pytest.raises(ConflictError, match="already exists"):
        run(conn, src=path, pool=POOL)
    assert domains(conn) == []


# --- bare disks ---------------------------------------------------------------------------------


def test_bare_disks(conn, tmp_path, uploads):
    name = PREFIX + "bare"
    raw = make_image(tmp_path, "sys.raw", "raw")
    vdi = make_image(tmp_path, "data.vdi", "vdi", marker=b"data-disk")
    results = four(conn, name=name, pool=POOL, network="default", memory="256",
                   disks=[dict(path=raw, format="raw"), dict(path=vdi, bus="sata")])
    assert results[0]["disks"][1]["source_format"] == "vdi"
    saved = _domain.model_from_xml(saved_xml(conn, name))
    assert [(d["target"], d["bus"]) for d in saved["disks"]] == [("vda", "virtio"), ("sda", "sata")]
    assert [(n["source"], n["model"]) for n in saved["interfaces"]] == [("default", "virtio")]
    assert saved["memory"] == 256 and saved["vcpus"] == 1 and saved["firmware"] == "bios"
    assert same_content(str(uploads / ("%s-vda.qcow2" % name)), raw)
    assert same_content(str(uploads / ("%s-sda.qcow2" % name)), vdi)


def test_bare_disk_with_backing_file_refused(conn, tmp_path, uploads):
    base = make_image(tmp_path, "base.qcow2")
    overlay = str(tmp_path / "overlay.qcow2")
    subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", overlay])
    with pytest.raises(InvalidInputError, match="backing file"):
        run(conn, name=PREFIX + "overlay", pool=POOL, disks=[dict(path=overlay)])
    with pytest.raises(InvalidInputError, match="declared as vmdk, but its content is a qcow2 image"):
        run(conn, name=PREFIX + "overlay", pool=POOL, disks=[dict(path=base, format="vmdk")])


# --- hostile and broken sources -----------------------------------------------------------------


def _replace_disk(members, **attrs):
    out = []
    for member in members:
        if member[0].startswith("disks/"):
            data = attrs.pop("data", member[1])
            out.append((attrs.pop("name", member[0]), data, attrs))
        else:
            out.append(member)
    return out


#: (id, change to the members, message, found by check mode on an uncompressed tar)
HOSTILE_ARCHIVES = [
    ("absolute", lambda m: m + [("/etc/cron.d/evil", b"* * * * * root id\n")], "absolute path", True),
    ("dotdot", lambda m: m + [("disks/../../../tmp/evil", b"x")], "'..' component", True),
    ("symlink", lambda m: _replace_disk(m, data=b"", type=tarfile.SYMTYPE, linkname="/etc/shadow"), "symbolic link", True),
    ("hardlink", lambda m: _replace_disk(m, data=b"", type=tarfile.LNKTYPE, linkname="/etc/shadow"), "hard link", True),
    ("device", lambda m: m + [("disks/vdz.raw", b"", dict(type=tarfile.BLKTYPE, devmajor=8, devminor=0))], "device file", True),
    ("larger", lambda m: _replace_disk(m, data=m[2][1] + b"\0" * 512), "declares", True),
    ("checksum", lambda m: _replace_disk(m, data=m[2][1][:-4] + b"evil"), "checksum mismatch", False),
    ("extra", lambda m: m + [("notes.txt", b"hello")], "unexpected member", True),
    ("missing", lambda m: m[:2], "missing", True),
    ("order", lambda m: [m[1], m[0]] + m[2:], "neither an archive", True),
]


@pytest.mark.parametrize("hook, message, in_check", [h[1:] for h in HOSTILE_ARCHIVES], ids=[h[0] for h in HOSTILE_ARCHIVES])
@pytest.mark.parametrize("fmt", ["tar", pytest.param("tar.zst", marks=needs_zstd)])
def test_hostile_archive_refused(conn, tmp_path, uploads, hook, message, in_check, fmt):
    """Refused with a clear message; nothing is left: no VM, no volume, no upload, no scratch file.

    Check mode reads only the metadata of a compressed archive, and no data: it finds what the
    headers of an uncompressed tar show, and for compressed archives what the first members show.
    """
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    path, _images = make_archive(tmp_path, PREFIX + "hostile", fmt=fmt, members_hook=hook)
    if fmt == "tar" and in_check:
        with pytest.raises(InvalidInputError, match=message):
            run(conn, check=True, src=path, pool=POOL, tmp_dir=str(scratch))
    with pytest.raises(InvalidInputError, match=message):
        run(conn, src=path, pool=POOL, tmp_dir=str(scratch))
    assert domains(conn) == [] and volumes(conn) == []
    assert os.listdir(str(scratch)) == [], "the scratch directory is removed"
    assert os.listdir(str(uploads)) == []


HOSTILE_OVAS = [
    ("symlink", dict(extra=[("evil", b"", dict(type=tarfile.SYMTYPE, linkname="/etc/shadow"))]), "symbolic link"),
    ("absolute", dict(extra=[("/tmp/evil", b"x")]), "absolute path"),
    ("checksum", dict(tamper={"appliance-disk1.vmdk": "1" * 64}), "checksum mismatch"),
    ("ovf-checksum", dict(tamper={"appliance.ovf": "2" * 64}), "OVF descriptor"),
    ("unlisted", dict(tamper=None, extra=[("other.vmdk", b"x")]), "unexpected member"),
]


@pytest.mark.parametrize("kwargs, message", [h[1:] for h in HOSTILE_OVAS], ids=[h[0] for h in HOSTILE_OVAS])
def test_hostile_ova_refused(conn, tmp_path, uploads, kwargs, message):
    ova = make_ova(tmp_path, name="h.ova", **kwargs)
    with pytest.raises(InvalidInputError, match=message):
        run(conn, src=ova, pool=POOL, name=PREFIX + "hostile-ova")
    assert domains(conn) == [] and volumes(conn) == []


def test_vmdk_extent_in_another_file_refused(conn, tmp_path, uploads):
    """A VMDK descriptor whose extent is a host file would copy that file into the guest's disk."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"root:secret-hash\n" * 64)
    descriptor = ("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n"
                  "RW 2 FLAT \"%s\" 0\nddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"1\"\n"
                  "ddb.geometry.heads = \"16\"\nddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\n" % secret).encode()
    disk = tmp_path / "appliance-disk1.vmdk"
    disk.write_bytes(descriptor)
    ova = make_ova(tmp_path, disks=[str(disk)], name="extent.ova")
    with pytest.raises(InvalidInputError, match="refers to another file"):
        run(conn, src=ova, pool=POOL, name=PREFIX + "extent")
    assert domains(conn) == [] and volumes(conn) == []


def test_qcow2_disguised_as_raw_in_archive(conn, tmp_path, uploads):
    """The manifest says qcow2 but the member is raw bytes: refused (the format is declared, not probed)."""
    def as_raw(members):
        return _replace_disk(members, data=b"\0" * 4096)

    path, _images = make_archive(tmp_path, PREFIX + "disguised", members_hook=lambda m: m)
    with tarfile.open(path) as tar:
        manifest = json.loads(tar.extractfile(_archive.MANIFEST_NAME).read())
    manifest["disks"][0].update(size=4096, sha256=hashlib.sha256(b"\0" * 4096).hexdigest())

    def hook(members):
        members = as_raw(members)
        return [(_archive.MANIFEST_NAME, json.dumps(manifest).encode())] + members[1:]

    path, _images = make_archive(tmp_path, PREFIX + "disguised", members_hook=hook, name="d2.tar")
    with pytest.raises(InvalidInputError, match="cannot be read as qcow2"):
        run(conn, src=path, pool=POOL)
    assert domains(conn) == [] and volumes(conn) == []


def test_failure_midway_undoes(conn, tmp_path, monkeypatch):
    name = PREFIX + "undo"
    path, _images = make_archive(tmp_path, name, targets=("vda", "vdb"))
    calls = []

    def failing_upload(conn_, vol, image, sparse):
        calls.append(vol.name())
        if len(calls) == 2:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(_import, "upload_file", failing_upload)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(Exception, match="No space left"):
        run(conn, src=path, pool=POOL, tmp_dir=str(scratch))
    assert calls == ["%s-vda.qcow2" % name, "%s-vdb.qcow2" % name]
    assert volumes(conn) == [] and domains(conn) == []
    assert os.listdir(str(scratch)) == []


def test_bad_input(conn, tmp_path):
    with pytest.raises(InvalidInputError, match="absolute"):
        run(conn, src="relative.tar", pool=POOL)
    with pytest.raises(NotFoundError, match="cannot read"):
        run(conn, src=str(tmp_path / "missing.tar"), pool=POOL)
    (tmp_path / "x.tar").write_bytes(b"garbage" * 100)
    with pytest.raises(InvalidInputError, match="not a tar archive"):
        run(conn, src=str(tmp_path / "x.tar"), pool=POOL)
    path, _images = make_archive(tmp_path, "bad/name")
    with pytest.raises(InvalidInputError, match="give name"):
        run(conn, src=path, pool=POOL)
    with pytest.raises(InvalidInputError, match="is an archive of this collection, not an ova"):
        run(conn, src=path, pool=POOL, src_type="ova", name=PREFIX + "x")
    with pytest.raises(NotFoundError, match="storage pool 'nopool'"):
        run(conn, src=path, pool="nopool", name=PREFIX + "x")


def _huge_domain(members):
    """domain.xml with 99999 TiB of memory (the test driver's host has 3 GiB)."""
    return [(m[0], m[1].replace(b"<memory unit=\"KiB\">262144</memory>", b"<memory unit=\"TiB\">99999</memory>")
             .replace(b"<currentMemory unit=\"KiB\">262144</currentMemory>", b""), *m[2:])
            if m[0] == _archive.DOMAIN_XML_NAME else m for m in members]


HOST_LIMITS = [
    # how the source is made, options, message: every way a definition is made is held to the host's size
    ("memory-option", "archive", dict(memory="99999T"), "^memory: 104856551424 MiB is more than the host's memory"),
    ("vcpus-option", "archive", dict(vcpus=4096), "^vcpus: 4096 is more than the 16 CPUs of the host"),
    ("ova-memory-option", "ova", dict(memory="99999T"), "^memory: 104856551424 MiB is more"),
    ("archive-domain-xml", "huge", dict(), "^xml: memory: 104856551424 MiB is more than the host's memory"),
]


@pytest.mark.parametrize("check", [True, False], ids=["check", "apply"])
@pytest.mark.parametrize("source, given, message", [r[1:] for r in HOST_LIMITS], ids=[r[0] for r in HOST_LIMITS])
def test_memory_and_vcpus_above_the_host_are_refused(conn, tmp_path, uploads, source, given, message, check):
    if source == "ova":
        path = make_ova(tmp_path, vm_name=PREFIX + "limits")
    else:
        path = make_archive(tmp_path, PREFIX + "limits", members_hook=_huge_domain if source == "huge" else None)[0]
    with pytest.raises(InvalidInputError, match=message.replace("(", "\\(")):
        run(conn, check=check, src=path, pool=POOL, **given)
    assert domains(conn) == [] and volumes(conn) == [] and os.listdir(str(uploads)) == []


# --- pieces -------------------------------------------------------------------------------------


def test_rewrite_domain_xml_drops_host_devices():
    text = domain_xml("a", ["vda", "vdb"]).replace(
        b"</devices>", b"<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='1' slot='0' function='0'/>"
                       b"</source></hostdev></devices>")
    out, notes = rewrite_domain_xml(text, "b", False, {"vda": dict(path="/p/b-vda.qcow2", format="qcow2")},
                                    network="lan", virt_type="qemu")
    model = _domain.model_from_xml(out)
    assert model["name"] == "b" and model["uuid"] is None and model["virt_type"] == "qemu"
    assert [d["target"] for d in model["disks"]] == ["vda"]
    assert model["interfaces"][0]["source"] == "lan" and model["interfaces"][0]["mac"] is None
    assert model["hostdevs"] == []
    assert any("vdb" in n for n in notes) and any("hostdev type='pci'" in n and "old host" in n for n in notes)
    with pytest.raises(InvalidInputError, match="does not have"):
        rewrite_domain_xml(text, "b", True, {"vdc": dict(path="/p", format="raw")})


def test_assign_targets():
    disks = [dict(bus="virtio", target=None), dict(bus="sata", target="sda"), dict(bus="scsi", target=None),
             dict(bus="ide", target=None), dict(bus="virtio", target=None)]
    assert [d["target"] for d in assign_targets(disks)] == ["vda", "sda", "sdb", "hda", "vdb"]


# --- what the export module writes --------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["tar", "tar.gz", pytest.param("tar.zst", marks=needs_zstd), "ova"])
def test_reads_what_the_export_writer_writes(conn, tmp_path, uploads, fmt):
    """The contract with ``export``: archives and OVAs packed by its tar writer import as they are."""
    export = pytest.importorskip("ansible_collections.virtops.libvirt.plugins.module_utils._export.writers")
    name = PREFIX + "rt-" + fmt.replace(".", "")
    path = str(tmp_path / ("out." + fmt))
    if fmt == "ova":
        disk = make_image(tmp_path, "%s-disk1.vmdk" % name, "vmdk", options="subformat=streamOptimized")
        vm = dict(name=name, vcpus=1, memory_mib=128, firmware="bios", os_hint="debian12", nics=[],
                  disks=[dict(file=os.path.basename(disk), size=os.path.getsize(disk), capacity=64 * MIB, bus="virtio")])
        ovf = _ovf.build_ovf(vm)
        mf = _ovf_tools.manifest({"%s.ovf" % name: hashlib.sha256(ovf).hexdigest(), os.path.basename(disk): sha256(disk)})
        export.write_tar(path, [("%s.ovf" % name, ovf), ("%s.mf" % name, mf), (os.path.basename(disk), disk)], "tar",
                         tar_format=tarfile.USTAR_FORMAT)
    else:
        disk = make_image(tmp_path, "vda.qcow2", "qcow2")
        manifest = _archive.build_manifest(
            dict(name=name, uuid="0b7d1c0e-4f2a-4c55-9e1c-2d3b4a5f6e71", vcpus=1, memory_mib=256, firmware="bios", arch="x86_64"),
            [dict(target="vda", format="qcow2", virtual_size=64 * MIB, size=os.path.getsize(disk), sha256=sha256(disk),
                  bus="virtio", device="disk")])
        export.write_tar(path, [(_archive.MANIFEST_NAME, manifest), (_archive.DOMAIN_XML_NAME, domain_xml(name, ["vda"])),
                                (_archive.disk_member_name("vda", "qcow2"), disk)], fmt)
    result = run(conn, src=path, pool=POOL)
    assert result["changed"] and result["vm"]["name"] == name
    assert result["source"]["type"] == ("ova" if fmt == "ova" else "archive")
    assert same_content(str(uploads / ("%s-vda.qcow2" % name)), disk)


def test_the_imported_vm_takes_the_vm_modules_defaults_from_its_option_table():
    from ansible_collections.virtops.libvirt.plugins.module_utils._domain.options import DEFAULTS, DISK_OPTIONS, OPTIONS
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.options import find

    ctx = Context(params=module_params(name="imp", disks=[dict(path="/nonexistent.qcow2")]))
    vm = _import.ImportResource(ctx)._vm(state="running")
    for key, value in DEFAULTS.items():
        if key != "state":
            assert vm.params[key] == value, key
    assert vm.params["state"] == "running" and vm.params["name"] == "imp"
    assert ARGUMENT_SPEC["firmware"]["choices"] == find(OPTIONS, "firmware").choices
    assert ARGUMENT_SPEC["disk_bus"]["choices"] == list(find(DISK_OPTIONS, "bus").choices)
