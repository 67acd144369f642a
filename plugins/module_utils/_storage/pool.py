# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Storage pools: a typed model <-> libvirt pool XML, the ``pool`` resource and ``pool_info`` facts.

The model is a flat dict::

    type         'dir' | 'fs' | 'netfs' | 'logical' | any other libvirt type (read only)
    path         target path
    source       {devices: [str], host: str, dir: str, name: str, format: str}
    permissions  {owner: int, group: int, mode: '0755'}

``None`` means "not specified" (desired) or "not in the XML" (current).  Pools of other types are
managed with ``xml`` (the whole definition, compared as a subset of what libvirt has).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors, uri_is_local
from ansible_collections.virtops.libvirt.plugins.module_utils._core.defined import DefinedObjectResource, inactive_xml, lookup_or_none
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import (
    ABSENT,
    compare_specified,
    specified,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.names import CONTROL_CHARS as _CONTROL, validate_object_name
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import guard, in_use_error, usage

#: pool types with first-class options
TYPES = ("dir", "fs", "netfs", "logical")
SOURCE_KEYS = ("devices", "host", "dir", "name", "format")
PERMISSION_KEYS = ("owner", "group", "mode")
#: keys of the model that make up the pool's definition (a change needs a redefine)
DEFINITION_KEYS = ("type", "path", "source", "permissions", "xml")

#: types whose storage is the target directory itself (libvirt's build makes it, delete removes it)
DIRECTORY_TYPES = ("dir", "fs", "netfs")

#: which source keys each type uses, and the formats libvirt's schema accepts for it
_TYPE_SOURCE = {
    "dir": (),
    "fs": ("devices", "format"),
    "netfs": ("host", "dir", "format"),
    "logical": ("devices", "name", "format"),
}
_FORMATS = {
    "fs": ("auto", "ext2", "ext3", "ext4", "ufs", "iso9660", "udf", "gfs", "gfs2", "vfat", "hfs+", "xfs", "ocfs2", "vmfs"),
    "netfs": ("auto", "nfs", "cifs", "glusterfs"),
    "logical": ("lvm2",),
}

POOL_STATES = {0: "inactive", 1: "building", 2: "running", 3: "degraded", 4: "inaccessible"}

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
    if pool_type not in TYPES:
        return
    source = model.get("source") or {}
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
    if pool_type != "logical" and model.get("path") is None:
        raise InvalidInputError("path is required to create a %s pool" % pool_type)
    if pool_type == "fs" and not source.get("devices"):
        raise InvalidInputError("source.devices is required to create an fs pool (the block device holding the filesystem)")
    if pool_type == "netfs" and (source.get("host") is None or source.get("dir") is None):
        raise InvalidInputError("source.host and source.dir are required to create a netfs pool")
    if pool_type == "logical" and model.get("path") is not None and source.get("name") is not None:
        if model["path"] != "/dev/" + source["name"]:
            raise InvalidInputError("path: a logical pool's path is /dev/<volume group>, here /dev/%s, not %r" % (source["name"], model["path"]))


# ------------------------------------------------------------------------------ XML <-> model ---

def model_from_xml(text_or_node):
    """Pool XML -> model dict (every key present; None where the XML says nothing)."""
    root = _xml.parse(text_or_node, "pool XML") if isinstance(text_or_node, (str, bytes)) else text_or_node
    src = root.find("source")
    source = dict((k, None) for k in SOURCE_KEYS)
    if src is not None:
        devices = [d.get("path") for d in src.findall("device") if d.get("path")]
        source["devices"] = devices or None
        source["host"] = _xml.find_attr(src, "host", "name")
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
        children.append(_xml.element("host", attrs={"name": source["host"]}))
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
    if children or root.get("type") != "dir":
        _xml.sub(root, "source", children=children)
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
    if any(source.get(k) is not None for k in SOURCE_KEYS):
        src = root.find("source")
        if src is None:
            src = _xml.sub(root, "source")
        if source.get("devices") is not None:
            for node in src.findall("device"):
                src.remove(node)
            for index, device in enumerate(source["devices"]):
                src.insert(index, _xml.element("device", attrs={"path": device}))
        for key, tag, attr in (("host", "host", "name"), ("dir", "dir", "path"), ("format", "format", "type")):
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


# ----------------------------------------------------------------------------------- facts ---

def lookup(conn, name):
    """The virStoragePool called ``name``, or None."""
    return lookup_or_none(conn.storagePoolLookupByName, name, libvirt.VIR_ERR_NO_STORAGE_POOL, "storage pool")


def refresh(pool):
    """Refresh an active pool so volumes created outside libvirt are seen (a racing job is fine)."""
    if pool.isActive():
        try:
            pool.refresh(0)
        except libvirt.libvirtError:
            pass


def user_volumes(pool, pool_type):
    """The pool's volumes, less what the filesystem itself owns (``lost+found`` of fs pools).

    libvirt lists an fs pool's ``lost+found`` as a volume; counting it would make every new fs
    pool "hold a volume" and refuse ``state: absent``.
    """
    names = pool.listVolumes()
    if pool_type == "fs":
        names = [n for n in names if n != "lost+found"]
    return sorted(names)


def pool_facts(pool, with_volumes=False):
    """What ``pool_info`` and ``pool`` return about one pool (sizes in bytes; 0 when inactive)."""
    name = pool.name()
    with libvirt_errors("reading storage pool '%s'" % name):
        refresh(pool)
        active = bool(pool.isActive())
        state, capacity, allocation, available = pool.info()
        model = model_from_xml(pool.XMLDesc(0))
        volumes = user_volumes(pool, model["type"]) if active else None
        facts = dict(
            name=name,
            uuid=pool.UUIDString(),
            type=model["type"],
            state="active" if active else "inactive",
            libvirt_state=POOL_STATES.get(state, "unknown"),
            active=active,
            autostart=bool(pool.autostart()),
            persistent=bool(pool.isPersistent()),
            path=model["path"],
            source=specified(model["source"]),
            permissions=model["permissions"],
            capacity=capacity,
            allocation=allocation,
            available=available,
            volume_count=len(volumes) if volumes is not None else None,
        )
    if with_volumes:
        facts["volumes"] = volumes
    return facts


def gather_pool_info(ctx):
    """``pool_info``: every pool, or the one named (NotFoundError when it does not exist)."""
    conn = ctx.conn
    name = ctx.params.get("name")
    with_volumes = bool(ctx.params.get("volumes"))
    if name is not None:
        validate_name(name)
        pool = lookup(conn, name)
        if pool is None:
            with libvirt_errors("listing storage pools"):
                names = sorted(p.name() for p in conn.listAllStoragePools(0))
            raise NotFoundError(
                "Storage pool '%s' does not exist; existing pools: %s" % (name, ", ".join(names) or "none"),
                pools=[],
            )
        pools = [pool]
    else:
        with libvirt_errors("listing storage pools"):
            pools = conn.listAllStoragePools(0)
    facts = []
    for pool in pools:
        try:
            facts.append(pool_facts(pool, with_volumes))
        except NotFoundError:
            continue  # removed while we looked
    return dict(changed=False, pools=sorted(facts, key=lambda p: p["name"]))


# -------------------------------------------------------------------------------- resource ---

class PoolResource(DefinedObjectResource):
    """One storage pool: definition, running state, autostart, and its removal."""

    kind = "pool"
    noun = "storage pool"
    root_tag = "pool"

    def __init__(self, ctx):
        super(PoolResource, self).__init__(ctx)
        self._volumes = None

    # --- read -------------------------------------------------------------------------------

    def validate_name(self, name):
        validate_name(name)

    def _lookup(self):
        return lookup(self.ctx.conn, self.name)

    def _define_call(self, xml_text):
        return self.ctx.conn.storagePoolDefineXML(xml_text, 0)

    def _inactive_xml(self, obj):
        return inactive_xml(obj, getattr(libvirt, "VIR_STORAGE_XML_INACTIVE", 1))

    def model_from_xml(self, text):
        return model_from_xml(text)

    def xml_from_model(self, model, uuid=None):
        return xml_from_model(self.name, model, uuid)

    def apply_model(self, root, model):
        return apply_model(root, model)

    def _before_read(self, obj):
        refresh(obj)

    def _after_read(self, obj, current, active):
        self._volumes = user_volumes(obj, current["type"]) if active else None

    # --- desired ----------------------------------------------------------------------------

    def desired(self, current):
        params = self.params
        state = self.requested_state()
        if state is None:
            return None
        xml_text = params.get("xml")
        model = dict(
            type=params.get("type"),
            path=params.get("path"),
            source=normalize_source(params.get("source")),
            permissions=normalize_permissions(params.get("permissions")),
            xml=None,
        )
        if model["path"] is not None:
            _abs_path(model["path"], "path")
        if xml_text is not None:
            given = [k for k in ("type", "path", "source", "permissions") if model[k] is not None]
            if given:
                raise InvalidInputError("xml cannot be combined with %s: put those into the XML" % ", ".join(given))
            model["xml"] = self._user_xml(xml_text)
        elif model["type"] is not None and model["type"] not in TYPES:
            raise InvalidInputError("type: %r has no first-class options; use one of %s, or give the whole definition in xml"
                                    % (model["type"], ", ".join(TYPES)))
        current = self._current
        creating = self._object is None
        if xml_text is None:
            pool_type = model["type"] or ((current or {}).get("type") if not creating else "dir")
            if creating and model["type"] is None:
                model["type"] = "dir"
            check_type_options(pool_type, model, creating)
        model.update(
            state=state if state in ("active", "inactive") else None,
            autostart=params.get("autostart"),
        )
        return model

    def _user_xml(self, text):
        root = self._user_root(text)
        if not root.get("type"):
            raise InvalidInputError("xml: <pool> needs a type attribute")
        return _xml.to_string(root, pretty=True)

    # --- compare ----------------------------------------------------------------------------

    def _live_differs(self, current, desired):
        """Whether the running pool differs from what the user specified (a restart would apply it)."""
        if desired.get("xml") is not None:
            return not _xml.xml_subset(_xml.parse(desired["xml"]), _xml.parse(current["_live_xml"]))
        wanted = dict((k, desired.get(k)) for k in ("type", "path", "source", "permissions"))
        return bool(compare_specified(wanted, current["_live"]))

    # --- plan -------------------------------------------------------------------------------

    def _build_flags(self, pool_type):
        if pool_type in ("fs", "logical"):
            return getattr(libvirt, "VIR_STORAGE_POOL_BUILD_NO_OVERWRITE", 4)
        return 0

    def _build_step(self, pool_type, plan, path=None):
        """Build (mkdir / mkfs / vgcreate) without ever overwriting: existing data means 'already built'.

        What the build made is removed again when it or a later step fails: a volume group it
        created, a target directory that was not there before (libvirt makes the directory of an
        fs pool before it looks at the device, so a refused or failed mkfs leaves one behind).
        """
        built = []
        made_dir = self._made_directory(pool_type, path)

        def build():
            with libvirt_errors("building storage pool '%s'" % self.name):
                pool = self._lookup()
                try:
                    pool.build(self._build_flags(pool_type))
                except libvirt.libvirtError as exc:
                    message = exc.get_error_message() or ""
                    if exc.get_error_code() == libvirt.VIR_ERR_STORAGE_POOL_BUILT and "does not match" not in message:
                        return  # already built: nothing was created but the directory, which undo removes
                    if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                        return  # this pool type has nothing to build
                    if made_dir():
                        self._remove_directory(path)  # a failed step is not undone by the plan
                    raise
            if pool_type not in DIRECTORY_TYPES or not uri_is_local(self.ctx.uri):
                built.append(True)  # a directory elsewhere: libvirt's delete (rmdir) is all we can do

        def undo():
            if built:
                self._call("deleting", "delete", 0)()
            elif made_dir():
                self._remove_directory(path)

        plan.add("build storage pool %s" % self.name, build, undo)

    def _made_directory(self, pool_type, path):
        """A function telling whether the target directory exists now but did not when the plan was
        made (known on the hypervisor itself only; elsewhere nothing is removed)."""
        if pool_type not in DIRECTORY_TYPES or not path or not uri_is_local(self.ctx.uri) or os.path.lexists(path):
            return lambda: False
        return lambda: os.path.isdir(path) and not os.path.islink(path)

    def _remove_directory(self, path):
        """Remove the (empty) target directory this run made: libvirt's delete of a directory pool
        is an rmdir; a directory that is no longer empty stays."""
        try:
            os.rmdir(path)
        except OSError as exc:
            self.ctx.warn("could not remove the directory %s that building storage pool '%s' made: %s"
                          % (path, self.name, exc.strerror or exc))

    def _pool_type(self, desired, current=None):
        if desired.get("xml") is not None:
            return _xml.parse(desired["xml"]).get("type")
        return desired.get("type") or (current or {}).get("type")

    @staticmethod
    def _target_path(desired, current=None):
        if desired.get("xml") is not None:
            return _xml.find_text(_xml.parse(desired["xml"]), "target/path")
        return desired.get("path") or (current or {}).get("path")

    def _plan_create(self, desired, plan):
        xml_text = self._definition_xml(desired)
        plan.add("define storage pool %s" % self.name, lambda: self._define(xml_text),
                 undo=self._call("undefining", "undefine"))
        if self.params.get("build", True):
            self._build_step(self._pool_type(desired), plan, self._target_path(desired))
        if desired.get("autostart"):
            plan.add("set autostart of storage pool %s to true" % self.name, self._call("setting autostart of", "setAutostart", 1))
        if desired.get("state") == "active":
            plan.add("start storage pool %s" % self.name, self._call("starting", "create", 0),
                     undo=self._call("stopping", "destroy"))

    def _plan_update(self, current, desired, diff, plan):
        if desired.get("type") is not None and desired["type"] != current["type"]:
            raise ConflictError(
                "storage pool '%s' exists with type %s; the type of a pool cannot be changed: remove it first (state: absent)"
                % (self.name, current["type"])
            )
        if desired.get("xml") is not None:
            xml_type = _xml.parse(desired["xml"]).get("type")
            if xml_type != current["type"]:
                raise ConflictError(
                    "storage pool '%s' exists with type %s, the xml says %s; remove it first (state: absent)" % (self.name, current["type"], xml_type)
                )
        old_xml = current["xml"]
        redefine = any(diff.touches(k) for k in DEFINITION_KEYS) or not current["persistent"]
        if redefine:
            uuid = _xml.find_text(_xml.parse(old_xml), "uuid")
            new_xml = self._definition_xml(desired, base_xml=None if desired.get("xml") else old_xml, uuid=uuid)
            plan.add("redefine storage pool %s" % self.name, lambda: self._define(new_xml),
                     undo=(lambda: self._define(old_xml)) if current["persistent"] else None)

        was_active = current["state"] == "active"
        will_be_active = desired.get("state") == "active" or (desired.get("state") is None and was_active)
        build = self.params.get("build", True)
        if was_active and desired.get("state") == "inactive":
            plan.add("stop storage pool %s" % self.name, self._call("stopping", "destroy"),
                     undo=self._call("starting", "create", 0))
        elif was_active and self._live_differs(current, desired):
            if self.params.get("restart"):
                def restore_and_start():
                    self._define(old_xml)
                    self._call("starting", "create", 0)()

                plan.add("stop storage pool %s to apply its new definition" % self.name, self._call("stopping", "destroy"),
                         undo=restore_and_start)
                if build:
                    self._build_step(self._pool_type(desired, current), plan, self._target_path(desired, current))
                plan.add("start storage pool %s" % self.name, self._call("starting", "create", 0))
            else:
                self.restart_required = True
                plan.warn(
                    "storage pool '%s' is active: its new definition takes effect when it is restarted "
                    "(set restart: true to let the module stop and start it)" % self.name
                )
        elif not was_active and will_be_active:
            if build:
                self._build_step(self._pool_type(desired, current), plan, self._target_path(desired, current))
            plan.add("start storage pool %s" % self.name, self._call("starting", "create", 0),
                     undo=self._call("stopping", "destroy"))

        self._plan_autostart(current, desired, diff, plan)

    def _plan_absent(self, current, plan):
        purge = bool(self.params.get("purge"))
        active = current["state"] == "active"
        volumes = self._volumes or []
        if not purge:
            if volumes:
                shown = ", ".join(volumes[:10]) + (", ..." if len(volumes) > 10 else "")
                raise ConflictError(
                    "storage pool '%s' still holds %d volume(s) (%s): remove them first, or set purge: true to delete "
                    "them with the pool" % (self.name, len(volumes), shown),
                    volumes=volumes,
                )
            if active:
                plan.add("stop storage pool %s" % self.name, self._call("stopping", "destroy"),
                         undo=self._call("starting", "create", 0))
            if current["persistent"]:
                old_xml = current["xml"]
                plan.add("undefine storage pool %s" % self.name, self._call("undefining", "undefine"),
                         undo=lambda: self._define(old_xml))
            return
        self._guard_purge(current, plan)
        if not active:
            plan.add("start storage pool %s to delete its volumes" % self.name, self._call("starting", "create", 0))
            plan.add("delete every volume of storage pool %s" % self.name, self._delete_all_volumes)
        else:
            for vol in volumes:
                plan.add("delete volume %s of storage pool %s" % (vol, self.name), self._delete_volume(vol))
        plan.add("stop storage pool %s" % self.name, self._call("stopping", "destroy"),
                 undo=self._call("starting", "create", 0))
        plan.add("delete the storage of pool %s (its target directory / volume group)" % self.name,
                 self._call("deleting", "delete", 0))
        if current["persistent"]:
            plan.add("undefine storage pool %s" % self.name, self._call("undefining", "undefine"))

    def _guard_purge(self, current, plan):
        """purge deletes every volume: not one a VM uses or another pool's volume is based on
        (an inactive pool's volumes are not listed: the files in its directory count)."""
        names = list(self._volumes or [])
        paths = []
        if names:
            with libvirt_errors("listing the volumes of storage pool '%s'" % self.name):
                paths = [vol.path() for vol in self._object.listAllVolumes(0)]
        users, dependants = usage(self.ctx).users_of(paths, [(self.name, n) for n in names], [current.get("path")],
                                                     pools=[self.name])
        error = in_use_error("storage pool %r" % self.name, users, dependants,
                             advice="remove those VMs (or their disks) and volumes first",
                             action="delete its volumes", verbs=("holds volumes used by", "holds the backing files of"))
        guard(self.ctx, error, self.params.get("force"), plan.warn)

    def _delete_volume(self, vol_name):
        def delete():
            with libvirt_errors("deleting volume '%s' of storage pool '%s'" % (vol_name, self.name)):
                self._lookup().storageVolLookupByName(vol_name).delete(0)

        return delete

    def _delete_all_volumes(self):
        with libvirt_errors("listing the volumes of storage pool '%s'" % self.name):
            pool = self._lookup()
            pool.refresh(0)
            names = user_volumes(pool, _xml.parse(pool.XMLDesc(0)).get("type"))
        for vol in names:
            self._delete_volume(vol)()

    # --- results ----------------------------------------------------------------------------

    def _absent_view(self, current):
        return {"state": current["state"], "type": current["type"], "path": current["path"],
                "volumes": list(self._volumes or [])}

    def predict(self, current, desired):
        if desired is None:
            return None
        state = dict(current or {})
        for key in ("type", "path", "autostart"):
            if desired.get(key) is not None:
                state[key] = desired[key]
        if desired.get("state") is not None:
            state["state"] = desired["state"]
        state.setdefault("state", "inactive")
        state.setdefault("persistent", True)
        state["predicted"] = True
        return state

    def result(self, state, outcome):
        if state is None:
            return dict(pool=dict(name=self.name, state=ABSENT), restart_required=False)
        if state.get("predicted"):
            pool = dict(
                name=self.name,
                uuid=_xml.find_text(_xml.parse(state["xml"]), "uuid") if state.get("xml") else None,
                type=state.get("type"),
                state=state["state"],
                autostart=bool(state.get("autostart")),
                persistent=True,
                path=state.get("path"),
                capacity=None,
                allocation=None,
                available=None,
                volume_count=len(self._volumes) if self._volumes is not None and state["state"] == "active" else None,
            )
            if pool["type"] is None and self.params.get("xml"):
                pool["type"] = _xml.parse(self.params["xml"]).get("type")
            if self._object is not None:
                with libvirt_errors("reading storage pool '%s'" % self.name):
                    _st, pool["capacity"], pool["allocation"], pool["available"] = self._object.info()
        else:
            pool = pool_facts(self._lookup())
            for key in ("libvirt_state", "active", "source", "permissions"):
                pool.pop(key, None)
        return dict(pool=pool, restart_required=self.restart_required)
