# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A ``vm`` task without ``cloud_init`` does not import the cloud-init writer or PyYAML: they ship with
the module but are imported when a VM has a seed (issue 15: where a no-op task's time goes)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

PREFIX = "ansible_collections.virtops.libvirt.plugins."
PROGRAM = """
import json, sys
import %smodules.vm
print(json.dumps(sorted(sys.modules)))
""" % PREFIX


def _imported(program):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", program], stdout=subprocess.PIPE, env=env, check=True).stdout
    return set(json.loads(out.decode("utf-8")))


def test_importing_vm_loads_no_cloud_init_writer_and_no_yaml():
    loaded = _imported(PROGRAM)
    assert PREFIX + "modules.vm" in loaded
    assert PREFIX + "module_utils._domain.seed" in loaded
    assert not [m for m in loaded if m.startswith(PREFIX + "module_utils._cloudinit.") and not m.endswith(".options")]
    assert PREFIX + "module_utils._tools.iso" not in loaded
    assert "yaml" not in loaded and "pycdlib" not in loaded


def test_the_seed_writer_is_there_when_asked_for():
    loaded = _imported(PROGRAM.replace("print(", "from %smodule_utils._domain.seed import _seed_writer\n"
                                                 "_seed_writer()\nprint(" % PREFIX))
    assert PREFIX + "module_utils._cloudinit.seed" in loaded and PREFIX + "module_utils._tools.iso" in loaded
