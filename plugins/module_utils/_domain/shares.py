# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A ``vm``'s emulated TPM (``tpm``) and its virtiofs shares (``filesystems``).

* ``tpm``: ``dict(model='tpm-crb'|'tpm-tis', version='2.0')`` or ``dict(model='none')``: a TPM 2.0
  emulated by ``swtpm``, ``<tpm model=...><backend type='emulator' version='2.0'/></tpm>``.  libvirt
  keeps its state in ``/var/lib/libvirt/swtpm/<uuid>`` and removes it when the VM is undefined with
  ``VIR_DOMAIN_UNDEFINE_TPM`` (what the vm module's removal does).
* ``filesystems``: ``[dict(source='/srv/share', target='tag', readonly=False)...]`` sorted by target:
  ``<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/>``; the guest mounts
  one with ``mount -t virtiofs TAG DIR``.  virtiofs needs memory the virtiofsd process can map, so a
  VM with shares gets ``<memoryBacking><source type='memfd'/><access mode='shared'/>``.

What the host must have (swtpm, virtiofsd) is read from libvirt's domain capabilities
(:func:`check_host_support`), so the answer is the hypervisor's, local or remote.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError, MissingDependencyError

TPM_MODELS = ("tpm-crb", "tpm-tis")
TPM_VERSION = "2.0"
_TAG_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,36}$")


# --- parameters -> model ------------------------------------------------------------------------


def normalize_tpm(tpm):
    if tpm is None:
        return None
    model = tpm.get("model") or TPM_MODELS[0]
    if model == "none":
        return dict(model="none")
    if model not in TPM_MODELS:
        raise InvalidInputError("tpm.model: %r is not one of %s, none" % (model, ", ".join(TPM_MODELS)))
    return dict(model=model, version=TPM_VERSION)


def normalize_filesystems(shares):
    if shares is None:
        return None
    out, tags = [], {}
    for index, share in enumerate(shares):
        what = "filesystems[%d]" % index
        source, tag = share.get("source"), share.get("target")
        if not source or not str(source).startswith("/"):
            raise InvalidInputError("%s.source: %r must be an absolute directory on the host" % (what, source))
        if not tag or not _TAG_RE.match(str(tag)):
            raise InvalidInputError("%s.target: %r must be a mount tag of 1-36 letters, digits or _.:-" % (what, tag))
        if tag in tags:
            raise InvalidInputError("%s.target: tag %r is also the tag of filesystems[%d]" % (what, tag, tags[tag]))
        tags[tag] = index
        source = str(source).rstrip("/") or "/"
        out.append(dict(source=source, target=str(tag), readonly=bool(share.get("readonly"))))
    return sorted(out, key=lambda share: share["target"])


# --- model -> XML -------------------------------------------------------------------------------


def apply_shares(root, model, devices, insert_device, drop):
    """Write ``tpm`` and ``filesystems`` of ``model`` into ``root`` (``devices(root)`` gives ``<devices>``,
    ``insert_device(devices, node)`` places a device, ``drop(parent, path)`` removes)."""
    tpm = model.get("tpm")
    if tpm:
        _set_tpm(devices(root), tpm, insert_device, drop)
    shares = model.get("filesystems")
    if shares is not None:
        _set_filesystems(devices(root), shares, insert_device)


def _set_tpm(devices, tpm, insert_device, drop):
    node = devices.find("tpm")
    if tpm["model"] == "none":
        drop(devices, "tpm")
        return
    if node is not None and node.get("model") == tpm["model"] and _xml.find_attr(node, "backend", "type") == "emulator" \
            and _xml.find_attr(node, "backend", "version") == tpm["version"]:
        return
    drop(devices, "tpm")
    node = _xml.element("tpm", attrs={"model": tpm["model"]})
    _xml.sub(node, "backend", attrs={"type": "emulator", "version": tpm["version"]})
    insert_device(devices, node)


