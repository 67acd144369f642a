# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Storage volumes: the model, its libvirt XML, the ``volume`` resource and ``volume_info`` facts.

A volume is created one of four ways: empty, from a source image (a local file or an http(s) URL,
checksum-verified and transparently decompressed), as a linked clone (a qcow2 overlay on a
``backing_volume``) or as a full clone (``clone_from``).  Source images are prepared in a private
temporary directory on the managed node and only then turned into a volume (``vol-create`` plus a
libvirt upload stream, which also works for remote hypervisors); a failure on the way deletes the
volume and the temporary files again.

Every image that enters passes the image-trust check (``_trust``): a source image must be
self-contained and be what its declared format says; the volume a clone copies and the base of a
linked clone are checked with their recorded format.  Every volume the module makes carries a record
(``_record``) of its format and, when filled, of what went into it and whether the fill completed:
an incomplete fill (the daemon went away during the upload) or a fill from another source or
checksum is made again on the next run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import gzip
import hashlib
import lzma
import os
import shutil
import tempfile
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record

from ansible_collections.virtops.libvirt.plugins.module_utils._storage import trust as _trust

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import (
    libvirt,
    libvirt_errors,
    translate_libvirt_error,
    uri_is_local,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.qemu_img import QemuImg
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Resource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import from_libvirt_units, parse_size
from ansible_collections.virtops.libvirt.plugins.module_utils._core.timeouts import timeout_seconds
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import guard, in_use_error, usage

VOLUME_FORMATS = ("qcow2", "raw")
PREALLOCATION = ("off", "metadata", "full")
CHECKSUM_ALGORITHMS = ("sha1", "sha224", "sha256", "sha384", "sha512")
#: how long a run waits for another task that is filling the same volume
FILL_WAIT_SECONDS = 600
_CHUNK = 1024 * 1024
_MAX_NAME_BYTES = 255

# libvirt messages that mean "try again in a moment" (pool refresh racing other jobs in the pool)
_BUSY_MARKERS = ("asynchronous jobs", "is busy", "still being", "is being built")


# --- validation ---------------------------------------------------------------------------------


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


def parse_checksum(text):
    """``'sha256:ab12...'`` -> ``('sha256', 'ab12...')``; InvalidInputError on junk."""
    if not isinstance(text, str) or ":" not in text:
        raise InvalidInputError("checksum must look like 'sha256:HEXDIGEST', got %r" % (text,))
    algo, digest = text.split(":", 1)
    algo = algo.strip().lower()
    digest = digest.strip().lower()
    if algo not in CHECKSUM_ALGORITHMS:
        raise InvalidInputError("checksum algorithm must be one of %s, not %r" % (", ".join(CHECKSUM_ALGORITHMS), algo))
    expected_len = hashlib.new(algo).digest_size * 2
    if len(digest) != expected_len or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidInputError("checksum: %r is not a %s hex digest (%d hex digits)" % (digest, algo, expected_len))
    return algo, digest


def is_url(source):
    low = source.lower()
    return low.startswith("http://") or low.startswith("https://")


# --- files: checksums, decompression, download --------------------------------------------------


def file_digest(path, algo):
    hasher = hashlib.new(algo)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def verify_checksum(path, checksum, what=None):
    """Raise InvalidInputError when the file's digest differs from ``checksum`` ('algo:hex')."""
    algo, expected = parse_checksum(checksum)
    actual = file_digest(path, algo)
    if actual != expected:
        raise InvalidInputError(
            "checksum mismatch for %s: expected %s:%s, got %s:%s" % (what or path, algo, expected, algo, actual),
            expected=expected, actual=actual,
        )
    return actual


def exists_already(exc):
    """Whether a failed volume creation (a translated error) says a volume of that name exists: another
    task created it since this one looked (libvirt's drivers say so with different codes)."""
    message = (exc.msg or "").lower()
    return (exc.details.get("libvirt_error_code") == getattr(libvirt, "VIR_ERR_STORAGE_VOL_EXIST", 90)
            or "exists already" in message or "already exists" in message)


def same_checksum(wanted, recorded):
    """Whether checksum ``wanted`` ('algo:hex') is the one ``recorded``; another algorithm counts as different."""
    if not recorded:
        return False
    try:
        return parse_checksum(wanted) == parse_checksum(recorded)
    except InvalidInputError:
        return False


def check_source_path(source):
    """A local ``source`` must be an existing regular file: say what it is otherwise."""
    if not os.path.exists(source):
        raise NotFoundError("source file %r does not exist on the managed node" % source)
    if os.path.isdir(source):
        raise InvalidInputError("source %r is a directory, not an image file" % source)
    if not os.path.isfile(source):
        raise InvalidInputError("source %r is not a regular file (a device, FIFO or socket): give an image file"
                                % source)


def detect_compression(path):
    """'gzip', 'xz' or None, from the file's magic bytes (not its name)."""
    with open(path, "rb") as handle:
        head = handle.read(6)
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head == b"\xfd7zXZ\x00":
        return "xz"
    return None


def decompress_file(src, dst, kind):
    """Stream-decompress ``src`` (gzip or xz) into ``dst``; InvalidInputError on a corrupt stream."""
    opener = {"gzip": gzip.open, "xz": lzma.open}[kind]
    try:
        with opener(src, "rb") as fin, open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout, _CHUNK)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise InvalidInputError("cannot decompress %s (%s): %s" % (src, kind, exc))


