# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the ``virtops.libvirt.guests`` role works out from its variables (the ``guests_*`` filters).

Pure Python on plain data, on the controller: nothing here talks to libvirt. Each function is one
filter (``plugins/filter/guests_*.py``, where the behaviour is documented for users):

* ``normalize``: ``guests_vms`` with ``guests_defaults`` merged under each item, and what the ``vm``
  module and placement need worked out (the ``_disks``, ``_interfaces``, ``_metadata``,
  ``_cloud_init``, ``_image_pool`` and ``_seed`` keys);
* ``vm_args``: a normalised guest as the ``vm`` module's arguments (the module's own argument spec
  says which keys are options);
* ``problems``: what is wrong with the declarations, before anything is read;
* ``capacity`` and ``placement_input``: what the ``placement`` filter is given;
* ``resources``: the items of the one ``apply`` task that makes, updates and removes the guests of a
  hypervisor, with their base images and seeds;
* ``report`` and ``summary``: what became of the guests, per hypervisor and for the cluster.

"Blank" below is what Jinja's ``default(x, true)`` replaces: missing, ``None``, ``''``, ``[]``, ``{}``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

#: keys of a guest's ``cloud_init`` that say where the seed goes, not what it holds
SEED_PLACE_KEYS = ("pool", "volume", "bus")
#: vm module options the role works out itself: the option's value comes from the key with a leading ``_``
WORKED_OUT = ("disks", "interfaces", "metadata", "cloud_init")
#: keys of a ``guests_images`` item passed to the ``volume`` module (``pool`` is worked out)
IMAGE_OPTIONS = ("name", "source", "source_format", "format", "checksum", "validate_certs", "timeout")
#: options of the ``cloudinit`` module that are no content of a seed (where it goes and how it is written)
SEED_NOT_CONTENT = ("uri", "name", "pool", "path", "mode", "state", "force", "iso_builder")
#: options of the role that apply to every VM it makes, over the VM's own (``guests_shutdown_timeout``...)
VM_ROLE_OPTIONS = ("shutdown_timeout", "force", "apply")

_SUMMARY_LINE = "%-24s %-16s %-14s %s"


def _or(value, fallback):
    """``value | default(fallback, true)``: ``fallback`` when ``value`` is blank."""
    return value if value else fallback


def normalize(vms, defaults=None, pool="default", images=None, cluster="default", cloud_init_hostname=True):
    """The declared guests, each merged over ``defaults`` and worked out (see the module docstring)."""
    out = []
    for raw in vms:
        g = dict(defaults or {})
        g.update(raw)
        g_pool = _or(g.get("pool"), pool)
        groups = _or(g.get("anti_affinity"), [])
        if isinstance(groups, str):
            groups = [groups]
        image = g.get("image")
        known = [i for i in images or [] if i.get("name") == _or(image, "")]
        image_pool = (_or(known[0].get("pool"), None) if known else None) or _or(g.get("image_pool"), None) or g_pool

        disks = []
        if image:
            root = dict(pool=g_pool, backing_volume=image, backing_pool=image_pool)
            if g.get("disk_size") is not None:
                root["size"] = g["disk_size"]
            disks = [root]
        elif g.get("disk_size") is not None:
            disks = [dict(pool=g_pool, size=g["disk_size"])]

        interfaces = [n if isinstance(n, dict) else dict(network=n) for n in _or(g.get("networks"), [])]

        metadata = dict(_or(g.get("metadata"), {}))
        metadata["cluster"] = cluster
        if groups:
            metadata["anti_affinity"] = ",".join(groups)

        ci = _or(g.get("cloud_init"), None)
        content = [k for k in ci or {} if k not in SEED_PLACE_KEYS]
        if ci:
            seed = dict(pool=g_pool)
            if content and cloud_init_hostname:
                seed["hostname"] = g.get("name")
            seed.update(ci)
            ci = seed

        g.update(
            state=_or(g.get("state"), "running"),
            hypervisor=_or(g.get("hypervisor"), None),
            pool=g_pool,
            anti_affinity=groups,
            _image_pool=image_pool,
            _disks=disks + _or(g.get("disks"), []),
            _interfaces=g["interfaces"] if g.get("interfaces") is not None else interfaces,
            _metadata=metadata,
            _cloud_init=ci,
            _seed=len(content) > 0,
        )
        out.append(g)
    return out


