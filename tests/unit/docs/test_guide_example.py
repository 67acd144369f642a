# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The worked example of the resource contract in the development guide runs, against libvirt's
test driver, through check, apply, check, apply (so the guide cannot drift from the code)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import textwrap

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context

GUIDE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "docsite", "rst", "guide_development.rst")


def _example():
    with open(GUIDE) as handle:
        text = handle.read()
    start = text.index("A worked example")
    block = re.search(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text[start:]).group(1)
    namespace = {}
    exec(compile(textwrap.dedent(block), GUIDE, "exec"), namespace)  # pylint: disable=exec-used
    return namespace["AutostartResource"]


@pytest.fixture
def conn():
    c = libvirt.open("test:///default")
    yield c
    c.close()


def _run(conn, resource_class, check, **params):
    ctx = Context(conn=conn, params=dict(params), check_mode=check, diff=True)
    return reconcile(resource_class(ctx), check_mode=check, want_diff=True)


def test_the_worked_example_is_idempotent_and_honest_in_check_mode(conn):
    resource = _example()
    start = bool(conn.networkLookupByName("default").autostart())
    want = not start
    first = _run(conn, resource, True, name="default", autostart=want)
    assert first["changed"] and first["autostart"] == want and first["was_active"] is True
    assert bool(conn.networkLookupByName("default").autostart()) == start  # check mode changed nothing
    assert _run(conn, resource, False, name="default", autostart=want)["changed"]
    assert bool(conn.networkLookupByName("default").autostart()) == want
    assert not _run(conn, resource, True, name="default", autostart=want)["changed"]
    assert not _run(conn, resource, False, name="default", autostart=want)["changed"]
    assert not _run(conn, resource, False, name="default", autostart=None)["changed"]


def test_the_worked_example_assumes_a_missing_network_in_check_mode_only(conn):
    resource = _example()
    result = _run(conn, resource, True, name="nope", autostart=True)
    assert not result["changed"] and "network 'nope' does not exist" in result["assumptions"][0]
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import NotFoundError

    with pytest.raises(NotFoundError):
        _run(conn, resource, False, name="nope", autostart=True)
