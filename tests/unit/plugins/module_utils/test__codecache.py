# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The compiled-code cache for zip imports (``_tools/codecache.py``): each case runs in a new Python
process (the cache patches ``zipimport`` for the life of a process), importing a module from a zip file
at a new path every time, as Ansible's module payloads are."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._tools import codecache

PROBE = textwrap.dedent("""
    import json, os, sys, traceback, zipimport
    sys.path.insert(0, {here!r})
    import codecache
    compiled = []
    original = zipimport._compile_source
    def counting(pathname, source):
        compiled.append(pathname)
        return original(pathname, source)
    zipimport._compile_source = counting
    installed = codecache.install({cache!r}, make={make!r})
    sys.path.insert(0, {zip!r})
    import payload
    try:
        payload.fail()
    except ZeroDivisionError:
        where = traceback.extract_tb(sys.exc_info()[2])[-1].filename
    print(json.dumps(dict(installed=installed, compiled=compiled, value=payload.VALUE, where=where)))
""")


def source_of_codecache():
    with open(os.path.splitext(codecache.__file__)[0] + ".py", "rb") as f:
        return f.read()


def payload_zip(directory, value):
    """A zip at a new path holding ``payload.py`` (a module with a function that fails)."""
    path = os.path.join(str(directory), "run-%d-%d" % (os.getpid(), time.monotonic_ns()), "payload.zip")
    os.makedirs(os.path.dirname(path))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("payload.py", "VALUE = %r\n\ndef fail():\n    return 1 / 0\n" % value)
    return path


def probe(tmp_path, cache, value=1, make=True):
    """Import ``payload`` from a new zip in a new process with the cache in ``cache``."""
    here = tmp_path / "lib"
    if not here.exists():
        here.mkdir()
        (here / "codecache.py").write_bytes(source_of_codecache())
    script = PROBE.format(here=str(here), cache=str(cache), make=make, zip=payload_zip(tmp_path, value))
    out = subprocess.run([sys.executable, "-c", script], check=True, stdout=subprocess.PIPE).stdout
    return json.loads(out.decode())


def test_the_second_import_of_the_same_source_is_not_compiled_and_names_its_own_file(tmp_path):
    cache = tmp_path / "cache"
    first = probe(tmp_path, cache)
    assert first["installed"] and len(first["compiled"]) == 1 and first["value"] == 1
    assert oct(os.stat(str(cache)).st_mode & 0o777) == oct(0o700)
    assert len(os.listdir(str(cache))) == 1
    second = probe(tmp_path, cache)
    assert second["installed"] and second["compiled"] == [] and second["value"] == 1
    # the traceback names this run's zip, not the one the code was first compiled from
    assert second["where"] != first["where"] and second["where"].endswith("payload.zip/payload.py")
    assert os.path.exists(second["where"].rsplit("/payload.py", 1)[0])


def test_another_source_is_another_entry(tmp_path):
    cache = tmp_path / "cache"
    probe(tmp_path, cache, value=1)
    other = probe(tmp_path, cache, value=2)
    assert len(other["compiled"]) == 1 and other["value"] == 2
    assert len(os.listdir(str(cache))) == 2


def test_a_damaged_entry_is_compiled_again_and_replaced(tmp_path):
    cache = tmp_path / "cache"
    probe(tmp_path, cache)
    entry = cache / os.listdir(str(cache))[0]
    entry.write_bytes(b"\x00garbage")
    again = probe(tmp_path, cache)
    assert len(again["compiled"]) == 1 and again["value"] == 1
    assert probe(tmp_path, cache)["compiled"] == []


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o722])
def test_a_directory_others_may_write_to_is_not_used(tmp_path, mode):
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(str(cache), mode)
    result = probe(tmp_path, cache)
    assert not result["installed"] and result["compiled"]
    assert os.listdir(str(cache)) == []


def test_a_directory_of_another_user_is_not_used(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to give the directory to another user")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    os.chown(str(cache), 65534, 65534)
    assert not probe(tmp_path, cache)["installed"]


def test_a_missing_directory_is_not_made_unless_asked(tmp_path):
    cache = tmp_path / "cache"
    result = probe(tmp_path, cache, make=False)
    assert not result["installed"] and not cache.exists()


def test_old_entries_go_when_a_new_one_is_written(tmp_path):
    cache = tmp_path / "cache"
    probe(tmp_path, cache, value=1)
    old = cache / os.listdir(str(cache))[0]
    stale = time.time() - (codecache.PRUNE_DAYS + 1) * 86400
    os.utime(str(old), (stale, stale))
    probe(tmp_path, cache, value=2)
    assert not old.exists() and len(os.listdir(str(cache))) == 1


def test_as_usercustomize_it_installs_and_leaves_nothing_in_the_environment(tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "usercustomize.py").write_bytes(source_of_codecache())
    cache = tmp_path / "code"
    cache.mkdir(mode=0o700)
    script = ("import json, os, sys, zipimport; print(json.dumps([os.environ.get('PYTHONPATH'), "
              "os.environ.get('%s'), [p for p in sys.path if p == %r], "
              "getattr(zipimport._compile_source, 'virtops_code_cache', False)]))" % (codecache.ENV, str(hook)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hook), "/elsewhere"]))
    env[codecache.ENV] = str(cache)
    env.pop("PYTHONNOUSERSITE", None)
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip("needs a system Python (a venv's Python imports no usercustomize)")
    out = subprocess.run([python, "-c", script], env=env, check=True, stdout=subprocess.PIPE).stdout
    pythonpath, variable, on_path, installed = json.loads(out.decode())
    assert pythonpath == "/elsewhere" and variable is None and on_path == [] and installed is True


FOR_MODULE = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {where!r})
    import codecache
    print(json.dumps(codecache.for_module()))
""")


@pytest.mark.parametrize("zipped, setting, expected", [
    (True, None, "home"),
    (True, "elsewhere", "elsewhere"),
    (True, "off", None),
    (True, "OFF", None),
    (False, None, None),  # not a module's payload (a unit test, a controller plugin): left alone
])
def test_a_module_uses_the_cache_in_its_home_unless_told_otherwise(tmp_path, zipped, setting, expected):
    if zipped:
        where = str(tmp_path / "payload.zip")
        with zipfile.ZipFile(where, "w") as z:
            z.writestr("codecache.py", source_of_codecache())
    else:
        where = str(tmp_path / "lib")
        os.mkdir(where)
        with open(os.path.join(where, "codecache.py"), "wb") as f:
            f.write(source_of_codecache())
    env = dict(os.environ, HOME=str(tmp_path / "home"))
    env.pop(codecache.ENV, None)
    if setting is not None:
        env[codecache.ENV] = str(tmp_path / setting) if setting == "elsewhere" else setting
    out = subprocess.run([sys.executable, "-c", FOR_MODULE.format(where=where)], env=env, check=True,
                         stdout=subprocess.PIPE).stdout
    assert json.loads(out.decode()) is (expected is not None)
    home_cache = tmp_path / "home" / ".ansible" / "virtops_libvirt_code"
    assert home_cache.is_dir() is (expected == "home")
    assert (tmp_path / "elsewhere").is_dir() is (expected == "elsewhere")
