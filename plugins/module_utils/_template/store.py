# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a template lives: its base volumes and its definition file, both in one directory pool.

A template ``NAME`` in pool ``P`` is

* one read-only (mode 0444) qcow2 *base volume* per writable disk of the VM it was made from,
  ``NAME-<target>.base.qcow2``, flattened (no backing file) and carrying the collection's record
  (:mod:`.._storage.record`, ``made_by: vm_template``);
* the *definition file* ``NAME.template.xml`` beside them, written atomically (temporary name in the
  same directory, then a rename), mode 0644::

    <virtops-template version="1" name="NAME" source-vm="web" sealed="agent" created="2026-12-07T21:40:00Z">
      <base target="vda" volume="NAME-vda.base.qcow2" format="qcow2" capacity="2147483648"/>
      <domain>...</domain>
    </virtops-template>

  ``<domain>`` is the VM's persistent definition without UUID, MAC addresses, NVRAM path, graphics,
  read-only disks (a cloud-init seed), CD-ROM media and the collection's per-VM metadata; its disks
  are the base volumes.  The file is libvirt's own XML in a wrapper: nothing but this collection
  reads it, and it is parsed like any other untrusted XML (no entities, no network, no DTD).

Why a file in the pool and not libvirt metadata: libvirt 9.0 has no metadata on volumes or pools,
and a defined domain standing for the template would be listed, started, migrated and recovered
as a VM by everything else.  A directory pool lists the definition file as a (raw) volume too,
which keeps it visible; it is made, read and removed only through a local URI, on the hypervisor.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import uri_is_local
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, ConflictError, InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.names import validate_object_name
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import pool_target_path, validate_name
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.fs import atomic_write

ROOT_TAG = "virtops-template"
VERSION = "1"
SUFFIX = ".template.xml"
BASE_FORMAT = "qcow2"
#: the mode of a base volume's file: nobody writes into a template's disk
BASE_MODE = 0o444
#: the most bytes of a definition file that are read (a domain definition is a few KiB)
MAX_BYTES = 1024 * 1024


def validate_template_name(name, what="name"):
    """A template name becomes file names in the pool: a volume name without '.template.xml' in it."""
    validate_object_name(name, "template")
    validate_name(name, what)
    if name.endswith(SUFFIX) or " " in name:
        raise InvalidInputError("%s: %r is not a usable template name (no spaces, no %r ending)" % (what, name, SUFFIX))
    return name


def definition_name(name):
    return name + SUFFIX


def base_name(name, target):
    return "%s-%s.base.%s" % (name, target, BASE_FORMAT)


def require_local(ctx, what="pool"):
    """Templates are files in a pool's directory: the task runs on the hypervisor (a local URI)."""
    if not uri_is_local(ctx.uri):
        raise InvalidInputError("%s: templates are kept as files in a directory pool on the hypervisor; run the task there "
                                "with a local URI (qemu:///system), not %s" % (what, ctx.uri))


def template_dir(ctx, pool, what="pool"):
    """The directory of ``pool`` on this node: templates need a local URI and a directory pool."""
    require_local(ctx, what)
    target = pool_target_path(pool)
    if not target or not os.path.isdir(target):
        raise InvalidInputError("%s: pool %r has no directory on this node (%s): templates are kept in a directory pool"
                                % (what, pool.name(), target))
    return target


def build_document(name, source_vm, sealed, bases, domain_root, created=None):
    """The definition file's root element; ``bases``: dicts target, volume, capacity."""
    root = _xml.element(ROOT_TAG, attrs={"version": VERSION, "name": name, "source-vm": source_vm, "sealed": sealed,
                                         "created": created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    for base in bases:
        _xml.sub(root, "base", attrs={"target": base["target"], "volume": base["volume"], "format": BASE_FORMAT,
                                      "capacity": str(int(base["capacity"]))})
    root.append(domain_root)
    return root


def write_document(path, data):
    """Write a definition file (``data``: its text) atomically, mode 0644."""
    atomic_write(path, data, mode=0o644)


def parse_document(text, path, pool_name=None, directory=None):
    """The facts of a definition file (see :func:`facts`); InvalidInputError when it is not one."""
    what = "template definition %s" % path
    root = _xml.parse(text, what)
    if root.tag != ROOT_TAG or root.get("version") != VERSION:
        raise InvalidInputError("%s is not a template definition of this collection (version %s)" % (what, VERSION))
    domain = root.find("domain")
    if domain is None:
        raise InvalidInputError("%s holds no <domain>" % what)
    name = root.get("name") or ""
    validate_template_name(name, what)
    if directory is not None and os.path.basename(path) != definition_name(name):
        raise InvalidInputError("%s names template %r: the file name and the name inside differ" % (what, name))
    bases = []
    for node in root.findall("base"):
        volume = validate_name(node.get("volume") or "", "%s: base volume" % what)
        if node.get("format") != BASE_FORMAT or not (node.get("capacity") or "").isdigit():
            raise InvalidInputError("%s: base %r is not a %s volume with a capacity" % (what, volume, BASE_FORMAT))
        bases.append(dict(target=node.get("target"), volume=volume, format=BASE_FORMAT, capacity=int(node.get("capacity")),
                          path=os.path.join(directory, volume) if directory else None))
    model = _domain.model_from_xml(domain)
    return dict(name=name, pool=pool_name, path=path, source_vm=root.get("source-vm"), sealed=root.get("sealed"),
                created=root.get("created"), disks=bases, memory=model["memory"], vcpus=model["vcpus"],
                machine=model["machine"], interfaces=len(model["interfaces"]), _domain=domain)


def read_document(path, pool_name=None):
    """The facts of the definition file at ``path``, or None when there is none."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except (IOError, OSError) as exc:
        if not os.path.lexists(path):
            return None
        raise BackendError("reading template definition %s failed: %s" % (path, exc))
    if len(data) > MAX_BYTES:
        raise InvalidInputError("template definition %s is larger than %d bytes" % (path, MAX_BYTES))
    if os.path.islink(path):
        raise ConflictError("template definition %s is a symbolic link; a definition file is a regular file" % path)
    return parse_document(data, path, pool_name, os.path.dirname(path))


def find_template(directory, name, pool_name=None):
    """The template ``name`` kept in ``directory``, or None."""
    return read_document(os.path.join(directory, definition_name(name)), pool_name)


def list_templates(directory, pool_name=None, warn=None):
    """Every template in ``directory``, by name; a file that is not a definition is skipped (``warn``)."""
    found = []
    for entry in sorted(os.listdir(directory)):
        if not entry.endswith(SUFFIX) or entry.startswith("."):
            continue
        try:
            facts = read_document(os.path.join(directory, entry), pool_name)
        except (InvalidInputError, ConflictError, BackendError) as exc:
            if warn is not None:
                warn("skipped %s: %s" % (entry, exc.msg))
            continue
        if facts is not None:
            found.append(facts)
    return found


def view(facts):
    """A template's facts as returned to the user (without the parsed definition)."""
    if facts is None:
        return None
    return dict((k, v) for k, v in facts.items() if not k.startswith("_"))
