# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every timeout of every module goes through one check (``_timeouts``): zero, negative, a boolean or
a string is refused with the option's name, before anything is done."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtops.libvirt.plugins.module_utils._cluster import inventory as _inventory

from ansible_collections.virtops.libvirt.plugins.module_utils._migrate import decide as _migrate

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import info as _vm_info
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._core.timeouts import check_timeouts, timeout_seconds
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.vm import VmResource
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume import VolumeResource
from ansible_collections.virtops.libvirt.plugins.modules.vm import ARGUMENT_SPEC as VM_SPEC


def _validated(spec, **given):
    result = ArgumentSpecValidator(spec).validate(given)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def _vm(conn, **given):
    ctx = Context(conn=conn, params=_validated(VM_SPEC, name="u-timeouts", **given))
    return reconcile(VmResource(ctx), check_mode=True)


def _volume(conn, timeout):
    params = dict(name="u-timeouts.qcow2", pool="default-pool", state="present", capacity="1M", format=None,
                  preallocation=None, source=None, source_format=None, checksum=None, validate_certs=True, timeout=timeout,
                  backing_volume=None, clone_from=None, allow_shrink=False, force=False, wipe=False)
    return VolumeResource(Context(conn=conn, params=params))


#: (option, how a module takes it)
ENTRY_POINTS = [
    ("shutdown_timeout", lambda conn, value: _vm(conn, shutdown_timeout=value, state="stopped")),
    ("wait_for_ip_timeout", lambda conn, value: _vm(conn, wait_for_ip_timeout=value, state="stopped")),
    ("cloud_init.detach_timeout", lambda conn, value: _vm(conn, state="stopped",
                                                          cloud_init=dict(hostname="h", pool="default-pool",
                                                                          detach_timeout=value))),
    ("agent_timeout", lambda conn, value: _vm_info.gather_vm_info(Context(conn=conn, params=dict(agent_timeout=value)))),
    ("agent_timeout", lambda conn, value: _inventory.check_options(dict(agent_timeout=value))),
    ("timeout", lambda conn, value: _inventory.run_concurrently([], timeout=value)),
    ("timeout", lambda conn, value: _migrate.normalize(dict(name="x", dest_uri="test:///other", timeout=value))),
    ("timeout", _volume),
]


@pytest.mark.parametrize("value", [0, -1, -3600, True])
@pytest.mark.parametrize("option, entry", ENTRY_POINTS, ids=[
    "vm-shutdown", "vm-wait-for-ip", "vm-detach", "vm_info-agent", "inventory-agent", "inventory-timeout", "migrate",
    "volume-url"])
def test_every_module_refuses_a_timeout_that_is_not_positive(test_conn, option, entry, value):
    with pytest.raises(InvalidInputError) as info:
        entry(test_conn, value)
    assert info.value.msg == "%s: must be a positive number of seconds, got %r" % (option, value)


@pytest.mark.parametrize("value, default, expected", [(None, 120, 120), (None, None, None), (1, 120, 1), (0.5, None, 0.5)])
def test_good_values_and_defaults(value, default, expected):
    assert timeout_seconds(value, "t", default) == expected
    assert check_timeouts(dict(t=value), dict(t=default)) == dict(t=expected)


@pytest.mark.parametrize("value", ["5", [5], {}])
def test_other_types(value):
    with pytest.raises(InvalidInputError, match="t: must be a positive number of seconds"):
        timeout_seconds(value, "t")