def download(url, dest, validate_certs=True, timeout=60):
    """Fetch ``url`` into ``dest`` (a new file); NotFoundError / BackendError with the reason."""
    try:
        # imported here: ansible.module_utils.urls costs ~0.1 s to import, and only URL sources need it
        from ansible.module_utils.urls import open_url  # pylint: disable=import-outside-toplevel

        response = open_url(url, validate_certs=validate_certs, timeout=timeout, follow_redirects="safe")
    except Exception as exc:  # urllib raises many types: HTTPError, URLError, socket errors, SSL errors
        code = getattr(exc, "code", None)
        if code == 404:
            raise NotFoundError("downloading %s failed: HTTP 404 not found" % url, status=code)
        raise BackendError("downloading %s failed: %s" % (url, exc), status=code)
    try:
        with open(dest, "wb") as handle:
            shutil.copyfileobj(response, handle, _CHUNK)
    except (OSError, IOError) as exc:
        raise BackendError("downloading %s into %s failed: %s" % (url, dest, exc))
    finally:
        response.close()


# --- XML ----------------------------------------------------------------------------------------


def build_volume_xml(name, capacity, fmt, allocation=None, backing_path=None, backing_format=None):
    """The ``<volume>`` element libvirt's ``vol-create`` takes."""
    root = _xml.element("volume")
    _xml.sub(root, "name", name)
    _xml.sub(root, "capacity", int(capacity), attrs={"unit": "bytes"})
    if allocation is not None:
        _xml.sub(root, "allocation", int(allocation), attrs={"unit": "bytes"})
    target = _xml.sub(root, "target")
    _xml.sub(target, "format", attrs={"type": fmt})
    if backing_path:
        backing = _xml.sub(root, "backingStore")
        _xml.sub(backing, "path", backing_path)
        if backing_format:
            _xml.sub(backing, "format", attrs={"type": backing_format})
    return root


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
    )


def pool_target_path(pool):
    with libvirt_errors("reading storage pool XML"):
        text = pool.XMLDesc(0)
    return _xml.find_text(_xml.parse(text, "pool XML"), "target/path")


# --- libvirt lookups with retries ---------------------------------------------------------------


def _is_busy(exc):
    message = (exc.get_error_message() or str(exc) or "").lower()
    return any(marker in message for marker in _BUSY_MARKERS)


def retry_busy(func, what, timeout=120.0, sleep=time.sleep):
    """Call ``func()``; while libvirt says the pool is busy (async jobs), wait and try again."""
    deadline = time.time() + timeout
    delay = 0.1
    while True:
        try:
            return func()
        except libvirt.libvirtError as exc:
            if _is_busy(exc) and time.time() < deadline:
                sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            raise translate_libvirt_error(exc, what)


def lookup_pool(conn, name, what=None):
    """An active pool by name: NotFoundError if unknown, ConflictError if not started.

    ``what`` (an option such as ``disks[vda]``) starts the messages when given.
    """
    prefix = "%s: " % what if what else ""
    with libvirt_errors("looking up storage pool %r" % name):
        try:
            pool = conn.storagePoolLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                raise NotFoundError("%sstorage pool %r does not exist" % (prefix, name))
            raise
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


def refresh_pool(pool):
    retry_busy(lambda: pool.refresh(0), "refreshing storage pool %r" % pool.name())


def lookup_volume(pool, name, refresh=True):
    """The volume ``name`` in ``pool`` or None; refreshes the pool once (only) when it is not found."""
    attempts = (False, True) if refresh else (False,)
    for do_refresh in attempts:
        if do_refresh:
            refresh_pool(pool)
        try:
            return pool.storageVolLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                raise translate_libvirt_error(exc, "looking up volume %r in pool %r" % (name, pool.name()))
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


def disk_users(conn):
    """Every domain disk with a source: dicts domain, active, target, device, path, pool, volume."""
    users = []
    with libvirt_errors("listing domains"):
        domains = conn.listAllDomains(0)
    for dom in domains:
        try:
            text = dom.XMLDesc(0)
            active = bool(dom.isActive())
            name = dom.name()
        except libvirt.libvirtError:  # the domain went away while we looked
            continue
        root = _xml.parse(text, "domain XML")
        for disk in root.findall("devices/disk"):
            src = disk.find("source")
            if src is None:
                continue
            users.append(dict(
                domain=name,
                active=active,
                target=_xml.find_attr(disk, "target", "dev"),
                device=disk.get("device"),
                path=src.get("file") or src.get("dev"),
                pool=src.get("pool"),
                volume=src.get("volume"),
            ))
    return users


def users_of(users, pool_name, vol_name, path):
    return [
        dict(domain=u["domain"], active=u["active"], target=u["target"])
        for u in users
        if (path and u["path"] == path) or (u["pool"] == pool_name and u["volume"] == vol_name)
    ]


