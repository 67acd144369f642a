# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Who uses a file, a volume, a pool or a network: the one answer every destructive path asks.

What counts as a use, for every VM libvirt knows (persistent and transient, running or not):
its disks, CD-ROMs (cloud-init seeds among them) and the rest of ``<disk>`` (by file, block device
or pool volume), the backing files a running VM's live definition lists, NVRAM, loader, kernel,
initrd and DTB, and, from the metadata of each of its snapshots, the external overlays and memory
files and every file of the definition saved with the snapshot.  A running VM with a changed
persistent definition is read twice (live and saved): both count.  Volumes whose backing chain
leads to a file (overlays of it, overlays of those...) are its *dependants*, and the VMs using a
dependant use the file too.  Networks: every VM with an ``<interface type='network'>`` on it (or a
``type='bridge'`` interface on its bridge).

Not seen: a file VMs reach only through a backing chain outside every storage pool while they are
stopped (libvirt lists the chain of running VMs only; stopped ones by their volumes' metadata).

Everything is read once per run (:func:`usage` keeps the answer on the run's Context), only when
a question is asked.  :func:`guard` is how a destructive plan uses the answer: a real run refuses
unless ``force`` (with the VMs named, and the users as data: ``used_by``, ``dependants``); check
mode warns instead, since an earlier task of the play may remove those VMs (``Context.assume``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._host.facts import run_state
from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record

#: ``<os>`` children that name a host file
OS_FILES = ("loader", "nvram", "kernel", "initrd", "dtb")
#: how many VMs a message names before it says "and N more"
SHOWN = 8

_CONTEXT_KEY = "_virtops_usage"


def usage(ctx):
    """The run's :class:`Usage` (kept on ``ctx``: every domain XML is read once per run)."""
    found = ctx.__dict__.get(_CONTEXT_KEY)
    if found is None or found.conn is not ctx.conn:
        found = Usage(ctx.conn)
        ctx.__dict__[_CONTEXT_KEY] = found
    return found


def _norm(path):
    return os.path.normpath(path) if path else None


class Usage:
    """The VMs of one connection and what they use; read lazily, once."""

    def __init__(self, conn):
        self.conn = conn
        self._files = None      # dicts: vm, state, active, persistent, role, target, path, pool, volume, snapshot
        self._nics = None       # dicts: vm, state, active, persistent, type, network, bridge, mac, filter
        self._secrets = None    # dicts: vm, state, active, persistent, role, target, secret (uuid), usage
        self._volumes = None    # dicts: pool, volume, path, backing
        self._paths = {}        # (pool, volume) -> path, for disks given as pool volumes
        self._hostdevs = []     # dicts: vm, state, active, persistent, type (pci, usb), address (pci) or bus/device, vendor/product

    # --- reading ------------------------------------------------------------------------------

    def _read(self):
        if self._files is not None:
            return
        files, nics, secrets = [], [], []
        self._hostdevs = []
        with libvirt_errors("listing VMs"):
            domains = self.conn.listAllDomains(0)
        for dom in sorted(domains, key=_name_or_empty):
            try:
                self._read_domain(dom, files, nics, secrets)
            except libvirt.libvirtError:
                continue  # gone while we looked
        self._files = _unique(files)
        self._nics = _unique(nics)
        self._hostdevs = _unique(self._hostdevs)
        self._secrets = _unique(secrets)

    def _read_domain(self, dom, files, nics, secrets):
        active = bool(dom.isActive())
        persistent = bool(dom.isPersistent())
        vm = dict(vm=dom.name(), state=run_state(dom), active=active, persistent=persistent)
        texts = [dom.XMLDesc(0)]
        if active and persistent:
            texts.append(dom.XMLDesc(flag("VIR_DOMAIN_XML_INACTIVE", 2)))
        for text in texts:
            root = _xml.parse(text, "domain XML")
            _domain_files(vm, root, None, files)
            _domain_nics(vm, root, nics)
            _domain_hostdevs(vm, root, self._hostdevs)
            _domain_secrets(vm, root, secrets)
        try:
            snapshots = dom.listAllSnapshots(0)
        except libvirt.libvirtError:
            snapshots = []  # a driver without snapshots
        for snap in snapshots:
            root = _xml.parse(snap.getXMLDesc(0), "snapshot XML")
            name = _xml.find_text(root, "name")
            for disk in root.findall("disks/disk"):
                path = _xml.find_attr(disk, "source", "file") or _xml.find_attr(disk, "source", "dev")
                if disk.get("snapshot") == "external" and path:
                    files.append(_use(vm, "overlay", disk.get("name"), path, snapshot=name))
            memory = _xml.find_attr(root, "memory", "file")
            if memory:
                files.append(_use(vm, "memory state", None, memory, snapshot=name))
            saved = root.find("domain")
            if saved is not None:
                _domain_files(vm, saved, name, files)

    def volumes(self):
        """Every volume of every active pool: dicts pool, volume, path, backing (absolute)."""
        if self._volumes is None:
            found = []
            with libvirt_errors("listing storage pools"):
                pools = self.conn.listAllStoragePools(flag("VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE", 2))
            for pool in pools:
                try:
                    pool_name = pool.name()
                    vols = pool.listAllVolumes(0)
                except libvirt.libvirtError:
                    continue
                for vol in vols:
                    try:
                        root = _xml.parse(vol.XMLDesc(0), "volume XML")
                    except libvirt.libvirtError:
                        continue  # deleted meanwhile
                    path = _xml.find_text(root, "target/path")
                    backing = _xml.find_text(root, "backingStore/path")
                    if backing and path and not backing.startswith("/"):
                        backing = os.path.join(os.path.dirname(path), backing)
                    secrets = [s.get("uuid") or s.get("usage") for s in root.iter("secret")]
                    if not secrets and root.find("target/encryption") is not None:
                        secrets = self._recorded_secret(path)
                    found.append(dict(pool=pool_name, volume=_xml.find_text(root, "name"), path=_norm(path),
                                      backing=_norm(backing), secrets=secrets))
            self._volumes = found
        return self._volumes

    def _recorded_secret(self, path):
        """The secret of an encrypted volume from the record the collection wrote when it made it: libvirt
        stops naming a LUKS volume's secret once its pool is refreshed (libvirt 9)."""
        try:
            local = _record.local_path(self.conn.getURI(), path)
        except libvirt.libvirtError:
            return []
        rec = _record.read_record(local) if local else None
        secret = (rec or {}).get("secret")
        return [secret] if isinstance(secret, str) and secret else []

    def _volume_path(self, pool, volume):
        key = (pool, volume)
        if key not in self._paths:
            try:
                self._paths[key] = _norm(self.conn.storagePoolLookupByName(pool).storageVolLookupByName(volume).path())
            except libvirt.libvirtError:
                self._paths[key] = None
        return self._paths[key]

    # --- questions ----------------------------------------------------------------------------

    def file_uses(self):
        self._read()
        return self._files

    def nic_uses(self):
        self._read()
        return self._nics

    def uses_of(self, paths=(), volumes=(), dirs=(), pools=(), exclude_vms=()):
        """The uses of the files ``paths``, the pool volumes ``volumes`` ((pool, name) pairs), the
        files directly in the directories ``dirs``, and every volume of the pools ``pools``."""
        paths = set(_norm(p) for p in paths if p)
        volumes = set(volumes)
        dirs = set(_norm(d) for d in dirs if d)
        pools = set(pools)
        found = []
        for use in self.file_uses():
            if use["vm"] in exclude_vms:
                continue
            path = use["path"]
            if use["volume"] is not None:
                if (use["pool"], use["volume"]) in volumes or use["pool"] in pools:
                    found.append(use)
                    continue
                path = self._volume_path(use["pool"], use["volume"])
            if path is not None and (path in paths or os.path.dirname(path) in dirs):
                found.append(use)
        return found

    def dependants(self, paths=(), dirs=()):
        """Volumes whose backing chain leads to one of ``paths`` or to a file directly in one of
        ``dirs``, nearest first; never one of those files themselves."""
        start = set(_norm(p) for p in paths if p)
        dirs = set(_norm(d) for d in dirs if d)

        def inside(path):
            return path in start or os.path.dirname(path) in dirs

        found, seen, frontier = [], set(), None
        while frontier is None or frontier:
            step = set()
            for vol in self.volumes():
                backing, path = vol["backing"], vol["path"]
                if not backing or not path or path in seen:
                    continue
                if inside(backing) if frontier is None else backing in frontier:
                    seen.add(path)
                    step.add(path)
                    if not inside(path):
                        found.append(vol)
            frontier = step
        return found

    def users_of(self, paths=(), volumes=(), dirs=(), pools=(), exclude_vms=(), exclude_volumes=()):
        """``(users, dependants)`` of what :meth:`uses_of` takes: the direct uses, then the uses of the
        dependant volumes (each with ``via``: the dependant's ``pool/volume``); dependants as
        ``pool/volume`` strings.  ``exclude_volumes``: dependants (``pool/volume``) that do not count."""
        users = list(self.uses_of(paths, volumes, dirs, pools, exclude_vms))
        dependants = []
        for vol in self.dependants(paths, dirs):
            label = "%s/%s" % (vol["pool"], vol["volume"])
            if vol["pool"] in pools or label in exclude_volumes:
                continue  # deleted together with what is asked about
            dependants.append(label)
            for use in self.uses_of([vol["path"]], [(vol["pool"], vol["volume"])], exclude_vms=exclude_vms):
                users.append(dict(use, via=label))
        return _unique(users), dependants

    def hostdev_uses(self, exclude_vms=()):
        """Host devices of VMs (but ``exclude_vms``): dicts vm, state, type, PCI address or USB bus/device/vendor/product."""
        self._read()
        return [use for use in self._hostdevs if use["vm"] not in exclude_vms]

    def filter_users(self, names, exclude_vms=()):
        """The interfaces of VMs whose ``<filterref>`` names one of the network filters ``names``."""
        names = set(names)
        return [nic for nic in self.nic_uses() if nic["vm"] not in exclude_vms and nic.get("filter") in names]

    def secret_users(self, uuid, usage_id=None):
        """``(users, volumes, pools)`` of the libvirt secret ``uuid`` (or its usage ``usage_id``): VMs whose
        disks name it, volumes (``pool/volume``) encrypted with it, storage pools that authenticate with it."""
        self._read()
        keys = set(k for k in (uuid, usage_id) if k)
        users = [u for u in self._secrets if u["secret"] in keys or u["usage"] in keys]
        volumes = ["%s/%s" % (v["pool"], v["volume"]) for v in self.volumes() if keys & set(v.get("secrets") or ())]
        pools = []
        with libvirt_errors("listing storage pools"):
            all_pools = self.conn.listAllStoragePools(0)
        for pool in all_pools:
            try:
                root = _xml.parse(pool.XMLDesc(0), "pool XML")
            except libvirt.libvirtError:
                continue
            if any(keys & set((s.get("uuid"), s.get("usage"))) for s in root.iter("secret")):
                pools.append(_xml.find_text(root, "name"))
        return users, volumes, sorted(pools)

    def network_users(self, name, bridge=None, exclude_vms=()):
        """The interfaces of VMs on network ``name`` (or, ``type='bridge'``, on its bridge)."""
        return [
            nic for nic in self.nic_uses()
            if nic["vm"] not in exclude_vms
            and ((nic["type"] == "network" and nic["network"] == name)
                 or (bridge and nic["type"] == "bridge" and nic["bridge"] == bridge))
        ]


# --- reading one definition ---------------------------------------------------------------------


def _name_or_empty(dom):
    try:
        return dom.name()
    except libvirt.libvirtError:
        return ""


def _use(vm, role, target, path, pool=None, volume=None, snapshot=None):
    return dict(vm, role=role, target=target, path=_norm(path), pool=pool, volume=volume, snapshot=snapshot)


def _unique(items):
    seen, out = set(), []
    for item in items:
        key = tuple(sorted((k, v) for k, v in item.items() if k not in ("state", "active", "persistent")))
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _domain_files(vm, root, snapshot, out):
    """The host files a ``<domain>`` definition names, as uses."""
    os_node = root.find("os")
    if os_node is not None:
        for tag in OS_FILES:
            node = os_node.find(tag)
            if node is None:
                continue
            path = (node.text or "").strip() or _xml.find_attr(node, "source", "file")
            if path:
                out.append(_use(vm, tag, None, path, snapshot=snapshot))
    for disk in root.findall("devices/disk"):
        target = _xml.find_attr(disk, "target", "dev")
        src = disk.find("source")
        if src is not None:
            path = src.get("file") or src.get("dev")
            if path or src.get("volume"):
                out.append(_use(vm, disk.get("device") or "disk", target, path, src.get("pool"), src.get("volume"),
                                snapshot))
        for store in disk.iter("backingStore"):
            path = _xml.find_attr(store, "source", "file") or _xml.find_attr(store, "source", "dev")
            if path:
                out.append(_use(vm, "backing file", target, path, snapshot=snapshot))


def _domain_nics(vm, root, out):
    for nic in root.findall("devices/interface"):
        kind = nic.get("type")
        if kind not in ("network", "bridge"):
            continue
        out.append(dict(vm, type=kind, network=_xml.find_attr(nic, "source", "network") if kind == "network" else None,
                        bridge=_xml.find_attr(nic, "source", "bridge") if kind == "bridge" else None,
                        mac=_xml.find_attr(nic, "mac", "address"), filter=_xml.find_attr(nic, "filterref", "filter")))


def _domain_secrets(vm, root, out):
    """The libvirt secrets a ``<domain>``'s disks name (LUKS encryption, network disk auth), as uses."""
    for disk in root.findall("devices/disk"):
        target = _xml.find_attr(disk, "target", "dev")
        for node in disk.iter("secret"):
            if node.get("uuid") or node.get("usage"):
                out.append(dict(vm, role=disk.get("device") or "disk", target=target, secret=node.get("uuid"),
                                usage=node.get("usage")))


def _number(text):
    """A number as libvirt writes one (``0x1d6b``, ``3``), or None."""
    try:
        return int(text, 16 if text.lower().startswith("0x") else 10) if text else None
    except ValueError:
        return None


def _domain_hostdevs(vm, root, out):
    for dev in root.findall("devices/hostdev[@mode='subsystem']"):
        kind = dev.get("type")
        addr = dev.find("source/address")
        if kind == "pci" and addr is not None:
            values = tuple(_number(addr.get(k)) or 0 for k in ("domain", "bus", "slot", "function"))
            out.append(dict(vm, type=kind, address="%04x:%02x:%02x.%x" % values))
        elif kind == "usb":
            out.append(dict(vm, type=kind, bus=_number(addr.get("bus")) if addr is not None else None,
                            device=_number(addr.get("device")) if addr is not None else None,
                            vendor=_number(_xml.find_attr(dev, "source/vendor", "id")),
                            product=_number(_xml.find_attr(dev, "source/product", "id"))))


# --- what the answer looks like in messages -----------------------------------------------------


def _role_text(use):
    role, target = use["role"], use.get("target")
    if role in ("disk", "cdrom", "floppy", "lun"):
        text = "%s %s" % (role, target) if target else role
    elif role in ("backing file", "overlay"):
        text = "%s of %s" % (role, target) if target else role
    else:
        text = role
    if use.get("snapshot"):
        text += " in snapshot %s" % use["snapshot"]
    if use.get("via"):
        text += " through %s" % use["via"]
    return text


def vm_names(users):
    """The VMs of ``users``, sorted: messages and ``used_by`` read the same on every run."""
    return sorted(set(use["vm"] for use in users))


def describe(users):
    """``VM web1 (running: disk vda), VM db (stopped: cdrom sda, nvram)``."""
    by_vm = {}
    for use in users:
        entry = by_vm.setdefault(use["vm"], [use["state"], []])
        text = _role_text(use) if "role" in use else "interface %s" % (use.get("mac") or "")
        if "role" not in use and use.get("via"):
            text += " through %s" % use["via"]
        if text not in entry[1]:
            entry[1].append(text)
    names = vm_names(users)
    parts = ["VM %s (%s: %s)" % (name, by_vm[name][0], ", ".join(by_vm[name][1])) for name in names[:SHOWN]]
    if len(names) > SHOWN:
        parts.append("and %d more VM(s)" % (len(names) - SHOWN))
    return ", ".join(parts)


def in_use_error(subject, users, dependants=(), advice="remove or change them first", action="do it",
                 verbs=("is used by", "is the backing file of")):
    """The refusal: ``subject`` (``volume 'x' of pool 'p'``) is used by the VMs ``users`` and is the
    backing file of ``dependants``; the users and dependants are details of the error.  None when
    there are neither."""
    if not users and not dependants:
        return None
    parts = []
    if users:
        parts.append("%s %s" % (verbs[0], describe(users)))
    if dependants:
        shown = list(dependants[:SHOWN]) + (["..."] if len(dependants) > SHOWN else [])
        parts.append("%s volume(s) %s" % (verbs[1], ", ".join(shown)))
    what = "%s %s" % (subject, " and ".join(parts))
    error = ConflictError("%s: %s, or set force: true to %s anyway" % (what, advice, action),
                          used_by=[_data(u) for u in users], dependants=list(dependants))
    error.in_use = what
    return error


def _data(use):
    return dict((k, v) for k, v in use.items() if v is not None)


def guard(ctx, error, force, warn=None):
    """A destructive step on something in use (``error`` from :func:`in_use_error`, or None when
    nothing uses it).  ``force``: go on, saying so (``warn``: a plan's warn, else the context's);
    otherwise a real run raises ``error``, and check mode warns with its text and goes on, because an
    earlier task of the play may remove those users (a teardown written task by task)."""
    if error is None:
        return
    if force:
        (warn or ctx.warn)("%s; done anyway (force: true)" % error.in_use)
        return
    ctx.assume(error)


def guard_replace(ctx, paths, own, owner):
    """Files a task would replace (``paths``, those that exist count): never one of ``own`` (the files
    the task reads, ``owner`` says whose: an export's source), nor a file a VM uses or volumes are
    based on (check mode: a warning, see :func:`guard`).  ``force`` does not change that: the
    ``force`` of such a task already means "replace files it did not write", which these are."""
    existing = [p for p in paths if os.path.lexists(p)]
    if not existing:
        return
    own = set(os.path.realpath(p) for p in own if p)
    clash = [p for p in existing if os.path.realpath(p) in own]
    if clash:
        raise ConflictError("dest: %s is a file of %s, which is what is read: a task never replaces its own source "
                            "(force does not change that); choose another dest" % (", ".join(clash), owner),
                            replaced=clash)
    users, dependants = usage(ctx).users_of(existing)
    error = in_use_error("dest: %s" % ", ".join(existing), users, dependants,
                         advice="choose another dest (force does not replace a file in use)", action="replace it")
    if error is not None:
        error.msg = error.msg.split(", or set force: true", 1)[0]
    guard(ctx, error, False)
