# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""lxml helpers: safe parsing, building, canonical comparison and pretty text for diffs.

All XML the collection produces is built here or with these helpers; never by string formatting.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    InvalidInputError,
    MissingDependencyError,
)

LXML_IMPORT_ERROR = None
try:
    from lxml import etree
except ImportError:  # pragma: no cover - depends on the managed node
    etree = None
    LXML_IMPORT_ERROR = traceback.format_exc()

HAS_LXML = etree is not None

#: XML namespace of the collection's own domain metadata
VIRTOPS_NS = "https://virtops.dev/xmlns/libvirt/1.0"


def require_lxml():
    if etree is None:
        raise MissingDependencyError(
            "The lxml Python library is not installed on the managed node: install 'lxml' from PyPI "
            "(or python3-lxml from your distribution)",
            exception=LXML_IMPORT_ERROR,
        )


def _parser():
    # No entity expansion, no network, no DTD loading: the XML may come from users or guests.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_blank_text=True,
        remove_comments=False,
    )


def parse(text, what="XML"):
    """Parse ``text`` (str or bytes) into an element; InvalidInputError with the parser's reason."""
    require_lxml()
    if text is None or (isinstance(text, (str, bytes)) and not text.strip()):
        raise InvalidInputError("%s is empty" % what)
    if isinstance(text, str):
        text = text.encode("utf-8")
    try:
        root = etree.fromstring(text, _parser())
    except etree.XMLSyntaxError as exc:
        raise InvalidInputError("%s is not well-formed: %s" % (what, exc))
    return root


def element(tag, text=None, attrs=None, children=None):
    """Build an element: ``element('disk', attrs={'type': 'file'}, children=[...])``.

    Attribute values that are None are left out; other values are turned into strings.
    """
    require_lxml()
    node = etree.Element(tag)
    _fill(node, text, attrs, children)
    return node


def sub(parent, tag, text=None, attrs=None, children=None):
    """Append a child element to ``parent`` and return it."""
    node = etree.SubElement(parent, tag)
    _fill(node, text, attrs, children)
    return node


def _fill(node, text, attrs, children):
    for key, value in (attrs or {}).items():
        if value is None:
            continue
        node.set(key, _text(value))
    if text is not None:
        node.text = _text(text)
    for child in children or ():
        if child is not None:
            node.append(child)


def _text(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def to_string(node, pretty=True):
    """Serialise an element to a str (UTF-8, no XML declaration)."""
    require_lxml()
    return etree.tostring(node, pretty_print=pretty, encoding="unicode")


def pretty(text_or_node):
    """Re-indent XML for human reading (diffs); comments and content are kept."""
    node = parse(text_or_node) if isinstance(text_or_node, (str, bytes)) else text_or_node
    return to_string(node, pretty=True)


def _strip_whitespace(node):
    for el in node.iter():
        if el.text is not None and not el.text.strip():
            el.text = None
        if el.tail is not None and not el.tail.strip():
            el.tail = None
    return node


def canonical(text_or_node):
    """Canonical form (C14N 2.0, whitespace-only text dropped): equal iff semantically equal XML."""
    require_lxml()
    node = parse(text_or_node) if isinstance(text_or_node, (str, bytes)) else _copy(text_or_node)
    _strip_whitespace(node)
    return etree.tostring(node, method="c14n2", strip_text=True)


def _copy(node):
    return etree.fromstring(etree.tostring(node), _parser())


def xml_equal(left, right):
    """True when two XML documents (text or elements) are the same after canonicalisation."""
    return canonical(left) == canonical(right)


def find_text(node, path, default=None):
    """Text of the first match of ``path`` (ElementPath), stripped, or ``default``."""
    found = node.find(path)
    if found is None or found.text is None:
        return default
    return found.text.strip()


def find_attr(node, path, attr, default=None):
    """Attribute ``attr`` of the first match of ``path`` (``'.'`` for the node itself)."""
    found = node if path in (None, ".") else node.find(path)
    if found is None:
        return default
    return found.get(attr, default)


def xml_subset(wanted, have):
    """True when every element, attribute and text of ``wanted`` is in ``have`` (same order per tag)."""
    if wanted.tag != have.tag:
        return False
    for key, value in wanted.attrib.items():
        if have.get(key) != value:
            return False
    if (wanted.text or "").strip() and (wanted.text or "").strip() != (have.text or "").strip():
        return False
    used = {}
    for child in wanted:
        if not isinstance(child.tag, str):  # comments
            continue
        candidates = [c for c in have if c.tag == child.tag]
        start = used.get(child.tag, 0)
        for index in range(start, len(candidates)):
            if xml_subset(child, candidates[index]):
                used[child.tag] = index + 1
                break
        else:
            return False
    return True
