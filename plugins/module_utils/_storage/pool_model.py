# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Storage pools: the typed model, its checks, and the model <-> libvirt pool XML codec.

The model is a flat dict::

    type         'dir' | 'fs' | 'netfs' | 'logical' | 'iscsi' | 'rbd' | any other libvirt type (read only)
    path         target path
    source       {devices: [str], host: str, dir: str, name: str, format: str, port: int, iqn: str,
                  initiator: str}
    permissions  {owner: int, group: int, mode: '0755'}
    auth         {username: str, secret: str}  (iscsi, rbd: see :mod:`.pool_net`)

``None`` means "not specified" (desired) or "not in the XML" (current).  Pools of other types are
managed with ``xml`` (the whole definition, compared as a subset of what libvirt has).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.names import CONTROL_CHARS as _CONTROL, validate_object_name
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import pool_net as _net

#: pool types with first-class options
TYPES = ("dir", "fs", "netfs", "logical", "iscsi", "rbd")
SOURCE_KEYS = ("devices", "host", "dir", "name", "format", "port", "iqn", "initiator")
PERMISSION_KEYS = ("owner", "group", "mode")
#: keys of the model that make up the pool's definition (a change needs a redefine)
DEFINITION_KEYS = ("type", "path", "source", "permissions", "auth", "xml")

#: types whose storage is the target directory itself (libvirt's build makes it, delete removes it)
DIRECTORY_TYPES = ("dir", "fs", "netfs")

#: which source keys each type uses, and the formats libvirt's schema accepts for it
_TYPE_SOURCE = {
    "dir": (),
    "fs": ("devices", "format"),
    "netfs": ("host", "dir", "format"),
    "logical": ("devices", "name", "format"),
    "iscsi": ("host", "port", "iqn", "initiator"),
    "rbd": ("host", "port", "name"),
}
_FORMATS = {
    "fs": ("auto", "ext2", "ext3", "ext4", "ufs", "iso9660", "udf", "gfs", "gfs2", "vfat", "hfs+", "xfs", "ocfs2", "vmfs"),
    "netfs": ("auto", "nfs", "cifs", "glusterfs"),
    "logical": ("lvm2",),
}

_MODE = re.compile(r"^0?[0-7]{3}$")
_HOST = re.compile(r"^[A-Za-z0-9._:\[\]-]+$")


# --------------------------------------------------------------------------- validation ---

def validate_name(name):
    return validate_object_name(name, "pool")


def _abs_path(value, what):
    if not isinstance(value, str) or not value.startswith("/"):
        raise InvalidInputError("%s: %r must be an absolute path" % (what, value))
    if _CONTROL.search(value):
        raise InvalidInputError("%s: %r contains control characters" % (what, value))
    return value


def normalize_mode(value, what="permissions.mode"):
    """``'755'``, ``'0755'`` or the int 755 -> ``'0755'`` (libvirt's form)."""
    if value is None:
        return None
    text = str(value).strip()
    if not _MODE.match(text):
        raise InvalidInputError("%s: %r is not an octal mode such as '0755'" % (what, value))
    return "0" + text[-3:]


def _id(value, what):
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInputError("%s: %r is not a numeric id (libvirt wants uid/gid numbers)" % (what, value))
    if number < 0:
        raise InvalidInputError("%s: %r must not be negative" % (what, value))
    return number


