# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The image-trust check against hostile images built with the real qemu-img.

Every hostile image names a host file (a stand-in for /etc/shadow) in some way; the check must
refuse it with a message that says why, and qemu-img must always be called with ``-f``.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record

from ansible_collections.virtops.libvirt.plugins.module_utils._storage import trust as _trust
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.qemu_img import QemuImg
from ansible_collections.virtops.libvirt.tests.unit.plugins.module_utils.luks_images import encrypted

MiB = 1024 ** 2
TiB = 1024 ** 4


def qimg(*args):
    subprocess.check_call(["qemu-img"] + list(args), stdout=subprocess.DEVNULL)


@pytest.fixture
def calls():
    return []


@pytest.fixture
def qemu_img(calls):
    wrapper = QemuImg()
    real = wrapper._run

    def recording(argv):
        calls.append(argv)
        return real(argv)

    wrapper._run = recording
    return wrapper


@pytest.fixture
def secret(tmp_path):
    """A host file that no image may reach (the /etc/shadow of these tests)."""
    path = tmp_path / "host" / "shadow"
    path.parent.mkdir()
    path.write_bytes(b"root:$6$hash:19000:0:99999:7:::\n" * 32768)
    return str(path)


@pytest.fixture
def pool(tmp_path):
    path = tmp_path / "pool"
    path.mkdir()
    return str(path)


def in_pool(pool):
    return lambda path: os.path.dirname(path) == os.path.realpath(pool)


def strip_backing_format(path):
    """Remove the backing-format header extension of a qcow2 (qemu-img no longer writes such images)."""
    with open(path, "r+b") as handle:
        head = bytearray(handle.read(65536))
        index = head.find(bytes.fromhex("E2792ACA"))
        assert index > 0
        head[index:index + 4] = b"\0\0\0\0"
        handle.seek(0)
        handle.write(head)


def overlay(path, backing, backing_fmt="raw"):
    """A qcow2 whose backing file is named ``backing`` as is (json:, nbd:, relative...)."""
    qimg("create", "-q", "-f", "qcow2", path, "1M")
    qimg("rebase", "-u", "-f", "qcow2", "-b", backing, "-F", backing_fmt, path)
    return path


def vmdk_descriptor(path, *extents):
    lines = ["# Disk DescriptorFile", "version=1", "CID=fffffffe", "parentCID=ffffffff", 'createType="monolithicFlat"', ""]
    lines += ['RW 2048 FLAT "%s" 0' % e for e in extents]
    lines += ["", 'ddb.virtualHWVersion = "4"', ""]
    with open(path, "w") as handle:
        handle.write("\n".join(lines))
    return path


def check(qemu_img, path, fmt=None, backing=None):
    return _trust.check_image(qemu_img, path, fmt, "image %s" % os.path.basename(path), backing=backing)


# --- backing files --------------------------------------------------------------------------------

BACKING_NAMES = [
    ("absolute", lambda s, _p: s, "backing file"),
    ("relative-outside", os.path.relpath, "outside the storage pools"),
    ("json", lambda s, p: 'json:{"file":{"driver":"file","filename":"%s"}}' % s, "protocol or JSON"),
    ("nbd", lambda s, p: "nbd://127.0.0.1:10809/x", "protocol or JSON"),
    ("nbd-colon", lambda s, p: "nbd:127.0.0.1:10809", "protocol or JSON"),
    ("http", lambda s, p: "http://127.0.0.1/x.raw", "protocol or JSON"),
    ("file-protocol", lambda s, p: "file:%s" % s, "protocol or JSON"),
]


@pytest.mark.parametrize("name, message", [(b[1], b[2]) for b in BACKING_NAMES], ids=[b[0] for b in BACKING_NAMES])
def test_backing_names_refused_when_no_backing_is_allowed(qemu_img, pool, secret, name, message):
    path = overlay(os.path.join(pool, "evil.qcow2"), name(secret, pool))
    with pytest.raises(InvalidInputError, match="backing file"):
        check(qemu_img, path, "qcow2")


