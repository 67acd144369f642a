# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cloud-init seeds: the rendered seed (:func:`build_seed`), the content hash idempotency is built on,
what an existing image holds (:func:`inspect_seed`) and the seed's files as a diff text, secrets masked.

Idempotency compares content, never timestamps: the SHA-256 over the files of the existing seed is
compared with the one of the files that would be written.  The same hash is written into the ISO's
application identifier for people and tools (``isoinfo -d``), but it is not trusted for decisions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core import secrets as _secrets
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.crypt_hash import sha512_crypt
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.iso import VOLUME_ID, IsoReadError, read_iso
from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.options import APP_ID_PREFIX, MAX_CONTENT_BYTES, SEED_FILES
from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.render import (
    dump_yaml,
    plain,
    render_network_config,
    render_user_data,
    render_vendor_data,
    require_yaml,
)

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the managed node
    yaml = None


# --- masking for diffs -----------------------------------------------------------------------------

_CRYPT_HASH_IN_TEXT = re.compile(r"\$(?:1|2[abxy]?|5|6|7|y|gy|sha1|md5)\$[^\s'\"]+")
_SECRET_LINE = re.compile(r"^(\s*(?:-\s+)?(?:password|passwd|hashed_passwd|plain_text_passwd)\s*:\s*)(\S.*)$",
                          re.MULTILINE)


_MASK_SALT = "virtops.mask"


def _fingerprint(secret):
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:8]


def _slow_fingerprint(secret):
    """A fingerprint of a clear-text secret that costs a guesser as much as its SHA-512 crypt hash."""
    return _fingerprint(sha512_crypt(secret, _MASK_SALT))


def mask_secrets(text, secrets=()):
    """``text`` with crypt hashes, password values and the given ``secrets`` replaced by ``<masked ...>``.

    A short fingerprint makes a changed password visible in a diff without showing it: 8 hex digits
    of a SHA-256 of the crypt hash, or of a SHA-512 crypt of a clear-text value (so that testing a
    guess against it costs as much as against the hash in the seed).
    """
    text = _CRYPT_HASH_IN_TEXT.sub(lambda m: "<masked password hash %s>" % _fingerprint(m.group(0)), text)
    text = _SECRET_LINE.sub(lambda m: m.group(1) + (m.group(2) if m.group(2).startswith("<masked")
                                                    else "<masked password %s>" % _slow_fingerprint(m.group(2))), text)
    return _secrets.mask(text, secrets, lambda s: "<masked secret %s>" % _slow_fingerprint(s))


def content_sha256(files):
    """SHA-256 (hex) over a seed's files: for each name in sorted order, name, NUL, length, NUL, bytes.

    Only the files count (no ISO metadata, no timestamps), so a seed read back from any ISO, whatever
    tool wrote it, hashes the same as the files it was built from.
    """
    hasher = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        hasher.update(name.encode("utf-8") + b"\0" + str(len(data)).encode("ascii") + b"\0")
        hasher.update(data)
    return hasher.hexdigest()


def default_instance_id(files):
    """``iid-`` + 20 hex digits of :func:`content_sha256` of ``files`` (meta-data without instance-id).

    Any change of user-data, network-config, vendor-data or the rest of meta-data gives a new
    instance-id, so cloud-init treats the changed seed as a new instance.
    """
    return "iid-" + content_sha256(files)[:20]


class Seed:
    """A rendered seed: ``files`` (name -> bytes, in :data:`SEED_FILES` order), ``instance_id``,
    ``content_sha256``, ``app_id`` (the ISO application identifier) and ``warnings``."""

    def __init__(self, files, instance_id, warnings_list):
        self.files = files
        self.instance_id = instance_id
        self.content_sha256 = content_sha256(files)
        self.app_id = APP_ID_PREFIX + self.content_sha256[:40].upper()
        self.warnings = list(warnings_list)

    def file_list(self):
        return file_list(self.files)


