# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hypervisors for unit tests: node files for libvirt's test driver.

``test:///PATH/node.xml`` gives every connection its own copy of the host described in the file
(unlike ``test:///default``, whose state all connections share), so several files are several
distinct hypervisors with their own VMs, networks and pools.  Used by the inventory and the
placement tests.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import codec_write as _codec_write
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import normalize as _normalize

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
#: libvirt's virDomainState numbers, for <test:runstate>
RUNSTATES = dict(running=1, paused=3, stopped=5)


def domain_element(name, state="running", memory=64, vcpus=1, arch="x86_64", **params):
    """A domain built the way the vm module builds one, with the test driver's run state."""
    model = _normalize.normalize(dict(memory=memory, vcpus=vcpus, arch=arch, **params))
    _normalize.assign_targets(model)
    model = _normalize.with_creation_defaults(model)
    model["virt_type"] = "test"
    root = _codec_write.build_xml(name, model)
    runstate = _xml.etree.SubElement(root, "{%s}runstate" % TEST_NS, nsmap={"test": TEST_NS})
    runstate.text = str(RUNSTATES[state])
    return root


def node_xml(domains=(), cpus=8, memory_mib=16384, networks=("default",), pools=(("default", 100, 60),), volumes=None):
    """The text of a test driver node file.

    ``domains``: dicts of :func:`domain_element` arguments; ``pools``: (name, capacity GiB, available GiB);
    ``volumes``: ``{pool name: [volume name, ...]}`` (files ``/var/lib/virtops-test/<pool>/<volume>``).
    """
    etree = _xml.etree
    node = etree.Element("node")
    cpu = etree.SubElement(node, "cpu")
    for tag, value in (("mhz", 2000), ("model", "x86_64"), ("active", cpus), ("nodes", 1), ("sockets", 1),
                       ("cores", cpus), ("threads", 1)):
        etree.SubElement(cpu, tag).text = str(value)
    etree.SubElement(node, "memory").text = str(memory_mib * 1024)
    for spec in domains:
        node.append(domain_element(**spec))
    for index, name in enumerate(networks):
        net = etree.SubElement(node, "network")
        etree.SubElement(net, "name").text = name
        etree.SubElement(net, "bridge", name="virbr%d" % index)
        ip = etree.SubElement(net, "ip", address="192.168.%d.1" % (122 + index), netmask="255.255.255.0")
        dhcp = etree.SubElement(ip, "dhcp")
        etree.SubElement(dhcp, "range", start="192.168.%d.2" % (122 + index), end="192.168.%d.254" % (122 + index))
    for name, capacity, available in pools:
        pool = etree.SubElement(node, "pool", type="dir")
        etree.SubElement(pool, "name").text = name
        target = etree.SubElement(pool, "target")
        etree.SubElement(target, "path").text = "/var/lib/virtops-test/%s" % name
        etree.SubElement(pool, "capacity", unit="GiB").text = str(capacity)
        etree.SubElement(pool, "allocation", unit="GiB").text = str(capacity - available)
        etree.SubElement(pool, "available", unit="GiB").text = str(available)
        for vol_name in (volumes or {}).get(name, ()):
            vol = etree.SubElement(pool, "volume")
            etree.SubElement(vol, "name").text = vol_name
            etree.SubElement(vol, "capacity", unit="MiB").text = "64"
            etree.SubElement(etree.SubElement(vol, "target"), "path").text = "/var/lib/virtops-test/%s/%s" % (name, vol_name)
    return _xml.to_string(node, pretty=True)
