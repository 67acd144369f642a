# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError


def test_build_and_serialise():
    pool = _xml.element("pool", attrs={"type": "dir"})
    _xml.sub(pool, "name", "images & isos")
    target = _xml.sub(pool, "target")
    _xml.sub(target, "path", "/var/lib/<odd>")
    _xml.sub(pool, "skip", attrs={"unset": None, "flag": True})
    text = _xml.to_string(pool)
    # special characters are escaped by lxml, never by us
    assert "<name>images &amp; isos</name>" in text
    assert "<path>/var/lib/&lt;odd&gt;</path>" in text
    assert '<skip flag="yes"/>' in text
    assert "unset" not in text
    assert _xml.parse(text).find("name").text == "images & isos"


def test_canonical_compare_ignores_formatting_and_attribute_order():
    a = "<domain type='kvm' id='1'>\n  <name>x</name>\n</domain>"
    b = '<domain id="1" type="kvm"><name>x</name></domain>'
    c = '<domain id="1" type="qemu"><name>x</name></domain>'
    assert _xml.xml_equal(a, b)
    assert not _xml.xml_equal(a, c)


def test_pretty_reindents():
    out = _xml.pretty("<a><b><c>1</c></b></a>")
    assert out == "<a>\n  <b>\n    <c>1</c>\n  </b>\n</a>\n"


@pytest.mark.parametrize("text", ["", "   ", "<a>", "<a></b>", "not xml"])
def test_parse_rejects_broken_xml(text):
    with pytest.raises(InvalidInputError):
        _xml.parse(text, "domain XML")


def test_parse_does_not_expand_entities(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("TOPSECRET")
    evil = '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file://%s">]><a>&x;</a>' % secret
    root = _xml.parse(evil)
    assert "TOPSECRET" not in _xml.to_string(root)


def test_find_helpers():
    root = _xml.parse("<net><bridge name='br0'/><ip address=' 10.0.0.1 '/><name> n </name></net>")
    assert _xml.find_attr(root, "bridge", "name") == "br0"
    assert _xml.find_attr(root, "missing", "name", "dflt") == "dflt"
    assert _xml.find_text(root, "name") == "n"
    assert _xml.find_text(root, "nothing", "x") == "x"
