# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""export: real qemu-img on small images, libvirt's test driver for stopped VMs and volumes, and a
fake running domain whose snapshot, block commit and pivot are done with qemu-img on real files."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import stat
import subprocess
import tarfile

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive as _archive
from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive_read as _archive_read

from ansible_collections.virtops.libvirt.plugins.module_utils._export import overlay as _overlay
from ansible_collections.virtops.libvirt.plugins.module_utils._export import params as _export_params
from ansible_collections.virtops.libvirt.plugins.module_utils._export import run as _export_run
from ansible_collections.virtops.libvirt.plugins.module_utils._export import writers as _writers

from ansible_collections.virtops.libvirt.plugins.module_utils._import import ovf as _ovf_read
from ansible_collections.virtops.libvirt.plugins.module_utils._tools import ovf as _ovf_tools

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._export.export import ExportResource
from ansible_collections.virtops.libvirt.plugins.module_utils._export.overlay import build_snapshot_xml
from ansible_collections.virtops.libvirt.plugins.module_utils._export.params import check_params, safe_file_name, volume_stem
from ansible_collections.virtops.libvirt.plugins.module_utils._export.writers import DestinationFullError, export_argv, write_tar
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.fs import sha256_file
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.qemu_img import QemuImg
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context

MiB = 1024 ** 2
VM = "virtops-exp1"


def run_argv(argv, **_kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def qemu_io(path, fmt, *commands):
    argv = ["qemu-io", "-f", fmt]
    for command in commands:
        argv += ["-c", command]
    subprocess.run(argv + [path], check=True, stdout=subprocess.DEVNULL)


def make_images(directory):
    """A linked clone (qcow2 on a qcow2 base) and a sparse raw image, each with a little data."""
    base = os.path.join(directory, "base.qcow2")
    top = os.path.join(directory, "top.qcow2")
    raw = os.path.join(directory, "data.raw")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", base, "64M"], check=True)
    qemu_io(base, "qcow2", "write -P 0x11 0 2M", "write -P 0x12 40M 1M")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top], check=True)
    qemu_io(top, "qcow2", "write -P 0x21 1M 2M")
    with open(raw, "wb") as handle:
        handle.truncate(32 * MiB)
        handle.seek(8 * MiB)
        handle.write(b"\x33" * MiB)
    return top, raw


def params(**kw):
    base = dict(uri="test:///default", vm=None, volume=None, pool=None, format="qcow2", compressed=False, dest=None,
                force=False, quiesce=False, verify=False, overlay_dir=None, tmp_dir=None, progress_file=None)
    base.update(kw)
    return base


def run(conn, check=False, diff=False, **kw):
    ctx = Context(conn=conn, params=params(**kw), check_mode=check, diff=diff, run_command=run_argv)
    return reconcile(ExportResource(ctx), check_mode=check, want_diff=diff)


def domain_xml(name, disks, extra=""):
    devices = "".join(
        "<disk type='file' device='disk'><driver name='qemu' type='%s'/><source file='%s'/>"
        "<target dev='%s' bus='virtio'/></disk>" % (fmt, path, target) for target, path, fmt in disks)
    return ("<domain type='test'><name>%s</name><memory unit='MiB'>256</memory><vcpu>2</vcpu>"
            "<os><type arch='x86_64'>hvm</type></os><devices>%s"
            "<disk type='file' device='cdrom'><source file='/nonexistent/seed.iso'/><target dev='sda' bus='sata'/>"
            "<readonly/></disk>"
            "<interface type='network'><source network='default'/><model type='virtio'/></interface>"
            "<graphics type='vnc' passwd='s3cret-pass'/>%s</devices></domain>" % (name, devices, extra))


@pytest.fixture
def stopped_vm(test_conn, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    top, raw = make_images(str(src))
    dom = test_conn.defineXML(domain_xml(VM, [("vda", top, "qcow2"), ("vdb", raw, "raw")]))
    yield dict(dom=dom, top=top, raw=raw, dest=tmp_path / "out")
    dom.undefine()


def compare(first, second):
    return subprocess.run(["qemu-img", "compare", "-U", first, second], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=False).returncode == 0


def listing(directory):
    return sorted(os.listdir(str(directory)))


# --- small pieces ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("web1", "web1"), ("a b/c", "a_b_c"), (".hidden", "_hidden"), ("ünï", "_n_"), ("", "export"),
])
def test_safe_file_name(text, expected):
    assert safe_file_name(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("web1.qcow2", "web1"), ("data.IMG", "data"), ("plain", "plain"), (".qcow2", ".qcow2"), ("a.b.vmdk", "a.b"),
])
def test_volume_stem(text, expected):
    assert volume_stem(text) == expected