def vm_args(guest, options):
    """``guest`` (one item of ``normalize``) as arguments of a module whose options are ``options``.

    An option the guest has is passed as it is (``None`` too, as ``default(omit)`` does); for the
    options of ``WORKED_OUT`` the role's value (``_disks`` ...) is passed instead, unless it is
    ``None``. Keys that are no option of the module are left out.
    """
    args = {}
    for option in options:
        if option in WORKED_OUT:
            value = guest.get("_" + option)
            if value is not None:
                args[option] = value
        elif option in guest:
            args[option] = guest[option]
    return args


def problems(guests, cluster_hosts, play_hosts):
    """Messages about the declarations: names declared twice, pins outside the cluster, silent hosts."""
    out = []
    names = [g.get("name") for g in guests]
    seen = []
    for name in names:
        if names.count(name) > 1 and name not in seen:
            seen.append(name)
            out.append("VM %s is declared %d times" % (name, names.count(name)))
    for g in guests:
        if g.get("hypervisor") and g["hypervisor"] not in cluster_hosts:
            out.append("VM %s is pinned to %s, which is not a hypervisor of the cluster (%s)"
                       % (g.get("name"), g["hypervisor"], ", ".join(cluster_hosts)))
    silent = [h for h in cluster_hosts if h not in play_hosts]
    if silent:
        out.append("hypervisors of the cluster missing from the play (failed, unreachable or left out by --limit): "
                   "%s; placing VMs without them could make a VM twice" % ", ".join(silent))
    return out


def capacity(hosts, hostvars, host_info, vm_info, device_info=None):
    """``{host: {'host': <host_info's host>, 'vms': <vm_info's vms>}}`` from what each host registered, with
    ``devices`` (its ``host_device_info`` result) where it registered one as ``device_info`` (not skipped)."""
    out = {}
    for h in hosts:
        out[h] = dict(host=hostvars[h][host_info]["host"], vms=hostvars[h][vm_info]["vms"])
        devices = hostvars[h].get(device_info) if device_info else None
        if isinstance(devices, dict) and devices.get("pci_devices") is not None:
            out[h]["devices"] = devices["pci_devices"]
    return out


def active_pools(cap):
    """Names of the pools active on at least one hypervisor of ``cap`` (a ``capacity`` table), sorted."""
    return sorted(set(p["name"] for entry in cap.values() for p in entry["host"].get("pools") or [] if p.get("active")))


def placement_input(guests, cap, check_mode=False):
    """What ``placement`` needs of each guest. In check mode a pool no hypervisor has yet is left out."""
    pools = active_pools(cap)
    out = []
    for g in guests:
        item = dict(name=g.get("name"), vcpus=g.get("vcpus"), memory=g.get("memory"), anti_affinity=g.get("anti_affinity"))
        if g.get("hypervisor"):
            item["hypervisor"] = g["hypervisor"]
        if g.get("arch"):
            item["arch"] = g["arch"]
        if g.get("requires"):
            item["requires"] = g["requires"]
        if g.get("_disks") and (not check_mode or g.get("pool") in pools):
            item["pool"] = g.get("pool")
            if g.get("disk_size") is not None:
                item["disk_size"] = g["disk_size"]
        out.append(item)
    return out


def _results(registered):
    """The ``results`` of a registered task (the apply task), or ``[]`` (a skipped or missing task)."""
    if not isinstance(registered, dict):
        return []
    return registered.get("results") or []


def seed_name(guest):
    """The seed volume of ``guest``: its ``cloud_init``'s ``volume``, else ``<name>-seed.iso`` (as the vm module names it)."""
    return _or((guest.get("_cloud_init") or {}).get("volume"), "%s-seed.iso" % guest.get("name"))


def _in_pool(pool, pools):
    return pools is None or pool in pools


