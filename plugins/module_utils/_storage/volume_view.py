# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Storage volumes, read only: names, libvirt's volume XML, lookups, backing chains and the facts
``volume`` and ``volume_info`` return; what VMs, imports, seeds and migrations look up.  Nothing here
makes, fills or uploads a volume (that is :mod:`.volume_write`), so ``volume_info`` and every other
module that only reads volumes ship none of it.

Writers live apart: :mod:`.volume_write` (create, delete, upload: what VMs, imports and seeds
use), :mod:`.volume_source` (source images), :mod:`.volume_fill` and :mod:`.volume` (the resource).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._storage.encryption_xml import encryption_of
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_pool, find_volume, refresh_pool, retry_busy
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import from_libvirt_units

_MAX_NAME_BYTES = 255


# --- names and XML ------------------------------------------------------------------------------


def validate_name(name, what="name"):
    """A volume name that cannot leave its pool: not empty, no '/', no '..', no control characters."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("%s must not be empty" % what)
    if "/" in name or "\\" in name:
        raise InvalidInputError("%s %r must not contain a path separator" % (what, name))
    if name == "." or ".." in name:
        raise InvalidInputError("%s %r must not be '.' or contain '..'" % (what, name))
    bad = [c for c in name if ord(c) < 32 or ord(c) == 127]
    if bad:
        raise InvalidInputError("%s %r must not contain control characters" % (what, name))
    if len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        raise InvalidInputError("%s must be at most %d bytes long" % (what, _MAX_NAME_BYTES))
    return name


def _size_of(root, path):
    node = root.find(path)
    if node is None or node.text is None:
        return None
    return from_libvirt_units(node.text.strip(), node.get("unit") or "bytes")


def parse_volume_xml(text):
    """libvirt volume XML -> dict(name, type, key, path, format, capacity, allocation, backing_path, backing_format,
    physical, mtime, encrypted); ``physical`` and ``mtime`` identify the file (``_record.local_file``)."""
    root = _xml.parse(text, "volume XML") if isinstance(text, (str, bytes)) else text
    return dict(
        name=_xml.find_text(root, "name"),
        type=root.get("type"),
        key=_xml.find_text(root, "key"),
        path=_xml.find_text(root, "target/path"),
        format=_xml.find_attr(root, "target/format", "type"),
        capacity=_size_of(root, "capacity"),
        allocation=_size_of(root, "allocation"),
        backing_path=_xml.find_text(root, "backingStore/path"),
        backing_format=_xml.find_attr(root, "backingStore/format", "type"),
        physical=_size_of(root, "physical"),
        mtime=_xml.find_text(root, "target/timestamps/mtime"),
        encrypted=root.find("target/encryption") is not None,
        encryption=encryption_of(root.find("target")) if root.find("target") is not None else None,
    )


def pool_target_path(pool):
    with libvirt_errors("reading storage pool XML"):
        text = pool.XMLDesc(0)
    return _xml.find_text(_xml.parse(text, "pool XML"), "target/path")


# --- lookups ------------------------------------------------------------------------------------


def lookup_pool(conn, name, what=None):
    """An active pool by name: NotFoundError if unknown, ConflictError if not started.

    ``what`` (an option such as ``disks[vda]``) starts the messages when given.
    """
    prefix = "%s: " % what if what else ""
    pool = find_pool(conn, name)
    if pool is None:
        raise NotFoundError("%sstorage pool %r does not exist" % (prefix, name))
    with libvirt_errors("looking up storage pool %r" % name):
        active = pool.isActive()
    if not active:
        raise ConflictError("%sstorage pool %r is not active: start it first" % (prefix, name))
    return pool


def lookup_pool_or_assume(ctx, name, what=None):
    """:func:`lookup_pool`; in check mode a pool that is missing or stopped is assumed instead
    (``ctx.assume``: an earlier task may create or start it) and None returned.  The warning names
    the pool without ``what``, so that it is given once per pool."""
    try:
        return lookup_pool(ctx.conn, name, what)
    except (NotFoundError, ConflictError) as exc:
        if not ctx.check_mode:
            raise
        prefix = "%s: " % what if what else ""
        ctx.assume(type(exc)(exc.msg[len(prefix):] if exc.msg.startswith(prefix) else exc.msg))
        return None


def volume_path(pool, name):
    """Where the volume ``name`` of ``pool`` is, or would be once created (None: the pool has no
    target directory)."""
    target = pool_target_path(pool)
    return "%s/%s" % (target.rstrip("/"), name) if target else None


def lookup_volume(pool, name, refresh=True):
    """The volume ``name`` in ``pool`` or None; refreshes the pool once (only) when it is not found."""
    attempts = (False, True) if refresh else (False,)
    for do_refresh in attempts:
        if do_refresh:
            refresh_pool(pool)
        vol = find_volume(pool, name)
        if vol is not None:
            return vol
    return None


def volume_xml(vol):
    return retry_busy(lambda: vol.XMLDesc(0), "reading volume XML of %r" % vol.name())


def _lookup_by_path(conn, path):
    try:
        return conn.storageVolLookupByPath(path)
    except libvirt.libvirtError:
        return None


def backing_chain(conn, model, max_depth=32):
    """Backing images of a volume, nearest first: dicts with path, format, pool and volume (when known)."""
    chain = []
    path, fmt = model.get("backing_path"), model.get("backing_format")
    seen = set()
    while path and path not in seen and len(chain) < max_depth:
        seen.add(path)
        entry = dict(path=path, format=fmt, pool=None, volume=None)
        vol = _lookup_by_path(conn, path)
        nxt = None
        if vol is not None:
            try:
                entry["volume"] = vol.name()
                entry["pool"] = vol.storagePoolLookupByVolume().name()
                nxt = parse_volume_xml(vol.XMLDesc(0))
            except libvirt.libvirtError:
                nxt = None
        chain.append(entry)
        if nxt is None:
            break
        if not entry["format"]:
            entry["format"] = nxt.get("format")
        path, fmt = nxt.get("backing_path"), nxt.get("backing_format")
    return chain


def dependants(conn, path):
    """``pool/volume`` names of volumes (in any active pool) whose backing file is ``path``."""
    found = []
    with libvirt_errors("listing storage pools"):
        pools = conn.listAllStoragePools(flag("VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE", 2))
    for pool in pools:
        try:
            vols = pool.listAllVolumes(0)
        except libvirt.libvirtError:
            continue
        for vol in vols:
            try:
                model = parse_volume_xml(vol.XMLDesc(0))
            except libvirt.libvirtError:
                continue
            if model["backing_path"] == path:
                found.append("%s/%s" % (pool.name(), model["name"]))
    return sorted(found)


# --- facts --------------------------------------------------------------------------------------


def model_and_record(vol, uri):
    """libvirt's report of ``vol`` and the collection's record of it (None when it has none or this node
    cannot see its file: see ``_record``)."""
    model = parse_volume_xml(volume_xml(vol))
    path = _record.local_file(uri, model)
    return model, (_record.read_record(path) if path else None)


def record_view(rec):
    """The record as ``volume``/``volume_info`` return it."""
    if rec is None:
        return None
    return dict((k, rec.get(k)) for k in ("format", "made_by", "backing_format", "source", "checksum", "complete"))


def volume_facts(conn, pool_name, vol, uri=None, model=None, rec=None):
    """The facts ``volume`` and ``volume_info`` return for one volume (``format``: the recorded one,
    when the collection keeps a record, else libvirt's report; ``reported_format``: libvirt's report)."""
    if model is None:
        model, rec = model_and_record(vol, uri)
    chain = backing_chain(conn, model)
    facts = dict(
        name=model["name"],
        pool=pool_name,
        path=model["path"],
        type=model["type"],
        format=rec["format"] if rec is not None else model["format"],
        reported_format=model["format"],
        record=record_view(rec),
        capacity=model["capacity"],
        allocation=model["allocation"],
        backing_volume=chain[0]["volume"] if chain and chain[0]["pool"] == pool_name else None,
        backing_chain=chain,
        encryption=model.get("encryption"),
    )
    return facts
