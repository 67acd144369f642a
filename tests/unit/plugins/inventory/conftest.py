# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtops.libvirt.tests.unit.plugins.inventory.nodes import node_xml


@pytest.fixture
def make_node(tmp_path):
    """``make_node('kvm1', domains=[...], ...)`` writes a node file and returns its test:/// URI."""

    def make(label, **kwargs):
        path = tmp_path / ("%s.xml" % label)
        path.write_text(node_xml(**kwargs))
        return "test://%s" % path

    return make
