# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""tests/tools/payload.py on a small collection tree made here, and on the real one."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.virtops.libvirt.tests.tools import payload

P = "ansible_collections.virtops.libvirt.plugins.module_utils"
TREE = {
    "plugins/modules/top.py": "from %s._a import x\n" % P,
    "plugins/modules/late.py": "def main():\n    from %s import _b\n    import %s._core.c\n" % (P, P),
    "plugins/modules/names.py": "from %s._core import helper, c\n" % P,
    "plugins/modules/broken.py": "from %s._missing import x\n" % P,
    "plugins/module_utils/_a.py": "try:\n    from %s._b import y\nexcept ImportError:\n    pass\n" % P,
    "plugins/module_utils/_b.py": "from ._core import c\n\n\n",
    "plugins/module_utils/_core/__init__.py": "def helper():\n    pass\n",
    "plugins/module_utils/_core/c.py": "from ..  import _d\nfrom . import e\n",
    "plugins/module_utils/_core/e.py": "E = 1\n",
    "plugins/module_utils/_d.py": "import os\nfrom ansible.module_utils.basic import AnsibleModule\n",
}


@pytest.fixture
def tree(tmp_path):
    for name, text in TREE.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path)


def files(root, module):
    sizes, problems = payload.measure(root, [module])
    return sorted(os.path.relpath(p, os.path.join(root, "plugins", "module_utils")) for p in sizes[module]), problems


@pytest.mark.parametrize("module, expected", [
    ("top", ["_a.py", "_b.py", "_core/__init__.py", "_core/c.py", "_core/e.py", "_d.py"]),
    ("late", ["_b.py", "_core/__init__.py", "_core/c.py", "_core/e.py", "_d.py"]),
    ("names", ["_core/__init__.py", "_core/c.py", "_core/e.py", "_d.py"]),
], ids=["try-guarded and relative imports", "imports inside a function", "names of a package and a submodule"])
def test_closure(tree, module, expected):
    assert files(tree, module) == (expected, [])


def test_a_missing_file_is_a_problem(tree):
    found, problems = files(tree, "broken")
    assert found == []
    assert len(problems) == 1 and "imports _missing, which is no file" in problems[0]


def test_lines_are_counted(tree):
    sizes, problems = payload.measure(tree, ["top"])
    assert problems == []
    assert sum(sizes["top"].values()) == sum(TREE["plugins/module_utils/" + f].count("\n")
                                             for f in ("_a.py", "_b.py", "_core/__init__.py", "_core/c.py", "_core/e.py", "_d.py"))


@pytest.mark.parametrize("budget, rc, message", [
    ("top: 100\nlate: 100\nnames: 100\n", 0, ""),
    ("top: 3\nlate: 100\nnames: 100\n", 1, "top ships 14 lines of module_utils, over its budget of 3"),
    ("top: 100\nnames: 100\n", 1, "late has no budget"),
    ("top: 100\nlate: 100\nnames: 100\ngone: 5\n", 1, "gone has a budget in"),
], ids=["within", "over", "no budget", "budget of no module"])
def test_check(tree, tmp_path, capsys, budget, rc, message):
    os.remove(os.path.join(tree, "plugins", "modules", "broken.py"))
    path = tmp_path / "budget.yml"
    path.write_text(budget)
    assert payload.main(["--root", tree, "--check", str(path)]) == rc
    assert message in capsys.readouterr().err


def test_the_collection_is_within_its_budget(capsys):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert payload.main(["--root", root, "--check", os.path.join(root, "tests", "payload-budget.yml")]) == 0, capsys.readouterr().err