@pytest.mark.parametrize("name, message", [(b[1], b[2]) for b in BACKING_NAMES], ids=[b[0] for b in BACKING_NAMES])
def test_backing_names_refused_even_where_pool_backing_is_allowed(qemu_img, pool, secret, name, message):
    path = overlay(os.path.join(pool, "evil.qcow2"), name(secret, pool))
    with pytest.raises(InvalidInputError, match=message if message != "backing file" else "outside the storage pools"):
        check(qemu_img, path, "qcow2", backing=in_pool(pool))


def test_backing_without_format_refused(qemu_img, pool):
    base = os.path.join(pool, "base.raw")
    qimg("create", "-q", "-f", "raw", base, "1M")
    path = overlay(os.path.join(pool, "top.qcow2"), base)
    strip_backing_format(path)
    with pytest.raises(InvalidInputError, match="without a backing format"):
        check(qemu_img, path, "qcow2", backing=in_pool(pool))


def test_chain_inside_the_pool_is_accepted_link_by_link(qemu_img, pool, calls):
    base = os.path.join(pool, "base.qcow2")
    mid = os.path.join(pool, "mid.qcow2")
    top = os.path.join(pool, "top.qcow2")
    qimg("create", "-q", "-f", "qcow2", base, "4M")
    qimg("create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", mid)
    qimg("create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", top)  # a relative name
    facts = check(qemu_img, top, "qcow2", backing=in_pool(pool))
    assert facts["format"] == "qcow2" and facts["virtual_size"] == 4 * MiB
    assert facts["chain"] == [dict(path=mid, format="qcow2"), dict(path=base, format="qcow2")]
    assert len(calls) == 3 and not any("--backing-chain" in argv for argv in calls)


def test_nested_chain_with_a_hostile_link_is_refused(qemu_img, pool, secret):
    mid = overlay(os.path.join(pool, "mid.qcow2"), secret)
    top = os.path.join(pool, "top.qcow2")
    qimg("create", "-q", "-f", "qcow2", "-b", mid, "-F", "qcow2", top)
    with pytest.raises(InvalidInputError, match="backing file %s.*outside the storage pools" % mid):
        check(qemu_img, top, "qcow2", backing=in_pool(pool))


def test_nested_chain_with_a_format_lie_is_refused(qemu_img, pool):
    base = os.path.join(pool, "base.qcow2")
    top = os.path.join(pool, "top.qcow2")
    qimg("create", "-q", "-f", "qcow2", base, "1M")
    overlay(top, base, backing_fmt="raw")  # the overlay says raw; the base is a qcow2 (with its own metadata)
    with pytest.raises(InvalidInputError, match="named by its overlay as raw, but its content is a qcow2"):
        check(qemu_img, top, "qcow2", backing=in_pool(pool))


def test_chain_loop_refused(qemu_img, pool):
    one = os.path.join(pool, "one.qcow2")
    two = os.path.join(pool, "two.qcow2")
    qimg("create", "-q", "-f", "qcow2", one, "1M")
    qimg("create", "-q", "-f", "qcow2", "-b", one, "-F", "qcow2", two)
    qimg("rebase", "-u", "-f", "qcow2", "-b", two, "-F", "qcow2", one)
    with pytest.raises(InvalidInputError, match="loops"):
        check(qemu_img, two, "qcow2", backing=in_pool(pool))


def test_chain_too_long_refused(qemu_img, pool):
    prev = os.path.join(pool, "l0.qcow2")
    qimg("create", "-q", "-f", "qcow2", prev, "1M")
    for index in range(1, _trust.MAX_CHAIN + 1):
        path = os.path.join(pool, "l%d.qcow2" % index)
        qimg("create", "-q", "-f", "qcow2", "-b", prev, "-F", "qcow2", path)
        prev = path
    with pytest.raises(InvalidInputError, match="longer than %d" % _trust.MAX_CHAIN):
        check(qemu_img, prev, "qcow2", backing=in_pool(pool))


def test_qed_backing_file_refused(qemu_img, pool, secret):
    path = os.path.join(pool, "evil.qed")
    qimg("create", "-q", "-f", "qed", "-b", secret, "-F", "raw", path, "1M")
    with pytest.raises(InvalidInputError, match="backing file"):
        check(qemu_img, path, "qed")
    with pytest.raises(InvalidInputError, match="outside the storage pools"):
        check(qemu_img, path, None, backing=in_pool(pool))


