# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The apply module imports the code of a kind only when an item names it (issue 16: a task of volumes paid
for compiling the VM's, the seed's and the network's code)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._apply.items import KINDS, kind_named


@pytest.mark.parametrize("name", ["pool", "network", "volume", "cloudinit", "vm", "snapshot"])
def test_each_kind_is_found_by_its_short_name_and_its_fqcn(name):
    assert name in KINDS
    assert kind_named(name).name == name
    assert kind_named("virtops.libvirt." + name) is kind_named(name)


@pytest.mark.parametrize("name", ["kettle", "virtops.libvirt.kettle", "", None, 3])
def test_an_unknown_kind_is_none(name):
    assert kind_named(name) is None


def test_a_task_of_volumes_does_not_import_the_code_of_the_other_kinds():
    # in a fresh interpreter: this test process has imported every kind already
    code = "\n".join([
        "import sys",
        "from ansible_collections.virtops.libvirt.plugins.module_utils._apply.task import plan_items",
        "plan_items(dict(uri='test:///default', parallel=4, resources=[",
        "    dict(kind='volume', pool='p', name='v', backing_volume='b')]))",
        "prefix = 'ansible_collections.virtops.libvirt.plugins.module_utils.'",
        "print(' '.join(sorted(m[len(prefix):] for m in sys.modules if m.startswith(prefix))))",
    ])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    loaded = subprocess.run([sys.executable, "-c", code], env=env, check=True, stdout=subprocess.PIPE,
                            universal_newlines=True).stdout.split()
    assert "_storage.volume_kind" in loaded
    for other in ("_domain.kind", "_network.kind", "_cloudinit.kind", "_snapshot.kind", "_storage.pool_kind",
                  "_domain.vm", "_cloudinit.seed"):
        assert other not in loaded