@pytest.mark.parametrize("kw,text", [
    (dict(), "exactly one source"),
    (dict(vm="a", volume="b", pool="p"), "exactly one source"),
    (dict(volume="b"), "needs pool"),
    (dict(vm="a", pool="p"), "pool goes with volume"),
    (dict(volume="../x", pool="p"), "separator"),
    (dict(vm="a", format="zip"), "format must be one of"),
    (dict(volume="v", pool="p", format="ova"), "packs a whole VM"),
    (dict(volume="v", pool="p", format="tar.zst"), "packs a whole VM"),
    (dict(vm="a", format="vmdk", compressed=True), "compressed applies"),
    (dict(vm="a", format="tar.gz", compressed=True), "compressed applies"),
    (dict(vm="a", dest="relative/path"), "absolute path"),
    (dict(vm="a", overlay_dir="/nonexistent/virtops"), "overlay_dir must be an existing directory"),
    (dict(vm="a", mode="0755"), "gives execute permission"),
    (dict(vm="a", mode="u=rw"), "mode must be an octal number"),
    (dict(vm="a", mode="4600"), "out of range"),
])
def test_bad_parameters(kw, text):
    values = dict(dest="/tmp/x")
    values.update(kw)
    with pytest.raises(InvalidInputError, match=text):
        check_params(params(**values))


