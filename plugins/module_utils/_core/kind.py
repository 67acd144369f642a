# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a resource module is, declared once: its argument spec and its constraints, its resource class,
where its secrets hide and whether it needs libvirt.

The module's ``main()`` builds its ``AnsibleModule`` from a :class:`Kind`; the ``apply`` module validates
each item of its ``resources`` list with the same :class:`Kind`, so an item is written exactly as the task
it replaces.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import run_module

_CONSTRAINTS = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")


class Kind:
    """One resource module: ``name`` (the module's short name), ``argument_spec``, the constraints
    AnsibleModule takes (``mutually_exclusive``...), ``resource`` (the :class:`~._core.reconcile.Resource`
    class), ``secrets(params)`` (the secret values inside free-form options, or None) and
    ``local(params)`` (True when these parameters need no libvirt connection)."""

    def __init__(self, name, argument_spec, resource, secrets=None, local=None, **constraints):
        unknown = set(constraints) - set(_CONSTRAINTS)
        if unknown:
            raise TypeError("unknown constraints: %s" % ", ".join(sorted(unknown)))
        self.name = name
        self.argument_spec = argument_spec
        self.resource = resource
        self.secrets = secrets
        self.local = local
        self.constraints = dict((k, v) for k, v in constraints.items() if v)

    def module_kwargs(self):
        """Keyword arguments of ``AnsibleModule`` (and of ``ArgumentSpecValidator``, less check mode)."""
        return dict(self.constraints, argument_spec=self.argument_spec, supports_check_mode=True)

    def needs_libvirt(self, params):
        return not (self.local is not None and self.local(params))

    def run(self, module):
        """The ``main()`` of the module: reconcile one resource with ``module``'s parameters and exit."""
        remote = self.needs_libvirt(module.params)
        run_resource(module, self.resource, requires=("libvirt", "lxml") if remote else (), connect=remote,
                     secrets=self.secrets)

    def __repr__(self):
        return "Kind(%r)" % self.name


def run_resource(module, resource_class, requires=("libvirt", "lxml"), connect=True, secrets=None):
    """Reconcile one resource of ``resource_class`` and exit; the usual ``main()`` of a resource module."""

    def handler(ctx):
        return reconcile(resource_class(ctx), check_mode=ctx.check_mode, want_diff=ctx.diff)

    run_module(module, handler, requires=requires, connect=connect, secrets=secrets)
