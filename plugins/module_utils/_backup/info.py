# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``backup_info``: the catalog of a repository, read from the manifests of its points, and (``verify``) the
check of every point: its files against their sizes and SHA-256 checksums, and its chain down to its full
point (a missing parent, a damaged link, other disks)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.virtops.libvirt.plugins.module_utils._backup import repo as _repo
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.names import validate_object_name


def point_view(points, point, verified=None):
    manifest = point["manifest"]
    chain = None
    chain_problem = None
    try:
        chain = [p["name"] for p in _repo.chain_of(points, point["name"])]
    except (InvalidInputError, NotFoundError) as exc:
        chain_problem = exc.msg
    view = dict(
        name=point["name"], directory=point["directory"], created=manifest.get("created"), mode=manifest.get("mode"),
        parent=manifest.get("parent"), checkpoint=manifest.get("checkpoint"), compression=manifest.get("compression"),
        consistency=manifest.get("consistency"), size=_repo.point_size(point), chain=chain,
        disks=[dict(target=f.get("target"), virtual_size=f.get("virtual_size"), size=f.get("size"))
               for f in _repo.disk_files(manifest)],
        nvram=any(isinstance(f, dict) and f.get("kind") == "nvram" for f in manifest.get("files") or []),
        uuid=(manifest.get("vm") or {}).get("uuid"),
    )
    if verified is not None:
        view["verified"] = not verified
        view["problems"] = verified
    elif chain_problem:
        view["problems"] = [chain_problem]
    return view


def gather_backup_info(ctx):
    params = ctx.params
    repository = params.get("repository")
    if not repository or not os.path.isabs(repository):
        raise InvalidInputError("repository must be an absolute path, not %r" % (repository,))
    if not os.path.isdir(repository):
        raise NotFoundError("repository %s does not exist" % repository)
    wanted = params.get("vm")
    if wanted is not None:
        validate_object_name(wanted, "VM")
    names = [wanted] if wanted else _repo.list_vms(repository)
    vms = []
    problems = 0
    for name in names:
        points, broken = _repo.load_points(repository, name)
        if wanted and not points and not broken:
            raise NotFoundError("repository %s has no point of VM '%s'" % (repository, name))
        cache = {}
        views = []
        for point in points:
            found = _repo.verify_point(points, point["name"], cache=cache) if params.get("verify") else None
            view = point_view(points, point, found)
            problems += len(view.get("problems") or [])
            views.append(view)
        uuids = sorted(set(v["uuid"] for v in views if v["uuid"]))
        vms.append(dict(name=name, uuids=uuids, points=views, broken=broken, size=sum(v["size"] for v in views),
                        newest=views[-1]["name"] if views else None))
    result = dict(changed=False, repository=repository, vms=vms, verified=bool(params.get("verify")),
                  problems=problems)
    if params.get("verify") and problems and params.get("fail_on_problems"):
        bad = ["%s/%s: %s" % (vm["name"], p["name"], "; ".join(p["problems"])) for vm in vms for p in vm["points"]
               if p.get("problems")]
        raise _repo.CorruptedError("the repository %s has damaged points: %s" % (repository, " | ".join(bad)),
                                   vms=vms, problems=problems)
    return result
