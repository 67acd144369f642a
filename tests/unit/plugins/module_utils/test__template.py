# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Templates (vm_template, vm_template_info, vm's template option) against libvirt's test driver, with
real qemu-img on real files: the test driver keeps volumes as records only, so each source volume is
made by libvirt and then written with qemu-img at the same path.  Sealing needs a real guest agent:
the lab target vm_template runs it; here only its refusals and the script's syntax."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import subprocess
import uuid

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.vm import VmResource
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record
from ansible_collections.virtops.libvirt.plugins.module_utils._template import seal as _seal
from ansible_collections.virtops.libvirt.plugins.module_utils._template import store as _store
from ansible_collections.virtops.libvirt.plugins.module_utils._template.info import gather_template_info
from ansible_collections.virtops.libvirt.plugins.module_utils._template.resource import TemplateResource
from ansible_collections.virtops.libvirt.plugins.modules.vm import ARGUMENT_SPEC as VM_SPEC
from ansible_collections.virtops.libvirt.plugins.modules.vm_template import ARGUMENT_SPEC as TEMPLATE_SPEC

QEMU_IMG = shutil.which("qemu-img")
pytestmark = pytest.mark.skipif(QEMU_IMG is None, reason="needs qemu-img")
MIB = 1024 * 1024


def params(spec, **given):
    result = ArgumentSpecValidator(spec).validate(dict(given, uri="test:///default"))
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def run_argv(argv, **_kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def run(conn, resource, spec, check=False, **given):
    ctx = Context(conn=conn, params=params(spec, **given), check_mode=check, diff=True, uri="test:///default",
                  run_command=run_argv)
    out = reconcile(resource(ctx), check_mode=check, want_diff=True)
    out["module_warnings"] = ctx.warnings
    return out


def template(conn, check=False, **given):
    return run(conn, TemplateResource, TEMPLATE_SPEC, check=check, **given)


def vm(conn, check=False, **given):
    return run(conn, VmResource, VM_SPEC, check=check, **given)


def four(func, conn, **given):
    results = [func(conn, check=check, **given) for check in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False], [r["actions"] for r in results]
    assert results[0]["actions"] == results[1]["actions"]
    return results


def qemu_img(*args):
    return subprocess.run([QEMU_IMG] + list(args), check=True, capture_output=True, text=True).stdout


class Lab:
    """A directory pool of the test driver at a temporary directory, and a stopped source VM whose
    disk vda is a qcow2 overlay (on a base with data) in it, plus a read-only seed disk, a CD-ROM and a NIC."""

    def __init__(self, conn, directory):
        self.conn = conn
        self.dir = str(directory)
        self.tag = "u-tpl-" + uuid.uuid4().hex[:8]
        self.pool_name = self.tag + "-pool"
        self.pool = conn.storagePoolCreateXML(
            "<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>" % (self.pool_name, self.dir), 0)
        self.src = self.tag + "-src"
        lower = self.volume("lower.qcow2", "qcow2")
        with open(os.path.join(self.dir, "data.raw"), "wb") as handle:
            handle.write(b"template-data" * 1000)
        qemu_img("convert", "-f", "raw", "-O", "qcow2", os.path.join(self.dir, "data.raw"), lower)
        qemu_img("resize", "-f", "qcow2", lower, str(4 * MIB))
        os.unlink(os.path.join(self.dir, "data.raw"))
        self.vda = self.volume("src-vda.qcow2", "qcow2", backing=lower)
        qemu_img("create", "-f", "qcow2", "-F", "qcow2", "-b", lower, self.vda)
        seed = self.volume("src-seed.img", "raw")
        with open(seed, "wb") as handle:
            handle.write(b"\0" * 65536)
        conn.defineXML(
            "<domain type='test'><name>%s</name><memory unit='MiB'>512</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
            "<devices>"
            "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='%s'/><target dev='vda' bus='virtio'/></disk>"
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%s'/><target dev='vdb' bus='virtio'/>"
            "<readonly/></disk>"
            "<disk type='file' device='cdrom'><source file='%s'/><target dev='sda' bus='sata'/><readonly/></disk>"
            "<interface type='network'><mac address='52:54:00:aa:bb:01'/><source network='default'/></interface>"
            "<serial type='file'><source path='/var/log/src-serial.log'/><target port='0'/></serial>"
            "</devices></domain>" % (self.src, self.vda, seed, seed))

    def volume(self, name, fmt, backing=None):
        xml = "<volume><name>%s</name><capacity>%d</capacity><target><format type='%s'/></target>%s</volume>" % (
            name, 4 * MIB, fmt, "<backingStore><path>%s</path><format type='qcow2'/></backingStore>" % backing if backing else "")
        return self.pool.createXML(xml, 0).path()

    def close(self):
        for dom in self.conn.listAllDomains(0):
            if dom.name().startswith(self.tag):
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        for vol in self.pool.listAllVolumes(0):
            vol.delete(0)
        self.pool.destroy()


@pytest.fixture
def lab(test_conn, tmp_path):
    found = Lab(test_conn, tmp_path)
    yield found
    found.close()


def make(lab, check=False, **given):
    return template(lab.conn, check=check, **dict(dict(name=lab.tag, pool=lab.pool_name, vm=lab.src, seal=False), **given))


# ----------------------------------------------------------------------------------- making ---

def test_make_four_runs_flattens_and_keeps_the_definition(lab):
    results = [make(lab, check=c) for c in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False]
    base = os.path.join(lab.dir, lab.tag + "-vda.base.qcow2")
    assert results[1]["actions"] == [
        "flatten disk vda of VM %s into read-only base volume %s-vda.base.qcow2 in pool %s" % (lab.src, lab.tag, lab.pool_name),
        "write the definition of template %s to %s/%s.template.xml" % (lab.tag, lab.dir, lab.tag)]
    assert results[0]["actions"] == results[1]["actions"]
    made = results[1]["template"]
    assert results[0]["template"]["disks"] == made["disks"] == [
        dict(target="vda", volume=lab.tag + "-vda.base.qcow2", path=base, format="qcow2", capacity=4 * MIB)]
    assert (made["source_vm"], made["sealed"], made["memory"], made["vcpus"]) == (lab.src, "none", 512, 1)
    assert results[3]["template"] == made
    # the base: flat, read-only, the same content as the overlay chain it came from, recorded
    info = json.loads(qemu_img("info", "--output=json", base))
    assert info["format"] == "qcow2" and "backing-filename" not in info
    assert oct(os.stat(base).st_mode & 0o777) == "0o444"
    qemu_img("compare", "-f", "qcow2", "-F", "qcow2", lab.vda, base)
    rec = _record.read_record(base)
    assert rec is None or (rec["made_by"], rec["format"], rec["complete"]) == ("vm_template", "qcow2", True)
    # the definition: no UUID, MAC, seed disk or CD-ROM medium; its disk is the base
    root = _xml.parse(open(made["path"], "rb").read())
    domain = root.find("domain")
    assert domain.find("uuid") is None and domain.find("devices/interface/mac") is None
    model = _domain.model_from_xml(domain)
    assert [(d["target"], d["path"], d["format"]) for d in model["disks"]] == [("vda", base, "qcow2")]
    assert [c["path"] for c in model["cdroms"]] == [None] and model["interfaces"][0]["source"] == "default"
    assert model["serial"]["type"] == "pty" and b"src-serial.log" not in open(made["path"], "rb").read()
    # the source VM is as it was
    assert lab.conn.lookupByName(lab.src).XMLDesc(0).count("52:54:00:aa:bb:01") == 1


def test_diff_of_a_new_template(lab):
    out = make(lab, check=True)
    assert out["diff"]["before"] == {"state": "absent"}
    after = out["diff"]["after"]
    assert after["state"] == "present" and after["source_vm"] == lab.src and after["disks"][0]["target"] == "vda"


@pytest.mark.parametrize("given, error, fragment", [
    (dict(seal=None), InvalidInputError, "cannot tell whether its guest was sealed"),
    (dict(seal=True), ConflictError, "sealing runs in its guest through the guest agent"),
    (dict(vm=None), InvalidInputError, "vm: name the VM"),
    (dict(vm="u-tpl-no-such-vm"), NotFoundError, "does not exist"),
    (dict(name="bad name"), InvalidInputError, "not a usable template name"),
    (dict(name="x.template.xml"), InvalidInputError, "not a usable template name"),
    (dict(name="../x"), InvalidInputError, "'/'"),
    (dict(pool="u-tpl-no-such-pool"), NotFoundError, "does not exist"),
])
def test_refusals_change_nothing(lab, given, error, fragment):
    before = sorted(os.listdir(lab.dir))
    with pytest.raises(error) as info:
        make(lab, **given)
    assert fragment in info.value.msg
    assert sorted(os.listdir(lab.dir)) == before


def test_a_running_vm_needs_seal_and_an_agent(test_conn, lab):
    """test:///default's VM 'test' runs and has no agent channel."""
    with pytest.raises(ConflictError) as info:
        make(lab, vm="test", seal=False)
    assert "is running" in info.value.msg and "seal: true" in info.value.msg
    with pytest.raises(InvalidInputError) as info:
        make(lab, vm="test", seal=True)
    assert "no guest agent channel" in info.value.msg


def test_a_remote_uri_is_refused(lab):
    ctx = Context(conn=lab.conn, params=params(TEMPLATE_SPEC, name=lab.tag, pool=lab.pool_name, vm=lab.src, seal=False),
                  uri="qemu+ssh://kvm1/system", run_command=run_argv)
    with pytest.raises(InvalidInputError) as info:
        reconcile(TemplateResource(ctx))
    assert "local URI" in info.value.msg


def test_another_vm_for_an_existing_template_is_a_conflict(lab):
    make(lab)
    with pytest.raises(ConflictError) as info:
        make(lab, vm="test")
    assert "made from VM %r, not 'test'" % lab.src in info.value.msg


def test_a_failed_flatten_removes_the_base_again(lab):
    os.unlink(lab.vda)  # the source file is gone: qemu-img fails on it
    qemu_img("create", "-f", "qcow2", lab.vda, "4M")
    os.chmod(lab.dir, 0o755)
    xml = lab.conn.lookupByName(lab.src).XMLDesc(0).replace(lab.vda, lab.vda + ".missing")
    lab.conn.defineXML(xml)
    with pytest.raises(InvalidInputError):
        make(lab)
    assert not any(n.endswith(".base.qcow2") for n in lab.pool.listVolumes())


def test_seal_script_is_valid_sh():
    subprocess.run(["sh", "-n", "-c", _seal.SEAL_SCRIPT], check=True)
    assert "cloud-init clean --logs --seed" in _seal.SEAL_SCRIPT and ": > /etc/machine-id" in _seal.SEAL_SCRIPT


# -------------------------------------------------------------------------- VMs from it ---

def test_full_copy_plan(lab):
    """A full copy is written by qemu-img into the volume libvirt made: the test driver makes no file, so
    only the plan here (the lab target vm_template boots one)."""
    make(lab)
    name = lab.tag + "-full"
    out = vm(lab.conn, check=True, name=name, template=lab.tag, template_pool=lab.pool_name, clone_mode="full", state="stopped")
    assert out["actions"] == ["copy volume %s-vda.base.qcow2 to %s-vda.qcow2 in pool %s" % (lab.tag, name, lab.pool_name),
                              "define VM %s as a full clone of template %s" % (name, lab.tag)]
    assert out["vm"]["memory"] == 512


@pytest.mark.parametrize("mode", ["linked"])
def test_vm_from_template(lab, mode):
    make(lab)
    base = os.path.join(lab.dir, lab.tag + "-vda.base.qcow2")
    name = lab.tag + "-" + mode
    results = four(vm, lab.conn, name=name, template=lab.tag, template_pool=lab.pool_name, clone_mode=mode,
                   state="stopped", vcpus=2)
    label = "define VM %s as a %s clone of template %s" % (name, mode, lab.tag)
    assert results[1]["actions"][-1] == label
    first = {"linked": "create qcow2 volume %s-vda.qcow2 in pool %s on backing file %s" % (name, lab.pool_name, base),
             "full": "copy volume %s-vda.base.qcow2 to %s-vda.qcow2 in pool %s" % (lab.tag, name, lab.pool_name)}[mode]
    assert results[1]["actions"][0] == first
    saved = _domain.model_from_xml(lab.conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert (saved["memory"], saved["vcpus"]) == (512, 2)  # the template's memory, the task's vCPUs
    assert saved["disks"][0]["path"] == os.path.join(lab.dir, name + "-vda.qcow2")
    assert saved["interfaces"][0]["mac"] not in (None, "52:54:00:aa:bb:01")
    source = _domain.model_from_xml(lab.conn.lookupByName(lab.src).XMLDesc(0))
    assert saved["uuid"] != source["uuid"]


def test_two_vms_from_one_template_get_different_macs(lab):
    make(lab)
    for suffix in ("a", "b"):
        vm(lab.conn, name=lab.tag + suffix, template=lab.tag, template_pool=lab.pool_name, clone_mode="linked", state="stopped")
    macs = [_domain.model_from_xml(lab.conn.lookupByName(lab.tag + s).XMLDesc(0))["interfaces"][0]["mac"] for s in "ab"]
    assert macs[0] != macs[1]


def test_unknown_template(lab):
    with pytest.raises(NotFoundError) as info:
        vm(lab.conn, name=lab.tag + "-x", template="u-tpl-nope", template_pool=lab.pool_name, state="stopped")
    assert "template 'u-tpl-nope' does not exist in pool %r" % lab.pool_name in info.value.msg
    out = vm(lab.conn, check=True, name=lab.tag + "-x", template="u-tpl-nope", template_pool=lab.pool_name, state="stopped")
    assert out["changed"] and any("does not exist" in a for a in out["assumptions"])


# ------------------------------------------------------------------------ list, remove ---

def test_info_and_removal_guarded_by_linked_clones(lab):
    make(lab)
    clone = lab.tag + "-linked"
    vm(lab.conn, name=clone, template=lab.tag, template_pool=lab.pool_name, clone_mode="linked", state="stopped")
    ctx = Context(conn=lab.conn, params=dict(pool=lab.pool_name, name=None), uri="test:///default", run_command=run_argv)
    listed = gather_template_info(ctx)["templates"]
    assert [(t["name"], t["used_by"]) for t in listed] == [(lab.tag, [clone])]
    # a stray file named like a definition is skipped with a warning
    with open(os.path.join(lab.dir, "stray.template.xml"), "w") as handle:
        handle.write("<domain/>")
    ctx = Context(conn=lab.conn, params=dict(pool=lab.pool_name, name=None), uri="test:///default", run_command=run_argv)
    assert [t["name"] for t in gather_template_info(ctx)["templates"]] == [lab.tag]
    assert any("stray.template.xml" in w for w in ctx.warnings)

    with pytest.raises(ConflictError) as info:
        make(lab, state="absent")
    assert "VM %s" % clone in info.value.msg and info.value.details["used_by"]
    checked = make(lab, check=True, state="absent")  # check mode: an earlier task may remove the clone
    assert checked["changed"] and checked["module_warnings"] or checked.get("assumptions")
    base = os.path.join(lab.dir, lab.tag + "-vda.base.qcow2")
    forced = make(lab, state="absent", force=True)
    assert forced["actions"] == ["remove the definition of template %s (%s/%s.template.xml)" % (lab.tag, lab.dir, lab.tag)]
    assert any("is kept" in w for w in forced.get("warnings", []))
    assert (forced["template"], os.path.exists(base)) == (None, True)
    assert make(lab, state="absent")["changed"] is False


def test_absent_in_a_pool_that_is_gone_is_no_change(lab):
    assert make(lab, state="absent", pool="u-tpl-no-such-pool")["changed"] is False


def test_remove_four_runs(lab):
    make(lab)
    results = [make(lab, check=c, state="absent") for c in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False]
    base_name = lab.tag + "-vda.base.qcow2"
    assert results[1]["removed_volumes"] == [os.path.join(lab.dir, base_name)]
    assert base_name not in lab.pool.listVolumes()
    assert not os.path.exists(os.path.join(lab.dir, lab.tag + ".template.xml"))


def test_store_refuses_foreign_documents(tmp_path):
    path = tmp_path / "t.template.xml"
    for text, fragment in [("<domain/>", "not a template definition"),
                           ("<virtops-template version='1' name='t'/>", "holds no <domain>"),
                           ("<virtops-template version='1' name='other'><domain/></virtops-template>", "differ"),
                           ("<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>", "")]:
        path.write_text(text)
        with pytest.raises(InvalidInputError) as info:
            _store.read_document(str(path))
        assert fragment in info.value.msg
    assert _store.read_document(str(tmp_path / "none.template.xml")) is None