def dependants(conn, path):
    """``pool/volume`` names of volumes (in any active pool) whose backing file is ``path``."""
    found = []
    with libvirt_errors("listing storage pools"):
        pools = conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
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


def volume_facts(conn, pool_name, vol, users=None, uri=None, model=None, rec=None):
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
    )
    if users is not None:
        facts["used_by"] = users_of(users, pool_name, model["name"], model["path"])
    return facts


def gather_volume_info(ctx):
    """``volume_info``: every volume of a pool, or the one named."""
    pool_name = ctx.params["pool"]
    name = ctx.params.get("name")
    pool = lookup_pool(ctx.conn, pool_name)
    if name is not None:
        validate_name(name)
        vol = lookup_volume(pool, name)
        vols = [vol] if vol is not None else []
    else:
        refresh_pool(pool)
        with libvirt_errors("listing volumes of pool %r" % pool_name):
            vols = pool.listAllVolumes(0)
    users = disk_users(ctx.conn)
    facts = []
    for vol in vols:
        try:
            facts.append(volume_facts(ctx.conn, pool_name, vol, users, uri=ctx.uri))
        except NotFoundError:  # deleted by someone else meanwhile
            continue
    facts.sort(key=lambda f: f["name"])
    for item in facts:
        if item["record"] is not None and item["reported_format"] != item["format"]:
            ctx.warn("volume %r is recorded as %s, but libvirt probes its content as %s: the content was written by a "
                     "guest or outside this collection; it is used as %s"
                     % (item["name"], item["format"], item["reported_format"], item["format"]))
        if item["record"] is not None and not item["record"]["complete"]:
            ctx.warn("volume %r is incomplete: its fill from %s did not finish" % (item["name"], item["record"]["source"]))
    return dict(changed=False, volumes=facts)


