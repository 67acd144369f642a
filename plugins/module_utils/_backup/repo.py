# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A backup repository on the hypervisor: its layout, the manifests of its points, the catalog and its checks.

Layout
    ``<repository>/<vm>/<point>/`` holds one point in time of one VM: ``<target>.qcow2`` per disk,
    ``domain.xml`` (the persistent definition, without secrets), ``nvram.fd`` when the VM has NVRAM, and
    ``manifest.json``.  A point is written in ``<repository>/<vm>/.<point>.virtops-tmp-<pid>/`` and that
    directory is renamed to ``<point>`` when everything in it is complete: a point either exists whole or
    not at all.

The manifest is the only source of truth
    ``manifest.json`` holds the point's name, its time, its mode (``full`` or ``incremental``), its parent
    point, the libvirt checkpoint it made, the compression, how the point in time was taken, the VM's name
    and UUID, and per file its kind, disk target, format, size and SHA-256.  The catalog of a VM is read
    from the manifests of its points each time; nothing else records them, so nothing can disagree.

Chains
    An incremental point's disk files are qcow2 overlays holding only the clusters that changed since its
    parent; their header names ``../<parent>/<target>.qcow2`` as backing file, which is what makes the
    files usable with plain qemu-img.  Nothing reads through those header names: a restore rebuilds the
    chain from the manifests (:func:`chain_json`), file by file inside the VM's directory, each with an
    explicit format and the base with no backing at all.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import errno
import json
import os
import re
import shutil
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.fs import sha256_file

GENERATOR = "virtops.libvirt backup"
MANIFEST = "manifest.json"
DOMAIN_XML = "domain.xml"
NVRAM = "nvram.fd"
FORMAT_VERSION = 1
TMP_MARK = ".virtops-tmp-"
MODES = ("full", "incremental")
#: the longest chain a restore follows (a full point and its incrementals)
MAX_CHAIN = 256


class CorruptedError(BackendError):
    """A point's files do not match its manifest, or its chain is broken."""

    kind = "corrupted"


_POINT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,99}$")
_TARGET_RE = re.compile(r"^[a-z][a-z0-9]{1,15}$")


def validate_point(name, what="point"):
    """A point name: letters, digits, ``. _ : + -``, at most 100 characters, not starting with a dot."""
    if not isinstance(name, str) or not _POINT_RE.match(name):
        raise InvalidInputError("%s must be 1-100 characters of letters, digits and . _ : + -, starting with a "
                                "letter or digit, not %r" % (what, name))
    return name


def disk_file(target):
    if not _TARGET_RE.match(target or ""):
        raise InvalidInputError("disk target %r cannot name a backup file" % (target,))
    return "%s.qcow2" % target


def vm_dir(repository, vm):
    return os.path.join(repository, vm)


def point_dir(repository, vm, point):
    return os.path.join(repository, vm, point)


def tmp_point_dir(repository, vm, point):
    return os.path.join(repository, vm, ".%s%s%d" % (point, TMP_MARK, os.getpid()))


def point_name_now(clock=time.time):
    """A point name from the time: ``20261207T180102Z``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock()))


def iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def parse_time(text, what="time"):
    """Seconds since the epoch of an ISO 8601 UTC time (``2026-12-07T18:00:00Z``, ``2026-12-07 18:00``, a date)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    value = str(text or "").strip().replace(" ", "T")
    if value.endswith("Z"):
        value = value[:-1]
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d", "%Y%m%dT%H%M%S"):
        try:
            return float(calendar.timegm(time.strptime(value, fmt)))
        except ValueError:
            continue
    raise InvalidInputError("%s: %r is not a UTC time such as 2026-12-07T18:00:00Z" % (what, text))


