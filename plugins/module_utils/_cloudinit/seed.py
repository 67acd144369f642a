# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A cloud-init seed embedded in another resource (the ``vm`` module's ``cloud_init``).

:func:`ensure_seed` and :func:`remove_seed` add a seed's steps to the caller's plan; the names a caller
also needs (:data:`SEED_OPTIONS`, :data:`SEED_ARGUMENT_SPEC`, :func:`build_seed`) are importable here too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError
from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.content import build_seed
from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.options import SEED_ARGUMENT_SPEC, SEED_OPTIONS
from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.resource import CloudInitResource, guard_remove

__all__ = ("SEED_ARGUMENT_SPEC", "SEED_OPTIONS", "build_seed", "ensure_seed", "remove_seed")


def _seed_params(options, pool, name, path, state, force, iso_builder, mode=None):
    params = dict((k, options.get(k)) for k in SEED_OPTIONS)
    params.update(pool=pool, name=name, path=path, state=state, force=force, iso_builder=iso_builder, mode=mode)
    return params


def ensure_seed(ctx, plan, options, pool=None, name=None, path=None, force=False, iso_builder="auto"):
    """Add to ``plan`` the steps that make the seed volume ``pool``/``name`` (or the file ``path``) hold ``options``.

    For resources that embed a seed (the ``vm`` module).  ``ctx`` is the run's Context (connection,
    command runner), ``plan`` the caller's :class:`~._reconcile.Plan`; ``options`` a dict with the keys
    of :data:`SEED_OPTIONS`.  Nothing happens until the plan executes; a later failing step of the
    plan undoes the seed steps too (a new volume is deleted, a replaced one restored).

    Returns dict(changed, path, pool, name, instance_id, content_sha256, files): ``changed`` is whether
    steps were added; ``path`` is the volume's path (predicted when it does not exist yet), for the
    domain's ``<disk>``.  Warnings go to ``plan.warn``.  Raises InvalidInputError on bad options,
    ConflictError when the volume exists and is not a seed (unless ``force``).
    """
    resource = CloudInitResource(ctx, params=_seed_params(options, pool, name, path, "present", force, iso_builder))
    result = plan.include(resource).result()
    result.update(pool=pool, name=name)
    return result


def remove_seed(ctx, plan, pool=None, name=None, path=None, detached_from=None, force=False):
    """Add to ``plan`` the step that deletes the seed volume ``pool``/``name`` (or the file ``path``).

    ``detached_from``: a domain whose reference to the volume the same plan removes (before this
    step); any other domain using the volume is a ConflictError unless ``force``.  Refuses to
    delete something that is not a seed unless ``force``.  Returns dict(changed, path).
    """
    resource = CloudInitResource(ctx, params=_seed_params({}, pool, name, path, "absent", force, "auto"))
    current = resource.read()
    if current is None:
        return dict(changed=False, path=None)
    if not current["is_seed"] and not force:
        raise ConflictError("%s %s is not a cloud-init seed (%s): refusing to remove it"
                            % (resource.target.kind, resource.name, current["reason"]))
    before = len(plan.steps)
    guard_remove(ctx, resource.target, current, plan, detached_from=detached_from, force=force)
    resource.target.plan_remove(plan, current)
    return dict(changed=len(plan.steps) > before, path=current["path"])
