# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Domain XML from an archive, rebuilt from an allow-list.

An archive's ``domain.xml`` is not trusted: it may come from another host, another person or an
attacker.  libvirt acts on much of what a definition names: it lets QEMU create files as root
(``<serial type='file'>``), read files into the guest (``<kernel>``, ``<rom file>``, an rng
backend), connect to or create sockets, pass through host devices and directories, run scripts
(``<script path>``) and hand raw arguments to QEMU (``<qemu:commandline>``).

So :func:`rebuild` does not remove what is known to be dangerous (a deny-list misses what it does
not know); it builds a new ``<domain>`` and copies into it only the elements and attributes of
:data:`DOMAIN` (an allow-list of what the collection understands and can keep safely), with every
text and attribute value of it.  Everything else is left out, each with a note that names it and
says why.  A few things are converted rather than copied:

* the firmware: UEFI (and secure boot) is kept, through libvirt's firmware auto-selection on this
  host; the old host's loader, NVRAM and template paths are not used;
* serial ports and consoles of another type than ``pty`` (a file, socket, device, pipe, network
  port) become ``pty`` ones, so the guest keeps its console;
* the guest agent channel keeps its target, and libvirt picks the socket path;
* an rng device reads this host's ``/dev/urandom``; a graphical console that listened on another
  address than the loopback listens on ``127.0.0.1``.

Refused outright (dropping them would silently change the VM in a way its owner relies on, or the
document is not libvirt's own): a DOCTYPE or entity declarations, another domain type than
``kvm``/``qemu``, another OS type than ``hvm``, ``<launchSecurity>`` (memory encryption), two
disks with one target, and interfaces that are not on a libvirt network or bridge unless the
import gives ``network`` (leaving them out would renumber the guest's NICs).

Disk sources are never copied: the caller points each kept disk at its new volume
(:func:`._import.definition.rewrite_domain_xml`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._import.xml_devices import DOMAIN
from ansible_collections.virtops.libvirt.plugins.module_utils._import.xml_rules import (
    ATTR_REASONS,
    NOT_ALLOWED,
    ON_ACTIONS,
    element_name,
    join_path,
    local_name,
    reason_of,
    show,
)

_ON_TAGS = ("on_poweroff", "on_reboot", "on_crash")


class _Builder:
    """One rebuild: the notes, and what the handlers learn on the way (disks, NIC count, audio ids)."""

    def __init__(self, network):
        self.network = network
        self.notes = []
        self.disks = []
        self.disk_targets = set()
        self.nics = 0
        self.audio_ids = set()

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)

    def left_out(self, node, path, reason):
        self.note("the archived domain XML's %s was left out: %s" % (element_name(node, path), reason))

    def copy(self, node, spec, path, quiet=()):
        """A new element with the allowed attributes, text and children of ``node`` (recursively)."""
        out = _xml.element(node.tag)
        here = "" if path is None else join_path(path, node.tag)
        for attr, value in node.attrib.items():
            allowed = spec.attrs.get(attr, False) if "}" not in attr else False
            if allowed is None or (hasattr(allowed, "match") and allowed.match(value)) or (
                    isinstance(allowed, tuple) and value in allowed):
                out.set(attr, value)
            elif attr not in quiet:
                self.note("the archived domain XML's %s %s=%s was left out: %s" % (
                    here or "domain", local_name(attr), show(value), ATTR_REASONS.get(local_name(attr), NOT_ALLOWED)))
        if spec.text and node.text is not None:
            out.text = node.text.strip()
            if hasattr(spec.text, "match") and not spec.text.match(out.text):
                raise InvalidInputError("the archived domain XML's %s %s is not valid" % (here, show(out.text)))
        seen = set()
        for child in node:
            if not isinstance(child.tag, str):
                continue  # comments and processing instructions: nothing acts on them
            rule = spec.children.get(child.tag) if child.tag in spec.children else None
            if rule is None:
                if child.tag not in quiet:
                    self.left_out(child, here, reason_of(child))
                continue
            if child.tag in seen and (spec.single is True or child.tag in spec.single):
                self.left_out(child, here, "it is given twice")
                continue
            seen.add(child.tag)
            new = rule(self, child, here) if callable(rule) else self.copy(child, rule, here)
            if new is not None:
                out.append(new)
        return out


def _check_document(root, what):
    doc = root.getroottree().docinfo
    if doc.doctype or doc.internalDTD is not None:
        raise InvalidInputError("%s has a DOCTYPE (%s): libvirt never writes one, and an archive's XML may not "
                                "declare entities; refused" % (what, show(doc.doctype)))
    if root.tag != "domain":
        raise InvalidInputError("%s has <%s> as root, not <domain>" % (what, root.tag))
    kind = root.get("type")
    if kind not in ("kvm", "qemu"):
        raise InvalidInputError("%s is a domain of type %s: only kvm and qemu domains can be imported" % (what, show(kind)))


class Rebuilt:
    """What :func:`rebuild` made: ``root`` (the new ``<domain>``), ``notes`` (what was left out or
    converted), ``disks`` (the kept disks: ``target`` and ``source``, the old source for messages) and
    ``firmware``/``secure_boot`` (to be applied with this host's firmware auto-selection)."""

    def __init__(self, root, notes, disks, firmware, secure_boot):
        self.root = root
        self.notes = notes
        self.disks = disks
        self.firmware = firmware
        self.secure_boot = secure_boot


def rebuild(text, network=None, what="the archived domain XML"):
    """A new ``<domain>`` made of what :data:`DOMAIN` allows of ``text`` (a :class:`Rebuilt`).

    ``network``: the interfaces will be moved to that libvirt network (any interface type is then
    accepted; its old connection is dropped quietly).  Raises InvalidInputError for what is refused.
    """
    original = _xml.parse(text, what)
    _check_document(original, what)
    builder = _Builder(network)
    root = builder.copy(original, DOMAIN, None, quiet=("id", "type"))
    root.set("type", original.get("type"))
    for tag in _ON_TAGS:
        node = root.find(tag)
        if node is not None and node.text not in ON_ACTIONS:
            builder.note("the archived domain XML's %s %s was left out: libvirt's default applies" % (tag, show(node.text)))
            root.remove(node)
    for ref in root.xpath("devices/sound/audio | devices/graphics/audio"):
        if ref.get("id") not in builder.audio_ids:
            ref.getparent().remove(ref)
    firmware, secure = _domain._firmware_model(original.find("os"))  # pylint: disable=protected-access
    return Rebuilt(root, builder.notes, builder.disks, firmware, secure)