def normalize_source(source):
    """User ``source`` dict -> model dict (all keys present, None where unspecified), or None."""
    if not source:
        return None
    out = dict((k, source.get(k)) for k in SOURCE_KEYS)
    unknown = sorted(set(source) - set(SOURCE_KEYS))
    if unknown:
        raise InvalidInputError("source: unknown option(s) %s; known: %s" % (", ".join(unknown), ", ".join(SOURCE_KEYS)))
    if out["devices"] is not None:
        if isinstance(out["devices"], str):
            out["devices"] = [out["devices"]]
        out["devices"] = [_abs_path(d, "source.devices") for d in out["devices"]]
        if not out["devices"]:
            raise InvalidInputError("source.devices: give at least one device, or leave the option out")
    if out["dir"] is not None and not str(out["dir"]).strip():
        raise InvalidInputError("source.dir: must not be empty")
    if out["host"] is not None and not _HOST.match(str(out["host"])):
        raise InvalidInputError("source.host: %r is not a host name or address" % out["host"])
    if out["name"] is not None and (not str(out["name"]).strip() or "/" in out["name"] or _CONTROL.search(out["name"])):
        raise InvalidInputError("source.name: %r is not a usable volume group / source name" % out["name"])
    out["port"] = _net.check_port(out["port"])
    out["iqn"] = _net.check_iqn(out["iqn"], "source.iqn")
    out["initiator"] = _net.check_iqn(out["initiator"], "source.initiator")
    if all(v is None for v in out.values()):
        return None
    return out


def normalize_permissions(perms):
    if not perms:
        return None
    out = dict(
        owner=_id(perms.get("owner"), "permissions.owner"),
        group=_id(perms.get("group"), "permissions.group"),
        mode=normalize_mode(perms.get("mode")),
    )
    if all(v is None for v in out.values()):
        return None
    return out


def check_type_options(pool_type, model, creating):
    """Options that do not belong to ``pool_type``, or that creating such a pool needs."""
    source = model.get("source") or {}
    _net.check_auth(pool_type, model.get("auth"))
    if pool_type not in TYPES:
        return
    if pool_type == "rbd" and model.get("path") is not None:
        raise InvalidInputError("path is not used by rbd pools (their volumes are Ceph images)")
    if source.get("port") is not None and source.get("host") is None:
        raise InvalidInputError("source.port needs source.host")
    allowed = _TYPE_SOURCE[pool_type]
    for key in SOURCE_KEYS:
        if source.get(key) is not None and key not in allowed:
            if allowed:
                raise InvalidInputError(
                    "source.%s is not used by %s pools (they take source.%s)" % (key, pool_type, ", source.".join(allowed))
                )
            raise InvalidInputError("source.%s is not used by %s pools (they take no source options)" % (key, pool_type))
    fmt = source.get("format")
    if fmt is not None and fmt not in _FORMATS[pool_type]:
        raise InvalidInputError(
            "source.format: %r is not a format of %s pools; use one of %s" % (fmt, pool_type, ", ".join(_FORMATS[pool_type]))
        )
    if pool_type == "fs" and source.get("devices") is not None and len(source["devices"]) != 1:
        raise InvalidInputError("source.devices: an fs pool takes exactly one device, got %d" % len(source["devices"]))
    if pool_type == "netfs" and source.get("dir") is not None:
        if fmt in ("cifs", "glusterfs"):
            if str(source["dir"]).startswith("/") and fmt == "cifs":
                raise InvalidInputError("source.dir: a cifs share name is relative (no leading '/'), got %r" % source["dir"])
        else:
            _abs_path(source["dir"], "source.dir")
    if not creating:
        return
    _net.check_create(pool_type, source)
    if pool_type not in ("logical", "iscsi", "rbd") and model.get("path") is None:
        raise InvalidInputError("path is required to create a %s pool" % pool_type)
    if pool_type == "fs" and not source.get("devices"):
        raise InvalidInputError("source.devices is required to create an fs pool (the block device holding the filesystem)")
    if pool_type == "netfs" and (source.get("host") is None or source.get("dir") is None):
        raise InvalidInputError("source.host and source.dir are required to create a netfs pool")
    if pool_type == "logical" and model.get("path") is not None and source.get("name") is not None:
        if model["path"] != "/dev/" + source["name"]:
            raise InvalidInputError("path: a logical pool's path is /dev/<volume group>, here /dev/%s, not %r" % (source["name"], model["path"]))


