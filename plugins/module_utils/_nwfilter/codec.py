# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Network filter model (``model``) <-> libvirt ``<filter>`` XML, with lxml.

A filter is written with its references first, then its rules, each in the order given.  A filter
written by hand with the two interleaved reads back with the same rules and references; when this
module redefines it, the references move in front (libvirt orders the instantiated rules by
priority, not by their place in the XML).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._nwfilter.model import (
    DEFAULT_RULE_PRIORITY,
    MODELLED_ATTRS,
    SIMPLE_ATTRS,
)

_ENDPOINTS = (("source", "srcipaddr", "srcipmask"), ("destination", "dstipaddr", "dstipmask"))
_PORTS = (("source_ports", "srcportstart", "srcportend"), ("destination_ports", "dstportstart", "dstportend"))


def _rule_element(rule):
    node = _xml.element("rule", attrs=dict(action=rule["action"], direction=rule["direction"],
                                           priority=rule["priority"]))
    if rule.get("statematch") is not None:
        node.set("statematch", "true" if rule["statematch"] else "false")
    attrs = {}
    for key, addr_attr, mask_attr in _ENDPOINTS:
        if rule.get(key) is not None:
            addr, _sep, mask = rule[key].partition("/")
            attrs[addr_attr] = addr
            if mask:
                attrs[mask_attr] = mask
    for key, start_attr, end_attr in _PORTS:
        if rule.get(key) is not None:
            start, _sep, end = rule[key].partition("-") if not rule[key].startswith("$") else (rule[key], "", "")
            attrs[start_attr] = start
            if end:
                attrs[end_attr] = end
    if rule.get("state"):
        attrs["state"] = ",".join(rule["state"])
    for key, attr in SIMPLE_ATTRS:
        if rule.get(key) is not None:
            attrs[attr] = rule[key]
    attrs.update(rule.get("attributes") or {})
    _xml.sub(node, rule["protocol"], attrs=attrs)
    return node


def _filterref_element(ref):
    node = _xml.element("filterref", attrs={"filter": ref["filter"]})
    for name, values in sorted((ref.get("parameters") or {}).items()):
        for value in values:
            _xml.sub(node, "parameter", attrs=dict(name=name, value=value))
    return node


def xml_from_model(name, model, uuid=None):
    """The ``<filter>`` element of ``model`` (every key given: merge with the current one first)."""
    root = _xml.element("filter", attrs=dict(name=name, chain=model.get("chain"), priority=model.get("priority")))
    if uuid:
        _xml.sub(root, "uuid", uuid)
    for ref in model.get("filterrefs") or ():
        root.append(_filterref_element(ref))
    for rule in model.get("rules") or ():
        root.append(_rule_element(rule))
    return root


def _rule_model(node):
    proto = next((c for c in node if isinstance(c.tag, str)), None)
    rule = dict(direction=node.get("direction"), action=node.get("action"),
                priority=int(node.get("priority") or DEFAULT_RULE_PRIORITY),
                protocol=proto.tag if proto is not None else "all")
    if node.get("statematch") is not None:
        rule["statematch"] = node.get("statematch").lower() not in ("false", "0", "no")
    if proto is None:
        return rule
    attrs = dict(proto.attrib)
    for key, addr_attr, mask_attr in _ENDPOINTS:
        if addr_attr in attrs:
            rule[key] = attrs[addr_attr] + ("/" + attrs[mask_attr] if attrs.get(mask_attr) else "")
    for key, start_attr, end_attr in _PORTS:
        if start_attr in attrs:
            end = attrs.get(end_attr)
            rule[key] = attrs[start_attr] + ("-" + end if end and end != attrs[start_attr] else "")
    if attrs.get("state"):
        rule["state"] = sorted(s.strip().upper() for s in attrs["state"].split(",") if s.strip())
    for key, attr in SIMPLE_ATTRS:
        if attr in attrs:
            rule[key] = attrs[attr].lower() if key.endswith("_mac") and not attrs[attr].startswith("$") else attrs[attr]
    rest = dict((k, v) for k, v in attrs.items() if k not in MODELLED_ATTRS)
    if rest:
        rule["attributes"] = rest
    return rule


def _filterref_model(node):
    params = {}
    for param in node.findall("parameter"):
        params.setdefault(param.get("name"), []).append(param.get("value"))
    return dict(filter=node.get("filter"), parameters=params)


def model_from_xml(text):
    """``<filter>`` XML (text or element) -> model, plus ``uuid`` and ``name``."""
    root = _xml.parse(text, "network filter XML") if isinstance(text, (str, bytes)) else text
    priority = root.get("priority")
    return dict(
        name=root.get("name"),
        uuid=_xml.find_text(root, "uuid"),
        chain=root.get("chain") or "root",
        priority=int(priority) if priority is not None else None,
        rules=[_rule_model(r) for r in root.findall("rule")],
        filterrefs=[_filterref_model(r) for r in root.findall("filterref")],
    )


def references(text):
    """The names of the filters a ``<filter>`` XML references."""
    root = _xml.parse(text, "network filter XML") if isinstance(text, (str, bytes)) else text
    return [node.get("filter") for node in root.findall("filterref")]
