# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm options of issue 19 (firewall and secrets part): ``interfaces[].filter`` and ``disks[].encryption``,
through reconcile() against libvirt's test driver, the domain XML checked by libvirt's schema, and the
image-trust rules for LUKS-encrypted qcow2 images with real qemu-img.

The test driver cannot update devices of a running VM (updateDeviceFlags): the live filter change is
tested as far as the plan (check mode); the nwfilter integration target runs it.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import subprocess

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError, VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.vm import VmResource
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import trust as _trust
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.encryption_xml import encryption_element
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_write import build_volume_xml
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.qemu_img import QemuImg
from ansible_collections.virtops.libvirt.plugins.modules.vm import ARGUMENT_SPEC
from ansible_collections.virtops.libvirt.tests.unit.plugins.module_utils.luks_images import encrypted

POOL = "default-pool"
UUID = "17b0fd0a-f348-4e4b-9747-c72259d3cc74"
FILTER = dict(name="web-in", parameters={"IP": "192.168.210.10", "PORTS": ["80", "443"]})


def run(conn, check=False, **given):
    result = ArgumentSpecValidator(ARGUMENT_SPEC).validate(given)
    assert not result.error_messages, result.error_messages
    ctx = Context(conn=conn, params=result.validated_parameters, check_mode=check, diff=True)
    return reconcile(VmResource(ctx), check_mode=check, want_diff=True)


def four(conn, **given):
    results = [run(conn, check=check, **given) for check in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False], [r["actions"] for r in results]
    return results


@pytest.fixture
def vm(request, test_conn, undefine_for_test_driver):
    name = "u-sf-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60]
    yield name
    for dom in test_conn.listAllDomains(0):
        if dom.name().startswith(name):
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
    for vol in test_conn.storagePoolLookupByName(POOL).listAllVolumes(0):
        if vol.name().startswith(name):
            vol.delete(0)


def saved_xml(conn, name):
    return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def validate(tmp_path, text):
    path = tmp_path / "domain.xml"
    path.write_text(text)
    proc = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr + text


def test_interface_filter_four_times_schema_and_removal(test_conn, vm, tmp_path):
    nic = dict(network="default", mac="52:54:00:5f:00:01", filter=FILTER)
    results = four(test_conn, name=vm, state="stopped", interfaces=[nic])
    text = saved_xml(test_conn, vm)
    validate(tmp_path, text)
    ref = _xml.parse(text).find("devices/interface/filterref")
    assert ref.get("filter") == "web-in"
    assert sorted((p.get("name"), p.get("value")) for p in ref) == [("IP", "192.168.210.10"), ("PORTS", "443"), ("PORTS", "80")]
    assert results[3]["vm"]["interfaces"][0]["filter"] == dict(name="web-in", parameters=["IP=192.168.210.10", "PORTS=443", "PORTS=80"])
    # a changed parameter: one redefine, shown in the diff
    nic["filter"] = dict(name="web-in", parameters={"IP": "192.168.210.11"})
    result = run(test_conn, name=vm, state="stopped", interfaces=[nic])
    assert result["changed"] is True
    assert result["diff"]["after"]["interfaces"][0]["filter"]["parameters"] == ["IP=192.168.210.11"]
    assert run(test_conn, name=vm, state="stopped", interfaces=[nic])["changed"] is False
    # leaving the option out keeps the filter; name '' removes it
    assert run(test_conn, name=vm, state="stopped", interfaces=[dict(network="default")])["changed"] is False
    four(test_conn, name=vm, state="stopped", interfaces=[dict(network="default", filter=dict(name=""))])
    assert _xml.parse(saved_xml(test_conn, vm)).find("devices/interface/filterref") is None


def test_filter_change_of_a_running_vm_is_live(test_conn, vm):
    nic = dict(network="default", mac="52:54:00:5f:00:02", filter=FILTER)
    run(test_conn, name=vm, state="running", interfaces=[nic])
    nic["filter"] = dict(name="web-in", parameters={"IP": "192.168.210.12"})
    result = run(test_conn, check=True, name=vm, state="running", interfaces=[nic])
    assert result["changed"] is True and result["reboot_required"] is False
    assert "set network filter web-in on interface 52:54:00:5f:00:02 of running VM %s" % vm in result["actions"]


def test_bad_filter_input(test_conn, vm):
    with pytest.raises(InvalidInputError, match="not a filter parameter name"):
        run(test_conn, name=vm, state="stopped", interfaces=[dict(network="default", filter=dict(name="x", parameters={"a b": 1}))])
    with pytest.raises(InvalidInputError, match="network filter name"):
        run(test_conn, name=vm, state="stopped", interfaces=[dict(network="default", filter=dict(name="bad name"))])


def _encrypted_volume(conn, name):
    root = build_volume_xml(name, 16 << 20, "qcow2")
    root.find("target").append(encryption_element(UUID))
    conn.storagePoolLookupByName(POOL).createXML(_xml.to_string(root), 0)


