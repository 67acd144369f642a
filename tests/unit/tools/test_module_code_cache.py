# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every module calls ``_tools.codecache.for_module()`` before it imports anything else of the collection:
what it imports after that call is compiled once per source and Python on the managed node, not at every
task (a module that imported first would compile its closure every time, and no test would notice)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import glob
import os

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = os.path.abspath(os.path.join(HERE, "..", "..", "..", "plugins", "modules"))
OURS = "ansible_collections.virtops.libvirt."
CACHE = OURS + "plugins.module_utils._tools.codecache"


def problem(source):
    """What is wrong with a module's top level, or None.

    >>> problem("from ansible_collections.virtops.libvirt.plugins.module_utils._core.x import y")
    'imports ansible_collections.virtops.libvirt.plugins.module_utils._core.x before for_module()'
    """
    called = False
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(OURS):
            if node.module == CACHE and [a.name for a in node.names] == ["for_module"]:
                continue
            if not called:
                return "imports %s before for_module()" % node.module
        elif (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
              and getattr(node.value.func, "id", None) == "for_module"):
            called = True
    return None if called else "never calls for_module()"


def test_every_module_calls_for_module_before_its_other_imports():
    modules = sorted(glob.glob(os.path.join(MODULES, "*.py")))
    assert len(modules) > 20
    found = {}
    for path in modules:
        with open(path) as f:
            found[os.path.basename(path)] = problem(f.read())
    assert {name: text for name, text in found.items() if text} == {}


def test_the_check_finds_a_late_call_and_a_missing_one():
    late = ("from %s._domain.kind import VM\nfrom %s import for_module\nfor_module()\n"
            % (OURS + "plugins.module_utils", CACHE))
    assert problem(late) == "imports %splugins.module_utils._domain.kind before for_module()" % OURS
    assert problem("from ansible.module_utils.basic import AnsibleModule\n") == "never calls for_module()"
    good = "from %s import for_module\n\nfor_module()\nfrom %splugins.module_utils._domain.kind import VM\n" % (CACHE, OURS)
    assert problem(good) is None
