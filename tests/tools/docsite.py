# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's docsite: lint it, build it. Run with the docs venv's Python (tests/tools/docs-venv.sh).

    python tests/tools/docsite.py lint STAGE           antsibull-docs lint-collection-docs --plugin-docs
    python tests/tools/docsite.py build STAGE DEST     the HTML site in DEST/build/html

STAGE is the directory holding ``ansible_collections/virtops/libvirt`` (the Makefile's ``stage``).

``build`` runs ``antsibull-docs sphinx-init --use-current`` into DEST (which it empties first), makes the
generated ``conf.py`` work offline, then the generated ``build.sh``: ``antsibull-docs collection`` and
``sphinx-build -W --keep-going`` with ``nitpicky = True``, so any warning (a reference that does not
resolve, a bad directive) fails the build.

Offline: intersphinx fetches nothing. The generated pages refer to a few labels of the ansible-core
documentation (``common_return_values`` on every module page, the configuration settings and their
environment variables on inventory plugin pages), and the guides use a few more. They are listed in
``ANSIBLE_CORE_REFS`` below and written as a local intersphinx inventory of docs.ansible.com, so that
they become links there. A new reference to ansible-core's documentation fails the build until it is
added to that list. Whether a listed page still exists on docs.ansible.com cannot be checked here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import os
import shutil
import subprocess
import sys
import zlib

COLLECTION = "virtops.libvirt"
ANSIBLE_DOCS = "https://docs.ansible.com/projects/ansible/devel/"
INVENTORY = "ansible_devel.inv"

#: (name, domain:role, page and anchor under ANSIBLE_DOCS, title) of the ansible-core labels the site uses
ANSIBLE_CORE_REFS = [
    ("common_return_values", "std:label", "reference_appendices/common_return_values.html#common-return-values",
     "Return Values"),
    ("ansible_configuration_settings", "std:label", "reference_appendices/config.html#ansible-configuration-settings",
     "Ansible Configuration Settings"),
    ("check_mode_dry", "std:label", "playbook_guide/playbooks_checkmode.html#check-mode-dry",
     "Validating tasks: check mode and diff mode"),
    ("module_defaults_groups", "std:label", "playbook_guide/playbooks_module_defaults.html#module-defaults-groups",
     "Module defaults groups"),
] + [
    (name, "std:envvar", "reference_appendices/config.html#envvar-" + name, name)
    for name in ("ANSIBLE_CACHE_PLUGIN", "ANSIBLE_CACHE_PLUGIN_CONNECTION", "ANSIBLE_CACHE_PLUGIN_PREFIX",
                 "ANSIBLE_CACHE_PLUGIN_TIMEOUT")
]

CONF_OFFLINE = """
# Added by tests/tools/docsite.py: an offline build. intersphinx reads only the local inventory of the
# ansible-core labels the pages use (ANSIBLE_CORE_REFS there), never the network.
intersphinx_mapping = {
    'ansible_devel': (%r, '../%s'),
}
# every reference must resolve (sphinx-init sets it too; build.sh runs sphinx-build -W)
nitpicky = True
"""


def write_inventory(path):
    """A Sphinx inventory (version 2) of ANSIBLE_CORE_REFS."""
    header = ("# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n"
              "# The remainder of this file is compressed using zlib.\n")
    body = "".join("%s %s -1 %s %s\n" % ref for ref in ANSIBLE_CORE_REFS)
    with open(path, "wb") as f:
        f.write(header.encode("utf-8") + zlib.compress(body.encode("utf-8")))


def tool_env(stage):
    """The docs venv's tools first on PATH, and only the staged collection visible to ansible-core."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["ANSIBLE_COLLECTIONS_PATH"] = os.path.abspath(stage)
    env["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "false"
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def run(argv, env, cwd=None):
    print("+ " + " ".join(argv), flush=True)
    rc = subprocess.call(argv, env=env, cwd=cwd)
    if rc:
        sys.exit("docsite: %s failed (exit status %d)" % (argv[0], rc))


def collection_dir(stage):
    path = os.path.join(os.path.abspath(stage), "ansible_collections", *COLLECTION.split("."))
    if not os.path.isfile(os.path.join(path, "galaxy.yml")):
        sys.exit("docsite: no collection at %s (run make stage)" % path)
    return path


def lint(stage):
    run(["antsibull-docs", "lint-collection-docs", "--plugin-docs", "--check-extra-docs-refs",
         "--validate-collection-refs", "dependent", "--disallow-unknown-collection-refs",
         collection_dir(stage)], tool_env(stage))


def build(stage, dest):
    collection_dir(stage)
    env = tool_env(stage)
    dest = os.path.abspath(dest)
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    run(["antsibull-docs", "sphinx-init", "--use-current", "--squash-hierarchy", "--fail-on-error",
         "--dest-dir", dest, "--project", COLLECTION, "--title", COLLECTION,
         "--copyright", "%s contributors" % COLLECTION, COLLECTION], env)
    with open(os.path.join(dest, "conf.py"), "a") as f:
        f.write(CONF_OFFLINE % (ANSIBLE_DOCS, INVENTORY))
    write_inventory(os.path.join(dest, INVENTORY))
    run(["bash", os.path.join(dest, "build.sh")], env, cwd=dest)
    print("docsite: %s" % os.path.join(dest, "build", "html", "index.html"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command")
    sub.required = True
    p_lint = sub.add_parser("lint", help="antsibull-docs lint-collection-docs --plugin-docs")
    p_lint.add_argument("stage")
    p_build = sub.add_parser("build", help="the HTML site in DEST/build/html")
    p_build.add_argument("stage")
    p_build.add_argument("dest")
    args = parser.parse_args()
    if args.command == "lint":
        lint(args.stage)
    else:
        build(args.stage, args.dest)


if __name__ == "__main__":
    main()
