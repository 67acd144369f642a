# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""execution-environment.yml gives a valid build context (the AWX/AAP path).

``ansible-builder create`` writes the context an image build runs in; the test then runs the two
steps of that build that decide what goes into the image, as the build runs them: the builder
stage's ``introspect.py`` (the collection as the galaxy stage installs it, plus the user's
requirements.txt and bindep.txt) and bindep on what introspection wrote, for the platform of the
base image (awx-ee: an rpm distribution). No container runtime is needed."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.path.dirname(sys.executable)
BUILDER = os.path.join(BIN, "ansible-builder")

pytestmark = pytest.mark.skipif(
    not os.path.exists(BUILDER),
    reason="ansible-builder is not installed next to %s (the tools venv of make deps has it)" % sys.executable)


def _lines(path):
    """Requirement lines of a requirements.txt or bindep.txt, without comments."""
    with open(path) as f:
        return [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]


@pytest.fixture(scope="module")
def ee():
    with open(os.path.join(ROOT, "execution-environment.yml")) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    work = tmp_path_factory.mktemp("ee")
    for name in ("execution-environment.yml", "requirements.txt", "bindep.txt"):
        shutil.copy(os.path.join(ROOT, name), str(work))
    done = subprocess.run([BUILDER, "create", "-f", "execution-environment.yml", "-c", "context",
                           "--output-filename", "Containerfile"], cwd=str(work), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert done.returncode == 0, done.stdout
    return work / "context"


def test_the_definition_names_its_dependency_files(ee):
    assert ee["version"] == 3
    assert ee["dependencies"]["python"] == "requirements.txt"
    assert ee["dependencies"]["system"] == "bindep.txt"
    assert ee["dependencies"]["galaxy"]["collections"] == [dict(name="virtops.libvirt")]


def test_create_writes_the_context(context):
    files = sorted(os.path.relpath(os.path.join(d, f), str(context)) for d, dummy, fs in os.walk(str(context)) for f in fs)
    assert files == ["Containerfile", "_build/bindep.txt", "_build/requirements.txt", "_build/requirements.yml",
                     "_build/scripts/assemble", "_build/scripts/check_ansible", "_build/scripts/check_galaxy",
                     "_build/scripts/entrypoint", "_build/scripts/install-from-bindep", "_build/scripts/introspect.py",
                     "_build/scripts/pip_install"]


def test_the_context_holds_the_collection_dependencies(context):
    assert _lines(str(context / "_build" / "requirements.txt")) == _lines(os.path.join(ROOT, "requirements.txt"))
    assert _lines(str(context / "_build" / "bindep.txt")) == _lines(os.path.join(ROOT, "bindep.txt"))
    with open(str(context / "_build" / "requirements.yml")) as f:
        assert yaml.safe_load(f) == dict(collections=[dict(name="virtops.libvirt")])


def test_the_containerfile_builds_from_them(context, ee):
    with open(str(context / "Containerfile")) as f:
        text = f.read()
    assert 'ARG EE_BASE_IMAGE="%s"' % ee["images"]["base_image"]["name"] in text
    assert 'ARG PKGMGR="%s"' % ee["options"]["package_manager_path"] in text
    assert re.search(r"ansible-galaxy collection install .*-r requirements.yml", text)
    assert "introspect.py introspect --user-pip=requirements.txt --user-bindep=bindep.txt" in text
    assert "install-from-bindep" in text


@pytest.fixture(scope="module")
def introspected(context, tmp_path_factory):
    """What the builder stage's introspection writes, with this collection installed where the galaxy stage puts it."""
    collections = os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))
    if not ROOT.endswith(os.path.join("ansible_collections", "virtops", "libvirt")):
        pytest.skip("the collection is not at .../ansible_collections/virtops/libvirt (make unit stages it so)")
    out = tmp_path_factory.mktemp("introspect")
    build = context / "_build"
    done = subprocess.run([sys.executable, str(build / "scripts" / "introspect.py"), "introspect",
                           "--user-pip=%s" % (build / "requirements.txt"), "--user-bindep=%s" % (build / "bindep.txt"),
                           "--write-pip=%s" % (out / "requirements.txt"), "--write-bindep=%s" % (out / "bindep.txt"),
                           collections], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert done.returncode == 0, done.stdout
    return out


def test_introspection_resolves_the_python_requirements(introspected):
    resolved = _lines(str(introspected / "requirements.txt"))
    for requirement in _lines(os.path.join(ROOT, "requirements.txt")):
        assert requirement in resolved
    # the collection's own requirements.txt is found in the installed collection too
    with open(str(introspected / "requirements.txt")) as f:
        assert "libvirt-python>=6.0.0  # from collection virtops.libvirt" in f.read().splitlines()


@pytest.mark.parametrize("profiles, expected", [
    (["default"], ["libvirt-client", "pigz", "qemu-img", "xorriso", "zstd"]),
    (["compile"], ["gcc", "libvirt-client", "libvirt-devel", "pigz", "pkg-config", "python3-devel", "qemu-img", "xorriso", "zstd"]),
], ids=["final image", "builder stage (compile)"])
def test_bindep_gives_the_rpm_packages_of_the_base_image(introspected, profiles, expected):
    from bindep.depends import Depends
    with open(str(introspected / "bindep.txt")) as f:
        depends = Depends(f.read())
    rpm = ["platform:rpm", "platform:redhat", "platform:centos"]
    assert sorted(set(rule[0] for rule in depends.active_rules(rpm + profiles))) == expected


def test_bindep_reads_what_introspection_wrote(introspected):
    done = subprocess.run([os.path.join(BIN, "bindep"), "-f", str(introspected / "bindep.txt"), "--profiles"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert done.returncode == 0, done.stdout