def delete_by_name(conn, pool_name, name):
    """Delete volume ``name`` of pool ``pool_name`` if it is there, looked up through ``conn`` (undo steps:
    the connection may be a new one)."""
    with libvirt_errors("looking up storage pool %r" % pool_name):
        try:
            pool = conn.storagePoolLookupByName(pool_name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                return
            raise
    vol = lookup_volume(pool, name)
    if vol is not None:
        retry_busy(lambda: vol.delete(0), "deleting volume %r" % name)


def record_fill(path, rec, complete):
    """Mark the record at ``path`` (None: none is kept) complete, or write it as it is."""
    if path:
        _record.write_record(path, dict(rec, complete=True, filler=None) if complete else rec)


# --- sparse upload through a libvirt stream -----------------------------------------------------


def _read_handler(_stream, nbytes, fd):
    return os.read(fd, nbytes)


def _skip_handler(_stream, length, fd):
    return os.lseek(fd, length, os.SEEK_CUR)


def _hole_handler(_stream, fd):
    """[in_data, length] of the section at the current offset (libvirt's sparse stream protocol)."""
    cur = os.lseek(fd, 0, os.SEEK_CUR)
    end = os.fstat(fd).st_size
    try:
        data = os.lseek(fd, cur, os.SEEK_DATA)
    except OSError:  # ENXIO: trailing hole or at EOF
        data = -1
    if data < 0:
        result = [False, end - cur]
    elif data > cur:
        result = [False, data - cur]
    else:
        hole = os.lseek(fd, data, os.SEEK_HOLE)
        result = [True, hole - data]
    os.lseek(fd, cur, os.SEEK_SET)
    return result


@contextlib.contextmanager
def volume_stream(conn, what):
    """A libvirt stream for one volume upload or download: finished when the block ends, aborted
    (and the error translated, ``what`` saying what was being done) when it fails."""
    with libvirt_errors(what):
        stream = conn.newStream(0)
        try:
            yield stream
            stream.finish()
        except Exception:
            try:
                stream.abort()
            except libvirt.libvirtError:
                pass
            raise


def upload_file(conn, vol, path, sparse):
    """Write the bytes of ``path`` into ``vol`` from offset 0 (sparse: skip holes; the volume is new)."""
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        with volume_stream(conn, "uploading %s into volume %r" % (path, vol.name())) as stream:
            if sparse:
                vol.upload(stream, 0, size, libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
                stream.sparseSendAll(_read_handler, _hole_handler, _skip_handler, fd)
            else:
                vol.upload(stream, 0, size, 0)
                stream.sendAll(_read_handler, fd)
    finally:
        os.close(fd)


# --- the resource -------------------------------------------------------------------------------


def _round_up(value, step):
    return -(-int(value) // step) * step


def normal_capacity(capacity, fmt):
    """The capacity libvirt will report: qemu-img sizes qcow2 images in whole KiB."""
    if capacity is None:
        return None
    return _round_up(capacity, 1024) if fmt == "qcow2" else int(capacity)


class VolumeResource(Resource):
    kind = "volume"

    def __init__(self, ctx):
        super(VolumeResource, self).__init__(ctx)
        p = self.params
        validate_name(p["name"])
        if not p.get("pool"):
            raise InvalidInputError("pool must not be empty")
        for key in ("backing_volume", "clone_from"):
            if p.get(key) is not None:
                validate_name(p[key], key)
        if p.get("backing_volume") is not None and p["backing_volume"] == p["name"]:
            raise InvalidInputError("a volume cannot be its own backing_volume")
        if p.get("clone_from") is not None and p["clone_from"] == p["name"]:
            raise InvalidInputError("a volume cannot be cloned from itself")
        self.capacity = parse_size(p["capacity"], "capacity", allow_zero=False) if p.get("capacity") is not None else None
        if p.get("checksum") is not None:
            parse_checksum(p["checksum"])
        if p.get("source") is not None and not p["source"].strip():
            raise InvalidInputError("source must not be empty")
        timeout_seconds(p.get("timeout"), "timeout")
        if p.get("backing_volume") is not None and p.get("format") == "raw":
            raise InvalidInputError("a linked clone (backing_volume) is always qcow2, not raw")
        if p.get("preallocation") == "metadata" and p.get("format") == "raw":
            raise InvalidInputError("preallocation=metadata needs format qcow2")
        if p.get("state") == "present" and not any(p.get(k) for k in ("capacity", "source", "backing_volume", "clone_from")):
            self._need_capacity = True
        else:
            self._need_capacity = False
        self._pool = None
        self._pool_missing = False
        self._vol = None
        self._users = None
        self._record = None
        self._work = {}

    # --- lookups -------------------------------------------------------------------------------

    @property
    def pool(self):
        """The active pool; None when it does not exist (then the volume is absent: in check mode
        an earlier task may create the pool, which is assumed when the volume should be present)."""
        if self._pool is None and not self._pool_missing:
            try:
                self._pool = lookup_pool(self.ctx.conn, self.params["pool"])
            except NotFoundError as exc:
                self._pool_missing = True
                if self.params.get("state") != "absent":
                    self.ctx.assume(exc)
            except ConflictError as exc:  # not active: an earlier task may start it
                if self.params.get("state") == "absent":
                    raise
                self._pool_missing = True
                self.ctx.assume(exc)
        return self._pool

    def _qemu_img(self):
        return QemuImg(run=self.ctx.run_command)

    def _domain_users(self, path):
        if self._users is None:
            self._users = disk_users(self.ctx.conn)
        return users_of(self._users, self.params["pool"], self.name, path)

    # --- Resource API --------------------------------------------------------------------------

    def read(self):
        if self.pool is None:
            return None
        self._vol = lookup_volume(self.pool, self.name)
        if self._vol is None:
            return None
        try:
            model, rec = model_and_record(self._vol, self.ctx.uri)
        except NotFoundError:
            # libvirt still listed a file that was removed behind its back (another host on a shared
            # directory, an rm): after a refresh the pool shows what is really there.
            refresh_pool(self.pool)
            self._vol = lookup_volume(self.pool, self.name, refresh=False)
            if self._vol is None:
                return None
            model, rec = model_and_record(self._vol, self.ctx.uri)
        if rec is not None and not rec.get("complete") and _record.filler_state(rec) == "alive":
            return self._wait_for_filler()
        self._record = rec
        return volume_facts(self.ctx.conn, self.params["pool"], self._vol, uri=self.ctx.uri, model=model, rec=rec)

    def _wait_for_filler(self, sleep=time.sleep, clock=time.monotonic):
        """Another task is filling this volume right now: wait until it is done (or gave up) and read again."""
        deadline = clock() + FILL_WAIT_SECONDS
        while True:
            vol = lookup_volume(self.pool, self.name)
            rec = model_and_record(vol, self.ctx.uri)[1] if vol is not None else None
            if rec is None or rec.get("complete") or _record.filler_state(rec) != "alive":
                return self.read()
            if clock() >= deadline:
                raise ConflictError("volume %r is still being filled by another task (pid %s) after %d s"
                                    % (self.name, (rec.get("filler") or {}).get("pid"), FILL_WAIT_SECONDS))
            sleep(1.0)

    def desired(self, current):
        if self.params["state"] == "absent":
            return None
        return dict(
            format=self.params.get("format"),
            capacity=self.capacity,
            backing_volume=self.params.get("backing_volume"),
        )

    def compare(self, current, desired):
        if current is not None and desired is not None:
            desired = dict(desired, capacity=normal_capacity(desired["capacity"], current["format"]))
        return super(VolumeResource, self).compare(current, desired)

    def predict(self, current, desired):
        if desired is None:
            return None
        if current is not None:
            out = dict(current)
            if desired["capacity"] is not None:
                out["capacity"] = normal_capacity(desired["capacity"], current["format"])
            return out
        fmt = self._new_format()
        target = pool_target_path(self.pool) if self.pool is not None else None
        rec = None
        if target and uri_is_local(self.ctx.uri) and os.path.isdir(target):
            rec = record_view(dict(self._new_record(fmt), complete=True))
        return dict(
            name=self.name, pool=self.params["pool"], path=os.path.join(target, self.name) if target else None,
            type="file", format=fmt, reported_format=fmt, record=rec, capacity=normal_capacity(desired["capacity"], fmt),
            allocation=None, backing_volume=desired["backing_volume"], backing_chain=None,
        )

    def diff_views(self, current, desired):
        """A new volume shows what it will be (name, pool, path, format, capacity, backing volume),
        not only the options given (a volume made from ``source`` alone showed ``after: {}``)."""
        before, after = super(VolumeResource, self).diff_views(current, desired)
        if current is None and desired is not None:
            predicted = self.predict(current, desired)
            after = dict((k, v) for k, v in predicted.items()
                         if v is not None and k not in ("allocation", "backing_chain", "reported_format", "record"))
            if self.params.get("clone_from"):
                after["clone_from"] = self.params["clone_from"]
            after["state"] = "present"
        return before, after

    def result(self, state, outcome):
        return dict(volume=state)

    def plan(self, current, desired, diff, plan):
        if desired is None:
            if current is not None:
                self._plan_delete(current, plan)
            return
        if current is None:
            self._plan_create(plan)
            return
        reason = self._refill_reason(current, plan)
        if reason:
            self._plan_refill(current, reason, plan)
            return
        self._plan_update(current, diff, plan)

    # --- delete --------------------------------------------------------------------------------

    def _plan_delete(self, current, plan):
        pool = self.params["pool"]
        users, deps = usage(self.ctx).users_of([current["path"]], [(pool, self.name)],
                                               exclude_volumes=["%s/%s" % (pool, self.name)])
        error = in_use_error("volume %r of pool %r" % (self.name, pool), users, deps,
                             advice="remove those VMs (or their disks) and volumes first", action="delete it")
        guard(self.ctx, error, self.params.get("force"), plan.warn)
        vol = self._vol
        if self.params.get("wipe"):
            plan.add("wipe volume %r" % self.name, lambda: self._call(vol.wipe, 0, what="wiping volume %r" % self.name))
        plan.add("delete volume %r from pool %r" % (self.name, self.params["pool"]),
                 lambda: self._call(vol.delete, 0, what="deleting volume %r" % self.name))

    @staticmethod
    def _call(func, *args, **kwargs):
        what = kwargs.pop("what")
        return retry_busy(lambda: func(*args), what)

    # --- update --------------------------------------------------------------------------------

    def _plan_update(self, current, diff, plan):
        want_fmt = self.params.get("format")
        if want_fmt is not None and want_fmt != current["format"]:
            raise ConflictError(
                "volume %r exists with format %s, not %s: the format of an existing volume is not converted; "
                "delete it first or use another name" % (self.name, current["format"], want_fmt),
                current_format=current["format"],
            )
        want_backing = self.params.get("backing_volume")
        if want_backing is not None and want_backing != current["backing_volume"]:
            raise ConflictError(
                "volume %r exists with backing volume %r, not %r: the backing file of an existing volume is not changed"
                % (self.name, current["backing_volume"], want_backing),
            )
        if not diff.touches("capacity"):
            return
        size = normal_capacity(self.capacity, current["format"])
        users = self._domain_users(current["path"])
        running = [u for u in users if u["active"]]
        if size < current["capacity"]:
            if not self.params.get("allow_shrink"):
                raise InvalidInputError(
                    "volume %r is %d bytes; shrinking it to %d bytes loses data: set allow_shrink=true to do it anyway"
                    % (self.name, current["capacity"], size),
                )
            if running:
                raise ConflictError("volume %r is in use by running domain %r: it cannot be shrunk online"
                                    % (self.name, running[0]["domain"]))
            plan.add("shrink volume %r from %d to %d bytes" % (self.name, current["capacity"], size),
                     lambda: self._resize(size, shrink=True))
        elif running:
            user = running[0]
            plan.add("grow volume %r online (domain %r, disk %s) from %d to %d bytes"
                     % (self.name, user["domain"], user["target"], current["capacity"], size),
                     lambda: self._block_resize(user, size))
        else:
            plan.add("grow volume %r from %d to %d bytes" % (self.name, current["capacity"], size),
                     lambda: self._resize(size))

    def _resize(self, size, shrink=False, vol=None):
        vol = vol or self._vol
        flags = libvirt.VIR_STORAGE_VOL_RESIZE_SHRINK if shrink else 0
        self._call(vol.resize, size, flags, what="resizing volume %r" % self.name)

    def _block_resize(self, user, size):
        with libvirt_errors("growing disk %s of domain %r" % (user["target"], user["domain"])):
            dom = self.ctx.conn.lookupByName(user["domain"])
            dom.blockResize(user["target"], size, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
        refresh_pool(self.pool)

    # --- create --------------------------------------------------------------------------------

    def _new_format(self):
        p = self.params
        if p.get("format"):
            return p["format"]
        if p.get("backing_volume"):
            return "qcow2"
        if p.get("clone_from"):
            src = self._clone_source()
            if src is not None and src["format"] in VOLUME_FORMATS:
                return src["format"]
        if p.get("source") and p.get("source_format") in VOLUME_FORMATS:
            return p["source_format"]
        return "qcow2" if not p.get("source") else None  # a source keeps its probed format when it is raw or qcow2

    def _fill_source(self):
        """What goes into the new volume, as its record names it: the source, or the volume it copies."""
        p = self.params
        if p.get("source"):
            return p["source"]
        if p.get("clone_from"):
            return "volume:%s/%s" % (p["pool"], p["clone_from"])
        return None

    def _new_record(self, fmt, backing_format=None, checksum=None):
        source = self._fill_source()
        return _record.new_record(fmt, "volume", backing_format=backing_format, source=source,
                                  checksum=checksum or self.params.get("checksum"), complete=source is None)

    def _create_flags(self):
        if self.params.get("preallocation") == "metadata":
            return libvirt.VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA
        return 0

    def _create_xml(self, xml, what, rec, from_vol=None):
        """Create the volume (a copy of ``from_vol``) and record ``rec`` on it.  When another task created
        it at the same time, wait for that task and use its volume if it is what this task makes."""
        text = _xml.to_string(xml, pretty=False)

        def create():
            if from_vol is not None:
                return self.pool.createXMLFrom(text, from_vol, 0)
            return self.pool.createXML(text, self._create_flags())

        for _attempt in range(2):
            self._work["ours"] = True  # the undo deletes the volume of this name (partial step)
            try:
                vol = retry_busy(create, what)
            except ConflictError as exc:
                if not exists_already(exc):
                    raise
                self._work["ours"] = False
                vol = self._adopt(rec)
                if vol is None:
                    continue  # the other task gave up and removed it: make it here
                self._work["adopted"] = vol
                return vol
            self._work["vol"] = vol
            model = parse_volume_xml(volume_xml(vol))
            self._work["record_path"] = _record.local_file(self.ctx.uri, model)
            self._work["record"] = rec
            record_fill(self._work["record_path"], rec, complete=False)
            return vol
        raise ConflictError("volume %r is created and removed again by another task at the same time" % self.name)

    def _adopt(self, rec, sleep=time.sleep, clock=time.monotonic):
        """The volume was created by another task since this run read the pool: wait while that task fills
        it; None when it went away again, else the volume when it is what this task makes."""
        deadline = clock() + FILL_WAIT_SECONDS
        grace = clock() + 5  # the other task records the volume right after creating it
        while True:
            vol = lookup_volume(self.pool, self.name)
            if vol is None:
                return None
            model, theirs = model_and_record(vol, self.ctx.uri)
            seen = _record.local_file(self.ctx.uri, model) is not None
            busy = theirs is not None and not theirs.get("complete") and _record.filler_state(theirs) == "alive"
            if (busy or (theirs is None and seen and clock() < grace)) and clock() < deadline:
                sleep(0.5)
                continue
            break
        if theirs is None:
            fmt = model["format"]
        elif not theirs.get("complete"):
            raise ConflictError("volume %r was created at the same time by another task, which did not finish filling "
                                "it; run this task again to make it anew" % self.name)
        else:
            fmt = theirs["format"]
            if theirs.get("source_sha256") != rec.get("source_sha256") or (
                    self.params.get("checksum") and not same_checksum(self.params["checksum"], theirs.get("checksum"))):
                raise ConflictError("volume %r was created at the same time by another task from %s, not from %s"
                                    % (self.name, theirs.get("source") or "nothing", rec.get("source") or "nothing"))
        if rec.get("format") not in (None, fmt):
            raise ConflictError("volume %r was created at the same time by another task as %s, not %s"
                                % (self.name, fmt, rec["format"]))
        self.ctx.warn("volume %r was created at the same time by another task; this task uses it as it is" % self.name)
        return vol

    def _delete_created(self):
        """Undo of a creation (also of one that broke off): by name, through the current connection.
        Nothing is forgotten before the deletion succeeded: the plan may run this undo again."""
        if self._work.get("ours"):
            delete_by_name(self.ctx.conn, self.params["pool"], self.name)
        self._work.pop("ours", None)
        self._work.pop("vol", None)

    def _plan_create(self, plan):
        p = self.params
        if p.get("source"):
            self._plan_from_source(plan)
        elif p.get("backing_volume"):
            self._plan_linked_clone(plan)
        elif p.get("clone_from"):
            self._plan_full_clone(plan)
        else:
            if self._need_capacity:
                raise InvalidInputError("capacity is required to create the empty volume %r" % self.name)
            fmt = self._new_format()
            size = normal_capacity(self.capacity, fmt)
            allocation = size if p.get("preallocation") == "full" else 0
            xml = build_volume_xml(self.name, size, fmt, allocation=allocation)
            plan.add("create empty %s volume %r of %d bytes in pool %r" % (fmt, self.name, size, p["pool"]),
                     lambda: self._create_xml(xml, "creating volume %r" % self.name, self._new_record(fmt)),
                     self._delete_created, partial=True)

    def _base(self, key):
        """The volume ``key`` names and its model; (None, None) when it is assumed (check mode: an
        earlier task creates it, or its pool)."""
        name = self.params[key]
        if self.pool is None:
            return None, None
        vol = lookup_volume(self.pool, name)
        if vol is None:
            self.ctx.assume(NotFoundError("%s %r does not exist in pool %r" % (key, name, self.params["pool"])))
            return None, None
        model = parse_volume_xml(volume_xml(vol))
        trusted = _trust.trusted_volume(self.ctx.conn, self.ctx.uri, model, self._qemu_img(), "%s %r" % (key, name),
                                        chain=lambda: backing_chain(self.ctx.conn, model))
        return vol, dict(model, format=trusted["format"], checked=trusted["checked"])

    def _clone_source(self):
        """The volume ``clone_from`` names, checked: dict of its report with the trusted format (None when
        it is assumed in check mode)."""
        if "clone_source" not in self._work:
            self._work["clone_source"] = self._base("clone_from")
        return self._work["clone_source"][1]

    def _plan_linked_clone(self, plan):
        base_vol, base = self._base("backing_volume")
        if base_vol is None:
            plan.add("create volume %r as a qcow2 overlay on %r" % (self.name, self.params["backing_volume"]))
            return
        size = normal_capacity(max(self.capacity or 0, base["capacity"] or 0), "qcow2")
        if self.capacity is not None and self.capacity < base["capacity"]:
            raise InvalidInputError("capacity %d is smaller than backing volume %r (%d bytes)"
                                    % (self.capacity, base_vol.name(), base["capacity"]))
        # the base's trusted format, not libvirt's probe: a base recorded raw stays raw below the overlay
        xml = build_volume_xml(self.name, size, "qcow2", backing_path=base["path"], backing_format=base["format"])
        rec = self._new_record("qcow2", backing_format=base["format"])
        plan.add("create volume %r as a qcow2 overlay on %r" % (self.name, base_vol.name()),
                 lambda: self._create_xml(xml, "creating linked clone %r" % self.name, rec), self._delete_created,
                 partial=True)

    def _plan_full_clone(self, plan):
        self._clone_source()
        src_vol, src = self._work["clone_source"]
        if src_vol is None:
            plan.add("create volume %r as a full copy of %r" % (self.name, self.params["clone_from"]))
            return
        fmt = self._new_format()
        if self.capacity is not None and self.capacity < src["capacity"]:
            raise InvalidInputError("capacity %d is smaller than the volume %r it is cloned from (%d bytes)"
                                    % (self.capacity, src_vol.name(), src["capacity"]))
        xml = build_volume_xml(self.name, normal_capacity(src["capacity"], fmt), fmt, allocation=0)
        rec = self._new_record(fmt)
        if src["checked"] == "report":
            # libvirt copies with the format it probes: only when nothing else is known of the source
            plan.add("create volume %r as a full %s copy of %r" % (self.name, fmt, src_vol.name()),
                     lambda: self._create_xml(xml, "cloning volume %r" % src_vol.name(), rec, from_vol=src_vol),
                     self._delete_created, partial=True)
        else:
            plan.add("create volume %r in pool %r for a full %s copy of %r"
                     % (self.name, self.params["pool"], fmt, src_vol.name()),
                     lambda: self._create_xml(xml, "creating volume %r" % self.name, rec), self._delete_created,
                     partial=True)
            plan.add("copy volume %r (%s) into volume %r" % (src_vol.name(), src["format"], self.name),
                     lambda: self._copy_into(src["path"], src["format"], fmt))
        size = normal_capacity(self.capacity, fmt)
        if size is not None and size > src["capacity"]:
            plan.add("grow volume %r to %d bytes" % (self.name, size), lambda: self._resize(size, vol=self._work["vol"]))

    def _copy_into(self, src_path, src_fmt, fmt):
        """Fill the new volume with qemu-img, reading the source with its known format (``-f``)."""
        if self._work.get("adopted") is not None:
            return
        with libvirt_errors("reading the path of volume %r" % self.name):
            dst = self._work["vol"].path()
        self._qemu_img().convert(src_path, dst, fmt, src_fmt=src_fmt, target_exists=True)
        record_fill(self._work["record_path"], self._work["record"], complete=True)
        refresh_pool(self.pool)

    # --- create from a source image ------------------------------------------------------------

    def _refill_reason(self, current, plan):
        """Why the existing volume must be made again from its source (None: it need not)."""
        rec, p = self._record, self.params
        if rec is None or not rec.get("source"):
            return None  # not filled by this collection, or no record is kept here
        wanted = self._fill_source()
        if not rec.get("complete"):
            if _record.filler_state(rec) == "elsewhere":
                raise ConflictError("volume %r is being filled from another host (%s), or that fill died: remove "
                                    "it (state=absent) to fill it again" % (self.name, rec["filler"].get("host")))
            reason = "its fill from %s did not complete" % rec["source"]
        elif wanted is not None and _record.source_id(wanted) != rec.get("source_sha256"):
            reason = "it was filled from %s, not from %s" % (rec["source"], _record.redact_source(wanted))
        elif p.get("checksum") and not same_checksum(p["checksum"], rec.get("checksum")):
            reason = "it was filled from content with checksum %s, not %s" % (rec.get("checksum"), p["checksum"])
        else:
            return None
        if wanted is None:
            plan.warn("volume %r is incomplete (%s): give source or clone_from to fill it again, or remove it"
                      % (self.name, reason))
            return None
        return reason

    def _plan_refill(self, current, reason, plan):
        users = sorted(set(u["domain"] for u in self._domain_users(current["path"])))
        deps = [d for d in dependants(self.ctx.conn, current["path"]) if d != "%s/%s" % (self.params["pool"], self.name)]
        if users or deps:
            raise ConflictError("volume %r must be made again (%s), but %s: give the new content another name"
                                % (self.name, reason, "VM(s) %s use it" % ", ".join(users) if users
                                   else "it is the backing file of %s" % ", ".join(deps)),
                                used_by=users, dependants=deps)
        label = "delete volume %r to make it again: %s" % (self.name, reason)

        def remove():
            delete_by_name(self.ctx.conn, self.params["pool"], self.name)

        if self.params.get("source"):
            self._plan_from_source(plan, replace=(label, remove))
        else:
            plan.add(label, remove)
            self._plan_create(plan)

    def _plan_from_source(self, plan, replace=None):
        p = self.params
        source = p["source"]
        if not is_url(source):
            if "://" in source:
                raise InvalidInputError("source must be a local path or an http(s) URL, not %r" % source)
            try:
                check_source_path(source)
            except NotFoundError as exc:
                self.ctx.assume(exc)  # an earlier task may download or build it
        what = "download %s" % source if is_url(source) else "read %s" % source
        if p.get("checksum"):
            what += " and verify its %s checksum" % parse_checksum(p["checksum"])[0]
        plan.add(what, self._prepare_source, self._remove_tmp)
        if replace is not None:
            plan.add(*replace)
        plan.add("create volume %r in pool %r from the image" % (self.name, p["pool"]), self._create_for_upload,
                 self._delete_created, partial=True)
        plan.add("upload the image into volume %r" % self.name, self._upload)
        if self.capacity is not None:
            plan.add("grow volume %r to the requested capacity" % self.name, self._grow_after_upload)
        plan.add("remove temporary files", self._remove_tmp)

    def _tmpdir(self):
        if "tmpdir" not in self._work:
            self._work["tmpdir"] = tempfile.mkdtemp(prefix="virtops-volume-")
        return self._work["tmpdir"]

    def _remove_tmp(self):
        tmpdir = self._work.pop("tmpdir", None)
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def _prepare_source(self):
        """Fetch, verify, decompress and convert the source into the temp dir; remember the result."""
        try:
            self._fetch_and_convert()
        except BaseException:
            self._remove_tmp()  # this step's own undo does not run when the step itself fails
            raise

    def _fetch_and_convert(self):
        p = self.params
        source = p["source"]
        if is_url(source):
            path = os.path.join(self._tmpdir(), "download")
            download(source, path, validate_certs=p.get("validate_certs", True), timeout=p.get("timeout") or 60)
        else:
            path = source
        if p.get("checksum"):
            verify_checksum(path, p["checksum"], what=source)
            checksum = "%s:%s" % parse_checksum(p["checksum"])
        else:
            checksum = "sha256:%s" % file_digest(path, "sha256")  # recorded: what went into the volume
        kind = detect_compression(path)
        if kind:
            plain = os.path.join(self._tmpdir(), "decompressed")
            decompress_file(path, plain, kind)
            path = plain
        qemu_img = self._qemu_img()
        facts = _trust.check_image(qemu_img, path, p.get("source_format"), "source image %s" % source)
        src_fmt = facts["format"]
        fmt = p.get("format") or (src_fmt if src_fmt in VOLUME_FORMATS else "qcow2")
        if src_fmt != fmt:
            converted = os.path.join(self._tmpdir(), "converted")
            qemu_img.convert(path, converted, fmt, src_fmt=src_fmt)
            path = converted
        vsize = facts["virtual_size"]
        if self.capacity is not None and normal_capacity(self.capacity, fmt) < vsize:
            raise InvalidInputError("capacity %d is smaller than the source image (%d bytes)" % (self.capacity, vsize))
        self._work.update(image=path, format=fmt, virtual_size=vsize, checksum=checksum)

    def _create_for_upload(self):
        image, fmt = self._work["image"], self._work["format"]
        # the upload overwrites the file from offset 0: the volume must hold every byte of the image file
        size = max(self._work["virtual_size"], os.path.getsize(image))
        xml = build_volume_xml(self.name, normal_capacity(size, fmt), fmt, allocation=0)
        self._create_xml(xml, "creating volume %r" % self.name, self._new_record(fmt, checksum=self._work["checksum"]))

    def _upload(self):
        if self._work.get("adopted") is not None:
            return  # another task made and filled it (see _adopt)
        vol = self._work["vol"]
        upload_file(self.ctx.conn, vol, self._work["image"], sparse=self._work["format"] == "raw")
        record_fill(self._work["record_path"], self._work["record"], complete=True)
        refresh_pool(self.pool)  # waits for libvirt's own refresh after the upload, then reads the new image

    def _grow_after_upload(self):
        vol = self._work.get("vol") or self._work["adopted"]
        size = normal_capacity(self.capacity, self._work["format"])
        current = parse_volume_xml(volume_xml(vol))["capacity"]
        if size > current:
            self._resize(size, vol=vol)

    def refresh(self):
        self._users = None
        return self.read()
