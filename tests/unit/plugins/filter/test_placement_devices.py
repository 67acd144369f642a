# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The placement filter's device requirement (``requires: {pci_class, count}``) against the hypervisors'
``devices`` (host_device_info results, with device entries as :func:`_host.nodedev.pci_facts` makes them)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.virtops.libvirt.plugins.filter import placement as filter_module
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._host.nodedev import pci_facts

GIB = 1024 ** 3
placement = filter_module.FilterModule().filters()["placement"]

PCI = """<device><name>pci_0000_%(bus)02x_00_0</name><parent>computer</parent>
  <capability type='pci'><class>%(cls)s</class><domain>0</domain><bus>%(bus)d</bus><slot>0</slot><function>0</function>
    <product id='0x0001'>P</product><vendor id='0x10de'>V</vendor></capability></device>"""


def device(bus, cls="0x030000", used_by=()):
    """A PCI device of host_device_info's ``pci_devices``."""
    facts = pci_facts(_xml.parse(PCI % dict(bus=bus, cls=cls)))
    facts.update(used_by=list(used_by), free=not used_by)
    return facts


def host(memory_gib=16):
    return dict(cpu=dict(arch="x86_64", count=8), guest_arches={"x86_64": ["kvm"]},
                memory=dict(total=memory_gib * GIB, free=0, available=memory_gib * GIB), pools=[])


def entry(devices, memory_gib=16):
    return dict(host=host(memory_gib), vms=[], devices=devices)


def where(placed):
    return dict((g["name"], g["hypervisor"]) for g in placed)


def test_a_guest_that_needs_a_gpu_goes_where_a_free_one_is():
    cap = dict(big=entry([device(1, cls="0x020000")], memory_gib=64), gpu=entry([device(1)]))
    placed = placement([dict(name="render", requires=dict(pci_class="gpu")), dict(name="web")], cap)
    assert where(placed) == dict(render="gpu", web="big")
    assert placed[0]["requires"] == dict(pci_class="gpu")  # the input comes back unchanged


def test_each_device_goes_to_one_guest_of_the_run():
    cap = dict(a=entry([device(1)], memory_gib=64), b=entry([device(1)]))
    guests = [dict(name="r1", requires=dict(pci_class="gpu")), dict(name="r2", requires=dict(pci_class="gpu"))]
    assert sorted(where(placement(guests, cap)).values()) == ["a", "b"]
    with pytest.raises(AnsibleFilterError, match="devices: needs 1 free gpu, 0 free"):
        placement(guests + [dict(name="r3", requires=dict(pci_class="gpu"))], cap)


def test_a_device_a_vm_uses_does_not_count_and_the_table_says_why():
    cap = dict(a=entry([device(1, used_by=["old"])]), b=dict(host=host(), vms=[]))
    with pytest.raises(AnsibleFilterError) as info:
        placement([dict(name="r", requires=dict(pci_class="gpu"))], cap)
    text = str(info.value)
    assert "no hypervisor can take guest 'r' (1024 MiB, 1 vCPU, 1 gpu device(s))" in text
    assert "devices: needs 1 free gpu, 0 free" in text
    assert "devices unknown (give its host_device_info result as devices)" in text


def test_a_class_name_and_a_count_and_the_registered_result():
    accelerators = [device(1, cls="0x120000"), device(2, cls="0x120000"), device(3)]
    cap = dict(one=entry([accelerators[0]], memory_gib=64), two=entry(dict(changed=False, pci_devices=accelerators)))
    placed = placement([dict(name="ml", requires=dict(pci_class="accelerator", count=2))], cap)
    assert where(placed) == dict(ml="two")


def test_guests_without_requirements_need_no_devices():
    assert where(placement([dict(name="web")], dict(a=dict(host=host(), vms=[])))) == dict(web="a")


@pytest.mark.parametrize("requires, message", [
    ("gpu", "requires must be a dictionary with pci_class"),
    (dict(pci_class="gpu", count=0), "requires.count must be a whole number of at least 1, got 0"),
    (dict(pci_class="gpu", model="t4"), "requires must be a dictionary with pci_class"),
    (dict(count=1), "requires must be a dictionary with pci_class"),
])
def test_bad_requirements_are_refused(requires, message):
    with pytest.raises(AnsibleFilterError, match=message):
        placement([dict(name="r", requires=requires)], dict(a=entry([device(1)])))


def test_the_guests_role_filters_carry_requires_and_devices_to_placement():
    """guests_normalize -> guests_placement_input, guests_capacity (device_info_var) -> placement, as the role
    chains them: the VM that requires a GPU goes to the hypervisor whose host_device_info lists a free one;
    a hypervisor whose device task was skipped has no devices."""
    from ansible_collections.virtops.libvirt.plugins.filter import guests_capacity, guests_normalize, guests_placement_input

    normalize = guests_normalize.FilterModule().filters()["guests_normalize"]
    to_input = guests_placement_input.FilterModule().filters()["guests_placement_input"]
    to_capacity = guests_capacity.FilterModule().filters()["guests_capacity"]
    hostvars = dict(
        big=dict(hi=dict(host=host(64)), vi=dict(vms=[]), di=dict(skipped=True)),
        gpu=dict(hi=dict(host=host(16)), vi=dict(vms=[]), di=dict(pci_devices=[device(1)])),
    )
    guests = normalize([dict(name="render", requires=dict(pci_class="gpu")), dict(name="web")], defaults={}, pool="default")
    cap = to_capacity(["big", "gpu"], hostvars, host_info_var="hi", vm_info_var="vi", device_info_var="di")
    assert "devices" not in cap["big"] and len(cap["gpu"]["devices"]) == 1
    assert where(placement(to_input(guests, cap), cap)) == dict(render="gpu", web="big")
