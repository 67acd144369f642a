# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Spare PCIe root ports of a new q35 VM (``_domain/pcie.py``).

The test driver does not place devices on PCI buses as QEMU's driver does, so the definitions here
are what libvirt 9.0's QEMU driver saved for a q35 VM with a virtio disk, a NIC and a balloon (its USB
controller added by libvirt): five root ports, four of them used.  The lab target ``vm_hotplug`` plugs
two PCI devices into a VM the module created, against QEMU.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import subprocess

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import pcie as _pcie
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.vm import VmResource
from ansible_collections.virtops.libvirt.plugins.modules.vm import ARGUMENT_SPEC

VIRT_XML_VALIDATE = "/usr/bin/virt-xml-validate"
PREFIX = "u-pcie-"


def _port(index):
    slot, function = divmod(index - 1, 8)
    return ("<controller type='pci' index='%d' model='pcie-root-port'><model name='pcie-root-port'/>"
            "<target chassis='%d' port='0x%x'/><address type='pci' domain='0x0000' bus='0x00' slot='0x%x' function='0x%x'/>"
            "</controller>" % (index, index, 0x10 + index - 1, slot + 1, function))


def saved_by_libvirt(name, ports=5):
    """A q35 definition as libvirt's QEMU driver saves it: ``ports`` root ports, buses 1-4 used."""
    return """<domain type='qemu'><name>%s</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
<devices>
<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/var/tmp/x.img'/><target dev='vda' bus='virtio'/>
<address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/></disk>
<controller type='usb' index='0' model='qemu-xhci'><address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/></controller>
<controller type='pci' index='0' model='pcie-root'/>
%s
<interface type='network'><mac address='52:54:00:aa:bb:01'/><source network='default'/><model type='virtio'/>
<address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></interface>
<memballoon model='virtio'><address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/></memballoon>
</devices></domain>""" % (name, "\n".join(_port(i) for i in range(1, ports + 1)))


@pytest.fixture
def name(request, test_conn, undefine_for_test_driver):
    vm = PREFIX + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:80]
    yield vm
    for dom in test_conn.listAllDomains(0):
        if dom.name().startswith(vm):
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(0)


def saved(conn, vm):
    return _xml.parse(conn.lookupByName(vm).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def validate(tmp_path, text):
    if not os.access(VIRT_XML_VALIDATE, os.X_OK):
        pytest.skip("%s is not installed" % VIRT_XML_VALIDATE)
    path = tmp_path / "domain.xml"
    path.write_text(text)
    proc = subprocess.run([VIRT_XML_VALIDATE, str(path), "domain"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr + text


@pytest.mark.parametrize("ports, spare, defines, free", [
    (5, 4, 2, 4),  # libvirt's one spare: three more ports, a second define
    (8, 4, 1, 4),  # enough already: defined once, unchanged
    (9, 4, 1, 5),
    (5, 0, 1, 1),  # 0: as libvirt makes it
    (4, 2, 2, 2),  # no spare at all (ports given for the devices only)
])
def test_a_new_q35_vm_gets_its_spare_ports(test_conn, name, tmp_path, ports, spare, defines, free):
    calls = []

    def define(text):
        calls.append(text)
        return test_conn.defineXML(text)

    _pcie.define_with_spare_ports(define, saved_by_libvirt(name, ports), spare)
    root = saved(test_conn, name)
    assert len(calls) == defines
    assert _pcie.pci_ports(root) == free
    assert len(root.findall("devices/controller[@model='pcie-root-port']")) == 4 + free
    # the second definition is libvirt's first one plus bare root ports: same UUID, devices kept where they were
    for text in calls:
        validate(tmp_path, text)
    if defines == 2:
        first, second = _xml.parse(calls[0]), _xml.parse(calls[1])
        assert _xml.find_text(second, "uuid") == test_conn.lookupByName(name).UUIDString()
        added = [c for c in second.findall("devices/controller[@model='pcie-root-port']") if c.get("index") is None]
        assert len(added) == spare - (ports - 4)
        assert [a.get("bus") for a in second.findall("devices/*/address[@type='pci']")][:4] == \
            [a.get("bus") for a in first.findall("devices/*/address[@type='pci']")][:4]


def test_a_vm_without_pcie_root_is_defined_once(test_conn, name):
    calls = []
    text = "<domain type='qemu'><name>%s</name><memory>65536</memory><os><type>hvm</type></os></domain>" % name
    _pcie.define_with_spare_ports(lambda t: calls.append(t) or test_conn.defineXML(t), text, 4)
    assert len(calls) == 1
    assert _pcie.pci_ports(saved(test_conn, name)) == _pcie.PCI_ROOT_PORTS


def run(conn, check=False, **given):
    result = ArgumentSpecValidator(ARGUMENT_SPEC).validate(given)
    assert not result.error_messages, result.error_messages
    ctx = Context(conn=conn, params=result.validated_parameters, check_mode=check, diff=True)
    return reconcile(VmResource(ctx), check_mode=check, want_diff=True)


def test_an_existing_vm_with_one_free_port_is_not_changed(test_conn, name):
    """A VM an older version defined (libvirt's single spare port) stays as it is: ports are not compared."""
    run(test_conn, name=name, state="stopped", memory=64, interfaces=[dict(network="default")])
    mac = _xml.find_attr(saved(test_conn, name), "devices/interface/mac", "address")
    older = _xml.parse(saved_by_libvirt(name, ports=2))
    older.insert(1, _xml.element("uuid", test_conn.lookupByName(name).UUIDString()))
    for node in older.findall("devices/*"):
        if node.tag in ("disk", "memballoon", "controller") and node.get("type") != "pci":
            node.getparent().remove(node)
    older.find("devices/interface/mac").set("address", mac)
    older.find("devices/interface/address").set("bus", "0x01")
    test_conn.defineXML(_xml.to_string(older))
    assert _pcie.pci_ports(saved(test_conn, name)) == 1
    results = [run(test_conn, check=check, name=name, state="stopped", memory=64, interfaces=[dict(network="default")])
               for check in (True, False)]
    assert [(r["changed"], r["actions"]) for r in results] == [(False, [])] * 2
    assert _pcie.pci_ports(saved(test_conn, name)) == 1


def test_the_option_is_checked(test_conn, name):
    with pytest.raises(InvalidInputError) as info:
        run(test_conn, name=name, state="stopped", memory=64, pcie_spare_ports=40)
    assert info.value.msg == "pcie_spare_ports must be between 0 and 32, got 40"
    assert name not in test_conn.listDefinedDomains()


def test_a_new_vm_is_defined_through_the_spare_port_step(test_conn, name, monkeypatch):
    """The vm module's create step is :func:`define_with_spare_ports` with the option's value."""
    seen = []
    real = _pcie.define_with_spare_ports
    monkeypatch.setattr(_pcie, "define_with_spare_ports", lambda define, text, spare: seen.append(spare) or real(define, text, spare))
    run(test_conn, name=name, state="stopped", memory=64)
    run(test_conn, name=name + "-b", state="stopped", memory=64, pcie_spare_ports=7)
    run(test_conn, name=name + "-b", state="stopped", memory=128, pcie_spare_ports=7)  # an update: no define step
    assert seen == [_pcie.DEFAULT_SPARE, 7]