def desired_model(params, state, current, user_xml):
    """The model the user asks for (``state``: the requested one, not absent), checked against the
    pool's type; ``current``: the pool as read (None: it is created); ``user_xml(text)``: the user's
    ``xml`` checked and normalized (its root element and name)."""
    xml_text = params.get("xml")
    model = dict(
        type=params.get("type"),
        path=params.get("path"),
        source=normalize_source(params.get("source")),
        permissions=normalize_permissions(params.get("permissions")),
        auth=_net.normalize_auth(params.get("auth")),
        xml=None,
    )
    if model["path"] is not None:
        _abs_path(model["path"], "path")
    if xml_text is not None:
        given = [k for k in ("type", "path", "source", "permissions", "auth") if model[k] is not None]
        if given:
            raise InvalidInputError("xml cannot be combined with %s: put those into the XML" % ", ".join(given))
        model["xml"] = user_xml(xml_text)
    elif model["type"] is not None and model["type"] not in TYPES:
        raise InvalidInputError("type: %r has no first-class options; use one of %s, or give the whole definition in xml"
                                % (model["type"], ", ".join(TYPES)))
    creating = current is None
    if xml_text is None:
        pool_type = model["type"] or (current.get("type") if not creating else "dir")
        if creating and model["type"] is None:
            model["type"] = "dir"
        check_type_options(pool_type, model, creating)
        if creating and pool_type == "iscsi" and model["path"] is None:
            model["path"] = _net.ISCSI_DEFAULT_PATH
    model.update(
        state=state if state in ("active", "inactive") else None,
        autostart=params.get("autostart"),
    )
    return model


# ------------------------------------------------------------------------------ XML <-> model ---

def model_from_xml(text_or_node):
    """Pool XML -> model dict (every key present; None where the XML says nothing)."""
    root = _xml.parse(text_or_node, "pool XML") if isinstance(text_or_node, (str, bytes)) else text_or_node
    src = root.find("source")
    source = dict((k, None) for k in SOURCE_KEYS)
    if src is not None:
        devices = [d.get("path") for d in src.findall("device") if d.get("path")]
        if root.get("type") == "iscsi":
            source["iqn"] = devices[0] if devices else None  # the target's IQN
        else:
            source["devices"] = devices or None
        source["host"] = _xml.find_attr(src, "host", "name")
        source["port"] = _maybe_int(_xml.find_attr(src, "host", "port"))
        source["initiator"] = _xml.find_attr(src, "initiator/iqn", "name")
        source["dir"] = _xml.find_attr(src, "dir", "path")
        source["name"] = _xml.find_text(src, "name")
        source["format"] = _xml.find_attr(src, "format", "type")
    perms = root.find("target/permissions")
    permissions = None
    if perms is not None:
        permissions = dict(
            owner=_maybe_int(_xml.find_text(perms, "owner")),
            group=_maybe_int(_xml.find_text(perms, "group")),
            mode=_maybe_mode(_xml.find_text(perms, "mode")),
        )
    return dict(
        type=root.get("type"),
        path=_xml.find_text(root, "target/path"),
        source=source,
        permissions=permissions,
        auth=_net.auth_from_xml(src),
    )


def _maybe_int(text):
    if text is None:
        return None
    try:
        number = int(text)
    except ValueError:
        return text
    return None if number < 0 else number


def _maybe_mode(text):
    try:
        return normalize_mode(text)
    except InvalidInputError:
        return text


def _source_children(source):
    children = []
    for device in source.get("devices") or ():
        children.append(_xml.element("device", attrs={"path": device}))
    if source.get("host") is not None:
        children.append(_xml.element("host", attrs={"name": source["host"], "port": source.get("port")}))
    if source.get("iqn") is not None:
        children.append(_xml.element("device", attrs={"path": source["iqn"]}))
    if source.get("initiator") is not None:
        children.append(_xml.element("initiator", children=[_xml.element("iqn", attrs={"name": source["initiator"]})]))
    if source.get("dir") is not None:
        children.append(_xml.element("dir", attrs={"path": source["dir"]}))
    if source.get("name") is not None:
        children.append(_xml.element("name", source["name"]))
    if source.get("format") is not None:
        children.append(_xml.element("format", attrs={"type": source["format"]}))
    return children