# --- other files: data files, extents -----------------------------------------------------------


@pytest.mark.parametrize("raw_flag", ["off", "on"])
def test_qcow2_external_data_file_refused(qemu_img, pool, secret, raw_flag):
    path = os.path.join(pool, "evil.qcow2")
    data = os.path.join(pool, "data.raw")
    qimg("create", "-q", "-f", "qcow2", "-o", "data_file=%s,data_file_raw=%s" % (data, raw_flag), path, "1M")
    with pytest.raises(InvalidInputError, match="external data file"):
        check(qemu_img, path, "qcow2", backing=in_pool(pool))
    with pytest.raises(InvalidInputError, match="external data file"):
        check(qemu_img, path)


def test_qcow2_data_file_pointing_at_a_host_file_refused(qemu_img, pool, secret):
    path = os.path.join(pool, "evil.qcow2")
    data = os.path.join(pool, "data.raw")
    qimg("create", "-q", "-f", "qcow2", "-o", "data_file=%s" % data, path, "1M")
    qimg("amend", "-q", "-f", "qcow2", "-o", "data_file=%s" % secret, path)
    with pytest.raises(InvalidInputError, match="external data file %s" % secret):
        check(qemu_img, path, "qcow2")


@pytest.mark.parametrize("extents", [
    pytest.param(lambda s, p: [s], id="absolute"),
    pytest.param(lambda s, p: [os.path.relpath(s, p)], id="relative"),
    pytest.param(lambda s, p: ["flat.bin", s], id="second-extent"),
])
def test_vmdk_extents_in_other_files_refused(qemu_img, pool, secret, extents):
    with open(os.path.join(pool, "flat.bin"), "wb") as handle:
        handle.truncate(MiB)
    path = vmdk_descriptor(os.path.join(pool, "evil.vmdk"), *extents(secret, pool))
    with pytest.raises(InvalidInputError, match="VMDK extent"):
        check(qemu_img, path, "vmdk")
    with pytest.raises(InvalidInputError, match="VMDK extent"):
        check(qemu_img, path)  # sniffed as a VMDK descriptor


def test_vmdk_descriptor_declared_raw_refused(qemu_img, pool, secret):
    path = vmdk_descriptor(os.path.join(pool, "evil.img"), secret)
    with pytest.raises(InvalidInputError, match="declared as raw, but its content is a vmdk image header"):
        check(qemu_img, path, "raw")


@pytest.mark.parametrize("subformat", ["monolithicSparse", "streamOptimized"])
def test_self_contained_vmdk_accepted(qemu_img, pool, subformat):
    path = os.path.join(pool, "ok.vmdk")
    qimg("create", "-q", "-f", "vmdk", "-o", "subformat=%s" % subformat, path, "2M")
    assert check(qemu_img, path)["format"] == "vmdk"
    assert check(qemu_img, path, "vmdk")["virtual_size"] == 2 * MiB


# --- formats: lies, unknown formats, encryption ---------------------------------------------------

HEADERS = ["qcow2", "qed", "vmdk", "vdi", "vhdx", "vpc"]


@pytest.mark.parametrize("fmt", HEADERS)
def test_raw_declared_over_an_image_header_refused(qemu_img, pool, fmt):
    path = os.path.join(pool, "disk.img")
    qimg("create", "-q", "-f", fmt, path, "1M")
    with pytest.raises(InvalidInputError, match="declared as raw, but its content is a %s image header" % fmt):
        check(qemu_img, path, "raw")
    assert check(qemu_img, path)["format"] == fmt  # undeclared: the sniffed format, checked under it


@pytest.mark.parametrize("fmt", ["qcow2", "qed", "vmdk", "vdi", "vhdx", "vpc"])
def test_image_format_declared_over_raw_bytes_refused(qemu_img, pool, fmt):
    path = os.path.join(pool, "disk.raw")
    with open(path, "wb") as handle:
        handle.write(b"\xeb\x63\x90" + b"\0" * (MiB - 3))
    with pytest.raises(InvalidInputError, match="cannot be read as %s" % fmt):
        check(qemu_img, path, fmt)