def resources(guests, vm_options, seed_options, images=(), seeds=(), remove=(), remove_seeds=(), remove_images=(),
              pool="default", pools=None, remove_storage=True, **role_options):
    """The ``resources`` of one ``apply`` task on one hypervisor (see the ``guests_resources`` filter).

    ``vm_options`` and ``seed_options`` are the options of the ``vm`` and ``cloudinit`` modules (their
    argument specs); ``role_options`` the role's ``VM_ROLE_OPTIONS`` (``None``: the VM's own, or the module's
    default).  Items in this order: base images, VMs, seeds kept for VMs placed elsewhere, VMs removed,
    seeds removed, base images removed.
    """
    content = [option for option in seed_options if option not in SEED_NOT_CONTENT]
    forced = dict((k, v) for k, v in role_options.items() if k in VM_ROLE_OPTIONS and v is not None)
    items = []
    for image in images:
        item = dict(kind="volume", pool=_or(image.get("pool"), pool))
        item.update((k, image[k]) for k in IMAGE_OPTIONS if image.get(k) is not None)
        items.append(item)
    for guest in guests:
        item = dict(kind="vm")
        item.update(vm_args(guest, vm_options))
        item.pop("uri", None)  # the task's: the hypervisor's
        item.update(forced)
        items.append(item)
    for guest in seeds:
        if guest.get("_seed"):
            ci = guest["_cloud_init"]
            item = dict(kind="cloudinit", pool=ci.get("pool"), name=seed_name(guest))
            item.update((k, ci[k]) for k in content if k in ci)
            items.append(item)
    names = list(dict.fromkeys(remove))  # once each: apply refuses two items for one VM
    items.extend(dict(kind="vm", name=name, state="absent", remove_storage=bool(remove_storage)) for name in names)
    if remove_storage:
        items.extend(dict(kind="cloudinit", pool=g["_cloud_init"].get("pool"), name=seed_name(g), state="absent")
                     for g in remove_seeds if g.get("_seed") and _in_pool(g["_cloud_init"].get("pool"), pools))
    for image in remove_images:
        image_pool = _or(image.get("pool"), pool)
        if _in_pool(image_pool, pools):
            items.append(dict(kind="volume", pool=image_pool, name=image.get("name"), state="absent"))
    return items


def report(applied, hypervisor, resources, addresses=None):
    """One row per VM item of ``resources`` that ran in ``applied`` (the registered ``apply`` task): name,
    hypervisor, state, changed, reboot_required, ip."""
    found = (addresses or {}).get("vms") or [] if isinstance(addresses, dict) else []
    ips = dict((vm.get("name"), vm.get("ip")) for vm in found)

    def row(name, state, changed, reboot_required=False, ip=None):
        return dict(name=name, hypervisor=hypervisor, state=state, changed=changed, reboot_required=reboot_required, ip=ip)

    made, removed = [], []
    for r in _results(applied):
        index = r.get("index")
        item = resources[index] if isinstance(index, int) and 0 <= index < len(resources) else {}
        if item.get("kind") != "vm" or r.get("failed") or r.get("skipped"):
            continue
        name = item.get("name")
        if item.get("state") == "absent":
            removed.append(row(name, "removed", r.get("changed")))
        elif "vm" in r:
            vm = r["vm"]
            state = "absent" if not vm else ("to be created" if vm.get("uuid") is None else vm["state"])
            made.append(row(name, state, r.get("changed"), r.get("reboot_required", False), ips.get(name)))
    return made + removed


def summary(rows):
    """A table, one line per row of ``report`` (all hypervisors' rows), with a header; sorted by name
    without regard to case, as Jinja's ``sort`` does."""
    lines = [_SUMMARY_LINE % ("VM", "hypervisor", "state", "address")]
    for r in sorted(rows, key=lambda r: r["name"].lower()):
        state = r["state"] + (" (reboot pending)" if r.get("reboot_required") else "")
        lines.append(_SUMMARY_LINE % (r["name"], r["hypervisor"], state, r.get("ip") or "-"))
    return lines