def _permission_children(perms):
    return [
        _xml.element(key, perms[key] if key != "mode" else normalize_mode(perms[key]))
        for key in ("mode", "owner", "group")
        if perms.get(key) is not None
    ]


def xml_from_model(name, model, uuid=None):
    """A new pool definition (lxml element) from the model; never string-formatted."""
    root = _xml.element("pool", attrs={"type": model.get("type") or "dir"})
    _xml.sub(root, "name", name)
    if uuid:
        _xml.sub(root, "uuid", uuid)
    source = model.get("source") or {}
    children = _source_children(source)
    if model.get("auth") is not None:
        children.append(_net.auth_element(root.get("type"), model["auth"]))
    if children or root.get("type") != "dir":
        _xml.sub(root, "source", children=children)
    if root.get("type") == "rbd":
        return root  # no target: its volumes are Ceph images
    perms = model.get("permissions") or {}
    target = _xml.sub(root, "target")  # the schema wants <target> even where the path is optional (logical)
    if model.get("path") is not None:
        _xml.sub(target, "path", model["path"])
    perm_children = _permission_children(perms)
    if perm_children:
        _xml.sub(target, "permissions", children=perm_children)
    return root


def apply_model(root, model):
    """Change, in an existing definition (element, edited in place), only what ``model`` specifies."""
    for key in ("capacity", "allocation", "available"):
        for node in root.findall(key):
            root.remove(node)
    source = model.get("source") or {}
    if any(source.get(k) is not None for k in SOURCE_KEYS) or model.get("auth") is not None:
        src = root.find("source")
        if src is None:
            src = _xml.sub(root, "source")
        if model.get("auth") is not None:
            _net.set_auth(src, root.get("type"), model["auth"])
        if source.get("iqn") is not None:
            for node in src.findall("device"):
                src.remove(node)
            src.insert(0, _xml.element("device", attrs={"path": source["iqn"]}))
        if source.get("initiator") is not None:
            _net.set_initiator(src, source["initiator"])
        if source.get("devices") is not None:
            for node in src.findall("device"):
                src.remove(node)
            for index, device in enumerate(source["devices"]):
                src.insert(index, _xml.element("device", attrs={"path": device}))
        for key, tag, attr in (("host", "host", "name"), ("port", "host", "port"), ("dir", "dir", "path"),
                               ("format", "format", "type")):
            if source.get(key) is None:
                continue
            node = src.find(tag)
            if node is None:
                node = _xml.sub(src, tag)
            node.set(attr, str(source[key]))
        if source.get("name") is not None:
            node = src.find("name")
            if node is None:
                node = _xml.sub(src, "name")
            node.text = source["name"]
    perms = model.get("permissions") or {}
    if model.get("path") is not None or any(perms.get(k) is not None for k in PERMISSION_KEYS):
        target = root.find("target")
        if target is None:
            target = _xml.sub(root, "target")
        if model.get("path") is not None:
            node = target.find("path")
            if node is None:
                node = _xml.element("path")
                target.insert(0, node)
            node.text = model["path"]
        if any(perms.get(k) is not None for k in PERMISSION_KEYS):
            pnode = target.find("permissions")
            if pnode is None:
                pnode = _xml.sub(target, "permissions")
            for key in PERMISSION_KEYS:
                if perms.get(key) is None:
                    continue
                node = pnode.find(key)
                if node is None:
                    node = _xml.sub(pnode, key)
                node.text = normalize_mode(perms[key]) if key == "mode" else str(perms[key])
    return root