@pytest.mark.parametrize("declared, actual", [("vmdk", "qcow2"), ("qcow2", "qed"), ("vdi", "vhdx"), ("qed", "qcow2")])
def test_another_format_than_declared_refused(qemu_img, pool, declared, actual):
    path = os.path.join(pool, "disk.img")
    qimg("create", "-q", "-f", actual, path, "1M")
    with pytest.raises(InvalidInputError, match="declared as %s, but its content is a %s image" % (declared, actual)):
        check(qemu_img, path, declared)


@pytest.mark.parametrize("fmt", ["qcow", "parallels", "bochs", "cloop", "dmg", "luks"])
def test_unknown_formats_refused(qemu_img, pool, fmt):
    path = os.path.join(pool, "disk.%s" % fmt)
    if fmt == "luks":
        encrypted(path, "luks")
    elif fmt in ("qcow", "parallels"):
        qimg("create", "-q", "-f", fmt, path, "1M")
    else:
        magic = dict(bochs=b"Bochs Virtual HD Image\0", cloop=b"#!/bin/sh\n#V2.0 Format\n", dmg=b"")[fmt]
        with open(path, "wb") as handle:
            handle.write(magic + b"\0" * 4096)
    if fmt == "dmg":  # no header qemu probes (qemu needs the .dmg name): raw, and checked as raw
        assert check(qemu_img, path)["format"] == "raw"
        return
    with pytest.raises(InvalidInputError, match="is a %s image: only raw, qcow2" % fmt):
        check(qemu_img, path)
    with pytest.raises(InvalidInputError, match="declared as raw, but its content is a %s image header" % fmt):
        check(qemu_img, path, "raw")


@pytest.mark.parametrize("fmt", ["luks", "qcow2"])
def test_encrypted_images_refused(qemu_img, pool, fmt):
    path = os.path.join(pool, "secret.%s" % fmt)
    encrypted(path, fmt)
    with pytest.raises(InvalidInputError, match="encrypted|is a luks image"):
        check(qemu_img, path, fmt if fmt != "luks" else None)


# --- sizes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, size, bound", [
    ("qcow2", 17 * TiB, None),  # above the real bound
    ("qed", 17 * TiB, None),
    ("raw", 2 * TiB, TiB),  # ext4 holds no 17 TiB file (the reason for the bound): a lower bound for the test
    ("vpc", 2040 * 1024 ** 3, TiB),  # a VHD holds at most ~2 TiB
])
def test_oversize_virtual_size_refused(qemu_img, pool, monkeypatch, fmt, size, bound):
    path = os.path.join(pool, "huge.%s" % fmt)
    if fmt == "raw":
        with open(path, "wb") as handle:
            handle.truncate(size)
    else:
        qimg("create", "-q", "-f", fmt, path, str(size))
    if bound:
        monkeypatch.setattr(_trust, "MAX_VIRTUAL_SIZE", bound)
    with pytest.raises(InvalidInputError, match="has a virtual size of %d bytes, more than" % os.path.getsize(path) if fmt == "raw"
                       else "more than"):
        check(qemu_img, path, fmt)


def test_size_at_the_bound_accepted(qemu_img, pool):
    path = os.path.join(pool, "big.qcow2")
    qimg("create", "-q", "-f", "qcow2", path, str(_trust.MAX_VIRTUAL_SIZE))
    assert check(qemu_img, path, "qcow2")["virtual_size"] == _trust.MAX_VIRTUAL_SIZE


# --- how qemu-img is called ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [None, "raw", "qcow2"])
def test_qemu_img_always_gets_f_and_limits(qemu_img, calls, pool, fmt):
    path = os.path.join(pool, "disk")
    qimg("create", "-q", "-f", fmt or "qcow2", path, "1M")
    check(qemu_img, path, fmt)
    assert calls, "qemu-img ran"
    for argv in calls:
        assert argv[argv.index("-f") + 1] == (fmt or "qcow2")
        if os.path.exists("/usr/bin/prlimit"):
            assert argv[0].endswith("prlimit") and "--as=%d" % (1024 ** 3) in argv


