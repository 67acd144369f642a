# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every name the collection takes from its module_utils exists where it is taken from, also in code that
no unit test runs: ``from ..._pkg.mod import name`` names a top-level name of ``mod``, and ``_alias.name``
after ``from ..._pkg import mod as _alias`` too (a moved function once failed only on a real guest)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import glob
import os

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
MODULE_UTILS = os.path.join(REPO, "plugins", "module_utils")
PREFIX = "ansible_collections.virtops.libvirt.plugins.module_utils."


def _top_level_names(path, cache={}):  # pylint: disable=dangerous-default-value
    if path not in cache:
        names = set()
        with open(path) as handle:
            tree = ast.parse(handle.read())
        for node in tree.body:
            nodes = list(ast.walk(node)) if isinstance(node, ast.Try) else [node]
            for sub in nodes:
                if isinstance(sub, (ast.FunctionDef, ast.ClassDef)):
                    names.add(sub.name)
                elif isinstance(sub, ast.Assign):
                    names.update(n.id for t in sub.targets for n in ast.walk(t) if isinstance(n, ast.Name))
                elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                    names.update((a.asname or a.name).split(".")[0] for a in sub.names)
        cache[path] = names
    return cache[path]


def _problems(path):
    with open(path) as handle:
        tree = ast.parse(handle.read())
    aliases = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX)):
            continue
        target = os.path.join(MODULE_UTILS, *node.module[len(PREFIX):].split("."))
        for alias in node.names:
            if os.path.isdir(target):
                module = os.path.join(target, alias.name + ".py")
                if not os.path.exists(module):
                    yield "%s:%d: no module %s.%s" % (path, node.lineno, node.module, alias.name)
                else:
                    aliases[alias.asname or alias.name] = module
            elif not os.path.exists(target + ".py"):
                yield "%s:%d: no module %s" % (path, node.lineno, node.module)
            elif alias.name not in _top_level_names(target + ".py"):
                yield "%s:%d: %s has no %s" % (path, node.lineno, node.module, alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if not node.attr.startswith("__") and node.attr not in _top_level_names(aliases[node.value.id]):
                yield "%s:%d: %s.%s does not exist" % (path, node.lineno, node.value.id, node.attr)


def test_every_imported_name_exists():
    files = glob.glob(os.path.join(REPO, "plugins", "**", "*.py"), recursive=True)
    assert len(files) > 100
    problems = [p for f in sorted(files) for p in _problems(f)]
    assert problems == []


def test_the_check_finds_a_missing_name(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(u"from %s_core import xml as _xml\nfrom %s_core.xml import parse, nope\n_xml.missing()\n_xml.parse('')\n"
                      % (PREFIX, PREFIX))
    problems = list(_problems(str(module)))
    assert len(problems) == 2
    assert "has no nope" in problems[0] and "_xml.missing does not exist" in problems[1]
