# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The vm options tpm, filesystems, pinning, numa and hugepages (parameters -> model -> XML -> model,
libvirt's schema, compare, live pins, reboot_required) and host devices (node device facts, who uses
them, vm.hostdevs refusals).

Host devices run against a test driver loaded from a file (``test:///<path>``) that declares PCI and USB
node devices and a VM passing two of them through: test:///default has no PCI device.  The test driver
drops a node device's ``<driver>``, so driver and vfio-pci facts are checked on parsed XML.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import subprocess

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection, libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    ConflictError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import shares as _shares
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import tuning as _tuning
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.codec_write import apply_model, build_xml
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.compare import compare_model
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.model import model_from_xml
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.normalize import normalize, with_creation_defaults
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.remove import undefine_flags
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.vm import VmResource
from ansible_collections.virtops.libvirt.plugins.module_utils._host import nodedev as _nodedev
from ansible_collections.virtops.libvirt.plugins.modules.vm import ARGUMENT_SPEC

VIRT_XML_VALIDATE = "/usr/bin/virt-xml-validate"
PREFIX = "u-dev-"


# ------------------------------------------------------------------------------------ CPU sets ---

@pytest.mark.parametrize("text, cpus, canonical", [
    ("0", (0,), "0"),
    ("0-3", (0, 1, 2, 3), "0-3"),
    ("0-3,^2", (0, 1, 3), "0-1,3"),
    ("6,0-1, 3", (0, 1, 3, 6), "0-1,3,6"),
    ("1,0", (0, 1), "0-1"),
    ("0-7,^0,^7", (1, 2, 3, 4, 5, 6), "1-6"),
    (5, (5,), "5"),
])
def test_cpuset_parse_and_canonical_form(text, cpus, canonical):
    assert _tuning.parse_cpuset(text, "x") == cpus
    assert _tuning.canonical_cpuset(text, "x") == canonical


@pytest.mark.parametrize("text, message", [
    ("", "is not a CPU set"),
    ("a-b", "bad part 'a-b'"),
    ("3-1", "is empty or above"),
    ("0-1,^0-1", "an exclusion"),
    ("^1", "names no CPU"),
    ("0,,1", "bad part ''"),
    ("5000", "is empty or above 4095"),
])
def test_cpuset_refused(text, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        _tuning.parse_cpuset(text, "pinning.emulator")


def test_cpu_map_has_one_flag_per_host_cpu():
    assert _tuning.cpu_map("0-1,3", 4) == (True, True, False, True)


# ---------------------------------------------------------------------------------- parameters ---

@pytest.mark.parametrize("params, message", [
    (dict(tpm=dict(model="tpm-spapr")), "tpm.model: 'tpm-spapr' is not one of tpm-crb, tpm-tis, none"),
    (dict(filesystems=[dict(source="srv", target="t")]), "filesystems[0].source: 'srv' must be an absolute"),
    (dict(filesystems=[dict(source="/srv", target="bad tag")]), "filesystems[0].target: 'bad tag' must be a mount tag"),
    (dict(filesystems=[dict(source="/a", target="t"), dict(source="/b", target="t")]),
     "filesystems[1].target: tag 't' is also the tag of filesystems[0]"),
    (dict(pinning=dict(vcpus=[dict(vcpu=0, cpuset="0"), dict(vcpu=0, cpuset="1")])),
     "pinning.vcpus[1].vcpu: vCPU 0 is pinned by pinning.vcpus[0] already"),
    (dict(pinning=dict(vcpus=[dict(vcpu=-1, cpuset="0")])), "pinning.vcpus[0].vcpu: must be a vCPU number"),
    (dict(pinning=dict(emulator="x")), "pinning.emulator: 'x' is not a CPU set"),
    (dict(numa=[dict(cpus="0-1", memory="512"), dict(cpus="1", memory="512")]),
     "numa[1].cpus: vCPU 1 is in numa[0] already"),
    (dict(numa=[dict(cpus="0", memory="1.5")]), "numa[0].memory"),
    (dict(hugepages="2048"), "hugepages: '2048' needs a unit"),
    (dict(hugepages="huge"), "hugepages"),
    (dict(hostdevs=["pci_0000_01_00"]), "is not a PCI address such as 0000:01:00.0 (or a node device name"),
])
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        normalize(params)


def test_parameters_become_canonical_model_values():
    model = normalize(dict(tpm={}, filesystems=[dict(source="/srv/b/", target="b"), dict(source="/srv/a", target="a", readonly=True)],
                           pinning=dict(vcpus=[dict(vcpu=1, cpuset="3,2"), dict(vcpu=0, cpuset="0-3,^1")], emulator="1"),
                           numa=[dict(cpus="0", memory="1GiB"), dict(cpus="1", memory=512)], hugepages="2M",
                           hostdevs=["pci_0000_0a_1f_7", "01:00.0"]))
    assert model["tpm"] == dict(model="tpm-crb", version="2.0")
    assert model["filesystems"] == [dict(source="/srv/a", target="a", readonly=True), dict(source="/srv/b", target="b", readonly=False)]
    assert model["pinning"] == dict(vcpus=[dict(vcpu=0, cpuset="0,2-3"), dict(vcpu=1, cpuset="2-3")], emulator="1")
    assert model["numa"] == [dict(cpus="0", memory=1024), dict(cpus="1", memory=512)]
    assert model["hugepages"] == "2MiB"
    assert model["hostdevs"] == ["0000:0a:1f.7", "0000:01:00.0"]
    assert normalize(dict(tpm=dict(model="none"), hugepages="None", pinning=dict(emulator="")))["tpm"] == dict(model="none")


@pytest.mark.parametrize("params, current, message", [
    (dict(vcpus=2, numa=[dict(cpus="0", memory="512")]), None, "numa: the cells hold vCPUs 0, but the VM has vCPUs 0-1"),
    (dict(vcpus=2, max_memory="2048", numa=[dict(cpus="0-1", memory="1024")]), None,
     "numa: the cells hold 1024 MiB, but max_memory is 2048 MiB"),
    (dict(memory="2048", numa=[dict(cpus="0", memory="1024")]), None, "numa: the cells hold 1024 MiB, less than memory (2048 MiB)"),
    (dict(numa=[dict(cpus="0-1", memory="1024")]), dict(max_vcpus=4, memory=1024), "the VM has vCPUs 0-3"),
])
def test_numa_cells_must_cover_the_vcpus_and_memory(params, current, message):
    model = normalize(params)
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        _tuning.check_numa(model, current)


def test_numa_sets_the_memory_to_the_sum_of_the_cells():
    model = normalize(dict(vcpus=2, numa=[dict(cpus="0", memory="512"), dict(cpus="1", memory="512")]))
    _tuning.check_numa(model, None)
    assert (model["max_memory"], model["memory"]) == (1024, 1024)
    model = normalize(dict(numa=[dict(cpus="0-1", memory="1024")]))
    _tuning.check_numa(model, dict(max_vcpus=2, memory=512, max_memory=4096))
    assert (model["max_memory"], model["memory"]) == (1024, None)  # the balloon stays below


@pytest.mark.parametrize("params, current, host_cpus, message", [
    (dict(vcpus=2, pinning=dict(vcpus=[dict(vcpu=2, cpuset="0")])), None, 8, "pinning.vcpus[0].vcpu: the VM has vCPUs 0-1, not 2"),
    (dict(pinning=dict(vcpus=[dict(vcpu=0, cpuset="6-9")])), dict(max_vcpus=1), 8,
     "pinning.vcpus[0].cpuset: the host has CPUs 0-7; 8-9 is not one of them"),
    (dict(pinning=dict(emulator="2-3")), dict(max_vcpus=1), 2, "pinning.emulator: the host has CPUs 0-1; 2-3 is not"),
])
def test_pins_must_name_vcpus_and_host_cpus_that_exist(params, current, host_cpus, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        _tuning.check_pins(normalize(params), current, host_cpus)


# ------------------------------------------------------------------------------ XML round trip ---

def new_model(**params):
    model = normalize(params)
    _tuning.check_numa(model, None)
    return with_creation_defaults(model)


EVERYTHING = dict(
    vcpus=4, memory="2048", tpm=dict(model="tpm-crb"),
    filesystems=[dict(source="/srv/share", target="share"), dict(source="/srv/ro", target="ro", readonly=True)],
    pinning=dict(vcpus=[dict(vcpu=0, cpuset="0-1"), dict(vcpu=3, cpuset="2-7,^5")], emulator="0"),
    numa=[dict(cpus="0-1", memory="1GiB"), dict(cpus="2-3", memory="1GiB")], hugepages="2MiB",
)

MODELS = [
    ("tpm-crb", dict(tpm=dict(model="tpm-crb")), {"devices/tpm[@model='tpm-crb']/backend[@type='emulator'][@version='2.0']": 1}),
    ("tpm-tis", dict(tpm=dict(model="tpm-tis")), {"devices/tpm[@model='tpm-tis']": 1}),
    ("no-tpm", dict(tpm=dict(model="none")), {"devices/tpm": 0}),
    ("virtiofs", dict(filesystems=[dict(source="/var/tmp/share", target="hostshare")]),
     {"devices/filesystem[@type='mount'][@accessmode='passthrough']/driver[@type='virtiofs']": 1,
      "devices/filesystem/source[@dir='/var/tmp/share']": 1, "devices/filesystem/target[@dir='hostshare']": 1,
      "memoryBacking/source[@type='memfd']": 1, "memoryBacking/access[@mode='shared']": 1}),
    ("pinning", dict(vcpus=2, pinning=dict(vcpus=[dict(vcpu=0, cpuset="0"), dict(vcpu=1, cpuset="1")], emulator="0-1")),
     {"cputune/vcpupin": 2, "cputune/vcpupin[@vcpu='1'][@cpuset='1']": 1, "cputune/emulatorpin[@cpuset='0-1']": 1}),
    ("numa", dict(vcpus=2, numa=[dict(cpus="0", memory="512"), dict(cpus="1", memory="512")]),
     {"cpu/numa/cell": 2, "cpu/numa/cell[@id='1'][@cpus='1'][@memory='524288'][@unit='KiB']": 1}),
    ("numa-host-passthrough", dict(vcpus=2, cpu=dict(mode="host-passthrough"), numa=[dict(cpus="0-1", memory="1024")]),
     {"cpu[@mode='host-passthrough']/numa/cell": 1}),
    ("hugepages-2m", dict(hugepages="2MiB"), {"memoryBacking/hugepages/page[@size='2048'][@unit='KiB']": 1}),
    ("hugepages-default", dict(hugepages="default"), {"memoryBacking/hugepages": 1, "memoryBacking/hugepages/page": 0}),
    ("hugepages-and-virtiofs", dict(hugepages="1GiB", memory="2048", filesystems=[dict(source="/srv", target="srv")]),
     {"memoryBacking/hugepages/page[@size='1048576']": 1, "memoryBacking/access[@mode='shared']": 1}),
    ("everything", EVERYTHING, {"devices/tpm": 1, "devices/filesystem": 2, "cputune/vcpupin": 2, "cpu/numa/cell": 2,
                                "memoryBacking/hugepages": 1}),
]


def _count(root, path):
    return len(root.findall(path))


def _rows(table):
    return [pytest.param(*row[1:], id=row[0]) for row in table]


@pytest.mark.parametrize("params, paths", _rows(MODELS))
def test_build_xml_and_read_it_back(params, paths):
    model = new_model(**params)
    root = build_xml("u-dev-rt", model)
    assert dict((path, _count(root, path)) for path in paths) == paths
    back = model_from_xml(_xml.to_string(root))
    for key in ("tpm", "filesystems", "pinning", "numa", "hugepages"):
        if params.get(key) is not None:
            assert compare_model(back, dict((k, model[k]) for k in (key,))).paths == [], key
    assert not compare_model(back, dict((k, v) for k, v in model.items() if k not in ("disks", "cdroms", "interfaces")))


@pytest.fixture
def assert_schema_valid(tmp_path):
    if not os.access(VIRT_XML_VALIDATE, os.X_OK):
        pytest.skip("%s (libvirt's schema checker, from libvirt-clients) is not installed" % VIRT_XML_VALIDATE)

    def check(root, valid=True):
        path = tmp_path / "domain.xml"
        path.write_text(root if isinstance(root, str) else _xml.to_string(root))
        proc = subprocess.run([VIRT_XML_VALIDATE, str(path), "domain"], capture_output=True, text=True, check=False)
        assert (proc.returncode == 0) == valid, proc.stdout + proc.stderr + path.read_text()

    return check


@pytest.mark.parametrize("params", [pytest.param(row[1], id=row[0]) for row in MODELS])
def test_built_xml_passes_libvirt_schema(assert_schema_valid, params):
    assert_schema_valid(build_xml("u-dev-schema", new_model(**params)))


def test_schema_oracle_refuses_a_bad_tpm(assert_schema_valid):
    root = build_xml("u-dev-schema", new_model(tpm=dict(model="tpm-crb")))
    root.find("devices/tpm/backend").set("type", "nonsense")
    assert_schema_valid(root, valid=False)


@pytest.mark.parametrize("params", [pytest.param(row[1], id=row[0]) for row in MODELS])
def test_test_driver_keeps_what_was_defined(test_conn, params):
    model = new_model(**params)
    root = build_xml("u-dev-define", model)
    root.set("type", "test")
    dom = test_conn.defineXML(_xml.to_string(root))
    try:
        back = model_from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    finally:
        dom.undefine()
    wanted = dict((k, model[k]) for k in ("tpm", "filesystems", "pinning", "numa", "hugepages") if params.get(k) is not None)
    assert compare_model(back, wanted).paths == []


# ------------------------------------------------------------------------- changes of a definition ---

BASE = new_model(**EVERYTHING)


@pytest.mark.parametrize("change, gone, paths", [
    (dict(tpm=dict(model="none")), ["devices/tpm"], ["tpm.model"]),
    (dict(tpm=dict(model="tpm-tis")), [], ["tpm.model"]),
    (dict(filesystems=[]), ["devices/filesystem"], ["filesystems"]),
    (dict(filesystems=[dict(source="/srv/other", target="share")]), [], ["filesystems"]),
    (dict(pinning=dict(vcpus=[], emulator="")), ["cputune"], ["pinning.vcpus", "pinning.emulator"]),
    (dict(pinning=dict(vcpus=[dict(vcpu=3, cpuset="2-4,6-7"), dict(vcpu=0, cpuset="1,0")])), [], []),
    (dict(pinning=dict(emulator="1")), [], ["pinning.emulator"]),
    (dict(numa=[]), ["cpu/numa", "cpu"], ["numa"]),
    (dict(hugepages="none"), ["memoryBacking/hugepages"], ["hugepages"]),
    (dict(hugepages="2M"), [], []),
])
def test_changes_are_written_compared_and_only_then(change, gone, paths):
    """The same value spelled another way is no change; a change is written, compared, and gone where removed."""
    root = build_xml("u-dev-change", BASE)
    current = model_from_xml(_xml.to_string(root))
    desired = normalize(change)
    assert compare_model(current, desired).paths == paths
    updated = apply_model(_xml.parse(_xml.to_string(root)), desired)
    for path in gone:
        assert updated.find(path) is None, path
    assert compare_model(model_from_xml(_xml.to_string(updated)), desired).paths == []
    assert updated.find("uuid") is None or updated.findtext("uuid") == root.findtext("uuid")


def test_changes_keep_what_libvirt_added():
    root = build_xml("u-dev-keep", BASE)
    cputune = root.find("cputune")
    _xml.sub(cputune, "shares", "2048")
    cputune.insert(0, cputune[-1])
    updated = apply_model(root, normalize(dict(pinning=dict(vcpus=[], emulator=""))))
    assert updated.findtext("cputune/shares") == "2048" and updated.find("cputune/vcpupin") is None


def test_removal_undefines_with_the_tpm_state(test_conn, vm):
    assert undefine_flags() & libvirt.VIR_DOMAIN_UNDEFINE_TPM
    run(test_conn, name=vm, state="stopped", memory="64", tpm={})
    plan = run(test_conn, check=True, name=vm, state="absent")
    assert plan["actions"] == ["undefine VM %s and remove its TPM state" % vm]
    run(test_conn, name=vm, state="stopped", tpm=dict(model="none"))
    assert run(test_conn, check=True, name=vm, state="absent")["actions"] == ["undefine VM %s" % vm]


# --------------------------------------------------------------------------- host support (swtpm) ---

DOMCAPS = """<domainCapabilities><devices>
  <filesystem supported='yes'><enum name='driverType'><value>path</value>%s</enum></filesystem>
  <tpm supported='%s'><enum name='model'><value>tpm-tis</value><value>tpm-crb</value></enum>
    <enum name='backendModel'><value>passthrough</value>%s</enum></tpm>
</devices></domainCapabilities>"""


@pytest.mark.parametrize("virtiofs, tpm_supported, emulator, params, error, message", [
    (True, "yes", True, dict(tpm={}, filesystems=[dict(source="/s", target="s")]), None, None),
    (True, "yes", False, dict(tpm={}), MissingDependencyError, "tpm: the hypervisor cannot emulate a TPM: libvirt finds no swtpm"),
    (True, "no", False, dict(tpm={}), MissingDependencyError, "install the swtpm and swtpm-tools packages"),
    (True, "yes", False, dict(tpm=dict(model="none")), None, None),
    (False, "yes", True, dict(filesystems=[dict(source="/s", target="s")]), MissingDependencyError,
     "filesystems: the hypervisor offers no virtiofs"),
    (False, "yes", True, dict(filesystems=[]), None, None),
])
def test_host_support_from_domain_capabilities(virtiofs, tpm_supported, emulator, params, error, message):
    caps = _xml.parse(DOMCAPS % ("<value>virtiofs</value>" if virtiofs else "", tpm_supported,
                                 "<value>emulator</value>" if emulator else ""))
    model = normalize(params)
    if error is None:
        _shares.check_host_support(caps, model, None)
    else:
        with pytest.raises(error, match=re.escape(message)):
            _shares.check_host_support(caps, model, None)


@pytest.mark.parametrize("version, refused", [(9000000, True), (10010000, True), (11000000, False), (None, False)])
def test_read_only_shares_need_libvirt_11(version, refused):
    model = normalize(dict(filesystems=[dict(source="/a", target="a"), dict(source="/b", target="b", readonly=True)]))
    if refused:
        with pytest.raises(InvalidInputError, match=re.escape("filesystems[1].readonly: libvirt %d.%d on the hypervisor refuses"
                                                              % (version // 1000000, version // 1000 % 1000))):
            _shares.check_host_support(None, model, None, version)
    else:
        _shares.check_host_support(None, model, None, version)


def test_a_vm_that_has_its_tpm_is_not_asked_for_swtpm_again():
    caps = _xml.parse(DOMCAPS % ("", "no", ""))
    _shares.check_host_support(caps, normalize(dict(tpm={})), dict(tpm=dict(model="tpm-crb", version="2.0")))


# ----------------------------------------------------------------------------- the vm resource ---

def module_params(**given):
    result = ArgumentSpecValidator(ARGUMENT_SPEC).validate(given)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def run(conn, check=False, **given):
    ctx = Context(conn=conn, params=module_params(**given), check_mode=check, diff=True)
    result = reconcile(VmResource(ctx), check_mode=check, want_diff=True)
    result["module_warnings"] = ctx.warnings
    return result


def four(conn, **given):
    results = [run(conn, check=check, **given) for check in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False], [r["actions"] for r in results]
    return results


@pytest.fixture
def vm(request, test_conn):
    name = PREFIX + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60]
    yield name
    for dom in test_conn.listAllDomains(0):
        if dom.name().startswith(name):
            if dom.isActive():
                dom.destroy()
            dom.undefine()


def test_vm_options_check_apply_check_apply(test_conn, vm):
    # (no read-only share: the test driver is libvirt 9.0, which refuses them)
    given = dict(EVERYTHING)
    given["filesystems"] = [dict(source="/srv/share", target="share"), dict(source="/srv/ro", target="ro")]
    results = four(test_conn, name=vm, state="stopped", **given)
    got = results[1]["vm"]
    assert got["tpm"] == dict(model="tpm-crb", version="2.0") and got["hugepages"] == "2MiB"
    assert got["pinning"] == dict(vcpus=[dict(vcpu=0, cpuset="0-1"), dict(vcpu=3, cpuset="2-4,6-7")], emulator="0")
    assert got["numa"] == [dict(cpus="0-1", memory=1024), dict(cpus="2-3", memory=1024)] and got["max_memory"] == 2048
    assert [f["target"] for f in got["filesystems"]] == ["ro", "share"]
    changed = four(test_conn, name=vm, state="stopped", tpm=dict(model="none"), filesystems=[], hugepages="none",
                   pinning=dict(vcpus=[dict(vcpu=1, cpuset="3")]))
    diff = changed[0]["diff"]
    assert diff["before"]["tpm"]["model"] == "tpm-crb" and diff["after"]["tpm"]["model"] == "none"
    assert diff["before"]["hugepages"] == "2MiB" and diff["after"]["hugepages"] == "none"
    assert diff["after"]["pinning"]["vcpus"] == [dict(vcpu=1, cpuset="3")]
    assert changed[1]["actions"] == ["redefine VM %s (filesystems, hugepages, pinning, tpm)" % vm]


def test_running_vm_takes_pins_live_and_waits_for_the_rest(test_conn, vm):
    run(test_conn, name=vm, state="running", vcpus=2)
    result = run(test_conn, check=True, name=vm, state="running",
                 pinning=dict(vcpus=[dict(vcpu=0, cpuset="1-2")], emulator="3"))
    assert result["actions"] == ["redefine VM %s (pinning)" % vm,
                                 "pin vCPU 0 of running VM %s to host CPUs 1-2" % vm,
                                 "pin the emulator threads of running VM %s to host CPUs 3" % vm]
    assert result["reboot_required"] is False
    result = run(test_conn, check=True, name=vm, state="running", tpm={}, numa=[dict(cpus="0-1", memory="1024")])
    assert result["reboot_required"] is True
    assert sorted(result["pending_changes"]) == ["numa", "tpm.model", "tpm.version"]


@pytest.mark.parametrize("params, message", [
    (dict(vcpus=1, pinning=dict(vcpus=[dict(vcpu=0, cpuset="6-9")])), "pinning.vcpus[0].cpuset: the host has CPUs 0-7; 8-9"),
    (dict(hugepages="64KiB"), "hugepages: the host has pages of 4KiB, 8KiB, 2MiB, 1GiB, not 64KiB"),
    (dict(hostdevs=["0000:09:00.0"]), "hostdevs[0]: the host has no PCI device 0000:09:00.0 (pci_0000_09_00_0)"),
])
def test_vm_refuses_before_anything_changes(test_conn, vm, params, message):
    for check in (True, False):
        with pytest.raises(InvalidInputError if "hostdevs" not in params else NotFoundError, match=re.escape(message)):
            run(test_conn, check=check, name=vm, state="stopped", **params)
        assert vm not in [d.name() for d in test_conn.listAllDomains(0)]


# ------------------------------------------------------------------------------- host devices ---

NODE = """<node>
  <cpu><mhz>2000</mhz><model>i686</model><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads></cpu>
  <memory>4194304</memory>
  <device><name>computer</name><capability type='system'><hardware><vendor>Libvirt</vendor>
    <uuid>11111111-2222-3333-4444-555555555555</uuid></hardware></capability></device>
  %(devices)s
  <domain type='test'>
    <name>gpu-user</name><memory>65536</memory><os><type>hvm</type></os>
    <devices>
      <hostdev mode='subsystem' type='pci' managed='yes'>
        <source><address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source>
      </hostdev>
      <hostdev mode='subsystem' type='usb'><source><vendor id='0x1d6b'/><product id='0x0002'/></source></hostdev>
    </devices>
  </domain>
</node>"""

GPU = """<device><name>pci_0000_01_00_0</name><parent>computer</parent><driver><name>vfio-pci</name></driver>
  <capability type='pci'><class>0x030000</class><domain>0</domain><bus>1</bus><slot>0</slot><function>0</function>
    <product id='0x1eb8'>TU104GL [Tesla T4]</product><vendor id='0x10de'>NVIDIA Corporation</vendor>
    <capability type='mdev_types'><type id='nvidia-222'><name>GRID T4-1B</name><deviceAPI>vfio-pci</deviceAPI>
      <availableInstances>16</availableInstances></type></capability>
    <iommuGroup number='12'><address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></iommuGroup>
  </capability></device>"""
PF = """<device><name>pci_0000_02_00_0</name><parent>computer</parent><driver><name>ixgbe</name></driver>
  <capability type='pci'><class>0x020000</class><domain>0</domain><bus>2</bus><slot>0</slot><function>0</function>
    <product id='0x10fb'>82599ES 10-Gigabit</product><vendor id='0x8086'>Intel Corporation</vendor>
    <capability type='virt_functions' maxCount='63'><address domain='0x0000' bus='0x02' slot='0x10' function='0x0'/></capability>
    <iommuGroup number='13'><address domain='0x0000' bus='0x02' slot='0x00' function='0x0'/></iommuGroup>
  </capability></device>"""
VF = """<device><name>pci_0000_02_10_0</name><parent>pci_0000_02_00_0</parent>
  <capability type='pci'><class>0x020000</class><domain>0</domain><bus>2</bus><slot>16</slot><function>0</function>
    <product id='0x10ed'>82599 Virtual Function</product><vendor id='0x8086'>Intel Corporation</vendor>
    <capability type='phys_function'><address domain='0x0000' bus='0x02' slot='0x00' function='0x0'/></capability>
    <iommuGroup number='40'><address domain='0x0000' bus='0x02' slot='0x10' function='0x0'/></iommuGroup>
  </capability></device>"""
USB = """<device><name>usb_1_5</name><parent>computer</parent><capability type='usb_device'><bus>1</bus><device>5</device>
  <product id='0x0002'>2.0 root hub</product><vendor id='0x1d6b'>Linux Foundation</vendor></capability></device>
<device><name>usb_2_3</name><parent>computer</parent><capability type='usb_device'><bus>2</bus><device>3</device>
  <product id='0x5678'>Key</product><vendor id='0x1234'>Acme</vendor></capability></device>"""


@pytest.fixture
def device_conn(tmp_path):
    path = tmp_path / "node.xml"
    path.write_text(NODE % dict(devices=GPU + PF + VF + USB))
    connection = Connection("test://%s" % path)
    yield connection.open()
    connection.close()


def test_pci_facts_from_node_device_xml():
    gpu = _nodedev.pci_facts(_xml.parse(GPU))
    assert gpu == dict(
        name="pci_0000_01_00_0", address="0000:01:00.0", parent="computer",
        vendor=dict(id="0x10de", name="NVIDIA Corporation"), product=dict(id="0x1eb8", name="TU104GL [Tesla T4]"),
        class_code="0x030000", class_name="display", gpu=True, driver="vfio-pci", vfio=True, iommu_group=12,
        iommu_group_devices=["0000:01:00.0"], physical_function=None, virtual_functions=[], max_virtual_functions=None,
        mdev_types=[dict(id="nvidia-222", name="GRID T4-1B", device_api="vfio-pci", available_instances=16)])
    pf = _nodedev.pci_facts(_xml.parse(PF))
    assert (pf["driver"], pf["vfio"], pf["gpu"], pf["class_name"]) == ("ixgbe", False, False, "network")
    assert (pf["virtual_functions"], pf["max_virtual_functions"]) == (["0000:02:10.0"], 63)
    assert _nodedev.pci_facts(_xml.parse(VF))["physical_function"] == "0000:02:00.0"


def test_host_devices_name_their_users(device_conn):
    found = _nodedev.host_devices(Context(conn=device_conn, params={}))
    by_name = dict((d["name"], d) for d in found["pci"] + found["usb"])
    assert sorted(by_name) == sorted(d.name() for d in device_conn.listAllDevices(2 | 4))
    assert (by_name["pci_0000_01_00_0"]["used_by"], by_name["pci_0000_01_00_0"]["free"]) == (["gpu-user"], False)
    assert (by_name["pci_0000_02_10_0"]["used_by"], by_name["pci_0000_02_10_0"]["free"]) == ([], True)
    assert (by_name["usb_1_5"]["used_by"], by_name["usb_2_3"]["free"]) == (["gpu-user"], True)
    assert [d["name"] for d in found["gpus"]] == ["pci_0000_01_00_0"]
    assert [d["name"] for d in found["virtual_functions"]] == ["pci_0000_02_10_0"]
    assert found["mdev_types"] == [dict(id="nvidia-222", name="GRID T4-1B", device_api="vfio-pci", available_instances=16,
                                        parent="pci_0000_01_00_0", parent_address="0000:01:00.0")]


def test_vm_hostdevs_take_the_names_host_devices_returns(device_conn):
    name = PREFIX + "vf-user"
    try:
        results = four(device_conn, name=name, state="stopped", memory="64", hostdevs=["pci_0000_02_10_0"])
        assert results[1]["vm"]["hostdevs"] == ["0000:02:10.0"]
        assert run(device_conn, check=True, name=name, state="stopped", hostdevs=["0000:02:10.0"])["changed"] is False
        found = _nodedev.host_devices(Context(conn=device_conn, params={}))
        assert [d["used_by"] for d in found["pci"] if d["name"] == "pci_0000_02_10_0"] == [[name]]
    finally:
        device_conn.lookupByName(name).undefine()


def test_vm_refuses_a_device_another_vm_passes_through(device_conn):
    name = PREFIX + "thief"
    with pytest.raises(ConflictError, match=re.escape("hostdevs[1]: PCI device 0000:01:00.0 is passed through to VM gpu-user "
                                                      "(running: hostdev) already")):
        run(device_conn, name=name, state="stopped", memory="64", hostdevs=["pci_0000_02_10_0", "pci_0000_01_00_0"])
    assert name not in [d.name() for d in device_conn.listAllDomains(0)]
    check = run(device_conn, check=True, name=name, state="stopped", memory="64", hostdevs=["0000:01:00.0"])
    assert any("passed through to VM gpu-user" in w for w in check["module_warnings"]), check
