# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``cloudinit`` module's resource: a NoCloud seed as a volume in a pool, or as a file.

A seed is an ISO 9660 image (Joliet and Rock Ridge) with the volume id ``cidata`` and the files
``user-data``, ``meta-data`` and optionally ``network-config`` and ``vendor-data`` in its root.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import secrets as _secrets
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError, VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Resource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import Usage, guard, in_use_error, usage
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.iso import choose_builder
from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.content import build_seed, file_list, seed_texts
from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.targets import FileTarget, VolumeTarget


class CloudInitResource(Resource):
    """The ``cloudinit`` module: a NoCloud seed as volume ``name`` in ``pool``, or as file ``path``.

    ``params``: the module's parameters (``ctx.params`` unless given), see ``plugins/modules/cloudinit.py``.
    """

    kind = "cloud-init seed"

    def __init__(self, ctx, params=None):
        super(CloudInitResource, self).__init__(ctx)
        if params is not None:
            self.params = dict(params)
        p = self.params
        # first of all: a message about bad content must not show a password in it
        self.secrets = _secrets.seed_secrets(p)
        ctx.secret(*self.secrets)
        self.state = p.get("state") or "present"
        if self.state not in ("present", "absent"):
            raise InvalidInputError("state must be present or absent")
        if p.get("path") and (p.get("pool") or p.get("name")):
            raise InvalidInputError("give either path, or pool and name")
        if p.get("path"):
            self.target = FileTarget(p["path"], p.get("mode"), on_missing_dir=ctx.assume)
        elif p.get("pool") and p.get("name"):
            if p.get("mode") is not None:
                raise InvalidInputError("mode applies to a seed stored at path, not to a pool volume")
            self.target = VolumeTarget(ctx.conn, p["pool"], p["name"], ctx.uri, on_missing_pool=self._missing_pool)
        else:
            raise InvalidInputError("give either path, or pool and name")
        self.seed = build_seed(p, self.target.seed_id) if self.state == "present" else None

    @property
    def name(self):
        return self.target.label

    def _missing_pool(self, error):
        """A seed in a pool that does not exist is absent; to make one, in check mode, an earlier task
        may create (or start) the pool."""
        if self.state == "absent" and isinstance(error, NotFoundError):
            return
        self.ctx.assume(error)

    def read(self):
        return self.target.read()

    def desired(self, current):
        if self.seed is None:
            return None
        return dict(content_sha256=self.seed.content_sha256,
                    mode=self.target.mode if self.target.kind == "file" else None)

    def plan(self, current, desired, diff, plan):
        for text in (self.seed.warnings if self.seed is not None else ()):
            plan.warn(text)
        force = bool(self.params.get("force"))
        if current is not None and not current["is_seed"] and not force and (desired is None or diff):
            raise ConflictError(
                "%s %s exists and is not a cloud-init seed (%s): refusing to %s it; set force=true to do it anyway"
                % (self.target.kind, self.name, current["reason"], "remove" if desired is None else "overwrite"),
            )
        if desired is None:
            if current is not None:
                guard_remove(self.ctx, self.target, current, plan, force=force)
                self.target.plan_remove(plan, current)
            return
        if current is None or diff.touches("content_sha256"):
            builder = choose_builder(self.params.get("iso_builder"), self.ctx.run_command)
            self.target.plan_write(plan, self.seed, builder, current)
        elif diff.touches("mode"):
            self.target.plan_mode(plan, desired["mode"], current)

    def predict(self, current, desired):
        if desired is None:
            return None
        return dict(path=self.target.predicted_path(current), is_seed=True, files=self.seed.files,
                    content_sha256=self.seed.content_sha256, instance_id=self.seed.instance_id,
                    mode=self.target.desired_mode(current))

    def result(self, state, outcome):
        if state is None:
            return dict(path=None, instance_id=None, content_sha256=None, files=[])
        return dict(
            path=state.get("path"),
            instance_id=state.get("instance_id"),
            content_sha256=state.get("content_sha256"),
            files=file_list(state["files"]) if state.get("files") is not None else [],
        )

    def diff_views(self, current, desired):
        if current is None:
            before = ""
        elif not current["is_seed"]:
            before = "# %s (not a cloud-init seed)\n" % current["reason"]
        else:
            before = seed_texts(current["files"], self.secrets)
        after = "" if desired is None else seed_texts(self.seed.files, self.secrets)
        return before, after


def guard_remove(ctx, target, current, plan, detached_from=None, force=False):
    """Removing a seed that a VM (other than ``detached_from``) still has attached is refused unless
    ``force`` (check mode: a warning, see :func:`_usage.guard`).  A seed file is looked up in libvirt
    over a connection of its own when the run has none (``cloudinit`` with ``path``)."""
    volumes = [(target.pool_name, target.name)] if target.kind == "volume" else []
    exclude = [detached_from] if detached_from else []
    if ctx.conn is not None:
        users, dependants = usage(ctx).users_of([current["path"]], volumes, exclude_vms=exclude)
    else:
        connection = Connection(ctx.uri or ctx.params.get("uri"))
        try:
            users, dependants = Usage(connection.open()).users_of([current["path"]], volumes, exclude_vms=exclude)
        except VirtopsError as exc:
            plan.warn("could not ask libvirt at %s whether a VM uses %s: %s" % (connection.uri, target.label, exc.msg))
            return
        finally:
            connection.close()
    error = in_use_error("seed %s %s" % (target.kind, target.label if target.kind == "file" else repr(target.name)),
                         users, dependants, advice="detach it first (a VM whose disk is missing does not start)",
                         action="remove it")
    guard(ctx, error, force, plan.warn)
