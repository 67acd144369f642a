# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shape issue 15 gave plugins/module_utils: packages by concern, no file over 500 lines, no class
over 300 lines (so that the next capability finds its place instead of growing a file)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import glob
import os

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE_UTILS = os.path.abspath(os.path.join(HERE, "..", "..", "..", "plugins", "module_utils"))
MAX_FILE_LINES = 500
MAX_CLASS_LINES = 300


def _files():
    files = sorted(glob.glob(os.path.join(MODULE_UTILS, "**", "*.py"), recursive=True))
    assert len(files) > 50
    return files


def test_module_utils_is_packages_only():
    loose = [os.path.basename(f) for f in glob.glob(os.path.join(MODULE_UTILS, "*.py"))]
    assert loose == []
    for package in glob.glob(os.path.join(MODULE_UTILS, "*", "")):
        assert os.path.basename(os.path.dirname(package)).startswith("_"), package


def test_no_file_over_500_lines():
    over = []
    for path in _files():
        with open(path) as handle:
            count = sum(1 for _line in handle)
        if count > MAX_FILE_LINES:
            over.append("%s: %d lines" % (os.path.relpath(path, MODULE_UTILS), count))
    assert over == []


def test_no_class_over_300_lines():
    over = []
    for path in _files():
        with open(path) as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                over.append("%s: class %s, %d lines" % (os.path.relpath(path, MODULE_UTILS), node.name,
                                                        node.end_lineno - node.lineno + 1))
    assert over == []
