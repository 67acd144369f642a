# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Storage pools on network block storage: ``iscsi`` (a target's LUNs, CHAP) and ``rbd`` (a Ceph pool),
and the authentication both take from a libvirt secret.

In the model (:mod:`.pool_model`) they use the source keys ``host`` and ``port`` (the portal, or a Ceph
monitor), ``iqn`` (the iSCSI target, libvirt's ``<device path>``), ``initiator`` (the initiator IQN) and
``name`` (the Ceph pool), and the model key ``auth``::

    auth   {username: str, secret: str}   secret: the UUID or the usage of a libvirt secret

libvirt's ``<auth type='chap'|'ceph'>`` follows from the pool type.  The secret is written as the user
names it (``<secret uuid=...>`` or ``<secret usage=...>``, kept so by libvirt), and must exist: libvirt
itself only looks when the pool starts.  The in-use guard of secrets (:mod:`.._core.usage`) sees every
pool whose ``<auth>`` names a secret.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.names import CONTROL_CHARS as _CONTROL
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.encryption_xml import is_uuid

#: pool types on network block storage, and libvirt's ``<auth type>`` of each
AUTH_TYPES = {"iscsi": "chap", "rbd": "ceph"}
#: the secret usage type whose usage ids name the secret of each pool type
SECRET_USAGE = {"iscsi": "iscsi", "rbd": "ceph"}
#: where libvirt's iSCSI backend finds the LUNs: the target path of a new iscsi pool unless given
ISCSI_DEFAULT_PATH = "/dev/disk/by-path"
AUTH_KEYS = ("username", "secret")

# RFC 3720's iqn.YYYY-MM.reverse.domain[:anything], as libvirt's schema has it (no eui. names)
_IQN = re.compile(r"^iqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[A-Za-z0-9.-]+(:\S+)?$")


def check_iqn(value, what):
    """``value``, an iSCSI qualified name; InvalidInputError when it is not one."""
    if value is None:
        return None
    text = str(value)
    if _CONTROL.search(text) or not _IQN.match(text):
        raise InvalidInputError("%s: %r is not an iSCSI qualified name such as iqn.2024-01.com.example:target"
                                % (what, value))
    return text


def check_port(value, what="source.port"):
    if value is None:
        return None
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise InvalidInputError("%s: %r is not a port number" % (what, value))
    if not 0 < port < 65536:
        raise InvalidInputError("%s: %r is not a port number (1-65535)" % (what, value))
    return port


def normalize_auth(auth):
    """User ``auth`` dict -> model dict (username, secret), or None."""
    if not auth:
        return None
    unknown = sorted(set(auth) - set(AUTH_KEYS))
    if unknown:
        raise InvalidInputError("auth: unknown option(s) %s; known: %s" % (", ".join(unknown), ", ".join(AUTH_KEYS)))
    out = dict((k, auth.get(k)) for k in AUTH_KEYS)
    for key in AUTH_KEYS:
        value = out[key]
        if value is None or not str(value).strip() or _CONTROL.search(str(value)):
            raise InvalidInputError("auth.%s: required, not empty and without control characters" % key)
    if is_uuid(out["secret"]):
        out["secret"] = out["secret"].lower()
    return out


def check_auth(pool_type, auth):
    """``auth`` belongs to iscsi and rbd pools only."""
    if auth is not None and pool_type not in AUTH_TYPES:
        raise InvalidInputError("auth is used by iscsi and rbd pools only, not by %s pools" % pool_type)


def check_create(pool_type, source):
    """What creating an iscsi or rbd pool needs."""
    if pool_type == "iscsi" and (source.get("host") is None or source.get("iqn") is None):
        raise InvalidInputError("source.host and source.iqn are required to create an iscsi pool (the portal and the target)")
    if pool_type == "rbd" and (source.get("host") is None or source.get("name") is None):
        raise InvalidInputError("source.host and source.name are required to create an rbd pool (a Ceph monitor and the Ceph pool)")


def auth_from_xml(src):
    """The model's ``auth`` from a ``<source>`` element (None when it has none)."""
    node = src.find("auth") if src is not None else None
    if node is None:
        return None
    secret = node.find("secret")
    ref = None if secret is None else (secret.get("uuid") or secret.get("usage"))
    return dict(username=node.get("username"), secret=ref.lower() if is_uuid(ref) else ref)


def auth_element(pool_type, auth):
    """``<auth type='chap'|'ceph' username='...'><secret uuid|usage='...'/></auth>``."""
    key = "uuid" if is_uuid(auth["secret"]) else "usage"
    return _xml.element("auth", attrs={"type": AUTH_TYPES[pool_type], "username": auth["username"]},
                        children=[_xml.element("secret", attrs={key: auth["secret"]})])


def set_auth(src, pool_type, auth):
    """Put ``auth`` into the ``<source>`` element ``src`` (edited in place), replacing what it had."""
    for node in src.findall("auth"):
        src.remove(node)
    src.append(auth_element(pool_type, auth))


def set_initiator(src, iqn):
    for node in src.findall("initiator"):
        src.remove(node)
    _xml.sub(src, "initiator", children=[_xml.element("iqn", attrs={"name": iqn})])