def read_manifest(directory):
    """The manifest of the point in ``directory``, or None when it has none (or not one of ours)."""
    try:
        with open(os.path.join(directory, MANIFEST), "rb") as handle:
            data = json.loads(handle.read(4 * 1024 * 1024).decode("utf-8"))
    except (IOError, OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("generator") != GENERATOR or not isinstance(data.get("files"), list):
        return None
    return data


def _plain(name):
    return isinstance(name, str) and bool(name) and name not in (".", "..") and "/" not in name and "\x00" not in name


def list_vms(repository):
    try:
        names = sorted(os.listdir(repository))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return []
        raise NotFoundError("repository %s cannot be read: %s" % (repository, exc.strerror))
    return [n for n in names if not n.startswith(".") and os.path.isdir(os.path.join(repository, n))]


def load_points(repository, vm):
    """The points of ``vm`` in the repository, oldest first: dicts ``name``, ``manifest``, ``directory``.

    A directory without a readable manifest is reported as ``broken`` (not a point: a restore or a chain
    never uses it)."""
    base = vm_dir(repository, vm)
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return [], []
    points, broken = [], []
    for name in names:
        path = os.path.join(base, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        manifest = read_manifest(path)
        if manifest is None or manifest.get("point") != name:
            broken.append(name)
            continue
        points.append(dict(name=name, manifest=manifest, directory=path))
    points.sort(key=lambda p: (p["manifest"].get("created_epoch") or 0, p["name"]))
    return points, broken


def chain_of(points, name):
    """The chain of point ``name``: its base (a full point) first, ``name`` last.

    Raises InvalidInputError naming what breaks it (a missing parent, a loop, a point that is not there)."""
    by_name = dict((p["name"], p) for p in points)
    if name not in by_name:
        raise NotFoundError("point %r is not in the repository" % name)
    chain = []
    seen = set()
    current = by_name[name]
    while True:
        if current["name"] in seen or len(chain) >= MAX_CHAIN:
            raise InvalidInputError("the chain of point %r loops or is longer than %d points" % (name, MAX_CHAIN))
        seen.add(current["name"])
        chain.append(current)
        manifest = current["manifest"]
        if manifest.get("mode") == "full":
            break
        parent = manifest.get("parent")
        if manifest.get("mode") != "incremental" or not parent:
            raise InvalidInputError("point %r is neither a full point nor an incremental one with a parent"
                                    % current["name"])
        if parent not in by_name:
            raise InvalidInputError("point %r needs its parent %r, which is missing from the repository"
                                    % (current["name"], parent))
        current = by_name[parent]
    chain.reverse()
    return chain


def disk_files(manifest):
    return [f for f in manifest.get("files") or [] if isinstance(f, dict) and f.get("kind") == "disk"]


def point_size(point):
    return sum(int(f.get("size") or 0) for f in point["manifest"].get("files") or [] if isinstance(f, dict))


def check_point_files(point, checksums=True, on_bytes=None):
    """Problems of one point's own files: missing, another size, (``checksums``) another SHA-256."""
    problems = []
    for entry in point["manifest"].get("files") or []:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not _plain(name):
            problems.append("the manifest lists a file name that is not a plain name: %r" % (name,))
            continue
        path = os.path.join(point["directory"], name)
        try:
            size = os.stat(path).st_size
        except OSError:
            problems.append("%s is missing" % name)
            continue
        if size != entry.get("size"):
            problems.append("%s has %d bytes, the manifest says %s" % (name, size, entry.get("size")))
            continue
        if checksums and sha256_file(path, on_bytes=on_bytes) != entry.get("sha256"):
            problems.append("%s does not match its SHA-256 checksum (corrupted)" % name)
    return problems


def verify_point(points, name, checksums=True, cache=None):
    """Problems of point ``name`` with its whole chain (each point checked once per ``cache``)."""
    cache = {} if cache is None else cache
    try:
        chain = chain_of(points, name)
    except (InvalidInputError, NotFoundError) as exc:
        return [exc.msg]
    problems = []
    targets = sorted(f.get("target") for f in disk_files(chain[-1]["manifest"]))
    for link in chain:
        if link["name"] not in cache:
            cache[link["name"]] = check_point_files(link, checksums)
        own = cache[link["name"]]
        if link["name"] == name:
            problems.extend(own)
        elif own:
            problems.append("its chain is broken: point %r: %s" % (link["name"], "; ".join(own)))
        if sorted(f.get("target") for f in disk_files(link["manifest"])) != targets:
            problems.append("point %r of its chain has other disks" % link["name"])
    return problems


def chain_json(chain, target):
    """The ``json:`` image name qemu-img reads disk ``target`` of the last point of ``chain`` through: every
    link is a file of that chain's own point directories, qcow2, and the base has no backing file, whatever
    the images' headers say."""
    node = None
    for link in chain:
        name = disk_file(target)
        if not any(f.get("name") == name for f in disk_files(link["manifest"])):
            raise InvalidInputError("point %r has no disk %s" % (link["name"], target))
        node = dict(driver="qcow2", file=dict(driver="file", filename=os.path.join(link["directory"], name)),
                    backing=node)
    return "json:" + json.dumps(node, sort_keys=True)


def remove_tree(path):
    """Remove a directory tree; a missing one is fine."""
    if os.path.lexists(path):
        shutil.rmtree(path)


def remove_point(directory):
    """Remove a point so that no half of it stays: rename it to a hidden temporary name first."""
    parent, name = os.path.split(directory)
    hidden = os.path.join(parent, ".%s%s%d" % (name, TMP_MARK, os.getpid()))
    os.rename(directory, hidden)
    shutil.rmtree(hidden)
