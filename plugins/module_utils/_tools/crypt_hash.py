# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SHA-512 crypt (``$6$``): the standard library's ``crypt`` when present, else passlib, else a built-in
implementation of the published specification; all three give the same string for the same salt.

(Not named ``crypt.py``: that would shadow the standard library module for linters.)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import hmac
import re
import warnings

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, InvalidInputError

try:
    from passlib.hash import sha512_crypt as passlib_sha512_crypt
except ImportError:  # passlib is optional: crypt or the built-in implementation is used instead
    passlib_sha512_crypt = None


CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# byte order of the final SHA-512 crypt encoding (Drepper, "Unix crypt using SHA-256 and SHA-512")
_SHA512_ORDER = ((0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
                 (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
                 (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41))
HASH_RE = re.compile(r"^\$6\$(?:rounds=(\d+)\$)?([^$:\n]{0,16})\$([./0-9A-Za-z]{86})$")


def _b64_24(byte2, byte1, byte0, count):
    word = (byte2 << 16) | (byte1 << 8) | byte0
    out = []
    for _i in range(count):
        out.append(CRYPT_ALPHABET[word & 0x3F])
        word >>= 6
    return "".join(out)


def _repeat_to(data, length):
    return (data * (length // len(data) + 1))[:length]


def sha512_crypt_builtin(password, salt, rounds=None):
    """SHA-512 crypt per the published specification (what glibc's ``crypt()`` does for ``$6$``).

    ``salt`` is used up to 16 characters; ``rounds`` None means the implicit 5000 (no ``rounds=`` field).
    """
    pw = password.encode("utf-8")
    salt_b = salt.encode("ascii")[:16]
    explicit = rounds is not None
    rounds = 5000 if rounds is None else min(max(int(rounds), 1000), 999999999)
    digest_b = hashlib.sha512(pw + salt_b + pw).digest()
    ctx = hashlib.sha512(pw + salt_b)
    ctx.update(_repeat_to(digest_b, len(pw)))
    length = len(pw)
    while length:
        ctx.update(digest_b if length & 1 else pw)
        length >>= 1
    digest_a = ctx.digest()
    p_bytes = _repeat_to(hashlib.sha512(pw * len(pw)).digest(), len(pw)) if pw else b""
    s_bytes = _repeat_to(hashlib.sha512(salt_b * (16 + digest_a[0])).digest(), len(salt_b)) if salt_b else b""
    current = digest_a
    for index in range(rounds):
        ctx = hashlib.sha512()
        ctx.update(p_bytes if index & 1 else current)
        if index % 3:
            ctx.update(s_bytes)
        if index % 7:
            ctx.update(p_bytes)
        ctx.update(current if index & 1 else p_bytes)
        current = ctx.digest()
    encoded = "".join(_b64_24(current[a], current[b], current[c], 4) for a, b, c in _SHA512_ORDER)
    encoded += _b64_24(0, 0, current[63], 2)
    prefix = "$6$rounds=%d$" % rounds if explicit else "$6$"
    return "%s%s$%s" % (prefix, salt_b.decode("ascii"), encoded)


def _crypt_module():
    """The standard library's ``crypt`` when it exists (removed in Python 3.13) and does SHA-512."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt as crypt_mod  # pylint: disable=import-outside-toplevel,deprecated-module
    except ImportError:
        return None
    try:
        probe = crypt_mod.crypt("probe", "$6$saltsalt")
    except Exception:  # some libcs raise instead of returning None
        return None
    if not probe or not probe.startswith("$6$saltsalt$"):
        return None
    return crypt_mod


def crypt_backend():
    """Name of the SHA-512 crypt implementation :func:`sha512_crypt` uses: crypt, passlib or builtin."""
    if _crypt_module() is not None:
        return "crypt"
    if passlib_sha512_crypt is not None:
        return "passlib"
    return "builtin"


def sha512_crypt(password, salt, rounds=None):
    """SHA-512 crypt of ``password`` with ``salt`` (``$6$[rounds=N$]salt$hash``).

    Uses the ``crypt`` module if present, else passlib, else :func:`sha512_crypt_builtin`; all three
    give the same string for the same salt and rounds.
    """
    if not salt or any(c not in CRYPT_ALPHABET for c in salt):
        raise InvalidInputError("a crypt salt is 1 to 16 characters of [./0-9A-Za-z]")
    salt = salt[:16]
    if rounds is not None:
        rounds = min(max(int(rounds), 1000), 999999999)  # as the specification clamps (libxcrypt refuses instead)
    setting = "$6$%s%s" % ("rounds=%d$" % rounds if rounds is not None else "", salt)
    backend = crypt_backend()
    if backend == "crypt":
        hashed = _crypt_module().crypt(password, setting)
    elif backend == "passlib":
        hashed = passlib_sha512_crypt.using(salt=salt, rounds=rounds or 5000).hash(password)
        if rounds == 5000:  # passlib leaves out an explicit rounds=5000
            hashed = hashed.replace("$6$", "$6$rounds=5000$", 1) if "$rounds=" not in hashed else hashed
    else:
        hashed = sha512_crypt_builtin(password, salt, rounds)
    if not hashed or not hashed.startswith(setting + "$"):
        raise BackendError("SHA-512 crypt (%s) failed" % backend)
    return hashed


def verify_password(password, hashed):
    """True when ``hashed`` (a ``$6$`` crypt string) is the hash of ``password``."""
    match = HASH_RE.match(hashed or "")
    if not match:
        return False
    rounds = int(match.group(1)) if match.group(1) else None
    again = sha512_crypt(password, match.group(2), rounds)
    return hmac.compare_digest(again, hashed)
