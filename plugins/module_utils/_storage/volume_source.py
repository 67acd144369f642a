# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Source images of the ``volume`` resource: checksums, a local file that must be an image, an
http(s) download, and transparent gzip/xz decompression (by magic bytes, not by name)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import hashlib
import lzma
import os
import shutil

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, InvalidInputError, NotFoundError


CHECKSUM_ALGORITHMS = ("sha1", "sha224", "sha256", "sha384", "sha512")
_CHUNK = 1024 * 1024


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
