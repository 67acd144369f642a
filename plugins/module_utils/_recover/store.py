# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The kept definitions of one hypervisor's VMs: a directory on storage the other hypervisors see.

Layout of a store directory (one per hypervisor, written only by ``vm_keep`` on that hypervisor)::

    index.json                  {"format": 1, "vms": {NAME: {uuid, file, sha256, active, autostart, pool}}}
    NAME-<sha256[:16]>.xml      the persistent definition of VM NAME (with its console passwords), 0600

The index is the commit point.  ``vm_keep`` writes the definitions that changed under new names
(their content's checksum is in the name, so a file is never rewritten in place), then replaces the
index atomically, then deletes the files the new index no longer names.  A reader that uses only
what the index names, and checks each file's sha256, never sees a half-written store: a keep that
failed half-way leaves the old index and its files intact.

The store is trusted only as far as its permissions allow: the directory, the index and every
definition must be owned by the user the module runs as (or root) and must not be writable by
group or others; symbolic links are refused.  The definitions are read with the collection's XML
parser (no entities, no DTD), and each must be a ``<domain>`` of type kvm or qemu whose name and UUID
are the index's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import re
import stat

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.model import summary_from_xml, validate_name
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.fs import atomic_write, fsync_dir, remove_quietly

FORMAT = 1
INDEX = "index.json"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
#: the keys of one VM's entry in the index
ENTRY_KEYS = ("uuid", "file", "sha256", "active", "autostart", "pool")


def sha256_text(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_name(name, sha256):
    """The definition file of VM ``name`` with content ``sha256``: its checksum is in its name."""
    return "%s-%s.xml" % (name, sha256[:16])


def check_path(path):
    """``path`` must be an absolute directory path."""
    if not path or not os.path.isabs(path):
        raise InvalidInputError("path: %r must be an absolute directory path" % (path,))
    return os.path.normpath(path)


def _trusted(path, what, directory=False):
    """lstat of ``path`` if it is owned by us or root, not a link and not writable by group/others."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise NotFoundError("%s %s cannot be read: %s" % (what, path, exc.strerror), path=path)
    kind_ok = stat.S_ISDIR(info.st_mode) if directory else stat.S_ISREG(info.st_mode)
    if not kind_ok:
        raise ConflictError("%s %s is not a %s (links are refused)" % (what, path, "directory" if directory else "regular file"),
                            path=path)
    if info.st_uid not in (0, os.geteuid()):
        raise ConflictError("%s %s is owned by uid %d, neither root nor this user: not trusted" % (what, path, info.st_uid),
                            path=path)
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConflictError("%s %s is writable by group or others (mode %04o): not trusted" % (what, path, info.st_mode & 0o7777),
                            path=path)
    return info


def _read_text(path, what):
    _trusted(path, what)
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError("%s %s is not UTF-8 text" % (what, path), path=path)


def _entry(name, raw, index_path):
    validate_name(name)
    if not isinstance(raw, dict):
        raise InvalidInputError("%s: the entry of %r is not an object" % (index_path, name))
    entry = dict((k, raw.get(k)) for k in ENTRY_KEYS)
    if not _UUID.match(str(entry["uuid"] or "")) or not _SHA.match(str(entry["sha256"] or "")):
        raise InvalidInputError("%s: the entry of %r lacks a valid uuid or sha256" % (index_path, name))
    if entry["file"] != file_name(name, entry["sha256"]):
        raise InvalidInputError("%s: the entry of %r names the file %r, not %r"
                                % (index_path, name, entry["file"], file_name(name, entry["sha256"])))
    entry["active"] = bool(entry["active"])
    entry["autostart"] = bool(entry["autostart"])
    return entry


def read_index(path, required=False):
    """The entries of the store at ``path`` (``{name: entry}``), or None when it has no index
    (``required``: NotFoundError instead)."""
    index_path = os.path.join(path, INDEX)
    if not os.path.lexists(index_path):
        if required:
            raise NotFoundError("no kept definitions at %s (no %s): was the keep entry point or vm_keep run "
                                "for this hypervisor?" % (path, INDEX), path=path)
        return None
    _trusted(path, "the store directory", directory=True)
    try:
        data = json.loads(_read_text(index_path, "the store index"))
    except ValueError as exc:
        raise InvalidInputError("%s is not valid JSON: %s" % (index_path, exc), path=index_path)
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("vms"), dict):
        raise InvalidInputError("%s is not a store index of format %d" % (index_path, FORMAT), path=index_path)
    return dict((name, _entry(name, raw, index_path)) for name, raw in data["vms"].items())


def read_definition(path, name, entry):
    """The kept XML of VM ``name``, checked against its index ``entry``; returns ``(text, summary)``."""
    file_path = os.path.join(path, entry["file"])
    text = _read_text(file_path, "the definition of %s" % name)
    if sha256_text(text) != entry["sha256"]:
        raise ConflictError("%s does not match its checksum in the index (changed after it was kept)" % file_path,
                            path=file_path)
    root = _xml.parse(text, file_path)
    summary = summary_from_xml(root)
    if root.get("type") not in ("kvm", "qemu", "test"):  # test: libvirt's test driver
        raise InvalidInputError("%s: domain type %r is not kvm or qemu" % (file_path, root.get("type")))
    if summary["name"] != name or (summary["uuid"] or "").lower() != entry["uuid"]:
        raise InvalidInputError("%s: name %r / uuid %r are not the index's %r / %r"
                                % (file_path, summary["name"], summary["uuid"], name, entry["uuid"]))
    return text, summary


def index_text(entries):
    return json.dumps(dict(format=FORMAT, vms=entries), indent=2, sort_keys=True) + "\n"


def write_store(path, entries, texts, old_entries):
    """Make the store at ``path`` hold ``entries`` (``{name: entry}``): the definitions of ``texts``
    (``{name: xml}``) whose file is missing, then the index, then the removal of the files only the
    old index named.  Returns the paths written."""
    if not os.path.isdir(path):
        os.makedirs(path, 0o700)
    _trusted(path, "the store directory", directory=True)
    written = []
    try:
        for name in sorted(entries):
            target = os.path.join(path, entries[name]["file"])
            if not os.path.exists(target):
                atomic_write(target, texts[name], mode=0o600)
                written.append(target)
        atomic_write(os.path.join(path, INDEX), index_text(entries), mode=0o600)
    except BaseException:
        for target in written:  # the old index and its files stay as they were
            remove_quietly(target)
        raise
    keep = set(e["file"] for e in entries.values())
    for entry in (old_entries or {}).values():
        if entry["file"] not in keep:
            remove_quietly(os.path.join(path, entry["file"]))
    for leftover in stale_files(path, keep):
        remove_quietly(os.path.join(path, leftover))
    fsync_dir(path)
    return written


_KEPT_FILE = re.compile(r"^.+-[0-9a-f]{16}[.]xml$")


def stale_files(path, keep):
    """Definition files in ``path`` that no index names (left by a keep that was killed), sorted."""
    try:
        names = os.listdir(path)
    except OSError:
        return []
    return sorted(n for n in names if _KEPT_FILE.match(n) and n not in keep)