def test_snapshot_xml_passes_libvirts_schema(tmp_path):
    text = build_snapshot_xml("virtops-export-1-2", [("vda", "/var/lib/libvirt/images/.a.qcow2.virtops-export-1.qcow2")],
                              ["sda", "vdb"])
    path = tmp_path / "snap.xml"
    path.write_text(text)
    proc = subprocess.run(["virt-xml-validate", str(path), "domainsnapshot"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=False)
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
    root = _xml.parse(text)
    assert [(d.get("name"), d.get("snapshot")) for d in root.findall("disks/disk")] == \
        [("vda", "external"), ("sda", "no"), ("vdb", "no")]
    assert root.find("memory").get("snapshot") == "no"


def test_sha256_of_a_sparse_file_is_the_plain_sha256(tmp_path):
    path = str(tmp_path / "sparse")
    with open(path, "wb") as handle:
        handle.truncate(5 * MiB + 123)
        handle.seek(2 * MiB + 7)
        handle.write(b"data" * 1000)
    with open(path, "rb") as handle:
        expected = hashlib.sha256(handle.read()).hexdigest()
    counted = []
    assert sha256_file(path, counted.append) == expected
    assert 0 < sum(counted) < 2 * MiB  # only the data extent was read
    empty = str(tmp_path / "empty")
    open(empty, "wb").close()
    assert sha256_file(empty) == hashlib.sha256(b"").hexdigest()


def test_data_bytes_reads_only_allocated_data(tmp_path):
    top, raw = make_images(str(tmp_path))
    qemu = QemuImg(run=run_argv)
    # base: 2 MiB + 1 MiB, overlay: 2 MiB, one of which hides base data: 4 MiB of the chain hold data
    assert qemu.data_bytes(top, "qcow2") == 4 * MiB
    assert qemu.data_bytes(raw, "raw") == MiB
    assert qemu.data_bytes(top, "qcow2", top_only=True) == 2 * MiB


@pytest.mark.parametrize("fmt,compress,share,has,lacks", [
    ("qcow2", False, False, ["-W", "-p"], ["-U", "-c", "-o"]),
    ("qcow2", True, True, ["-c", "-U"], ["-W"]),
    ("vmdk", False, False, ["-o", "subformat=streamOptimized"], ["-W"]),
    ("vhdx", False, False, ["subformat=dynamic", "-W"], []),
])
def test_export_argv(fmt, compress, share, has, lacks):
    argv = export_argv(QemuImg(run=run_argv), "/s", "/d", fmt, "qcow2", compress, share)
    assert argv[1] == "convert" and argv[-2:] == ["/s", "/d"]
    assert argv[argv.index("-O") + 1] == fmt
    for item in has:
        assert item in argv
    for item in lacks:
        assert item not in argv


# --- archives ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["tar", "tar.gz", "tar.zst"])
def test_write_tar_round_trips_through_the_import_reader(tmp_path, fmt):
    disk = tmp_path / "disk.bin"
    disk.write_bytes(os.urandom(300000))
    out = str(tmp_path / ("a." + fmt))
    counted = []
    digest = write_tar(out, [("first.json", b"{}"), ("disks/vda.qcow2", str(disk))], fmt, on_bytes=counted.append)
    assert digest == sha256_file(out)
    assert sum(counted) == 300000
    assert _archive.detect_format(out) == fmt
    with _archive_read.ArchiveStream(out) as stream:
        seen = [(name, size, handle.read()) for name, size, handle in stream.members()]
    assert [(n, s) for n, s, _d in seen] == [("first.json", 2), ("disks/vda.qcow2", 300000)]
    assert seen[1][2] == disk.read_bytes()


def test_write_tar_through_an_external_gzip(tmp_path, monkeypatch):
    """The pigz path (pigz is optional): the same pipe, with gzip standing in for it."""
    monkeypatch.setattr(_writers, "compressor_argv", lambda fmt: ["gzip", "-c", "-1"])
    out = str(tmp_path / "a.tar.gz")
    write_tar(out, [("x", b"hello" * 1000)], "tar.gz")
    with tarfile.open(out, "r:gz") as tar:
        assert tar.extractfile("x").read() == b"hello" * 1000


@pytest.mark.parametrize("fmt", ["tar", "tar.gz", "tar.zst"])
def test_write_tar_on_a_full_disk_says_so(fmt):
    with pytest.raises(DestinationFullError, match="full"):
        write_tar("/dev/full", [("x", os.urandom(4 * MiB))], fmt)


def test_ustar_refuses_what_it_cannot_hold():
    with pytest.raises(InvalidInputError, match="ustar"):
        _writers._tarinfo("big.vmdk", 8 ** 11, 0, tarfile.USTAR_FORMAT)


# --- a stopped VM, through libvirt's test driver ------------------------------------------------


@pytest.mark.parametrize("fmt,compressed", [
    ("qcow2", False), ("qcow2", True), ("raw", False), ("vmdk", False), ("vdi", False), ("vhdx", False),
])
def test_stopped_vm_disk_formats_round_trip(test_conn, stopped_vm, fmt, compressed):
    dest = str(stopped_vm["dest"])
    results = [run(test_conn, check=c, vm=VM, format=fmt, compressed=compressed, dest=dest)
               for c in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[0]["artefacts"][1]["size"] is None and results[0]["total_size"] is None
    assert results[0]["actions"] == results[1]["actions"]
    assert results[2]["actions"] == [] and results[3]["reason"] is None
    ext = _export_params.EXTENSIONS[fmt]
    names = ["%s.xml" % VM, "%s-vda.%s" % (VM, ext), "%s-vdb.%s" % (VM, ext)]
    assert listing(dest) == sorted(names + [n + ".sha256" for n in names] + ["%s.%s.export.json" % (VM, ext)])
    done = results[1]
    assert done["consistency"] == "stopped" and done["estimated_size"] == 5 * MiB
    by_target = dict((a["target"], a) for a in done["artefacts"])
    assert compare(stopped_vm["top"], by_target["vda"]["path"])
    assert compare(stopped_vm["raw"], by_target["vdb"]["path"])
    info = json.loads(run_argv(["qemu-img", "info", "--output=json", by_target["vda"]["path"]])[1])
    assert info["format"] == fmt and "backing-filename" not in info  # self-contained
    if fmt == "vmdk":
        assert info["format-specific"]["data"]["create-type"] == "streamOptimized"
    if compressed:
        assert os.path.getsize(by_target["vda"]["path"]) < os.path.getsize(stopped_vm["top"])
    for art in done["artefacts"]:
        assert art["sha256"] == sha256_file(art["path"]) and art["size"] == os.path.getsize(art["path"])
        check = subprocess.run(["sha256sum", "-c", os.path.basename(art["checksum_file"])], cwd=dest,
                               stdout=subprocess.PIPE, check=False)
        assert check.returncode == 0
    definition = open(os.path.join(dest, "%s.xml" % VM)).read()
    assert "s3cret-pass" not in definition and "<name>%s</name>" % VM in definition


def test_source_change_force_and_options_lead_to_a_new_export(test_conn, stopped_vm):
    dest = str(stopped_vm["dest"])
    first = run(test_conn, vm=VM, dest=dest)
    assert first["changed"]
    assert not run(test_conn, vm=VM, dest=dest)["changed"]
    qemu_io(stopped_vm["raw"], "raw", "write -P 0x44 20M 1M")
    again = run(test_conn, vm=VM, dest=dest)
    assert again["changed"] and again["reason"] == "the source changed"
    assert compare(stopped_vm["raw"], os.path.join(dest, "%s-vdb.qcow2" % VM))
    forced = run(test_conn, vm=VM, dest=dest, force=True)
    assert forced["changed"] and forced["reason"] == "force"
    compressed = run(test_conn, vm=VM, dest=dest, compressed=True, diff=True)
    assert compressed["changed"] and compressed["reason"] == "options changed"
    assert compressed["diff"]["before"]["options"] == {"format": "qcow2", "compressed": False}
    assert compressed["diff"]["after"]["options"] == {"format": "qcow2", "compressed": True}
    # an artefact removed by someone: the export is written again
    os.unlink(os.path.join(dest, "%s-vda.qcow2" % VM))
    healed = run(test_conn, vm=VM, dest=dest, compressed=True)
    assert healed["changed"] and "removed" in healed["reason"]
    # the definition changed (libvirt's view): a new export
    stopped_vm["dom"].setMemoryFlags(128 * 1024, libvirt.VIR_DOMAIN_AFFECT_CONFIG | libvirt.VIR_DOMAIN_MEM_MAXIMUM)
    assert run(test_conn, vm=VM, dest=dest, compressed=True)["reason"] == "the source changed"


def file_mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


@pytest.mark.parametrize("fmt", ["qcow2", "tar.zst", "ova"])
def test_every_file_is_written_with_mode(test_conn, stopped_vm, fmt):
    stopped_vm["dest"].mkdir()
    dest = stopped_vm["dest"] / "new"
    result = run(test_conn, vm=VM, format=fmt, dest=str(dest) + "/")
    assert result["mode"] == "0600"
    assert file_mode(dest) == 0o700, "a directory the export makes is private too"
    assert sorted((name, file_mode(dest / name)) for name in listing(dest)) == [(name, 0o600) for name in listing(dest)]
    dest = stopped_vm["dest"] / "shared"
    result = run(test_conn, vm=VM, format=fmt, dest=str(dest) + "/", mode="0640")
    assert result["mode"] == "0640" and file_mode(dest) == 0o750
    assert set(file_mode(dest / name) for name in listing(dest)) == {0o640}


def test_temporary_files_are_never_more_open_than_mode(test_conn, stopped_vm, monkeypatch):
    """Under umask 0, every temporary file has the final mode from its creation (qemu-img, tar, checksums)."""
    seen = []
    real_run, real_tar, real_rename = _export_run.run_with_percent, _export_run.write_tar, os.rename

    def run_checked(argv, on_percent):
        seen.append(("qemu-img output before", file_mode(argv[-1])))
        out = real_run(argv, on_percent)
        seen.append(("qemu-img output after", file_mode(argv[-1])))
        return out

    def tar_checked(path, *args, **kwargs):
        seen.append(("tar output before", file_mode(path)))
        return real_tar(path, *args, **kwargs)

    def rename_checked(src, dst):
        if _export_params.TMP_MARK in os.path.basename(src):
            seen.append(("temporary file renamed", file_mode(src)))
        return real_rename(src, dst)

    monkeypatch.setattr(_export_run, "run_with_percent", run_checked)
    monkeypatch.setattr(_export_run, "write_tar", tar_checked)
    monkeypatch.setattr(os, "rename", rename_checked)
    stopped_vm["dest"].mkdir()
    old_umask = os.umask(0)
    try:
        for fmt, mode in (("tar", "0640"), ("vmdk", "0600")):
            del seen[:]
            run(test_conn, vm=VM, format=fmt, dest=str(stopped_vm["dest"] / fmt) + "/", mode=mode)
            assert seen and set(m for _k, m in seen) == {int(mode, 8)}, seen
            assert len(set(k for k, _m in seen)) == (4 if fmt == "tar" else 3)
    finally:
        os.umask(old_umask)


def test_a_current_export_with_other_modes_is_only_chmodded(test_conn, stopped_vm):
    dest = str(stopped_vm["dest"])
    run(test_conn, vm=VM, dest=dest)
    names = listing(dest)
    stamps = dict((n, os.stat(os.path.join(dest, n)).st_mtime_ns) for n in names)
    results = [run(test_conn, check=c, diff=True, vm=VM, dest=dest, mode="0640") for c in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[1]["actions"] == ["set the mode of %s in %s to 0640" % (", ".join(names), dest)]
    assert results[1]["diff"]["before"]["mode"] == "0600" and results[1]["diff"]["after"]["mode"] == "0640"
    assert results[1]["reason"] == "file mode"
    assert set(file_mode(os.path.join(dest, n)) for n in names) == {0o640}
    assert stamps == dict((n, os.stat(os.path.join(dest, n)).st_mtime_ns) for n in names), "nothing was rewritten"
    os.chmod(os.path.join(dest, "%s-vda.qcow2" % VM), 0o644)
    back = run(test_conn, vm=VM, dest=dest)
    assert back["changed"] and back["actions"] == ["set the mode of %s in %s to 0600" % (", ".join(names), dest)]
    assert set(file_mode(os.path.join(dest, n)) for n in names) == {0o600}


def test_a_vm_in_two_formats_shares_its_definition_file(test_conn, stopped_vm):
    dest = str(stopped_vm["dest"])
    assert run(test_conn, vm=VM, dest=dest, format="qcow2")["changed"]
    assert run(test_conn, vm=VM, dest=dest, format="raw")["changed"]
    assert not run(test_conn, vm=VM, dest=dest, format="qcow2")["changed"]
    assert not run(test_conn, vm=VM, dest=dest, format="raw")["changed"]


def test_foreign_files_are_not_overwritten_without_force(test_conn, stopped_vm, tmp_path):
    target = tmp_path / "mine.ova"
    target.write_bytes(b"precious")
    with pytest.raises(ConflictError, match="not written by this module"):
        run(test_conn, vm=VM, format="ova", dest=str(target))
    assert target.read_bytes() == b"precious"
    assert run(test_conn, vm=VM, format="ova", dest=str(target), force=True)["changed"]
    assert tarfile.is_tarfile(str(target))


def test_ova(test_conn, stopped_vm, tmp_path):
    dest = str(tmp_path / "web.ova")
    progress = str(tmp_path / "progress.json")
    result = run(test_conn, vm=VM, format="ova", dest=dest, progress_file=progress)
    assert result["changed"] and [a["name"] for a in result["artefacts"]] == ["web.ova"]
    assert listing(tmp_path) == ["progress.json", "src", "web.ova", "web.ova.export.json", "web.ova.sha256"]
    with tarfile.open(dest) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == ["%s.ovf" % VM, "%s.mf" % VM, "%s-disk1.vmdk" % VM, "%s-disk2.vmdk" % VM]
        assert all(m.isreg() and not m.pax_headers for m in members)
    with open(dest, "rb") as handle:
        assert handle.read(512)[257:265] == b"ustar\x0000"  # POSIX ustar, as OVF wants
    with tarfile.open(dest) as tar:
        data = dict((m.name, tar.extractfile(m.name).read()) for m in members)
    manifest = _ovf_tools.parse_manifest(data["%s.mf" % VM])
    assert list(manifest) == [names[0], names[2], names[3]]
    for name, digest in manifest.items():
        assert hashlib.sha256(data[name]).hexdigest() == digest
    vm = _ovf_read.parse_ovf(data["%s.ovf" % VM])
    assert (vm["name"], vm["vcpus"], vm["memory_mib"]) == (VM, 2, 256)
    assert [(d["file"], d["capacity"], d["size"]) for d in vm["disks"]] == [
        (names[2], 64 * MiB, len(data[names[2]])), (names[3], 32 * MiB, len(data[names[3]]))]
    assert vm["nics"] == [dict(network="default", model="virtio")]
    for name, source in ((names[2], stopped_vm["top"]), (names[3], stopped_vm["raw"])):
        path = str(tmp_path / name)
        with open(path, "wb") as handle:
            handle.write(data[name])
        assert compare(source, path)
    doc = json.loads(open(progress).read())
    assert doc["state"] == "done" and doc["percent"] == 100.0 and doc["bytes_done"] >= 5 * MiB


@pytest.mark.parametrize("fmt", ["tar", "tar.zst", "tar.gz"])
def test_vm_archive(test_conn, stopped_vm, fmt):
    dest = str(stopped_vm["dest"]) + "/"
    result = run(test_conn, vm=VM, format=fmt, dest=dest, compressed=fmt == "tar")
    art = result["artefacts"][0]
    assert art["name"] == "%s.%s" % (VM, fmt) and art["kind"] == "archive"
    scratch = str(stopped_vm["dest"] / "unpacked")
    os.mkdir(scratch)
    with _archive_read.ArchiveStream(art["path"]) as stream:
        members = []
        for name, size, handle in stream.members():
            members.append(name)
            if name == _archive.MANIFEST_NAME:
                manifest = _archive.load_manifest(handle.read())
            elif name == _archive.DOMAIN_XML_NAME:
                definition = handle.read().decode()
            else:
                entry = [d for d in manifest["disks"] if d["file"] == name][0]
                digest = _archive_read.copy_member(handle, os.path.join(scratch, os.path.basename(name)), size, name,
                                                   declared_size=entry["size"])
                assert digest == entry["sha256"]
    assert members == [_archive.MANIFEST_NAME, _archive.DOMAIN_XML_NAME, "disks/vda.qcow2", "disks/vdb.qcow2"]
    assert manifest["vm"]["name"] == VM and manifest["vm"]["vcpus"] == 2 and manifest["vm"]["memory_mib"] == 256
    assert [(d["target"], d["virtual_size"], d["bus"]) for d in manifest["disks"]] == [
        ("vda", 64 * MiB, "virtio"), ("vdb", 32 * MiB, "virtio")]
    assert "s3cret-pass" not in definition
    assert compare(stopped_vm["top"], os.path.join(scratch, "vda.qcow2"))
    assert compare(stopped_vm["raw"], os.path.join(scratch, "vdb.qcow2"))
    assert not run(test_conn, vm=VM, format=fmt, dest=dest, compressed=fmt == "tar")["changed"]


def test_check_mode_writes_nothing_and_estimates(test_conn, stopped_vm):
    dest = stopped_vm["dest"]
    result = run(test_conn, check=True, vm=VM, format="tar.zst", dest=str(dest) + "/")
    assert result["changed"] and result["estimated_size"] == 5 * MiB
    assert result["artefacts"][0]["path"] == str(dest / ("%s.tar.zst" % VM))
    assert not dest.exists()
    assert any(a.startswith("pack ") for a in result["actions"])


def test_a_failure_leaves_no_partial_file(test_conn, stopped_vm, monkeypatch, tmp_path):
    dest = stopped_vm["dest"]
    dest.mkdir()
    (dest / "unrelated.txt").write_text("keep me")
    real = _export_run.run_with_percent
    calls = []

    def full_disk(argv, on_percent):
        calls.append(argv)
        if len(calls) == 2:  # the second disk: a partial file, then ENOSPC
            with open(argv[-1], "wb") as handle:
                handle.write(b"partial")
            on_percent(40.0)
            return 1, "", "qemu-img: error while writing at byte 2097152: No space left on device"
        return real(argv, on_percent)

    monkeypatch.setattr(_export_run, "run_with_percent", full_disk)
    progress = str(tmp_path / "p.json")
    with pytest.raises(DestinationFullError) as info:
        run(test_conn, vm=VM, format="tar.zst", dest=str(dest), progress_file=progress)
    assert "is full" in info.value.msg and "disk vdb" in info.value.msg
    assert info.value.kind == "no_space"
    assert listing(dest) == ["unrelated.txt"]
    doc = json.loads(open(progress).read())
    assert doc["state"] == "failed" and "full" in doc["message"]


def test_a_directory_made_by_a_failed_run_is_removed(test_conn, stopped_vm, monkeypatch):
    monkeypatch.setattr(_export_run, "run_with_percent", lambda argv, cb: (1, "", "qemu-img: some error"))
    with pytest.raises(BackendError, match="some error"):
        run(test_conn, vm=VM, format="qcow2", dest=str(stopped_vm["dest"]))
    assert not stopped_vm["dest"].exists()


def test_leftover_temporaries_of_a_dead_export_are_removed(test_conn, stopped_vm):
    dest = stopped_vm["dest"]
    dest.mkdir()
    dead = dead_pid()
    stale = dest / (".%s-vda.qcow2%s%d" % (VM, _export_params.TMP_MARK, dead))
    live = dest / (".other%s%d" % (_export_params.TMP_MARK, os.getppid()))
    stale.write_bytes(b"x")
    live.write_bytes(b"y")
    result = run(test_conn, vm=VM, dest=str(dest))
    assert any("leftover temporary" in a for a in result["actions"])
    assert not stale.exists() and live.exists()


def test_missing_things(test_conn, stopped_vm, tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        run(test_conn, vm="virtops-no-such-vm", dest=str(tmp_path))
    with pytest.raises(NotFoundError, match="parent directory"):
        run(test_conn, vm=VM, dest=str(tmp_path / "a" / "b"))
    with pytest.raises(InvalidInputError, match="must be a directory"):
        (tmp_path / "afile").write_text("x")
        run(test_conn, vm=VM, dest=str(tmp_path / "afile"))
    os.unlink(stopped_vm["raw"])
    with pytest.raises(NotFoundError, match="runs on the hypervisor"):
        run(test_conn, vm=VM, dest=str(tmp_path / "o"))


def test_network_disks_are_refused(test_conn, tmp_path):
    xml = domain_xml("virtops-exp-net", [], "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
                     "<source protocol='rbd' name='pool/img'><host name='10.0.0.1'/></source>"
                     "<target dev='vdc' bus='virtio'/></disk>")
    dom = test_conn.defineXML(xml)
    try:
        with pytest.raises(InvalidInputError, match="network disk"):
            run(test_conn, vm="virtops-exp-net", dest=str(tmp_path))
    finally:
        dom.undefine()


# --- a volume -----------------------------------------------------------------------------------


@pytest.fixture
def dir_pool(test_conn, tmp_path):
    path = tmp_path / "pool"
    path.mkdir()
    xml = "<pool type='dir'><name>virtops-exp-pool</name><target><path>%s</path></target></pool>" % path
    pool = test_conn.storagePoolDefineXML(xml, 0)
    pool.create(0)
    yield pool, path
    for vol in pool.listAllVolumes(0):
        vol.delete(0)
    pool.destroy()
    pool.undefine()


def test_volume_export(test_conn, dir_pool, tmp_path):
    pool, path = dir_pool
    pool.createXML("<volume><name>data1.qcow2</name><capacity>16777216</capacity>"
                   "<target><format type='qcow2'/></target></volume>", 0)
    image = str(path / "data1.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", image, "16M"], check=True)
    qemu_io(image, "qcow2", "write -P 0x55 4M 1M")
    out = tmp_path / "exports"
    out.mkdir()
    results = [run(test_conn, check=c, volume="data1.qcow2", pool="virtops-exp-pool", format="vmdk", dest=str(out))
               for c in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False]
    art = results[1]["artefacts"][0]
    assert art["name"] == "data1.vmdk" and art["kind"] == "disk"
    assert results[1]["consistency"] == "offline" and results[1]["source"]["used_by"] is None
    assert compare(image, art["path"])
    assert listing(out) == ["data1.vmdk", "data1.vmdk.export.json", "data1.vmdk.sha256"]
    named = run(test_conn, volume="data1.qcow2", pool="virtops-exp-pool", format="raw", dest=str(out / "copy.img"))
    assert named["artefacts"][0]["path"] == str(out / "copy.img") and compare(image, str(out / "copy.img"))
    with pytest.raises(NotFoundError, match="does not exist in pool"):
        run(test_conn, volume="nope.qcow2", pool="virtops-exp-pool", dest=str(out))


# --- a running VM: the temporary snapshot and its merge -------------------------------------------


class FakeLibvirtError(libvirt.libvirtError):
    """A libvirtError with its own message and code (a real one reads libvirt's last error)."""

    def __init__(self, message, code=1):  # pylint: disable=super-init-not-called
        self.args = (message,)
        self._message = message
        self._code = code

    def get_error_message(self):
        return self._message

    def get_error_code(self):
        return self._code


class FakeDomain:
    """A running domain over real image files: snapshot, commit and pivot done with qemu-img, the way
    QEMU leaves the files (overlay with the old image as backing; commit merges it back)."""

    def __init__(self, name, disks, not_ready=2, guest_writes=None):
        self._name = name
        self.disks = dict((t, dict(path=p, fmt=f, backing=None)) for t, p, f in disks)
        self.order = [t for t, _p, _f in disks]
        self.calls = []
        self.active = True
        self.not_ready = not_ready
        self.jobs = {}
        self.guest_writes = guest_writes
        self.defined = []

    def name(self):
        return self._name

    def isActive(self):
        return self.active

    def isPersistent(self):
        return True

    def state(self, flags=0):
        return [1, 1]

    def UUIDString(self):
        return "7f1d5b2c-3d0a-4a63-9a55-3b7c3c0e8f11"

    def XMLDesc(self, flags=0):
        root = _xml.parse(domain_xml(self._name, [(t, self.disks[t]["path"], self.disks[t]["fmt"]) for t in self.order]))
        if not flags & libvirt.VIR_DOMAIN_XML_SECURE:
            for node in root.xpath("//*[@passwd]"):
                del node.attrib["passwd"]
        for node in root.findall("devices/disk"):
            target = node.find("target").get("dev")
            backing = self.disks.get(target, {}).get("backing")
            if backing is not None and not flags & libvirt.VIR_DOMAIN_XML_INACTIVE:
                store = _xml.sub(node, "backingStore", attrs={"type": "file"})
                _xml.sub(store, "format", attrs={"type": backing["fmt"]})
                _xml.sub(store, "source", attrs={"file": backing["path"]})
        return _xml.to_string(root)

    def snapshotCreateXML(self, xml, flags):
        self.calls.append(("snapshot", flags))
        root = _xml.parse(xml)
        for node in root.findall("disks/disk"):
            if node.get("snapshot") != "external":
                continue
            target, overlay = node.get("name"), node.find("source").get("file")
            disk = self.disks[target]
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", disk["path"], "-F", disk["fmt"], overlay],
                           check=True)
            disk["backing"] = dict(path=disk["path"], fmt=disk["fmt"])
            disk.update(path=overlay, fmt="qcow2")
            if self.guest_writes:
                qemu_io(overlay, "qcow2", self.guest_writes)

    def blockCommit(self, target, base, top, bandwidth, flags):
        self.calls.append(("commit", target, flags))
        self.jobs[target] = dict(cur=0, end=MiB)

    def blockJobInfo(self, target, flags):
        job = self.jobs.get(target)
        if job is None:
            return {}
        job["cur"] = job["end"]
        return dict(type=4, bandwidth=0, cur=job["cur"], end=job["end"])

    def blockJobAbort(self, target, flags):
        self.calls.append(("pivot", target, flags))
        if self.not_ready:
            self.not_ready -= 1
            raise FakeLibvirtError("block copy still active: disk '%s' not ready for pivot yet" % target)
        disk = self.disks[target]
        # like QEMU's active commit: the overlay's content stays as it was (qemu-img commit -d)
        subprocess.run(["qemu-img", "commit", "-q", "-d", "-f", "qcow2", disk["path"]], check=True)
        disk.update(path=disk["backing"]["path"], fmt=disk["backing"]["fmt"], backing=None)
        del self.jobs[target]


class FakeConn:
    def __init__(self, dom):
        self.dom = dom

    def lookupByName(self, name):
        if self.dom is None or name != self.dom.name():
            raise FakeLibvirtError("Domain not found", libvirt.VIR_ERR_NO_DOMAIN)
        return self.dom

    @staticmethod
    def listAllDomains(_flags):  # _usage: who uses the files a run replaces (none here)
        return []

    @staticmethod
    def listAllStoragePools(_flags):
        return []

    def defineXML(self, xml):
        self.dom.defined.append(xml)
        for node in _xml.parse(xml).findall("devices/disk[@device='disk']"):
            disk = self.dom.disks[node.find("target").get("dev")]
            disk.update(path=node.find("source").get("file"), fmt=node.find("driver").get("type"))
        return self.dom


@pytest.fixture
def running(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    top, raw = make_images(str(src))
    dom = FakeDomain(VM, [("vda", top, "qcow2"), ("vdb", raw, "raw")])
    return dict(dom=dom, conn=FakeConn(dom), top=top, raw=raw, src=src, dest=tmp_path / "out")


def no_overlays(directory):
    return [n for n in os.listdir(str(directory)) if _export_params.OVERLAY_MARK in n] == []


def test_running_vm_through_a_temporary_snapshot(running):
    dom = running["dom"]
    before = dict((t, dict(d)) for t, d in dom.disks.items())
    result = run(running["conn"], vm=VM, format="qcow2", dest=str(running["dest"]), quiesce=True)
    assert result["consistency"] == "snapshot (quiesced)"
    snap = [c for c in dom.calls if c[0] == "snapshot"]
    assert len(snap) == 1
    flags = snap[0][1]
    for name in ("DISK_ONLY", "NO_METADATA", "ATOMIC", "QUIESCE"):
        assert flags & getattr(libvirt, "VIR_DOMAIN_SNAPSHOT_CREATE_" + name)
    commits = [c for c in dom.calls if c[0] == "commit"]
    assert [c[1] for c in commits] == ["vda", "vdb"]
    for _name, _target, cflags in commits:
        # SHALLOW: only into the image right below; never into a linked clone's shared base
        assert cflags == libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE | libvirt.VIR_DOMAIN_BLOCK_COMMIT_SHALLOW
    assert len([c for c in dom.calls if c[0] == "pivot"]) == 4  # two "not ready" answers were retried
    assert dom.disks == before and no_overlays(running["src"])
    out = running["dest"]
    assert compare(running["top"], str(out / ("%s-vda.qcow2" % VM)))
    assert compare(running["raw"], str(out / ("%s-vdb.qcow2" % VM)))
    # nothing was written meanwhile: the identity after the merge is the recorded one
    assert not run(running["conn"], vm=VM, format="qcow2", dest=str(out))["changed"]


def test_writes_during_the_export_make_the_next_run_export_again(running):
    dom = running["dom"]
    dom.guest_writes = "write -P 0x77 10M 64k"
    first = run(running["conn"], vm=VM, format="raw", dest=str(running["dest"]))
    assert first["changed"]
    exported = str(running["dest"] / ("%s-vda.raw" % VM))
    assert not compare(running["top"], exported)  # the guest's write came after the point in time
    dom.guest_writes = None
    second = run(running["conn"], vm=VM, format="raw", dest=str(running["dest"]))
    assert second["changed"] and second["reason"] == "the source changed"
    assert compare(running["top"], exported)


def test_a_failed_export_of_a_running_vm_merges_back(running, monkeypatch):
    dom = running["dom"]
    before = dict((t, dict(d)) for t, d in dom.disks.items())
    monkeypatch.setattr(_export_run, "run_with_percent",
                        lambda argv, cb: (1, "", "qemu-img: error while writing: No space left on device"))
    with pytest.raises(DestinationFullError):
        run(running["conn"], vm=VM, format="vmdk", dest=str(running["dest"]))
    assert dom.disks == before and no_overlays(running["src"])
    assert [c[1] for c in dom.calls if c[0] == "commit"] == ["vda", "vdb"]
    assert not running["dest"].exists()


def test_a_vm_stopped_during_the_export_is_merged_offline(running, monkeypatch):
    dom = running["dom"]
    real = _export_run.run_with_percent

    def stop_midway(argv, on_percent):
        dom.active = False  # the VM was shut down while we read
        return real(argv, on_percent)

    monkeypatch.setattr(_export_run, "run_with_percent", stop_midway)
    run(running["conn"], vm=VM, format="qcow2", dest=str(running["dest"]))
    assert no_overlays(running["src"]) and [c for c in dom.calls if c[0] == "commit"] == []
    # libvirt still pointed the definition at the overlays: it was restored (with its secrets)
    assert len(dom.defined) == 1 and "s3cret-pass" in dom.defined[0]


def test_a_leftover_overlay_of_a_killed_export_is_merged_first(running):
    dom = running["dom"]
    disk = dom.disks["vda"]
    overlay = _overlay.overlay_path(disk["path"], "vda", None, None, pid=dead_pid())
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", disk["path"], "-F", "qcow2", overlay], check=True)
    qemu_io(overlay, "qcow2", "write -P 0x99 30M 1M")  # what the guest wrote since
    disk["backing"] = dict(path=disk["path"], fmt="qcow2")
    disk.update(path=overlay, fmt="qcow2")
    result = run(running["conn"], vm=VM, format="qcow2", dest=str(running["dest"]))
    assert "interrupted export back" in result["actions"][1]
    assert dom.disks["vda"]["path"] == running["top"] and no_overlays(running["src"])
    assert compare(running["top"], str(running["dest"] / ("%s-vda.qcow2" % VM)))
    check = subprocess.run(["qemu-io", "-f", "qcow2", "-c", "read -P 0x99 30M 1M", running["top"]],
                           stdout=subprocess.PIPE, check=False)
    assert b"Pattern verification failed" not in check.stdout  # the guest's write is in the image


def test_a_leftover_overlay_on_a_stopped_vm_is_merged_offline(running):
    """The VM was shut down while a killed export's overlay was in place: its definition names the overlay."""
    dom = running["dom"]
    dom.active = False
    disk = dom.disks["vdb"]
    overlay = _overlay.overlay_path(disk["path"], "vdb", None, None, pid=dead_pid())
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", disk["path"], "-F", "raw", overlay], check=True)
    qemu_io(overlay, "qcow2", "write -P 0x98 30M 1M")
    disk.update(path=overlay, fmt="qcow2")
    result = run(running["conn"], vm=VM, format="qcow2", dest=str(running["dest"]))
    assert result["consistency"] == "stopped" and "interrupted export back" in result["actions"][1]
    assert no_overlays(running["src"]) and [c for c in dom.calls if c[0] in ("snapshot", "commit")] == []
    assert len(dom.defined) == 1
    root = _xml.parse(dom.defined[0])
    vdb = [d for d in root.findall("devices/disk") if d.find("target").get("dev") == "vdb"][0]
    assert vdb.find("source").get("file") == running["raw"] and vdb.find("driver").get("type") == "raw"
    assert "s3cret-pass" in dom.defined[0]  # redefined from the secure XML: the password is kept
    check = subprocess.run(["qemu-io", "-f", "raw", "-c", "read -P 0x98 30M 1M", running["raw"]],
                           stdout=subprocess.PIPE, check=False)
    assert b"Pattern verification failed" not in check.stdout
    assert compare(running["raw"], str(running["dest"] / ("%s-vdb.qcow2" % VM)))
    assert not run(running["conn"], vm=VM, format="qcow2", dest=str(running["dest"]))["changed"]


def test_an_export_in_progress_elsewhere_is_a_conflict(running):
    dom = running["dom"]
    disk = dom.disks["vda"]
    disk["backing"] = dict(path=disk["path"], fmt="qcow2")
    disk.update(path=_overlay.overlay_path(disk["path"], "vda", None, None, pid=os.getppid()), fmt="qcow2")
    with pytest.raises(ConflictError, match="being exported by another task"):
        run(running["conn"], vm=VM, format="qcow2", dest=str(running["dest"]))


def test_quiesce_without_an_agent_explains(running):
    dom = running["dom"]

    def refuse(xml, flags):
        raise FakeLibvirtError("Guest agent is not responding: QEMU guest agent is not connected")

    dom.snapshotCreateXML = refuse
    with pytest.raises(BackendError, match="quiesce needs qemu-guest-agent"):
        run(running["conn"], vm=VM, format="qcow2", dest=str(running["dest"]), quiesce=True)
    assert not running["dest"].exists()


def dead_pid():
    """A pid no process has (the highest pids are free on a test machine)."""
    for pid in range(4194000, 4194300):
        try:
            os.kill(pid, 0)
        except OSError:
            return pid
    pytest.skip("no free pid found")