def test_encrypted_disk_attached_with_its_secret(test_conn, vm, tmp_path):
    _encrypted_volume(test_conn, vm + "-data.qcow2")
    disk = dict(target="vdb", pool=POOL, volume=vm + "-data.qcow2", encryption=dict(secret=UUID))
    four(test_conn, name=vm, state="stopped", disks=[disk])
    text = saved_xml(test_conn, vm)
    validate(tmp_path, text)
    node = _xml.parse(text).find("devices/disk/source/encryption")
    assert node.get("format") == "luks" and node.find("secret").get("uuid") == UUID
    assert _domain.model_from_xml(text)["disks"][0]["encryption"] == dict(format="luks", secret=UUID)
    # another secret: a change of the definition
    disk["encryption"] = dict(secret="/default-pool/other")
    assert run(test_conn, name=vm, state="stopped", disks=[disk])["changed"] is True
    assert _xml.parse(saved_xml(test_conn, vm)).find("devices/disk/source/encryption/secret").get("usage") == "/default-pool/other"


def test_encrypted_volume_without_encryption_refused(test_conn, vm):
    _encrypted_volume(test_conn, vm + "-data.qcow2")
    with pytest.raises(VirtopsError, match="is encrypted, which is not supported"):
        run(test_conn, name=vm, state="stopped", disks=[dict(target="vdb", pool=POOL, volume=vm + "-data.qcow2")])
    with pytest.raises(InvalidInputError, match="not a new linked clone"):
        run(test_conn, name=vm, state="stopped", disks=[dict(target="vdb", pool=POOL, volume=vm + "-x.qcow2",
                                                             backing_volume=vm + "-data.qcow2", encryption=dict(secret=UUID))])
    with pytest.raises(VirtopsError, match="encrypted volume '%s-x.img' does not exist" % vm):
        run(test_conn, name=vm, state="stopped", disks=[dict(target="vdb", pool=POOL, volume=vm + "-x.img", format="raw",
                                                             encryption=dict(secret=UUID))])


def test_raw_luks_volume_attached_with_its_secret(test_conn, vm, tmp_path):
    """A raw LUKS volume (libvirt reports format raw with <encryption format='luks'>): driver raw, the secret in
    <source>; without encryption it is refused."""
    root = build_volume_xml(vm + "-raw.img", 16 << 20, "raw")
    root.find("target").append(encryption_element(UUID))
    test_conn.storagePoolLookupByName(POOL).createXML(_xml.to_string(root), 0)
    plain = dict(target="vdb", pool=POOL, volume=vm + "-raw.img")
    with pytest.raises(VirtopsError, match="is encrypted, which is not supported$"):
        run(test_conn, name=vm, state="stopped", disks=[plain])
    four(test_conn, name=vm, state="stopped", disks=[dict(plain, encryption=dict(secret=UUID))])
    text = saved_xml(test_conn, vm)
    validate(tmp_path, text)
    disk = _xml.parse(text).find("devices/disk")
    assert disk.find("driver").get("type") == "raw"
    assert disk.find("source/encryption").get("format") == "luks"
    assert disk.find("source/encryption/secret").get("uuid") == UUID


def _run_argv(argv, **_kwargs):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_trust_accepts_luks_images_only_when_told(tmp_path):
    """Real qemu-img: a LUKS-encrypted qcow2, and a raw LUKS image read as raw, pass the image check only with
    ``encrypted=True``; LUKS as a format of its own never, a plain raw image with ``encrypted=True`` neither."""
    qcow2, raw = str(tmp_path / "enc.qcow2"), str(tmp_path / "enc.luks")
    encrypted(qcow2, "qcow2", size="16M")
    encrypted(raw, "luks", size="16M")
    qemu_img = QemuImg(run=_run_argv)
    assert _trust.check_image(qemu_img, qcow2, "qcow2", "disk", encrypted=True)["format"] == "qcow2"
    with pytest.raises(VirtopsError, match="is encrypted, which is not supported$"):
        _trust.check_image(qemu_img, qcow2, "qcow2", "disk")
    with pytest.raises(VirtopsError, match="luks"):
        _trust.check_image(qemu_img, raw, "luks", "disk", encrypted=True)
    assert _trust.check_image(qemu_img, raw, "raw", "disk", encrypted=True)["format"] == "raw"
    with pytest.raises(VirtopsError, match="declared as raw, but its content is a luks image header"):
        _trust.check_image(qemu_img, raw, "raw", "disk")
    plain = tmp_path / "plain.img"
    plain.write_bytes(b"\0" * (1 << 20))
    with pytest.raises(VirtopsError, match="declared as raw with encryption, but it is not a LUKS image"):
        _trust.check_image(qemu_img, str(plain), "raw", "disk", encrypted=True)
