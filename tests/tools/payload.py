# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""What each module ships: the files and lines of its module_utils import closure.

    python3 tests/tools/payload.py                 every module: its closure, file by file
    python3 tests/tools/payload.py --summary       one line per module: files, lines
    python3 tests/tools/payload.py vm vm_info      some modules only
    python3 tests/tools/payload.py --check tests/payload-budget.yml
                                                   fail when a module's closure has more lines than its budget

Ansible's module packer (AnsiballZ) puts into every task's payload the module and each module_utils
file it imports, recursively. This tool finds the same files the same way, from the source alone
(nothing is imported or run):

* every ``import`` and ``from ... import`` statement of a file counts, wherever it is: at the top,
  inside functions and classes, inside ``try`` blocks (the packer walks the whole syntax tree too);
* only names under ``ansible_collections.virtops.libvirt.plugins.module_utils`` are followed, and
  relative imports (``from . import x``, ``from .._core import y``) inside module_utils are resolved
  against the importing file's package; ansible-core's own module_utils are not counted;
* ``from PKG import NAME`` is the file ``PKG/NAME.py`` (or the package ``PKG/NAME/``) when there is
  one, else a name defined in ``PKG`` itself (``PKG.py`` or ``PKG/__init__.py``);
* a package brings its ``__init__.py`` (and those of its parents) when it has one; a namespace
  package (a directory without ``__init__.py``) brings no file;
* a name that resolves to no file is reported (the packer would fail on it too).

Lines are physical lines of the files as they are (docstrings and comments included: they are shipped).

The budget file (YAML) maps module names to the most lines their closure may have; ``--check`` fails
when a module has more, when a module has no budget, or when a budget names no module.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PREFIX = "ansible_collections.virtops.libvirt.plugins.module_utils"


class Resolver:
    """Dotted names under PREFIX to files of ``plugins/module_utils``."""

    def __init__(self, root):
        self.base = os.path.join(root, "plugins", "module_utils")
        self.problems = []

    def _path(self, parts):
        return os.path.join(self.base, *parts)

    def files_of(self, parts):
        """Files that importing the module ``parts`` (relative to module_utils) loads, or None."""
        files = []
        for i in range(1, len(parts)):  # parent packages' __init__.py
            init = os.path.join(self._path(parts[:i]), "__init__.py")
            if os.path.isfile(init):
                files.append(init)
        path = self._path(parts)
        if os.path.isfile(path + ".py"):
            return files + [path + ".py"]
        if os.path.isdir(path):
            init = os.path.join(path, "__init__.py")
            return files + ([init] if os.path.isfile(init) else [])
        return None

    def is_module(self, parts):
        path = self._path(parts)
        return os.path.isfile(path + ".py") or os.path.isdir(path)

    def imported(self, source, parts_of_source):
        """module_utils modules (as part lists) that the file ``source`` imports.

        ``parts_of_source`` is the file's own dotted name relative to module_utils (None for a module).
        """
        with open(source) as f:
            tree = ast.parse(f.read(), source)
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == PREFIX or alias.name.startswith(PREFIX + "."):
                        found.append(self._check(alias.name[len(PREFIX) + 1:].split(".") if alias.name != PREFIX else [],
                                                 source, alias.name))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    if parts_of_source is None:
                        continue  # a relative import in a module file: not ours to resolve
                    package = parts_of_source[:len(parts_of_source) - node.level]
                    if node.level > len(parts_of_source):
                        self.problems.append("%s: relative import beyond module_utils" % source)
                        continue
                    base = package + (node.module.split(".") if node.module else [])
                elif node.module == PREFIX or (node.module or "").startswith(PREFIX + "."):
                    base = node.module[len(PREFIX) + 1:].split(".") if node.module != PREFIX else []
                else:
                    continue
                for alias in node.names:
                    sub = base + [alias.name]
                    if alias.name != "*" and self.is_module(sub):
                        found.append(self._check(sub, source, ".".join(sub)))
                    elif base:
                        found.append(self._check(base, source, ".".join(base)))
        return [parts for parts in found if parts]

    def _check(self, parts, source, name):
        if not parts or self.files_of(parts) is None:
            self.problems.append("%s: imports %s, which is no file of plugins/module_utils" % (source, name))
            return None
        return parts


def closure(resolver, module_file):
    """{path: lines} of every module_utils file ``module_file`` ships."""
    seen = {}
    todo = [(module_file, None)]
    while todo:
        source, parts = todo.pop()
        for imported in resolver.imported(source, parts):
            for path in resolver.files_of(imported):
                if path in seen:
                    continue
                with open(path, "rb") as f:
                    seen[path] = f.read().count(b"\n")
                rel = os.path.relpath(path, resolver.base)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                todo.append((path, rel))
    return seen


def modules(root):
    folder = os.path.join(root, "plugins", "modules")
    return sorted(name[:-3] for name in os.listdir(folder) if name.endswith(".py") and name != "__init__.py")


def measure(root, names):
    resolver = Resolver(root)
    out = {}
    for name in names:
        out[name] = closure(resolver, os.path.join(root, "plugins", "modules", name + ".py"))
    return out, resolver.problems


def read_budget(path):
    import yaml  # PyYAML comes with ansible-core
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
        raise SystemExit("%s: must map module names to line counts" % path)
    return data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("modules", nargs="*", help="module names (default: every module)")
    parser.add_argument("--summary", action="store_true", help="one line per module")
    parser.add_argument("--check", metavar="FILE", help="budget file: fail when a closure is over its budget")
    parser.add_argument("--root", default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    every = modules(args.root)
    unknown = [m for m in args.modules if m not in every]
    if unknown:
        parser.error("no such module: %s" % ", ".join(unknown))
    sizes, problems = measure(args.root, args.modules or every)
    for problem in problems:
        print("payload: %s" % problem, file=sys.stderr)

    budget = read_budget(args.check) if args.check else {}
    failures = []
    for name, files in sizes.items():
        lines = sum(files.values())
        line = "%-14s %3d files %7s lines" % (name, len(files), "{:,}".format(lines))
        if args.check:
            limit = budget.get(name)
            if limit is None:
                failures.append("%s has no budget in %s" % (name, args.check))
            elif lines > limit:
                failures.append("%s ships %s lines of module_utils, over its budget of %s"
                                % (name, "{:,}".format(lines), "{:,}".format(limit)))
            line += "   budget %7s" % ("-" if limit is None else "{:,}".format(limit))
        print(line)
        if not args.summary and not args.check:
            for path, count in sorted(files.items(), key=lambda item: (-item[1], item[0])):
                print("    %7s  %s" % ("{:,}".format(count), os.path.relpath(path, args.root)))
    if args.check and not args.modules:
        failures.extend("%s has a budget in %s but is no module" % (name, args.check) for name in sorted(budget) if name not in sizes)
    for failure in failures:
        print("payload: %s" % failure, file=sys.stderr)
    return 1 if failures or problems else 0


if __name__ == "__main__":
    sys.exit(main())