def test_not_a_file(qemu_img, pool):
    with pytest.raises(InvalidInputError, match="not a regular file"):
        check(qemu_img, pool, "raw")
    with pytest.raises(InvalidInputError, match="not a regular file"):
        check(qemu_img, "/dev/null", "raw")


@pytest.mark.parametrize("text, expected", [
    (b"# Disk DescriptorFile\nversion=1\n", "vmdk"),
    (b"\n# comment\n  \nversion=2\r\nCID=1\n", "vmdk"),
    (b"version=4\n", None),
    (b"QFI\xfb\x00\x00\x00\x01", "qcow"),
    (b"QFI\xfb\x00\x00\x00\x03", "qcow2"),
    (b"\0" * 64 + b"\x7f\x10\xda\xbe", "vdi"),
    (b"plain data", None),
])
def test_sniff_format(tmp_path, text, expected):
    path = tmp_path / "x"
    path.write_bytes(text + b"\0" * 2048)
    assert _trust.sniff_format(str(path)) == expected


def test_sniff_fixed_vhd_footer(tmp_path):
    path = tmp_path / "fixed.vhd"
    qimg("create", "-q", "-f", "vpc", "-o", "subformat=fixed", str(path), "1M")
    assert _trust.sniff_format(str(path)) == "vpc"


# --- libvirt's report only -----------------------------------------------------------------------------


def model(**kw):
    base = dict(path="/pool/x", type="file", format="qcow2", capacity=MiB, encrypted=False, backing_path=None,
                backing_format=None, mtime=None, physical=None)
    base.update(kw)
    return base


@pytest.mark.parametrize("kw, declared, chain, message", [
    (dict(format="qcow2"), "raw", None, "declared as raw, but its content is a qcow2 image header"),
    (dict(format="raw"), "qcow2", None, "declared as qcow2, but its content is a raw image"),
    (dict(format="dmg"), None, None, "is a dmg image"),
    (dict(encrypted=True), None, None, "encrypted"),
    (dict(capacity=17 * TiB), None, None, "more than"),
    (dict(), None, [dict(path="/etc/shadow", format="raw", pool=None, volume=None)], "outside the storage pools"),
    (dict(), None, [dict(path="nbd://h/x", format="raw", pool=None, volume=None)], "outside the storage pools"),
    (dict(), None, [dict(path="/pool/base", format="dmg", pool="p", volume="base")], "is a dmg image"),
])
def test_check_reported_refusals(kw, declared, chain, message):
    with pytest.raises(InvalidInputError, match=message):
        _trust.check_reported(model(**kw), declared, "volume x", backing=lambda p: True, chain=chain)


def test_check_reported_accepts_a_chain_of_pool_volumes():
    chain = [dict(path="/pool/base", format="qcow2", pool="p", volume="base")]
    facts = _trust.check_reported(model(), None, "volume x", backing=lambda p: True, chain=chain)
    assert facts["format"] == "qcow2" and facts["chain"] == chain
    with pytest.raises(InvalidInputError, match="only self-contained"):
        _trust.check_reported(model(), None, "volume x", backing=None, chain=chain)


# --- the choice of format: declaration, record, report ----------------------------------------------