def file_list(files):
    """``[{name, size}]`` in :data:`SEED_FILES` order (other names after, sorted)."""
    order = [n for n in SEED_FILES if n in files] + sorted(n for n in files if n not in SEED_FILES)
    return [dict(name=n, size=len(files[n])) for n in order]


def build_seed(options, seed_id):
    """Validate ``options`` and render the seed; raises InvalidInputError, never does I/O.

    ``options`` is a dict with the keys of :data:`SEED_OPTIONS` (missing keys = not given).
    ``seed_id`` identifies where the seed is stored (``volume:POOL/NAME`` or ``file:PATH``); it
    salts password hashes so that they are stable for one seed and differ between seeds.
    Warnings (unknown cloud-config keys...) are in ``Seed.warnings``.
    """
    require_yaml()
    warnings_list = []
    warn = warnings_list.append
    user_data = render_user_data(options, seed_id, warn)
    network = render_network_config(options.get("network_config"), warn)
    vendor = render_vendor_data(options.get("vendor_data"), warn)

    meta = options.get("meta_data")
    if meta is not None and not isinstance(meta, dict):
        raise InvalidInputError("meta_data must be a dict")
    meta = plain(meta or {}, "meta_data")
    hostname = options.get("hostname")
    if hostname is not None:
        if meta.get("local-hostname") not in (None, hostname):
            raise InvalidInputError("hostname %r and meta_data local-hostname %r differ: give one"
                                    % (hostname, meta["local-hostname"]))
        meta["local-hostname"] = hostname
    instance_id = meta.pop("instance-id", None)
    if instance_id is not None and (isinstance(instance_id, (bool, dict, list)) or str(instance_id).strip() == ""):
        raise InvalidInputError("meta_data instance-id must be a non-empty string")

    files = {"user-data": user_data, "meta-data": dump_yaml(meta).encode("utf-8")}
    if network is not None:
        files["network-config"] = network
    if vendor is not None:
        files["vendor-data"] = vendor
    if instance_id is None:
        instance_id = default_instance_id(files)
    meta["instance-id"] = str(instance_id)
    files["meta-data"] = dump_yaml(meta).encode("utf-8")
    files = dict((n, files[n]) for n in SEED_FILES if n in files)
    total = sum(len(v) for v in files.values())
    if total > MAX_CONTENT_BYTES:
        raise InvalidInputError("the seed's files are %d bytes; at most %d are supported" % (total, MAX_CONTENT_BYTES))
    return Seed(files, str(instance_id), warnings_list)


def seed_texts(files, secrets=()):
    """The seed's files as one text for diffs (``# ---- name ----`` headers), secrets masked: the
    crypt hashes and password lines, the given ``secrets`` and those the files show themselves."""
    parts = []
    for entry in file_list(files):
        text = files[entry["name"]].decode("utf-8", "replace")
        hidden = set(secrets) | _secrets.text_secrets(text)
        parts.append("# ---- %s ----\n%s%s" % (entry["name"], mask_secrets(text, hidden), "" if text.endswith("\n") else "\n"))
    return "".join(parts)


def inspect_seed(raw):
    """What an existing file/volume holds: dict(is_seed, reason, files, content_sha256, instance_id)."""
    out = dict(is_seed=False, reason=None, files=None, content_sha256=None, instance_id=None)
    try:
        iso = read_iso(raw)
    except IsoReadError as exc:
        out["reason"] = "not an ISO 9660 image (%s)" % exc
        return out
    if iso["volume_id"].lower() != VOLUME_ID:
        out["reason"] = "an ISO 9660 image with volume id %r, not %r" % (iso["volume_id"], VOLUME_ID)
        return out
    out.update(is_seed=True, files=iso["files"], content_sha256=content_sha256(iso["files"]))
    meta = iso["files"].get("meta-data")
    if meta is not None and yaml is not None:
        try:
            loaded = yaml.safe_load(meta.decode("utf-8", "replace"))
        except yaml.YAMLError:
            loaded = None
        if isinstance(loaded, dict) and loaded.get("instance-id") is not None:
            out["instance_id"] = str(loaded["instance-id"])
    return out
