# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A libvirt secret's XML, and the fingerprint that lets a private secret's value be compared.

libvirt never hands out the value of a *private* secret (``secret is private``), so a second run could
not tell whether the value it is given is the one stored.  The module therefore keeps a fingerprint of
the value in the secret's description, after the user's own text::

    Ceph client.libvirt key [virtops-value pbkdf2-sha256$200000$<salt>$<digest>]

PBKDF2-HMAC-SHA256 with a random 16-byte salt per value and 200,000 iterations: comparing costs one
derivation (~0.1 s), and guessing a value from the fingerprint costs as much per guess as a LUKS
header's own key slot.  A value that is already a strong random key (Ceph keys) gives nothing away.
A non-private secret is compared by reading its value back; it carries no fingerprint.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib
import hmac
import os
import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError

#: usage type -> the element of ``<usage>`` that holds its identifier
USAGE_ELEMENTS = dict(volume="volume", ceph="name", iscsi="target", tls="name", vtpm="name")
ITERATIONS = 200000
_MARK = re.compile(r"\s*\[virtops-value pbkdf2-sha256\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)\]\s*$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def value_bytes(params):
    """The ``value`` option as bytes (``value_encoding``: text as UTF-8, or base64 decoded); None when not given."""
    value = params.get("value")
    if value is None:
        return None
    if params.get("value_encoding") == "base64":
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise InvalidInputError("value: not valid base64 (value_encoding is base64)")
    return value.encode("utf-8")


def fingerprint(value, salt=None, iterations=ITERATIONS):
    """The text kept in the description for ``value`` (bytes)."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", value, salt, iterations)
    return "[virtops-value pbkdf2-sha256$%d$%s$%s]" % (iterations, base64.b64encode(salt).decode("ascii"),
                                                       base64.b64encode(digest).decode("ascii"))


def split_description(text):
    """``(user description or None, fingerprint text or None)``."""
    text = text or ""
    match = _MARK.search(text)
    if match is None:
        return (text or None), None
    own = text[:match.start()].rstrip()
    return (own or None), match.group(0).strip()


def matches(value, mark):
    """Whether ``value`` (bytes) is the value whose fingerprint is ``mark``."""
    match = _MARK.search(mark or "")
    if match is None:
        return False
    iterations, salt = int(match.group(1)), base64.b64decode(match.group(2))
    return hmac.compare_digest(fingerprint(value, salt, iterations), match.group(0).strip())


def normalize_uuid(value):
    if value is None:
        return None
    if not _UUID.match(value):
        raise InvalidInputError("uuid: %r is not a UUID" % value)
    text = value.replace("-", "").lower()
    return "-".join((text[:8], text[8:12], text[12:16], text[16:20], text[20:]))


def check_usage(usage_type, usage_id):
    if usage_type not in USAGE_ELEMENTS:
        raise InvalidInputError("usage_type: %r is not one of %s" % (usage_type, ", ".join(USAGE_ELEMENTS)))
    if not usage_id or not usage_id.strip() or "\n" in usage_id:
        raise InvalidInputError("usage_id: the %s secret's usage identifier must not be empty" % usage_type)
    if usage_type == "volume" and not usage_id.startswith("/"):
        raise InvalidInputError("usage_id: a volume secret's usage is the volume's absolute path, not %r" % usage_id)


def secret_xml(model, uuid=None, mark=None):
    """The ``<secret>`` XML of ``model`` (usage_type, usage_id, description, private, ephemeral)."""
    root = _xml.element("secret", attrs=dict(ephemeral="yes" if model.get("ephemeral") else "no",
                                             private="yes" if model.get("private") else "no"))
    if uuid:
        _xml.sub(root, "uuid", uuid)
    description = " ".join(t for t in (model.get("description"), mark) if t)
    if description:
        _xml.sub(root, "description", description)
    usage = _xml.sub(root, "usage", attrs={"type": model["usage_type"]})
    _xml.sub(usage, USAGE_ELEMENTS[model["usage_type"]], model["usage_id"])
    return _xml.to_string(root)


def model_from_xml(text):
    root = _xml.parse(text, "secret XML")
    usage = root.find("usage")
    usage_type = usage.get("type") if usage is not None else None
    element = USAGE_ELEMENTS.get(usage_type)
    description, mark = split_description(_xml.find_text(root, "description"))
    return dict(
        uuid=_xml.find_text(root, "uuid"),
        usage_type=usage_type,
        usage_id=_xml.find_text(usage, element) if element is not None else None,
        description=description,
        private=root.get("private") == "yes",
        ephemeral=root.get("ephemeral") == "yes",
        _mark=mark,
    )
