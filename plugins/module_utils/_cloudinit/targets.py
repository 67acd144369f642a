# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a cloud-init seed is stored: a file on the managed node (:class:`FileTarget`) or a raw volume in
a libvirt storage pool (:class:`VolumeTarget`, downloaded and uploaded through libvirt streams).
Both read the existing seed back and add the steps that write or remove it to a plan.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import os
import stat

from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.filemode import parse_mode
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import refresh_pool, retry_busy
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.disks import disk_users, users_of
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import (
    lookup_pool,
    lookup_volume,
    parse_volume_xml,
    validate_name,
    volume_path,
    volume_xml,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_write import build_volume_xml, volume_stream
from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.options import DEFAULT_FILE_MODE, MAX_READ_BYTES
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.fs import atomic_write
from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.content import inspect_seed


class FileTarget:
    """A seed stored as a file on the managed node: written to a temporary file and renamed into place."""

    kind = "file"

    def __init__(self, path, mode=None, on_missing_dir=None):
        """``on_missing_dir(error)``: called when the directory of ``path`` does not exist (check
        mode: an earlier task may make it); without it the error is raised."""
        if not isinstance(path, str) or not os.path.isabs(path):
            raise InvalidInputError("path must be an absolute path, not %r" % (path,))
        self.on_missing_dir = on_missing_dir
        self.path = os.path.normpath(path)
        self.mode = parse_mode(mode)
        self.seed_id = "file:" + self.path
        self.label = self.path
        self._image = None

    def read(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackendError("cannot read %s: %s" % (self.path, exc))
        if stat.S_ISDIR(st.st_mode):
            raise InvalidInputError("path %s is a directory" % self.path)
        current = dict(path=self.path, mode=stat.S_IMODE(st.st_mode), owner=(st.st_uid, st.st_gid), raw=None)
        if st.st_size > MAX_READ_BYTES or not stat.S_ISREG(st.st_mode):
            current.update(is_seed=False, reason="not a regular file of at most %d bytes" % MAX_READ_BYTES,
                           files=None, content_sha256=None, instance_id=None)
            return current
        with open(self.path, "rb") as handle:
            current["raw"] = handle.read()
        current.update(inspect_seed(current["raw"]))
        return current

    def predicted_path(self, current):
        return self.path

    def desired_mode(self, current):
        if self.mode is not None:
            return self.mode
        return current["mode"] if current is not None else DEFAULT_FILE_MODE

    def check_writable(self):
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            error = NotFoundError("directory %s does not exist on the managed node" % parent)
            if self.on_missing_dir is None:
                raise error
            self.on_missing_dir(error)

    def _write(self, data, mode, owner=None):
        """Write ``data`` atomically (a temporary file beside the target, renamed over it); a replaced
        file keeps its owner and group."""
        atomic_write(self.path, data, mode)
        if owner is not None and owner != (os.getuid(), os.getgid()):
            try:
                os.chown(self.path, owner[0], owner[1])
            except PermissionError:
                pass

    def plan_write(self, plan, seed, builder, current):
        self.check_writable()
        mode = self.desired_mode(current)
        old = current["raw"] if current is not None else None
        old_mode = current["mode"] if current is not None else None
        owner = current["owner"] if current is not None else None

        def build():
            self._image = builder.build_checked(seed.files, seed.app_id)

        def write():
            self._write(self._image, mode, owner)

        def undo():
            if old is None:
                if os.path.exists(self.path):
                    os.unlink(self.path)
            else:
                self._write(old, old_mode, owner)

        plan.add("build the seed ISO with %s" % builder.name, build)
        plan.add("%s %s (a temporary file renamed into place)" % ("replace" if current else "write", self.path),
                 write, undo if current is None or old is not None else None)

    def plan_mode(self, plan, mode, current):
        old_mode = current["mode"]
        plan.add("set the mode of %s to %04o" % (self.path, mode), lambda: os.chmod(self.path, mode),
                 lambda: os.chmod(self.path, old_mode))

    def plan_remove(self, plan, current):
        old = current.get("raw")
        old_mode, owner = current["mode"], current["owner"]
        plan.add("remove %s" % self.path, lambda: os.unlink(self.path),
                 (lambda: self._write(old, old_mode, owner)) if old is not None else None)


def download_volume(conn, vol, length):
    """The first ``length`` bytes of volume ``vol`` through a libvirt stream (works for remote hosts)."""
    chunks = []
    with volume_stream(conn, "downloading volume %r" % vol.name()) as stream:
        vol.download(stream, 0, length, 0)
        stream.recvAll(lambda _stream, data, _opaque: chunks.append(data), None)
    return b"".join(chunks)


def upload_bytes(conn, vol, data):
    """Write ``data`` into volume ``vol`` from offset 0 through a libvirt stream."""
    source = io.BytesIO(data)
    with volume_stream(conn, "uploading the seed into volume %r" % vol.name()) as stream:
        vol.upload(stream, 0, len(data), 0)
        stream.sendAll(lambda _stream, nbytes, _opaque: source.read(nbytes), None)


class VolumeTarget:
    """A seed stored as a raw volume in an active libvirt storage pool (created, then uploaded)."""

    kind = "volume"

    def __init__(self, conn, pool_name, name, uri=None, on_missing_pool=None):
        """``on_missing_pool(error)``: called when the pool does not exist or is not active (the
        seed is then absent); without it the error is raised."""
        if not pool_name:
            raise InvalidInputError("pool must not be empty")
        validate_name(name)
        self.conn = conn
        self.uri = uri
        self.on_missing_pool = on_missing_pool
        self.pool_missing = False
        self.pool_name = pool_name
        self.name = name
        self.seed_id = "volume:%s/%s" % (pool_name, name)
        self.label = name
        self._pool = None
        self._vol = None
        self._created = None
        self._image = None
        self._users = None

    @property
    def pool(self):
        if self._pool is None and not self.pool_missing:
            try:
                self._pool = lookup_pool(self.conn, self.pool_name)
            except (NotFoundError, ConflictError) as exc:
                if self.on_missing_pool is None:
                    raise
                self.pool_missing = True
                self.on_missing_pool(exc)
        return self._pool

    def read(self):
        if self.pool is None:
            return None
        self._vol = lookup_volume(self.pool, self.name)
        if self._vol is None:
            return None
        model = parse_volume_xml(volume_xml(self._vol))
        current = dict(path=model["path"], format=model["format"], capacity=model["capacity"], raw=None)
        if model["format"] not in ("raw", "iso") or (model["capacity"] or 0) > MAX_READ_BYTES:
            current.update(is_seed=False, files=None, content_sha256=None, instance_id=None,
                           reason="a %s volume of %s bytes" % (model["format"], model["capacity"]))
            return current
        current["raw"] = download_volume(self.conn, self._vol, model["capacity"])
        current.update(inspect_seed(current["raw"]))
        return current

    def predicted_path(self, current):
        if current is not None:
            return current["path"]
        return volume_path(self.pool, self.name) if self.pool is not None else None

    def desired_mode(self, current):
        return None

    def domain_users(self, path):
        if self._users is None:
            self._users = disk_users(self.conn)
        return users_of(self._users, self.pool_name, self.name, path)

    def _call(self, func, what):
        return retry_busy(func, what)

    def _create(self, size):
        xml = _xml.to_string(build_volume_xml(self.name, size, "raw", allocation=0), pretty=False)
        self._created = self._call(lambda: self.pool.createXML(xml, 0), "creating volume %r" % self.name)
        # recorded raw: whatever libvirt probes from the ISO later, the seed is attached as raw
        path = _record.local_file(self.uri, parse_volume_xml(volume_xml(self._created)))
        if path:
            _record.write_record(path, _record.new_record("raw", "cloudinit"))
        return self._created

    def _delete_created(self):
        vol, self._created = self._created, None
        if vol is not None:
            self._call(lambda: vol.delete(0), "deleting the half-made volume %r" % self.name)

    def _restore(self, data):
        vol = self._create(len(data))
        self._created = None
        upload_bytes(self.conn, vol, data)
        refresh_pool(self.pool)

    def plan_write(self, plan, seed, builder, current):
        pool = self.pool_name

        def build():
            self._image = builder.build_checked(seed.files, seed.app_id)

        def create():
            self._create(len(self._image))

        def upload():
            upload_bytes(self.conn, self._created, self._image)
            refresh_pool(self.pool)

        plan.add("build the seed ISO with %s" % builder.name, build)
        if current is not None:
            old_vol, old = self._vol, current.get("raw")
            for user in self.domain_users(current["path"]):
                if user["active"]:
                    plan.warn("seed volume %r is attached to running domain %r (%s): the guest sees the new seed "
                              "only after it is restarted" % (self.name, user["domain"], user["target"]))
            plan.add("delete the old seed volume %r from pool %r" % (self.name, pool),
                     lambda: self._call(lambda: old_vol.delete(0), "deleting volume %r" % self.name),
                     (lambda: self._restore(old)) if old is not None else None)
        plan.add("create raw volume %r in pool %r for the seed" % (self.name, pool), create, self._delete_created)
        plan.add("upload the seed ISO into volume %r" % self.name, upload)

    def plan_remove(self, plan, current):
        vol, old = self._vol, current.get("raw")
        plan.add("delete seed volume %r from pool %r" % (self.name, self.pool_name),
                 lambda: self._call(lambda: vol.delete(0), "deleting volume %r" % self.name),
                 (lambda: self._restore(old)) if old is not None else None)