def _set_filesystems(devices, shares, insert_device):
    existing = dict((_xml.find_attr(fs, "target", "dir"), fs) for fs in devices.findall("filesystem"))
    wanted = dict((share["target"], share) for share in shares)
    for tag, node in existing.items():
        if tag not in wanted:
            devices.remove(node)
    for share in shares:
        node = existing.get(share["target"])
        if node is not None and _xml.find_attr(node, "source", "dir") == share["source"] \
                and (node.find("readonly") is not None) == share["readonly"]:
            continue
        fresh = filesystem_element(share)
        if node is not None:
            node.addprevious(fresh)
            devices.remove(node)
        else:
            insert_device(devices, fresh)


def filesystem_element(share):
    node = _xml.element("filesystem", attrs={"type": "mount", "accessmode": "passthrough"})
    _xml.sub(node, "driver", attrs={"type": "virtiofs"})
    _xml.sub(node, "source", attrs={"dir": share["source"]})
    _xml.sub(node, "target", attrs={"dir": share["target"]})
    if share["readonly"]:
        _xml.sub(node, "readonly")
    return node


def needs_shared_memory(model):
    return bool(model.get("filesystems"))


# --- what the host has --------------------------------------------------------------------------


def domain_capabilities(conn, model, current):
    """libvirt's domain capabilities for the VM's emulator, arch, machine and virt type (None when the driver has none)."""
    def pick(key):
        return model.get(key) or (current or {}).get(key)

    try:
        return _xml.parse(conn.getDomainCapabilities(None, pick("arch"), pick("machine"), pick("virt_type"), 0),
                          "domain capabilities")
    except libvirt.libvirtError:
        return None


#: the first libvirt whose QEMU driver takes a read-only virtiofs share (9.0 says "not yet")
READONLY_VIRTIOFS_VERSION = 11000000


def check_host_support(caps, model, current, lib_version=None):
    """A TPM needs swtpm and a share virtiofsd on the hypervisor: refused clearly when libvirt's domain
    capabilities (``caps``, parsed; None: unknown, nothing is refused) say the host lacks them.  A
    read-only share needs libvirt 11 (``lib_version``: ``getLibVersion()``, None: unknown)."""
    for index, share in enumerate(model.get("filesystems") or ()):
        if share["readonly"] and lib_version is not None and lib_version < READONLY_VIRTIOFS_VERSION:
            raise InvalidInputError("filesystems[%d].readonly: libvirt %d.%d on the hypervisor refuses read-only virtiofs shares "
                                    "(libvirt 11 takes them); leave readonly out and mount the share read-only in the guest "
                                    "(mount -o ro)" % (index, lib_version // 1000000, lib_version // 1000 % 1000))
    if caps is None:
        return
    tpm = model.get("tpm")
    had_tpm = ((current or {}).get("tpm") or {}).get("model") not in (None, "none")
    if tpm and tpm["model"] != "none" and not had_tpm:
        node = caps.find("devices/tpm")
        if node is not None:
            backends = [v.text for v in node.findall("enum[@name='backendModel']/value")]
            models = [v.text for v in node.findall("enum[@name='model']/value")]
            if node.get("supported") != "yes" or "emulator" not in backends:
                raise MissingDependencyError("tpm: the hypervisor cannot emulate a TPM: libvirt finds no swtpm there (install the "
                                             "swtpm and swtpm-tools packages, then restart libvirtd)")
            if models and tpm["model"] not in models:
                raise InvalidInputError("tpm.model: the hypervisor offers TPM models %s, not %s" % (", ".join(models), tpm["model"]))
    if model.get("filesystems"):
        node = caps.find("devices/filesystem")
        drivers = [v.text for v in node.findall("enum[@name='driverType']/value")] if node is not None else []
        if node is not None and (node.get("supported") != "yes" or "virtiofs" not in drivers):
            raise MissingDependencyError("filesystems: the hypervisor offers no virtiofs (libvirt finds no virtiofsd; on Debian it "
                                         "is /usr/lib/qemu/virtiofsd of qemu-system-common)")