def local_model(path, fmt):
    st = os.stat(path)
    return model(path=path, format=fmt, capacity=MiB, physical=st.st_size,
                 mtime="%d.%09d" % (st.st_mtime_ns // 10 ** 9, st.st_mtime_ns % 10 ** 9))


def qcow2_on_secret(path, secret):
    """Raw bytes (a guest's disk) that start with a qcow2 header naming a host file as backing file."""
    overlay(path, secret)
    return path


def test_recorded_raw_stays_raw_whatever_the_content(qemu_img, pool, secret, test_conn, calls):
    path = qcow2_on_secret(os.path.join(pool, "guest.img"), secret)
    assert _record.write_record(path, _record.new_record("raw", "volume"))
    facts = _trust.trusted_volume(test_conn, "qemu:///system", local_model(path, "qcow2"), qemu_img, "volume guest.img")
    assert facts["format"] == "raw" and facts["checked"] == "record" and calls == []
    with pytest.raises(InvalidInputError, match="recorded as a raw volume"):
        _trust.trusted_volume(test_conn, "qemu:///system", local_model(path, "qcow2"), qemu_img, "volume guest.img",
                              declared="qcow2")


def test_recorded_qcow2_is_checked_and_not_declared_raw(qemu_img, pool, secret, test_conn):
    path = os.path.join(pool, "made.qcow2")
    qimg("create", "-q", "-f", "qcow2", path, "1M")
    assert _record.write_record(path, _record.new_record("qcow2", "volume"))
    facts = _trust.trusted_volume(test_conn, "qemu:///system", local_model(path, "qcow2"), qemu_img, "volume made")
    assert facts["format"] == "qcow2" and facts["checked"] == "file"
    with pytest.raises(InvalidInputError, match="recorded as a qcow2 volume.*format raw"):
        _trust.trusted_volume(test_conn, "qemu:///system", local_model(path, "qcow2"), qemu_img, "volume made",
                              declared="raw")


def test_without_record_libvirts_probe_is_checked(qemu_img, pool, secret, test_conn):
    path = qcow2_on_secret(os.path.join(pool, "probed.img"), secret)
    with pytest.raises(InvalidInputError, match="outside the storage pools"):
        _trust.trusted_volume(test_conn, "qemu:///system", local_model(path, "qcow2"), qemu_img, "volume probed.img")
    with pytest.raises(InvalidInputError, match="declared as raw, but its content is a qcow2 image header"):
        _trust.trusted_volume(test_conn, "qemu:///system", local_model(path, "qcow2"), qemu_img, "volume probed.img",
                              declared="raw")


def test_vmdk_descriptor_that_libvirt_reports_as_raw_is_refused(qemu_img, pool, secret, test_conn):
    path = vmdk_descriptor(os.path.join(pool, "desc.img"), secret)
    with pytest.raises(InvalidInputError, match="reported by libvirt as raw, but its content is a vmdk"):
        _trust.trusted_volume(test_conn, "qemu:///system", local_model(path, "raw"), qemu_img, "volume desc.img")


def test_a_namesake_file_is_not_read(qemu_img, pool, test_conn, calls):
    """libvirt's file has another modification time than the file this node sees: only the report is used."""
    path = os.path.join(pool, "elsewhere.qcow2")
    qimg("create", "-q", "-f", "qcow2", path, "1M")
    facts = _trust.trusted_volume(test_conn, "qemu:///system", model(path=path, mtime="1.000000001"), qemu_img, "v",
                                  chain=lambda: [])
    assert facts["checked"] == "report" and calls == []
    facts = _trust.trusted_volume(test_conn, "qemu+ssh://host/system", local_model(path, "qcow2"), qemu_img, "v",
                                  chain=lambda: [])
    assert facts["checked"] == "report"


def test_info_json_is_what_the_check_reads(qemu_img, pool):
    """The keys the check relies on are the ones this qemu-img prints."""
    path = os.path.join(pool, "d.qcow2")
    qimg("create", "-q", "-f", "qcow2", "-o", "data_file=%s" % os.path.join(pool, "d.raw"), path, "1M")
    info = json.loads(subprocess.check_output(["qemu-img", "info", "--output=json", "-f", "qcow2", path]))
    assert info["format-specific"]["data"]["data-file"].endswith("d.raw")
    assert info["virtual-size"] == MiB


def test_an_iso_is_raw(qemu_img, pool, test_conn):
    """libvirt reports ISO 9660 files (cloud-init seeds) as 'iso': QEMU reads them as raw."""
    path = os.path.join(pool, "seed.iso")
    with open(path, "wb") as handle:
        handle.write(b"\0" * 32768 + b"\x01CD001\x01" + b"\0" * 4096)
    facts = _trust.trusted_volume(test_conn, "qemu:///system", local_model(path, "iso"), qemu_img, "seed", declared="raw")
    assert facts["format"] == "raw" and facts["checked"] == "file"
    facts = _trust.trusted_volume(test_conn, "qemu+ssh://h/system", local_model(path, "iso"), qemu_img, "seed",
                                  declared="raw", chain=lambda: [])
    assert facts["format"] == "raw" and facts["checked"] == "report"
