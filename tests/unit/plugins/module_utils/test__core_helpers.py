# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one-helper-per-job pieces: files (_tools/fs), programs (_core/binaries), libvirt constants
(_core/flags), lookups (_core/lookups, against libvirt's test driver), the option table (_core/options)
and Context.get_bin_path."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import stat

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core import binaries, flags, lookups, options
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, MissingDependencyError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._tools import fs

# --- _tools/fs ------------------------------------------------------------------------------------


def _leftovers(directory):
    return sorted(n for n in os.listdir(directory) if n.endswith(".tmp"))


def test_atomic_write_writes_bytes_and_text_with_the_mode_and_no_temp_left(tmp_path):
    target = tmp_path / "out.json"
    fs.atomic_write(str(target), b"\x00\x01data", mode=0o640)
    assert target.read_bytes() == b"\x00\x01data"
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o640
    fs.atomic_write(str(target), u"text \u00e9")
    assert target.read_bytes() == u"text \u00e9".encode("utf-8")
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o600
    assert _leftovers(str(tmp_path)) == []


def test_atomic_write_failure_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "keep"
    target.write_bytes(b"old")

    class Boom(object):
        def __len__(self):
            return 1

    with pytest.raises(TypeError):
        fs.atomic_write(str(target), Boom())
    assert target.read_bytes() == b"old"
    assert _leftovers(str(tmp_path)) == []


def test_atomic_write_makes_missing_directories_only_when_asked(tmp_path):
    deep = tmp_path / "a" / "b" / "f"
    with pytest.raises(OSError):
        fs.atomic_write(str(deep), b"x")
    fs.atomic_write(str(deep), b"x", make_dirs=True)
    assert deep.read_bytes() == b"x"


def test_temp_path_is_hidden_beside_the_target_and_new(tmp_path):
    one = fs.temp_path(str(tmp_path / "disk.qcow2"))
    two = fs.temp_path(str(tmp_path / "disk.qcow2"))
    assert one != two
    for name in (one, two):
        assert os.path.dirname(name) == str(tmp_path)
        assert os.path.basename(name).startswith(".disk.qcow2.") and os.path.getsize(name) == 0
    fs.remove_quietly(one)
    fs.remove_quietly(one)  # twice: no error
    fs.remove_quietly(None)
    assert not os.path.exists(one)


def test_sha256_file_counts_holes_as_zeros_without_reading_them(tmp_path):
    path = tmp_path / "sparse.raw"
    with open(str(path), "wb") as handle:
        handle.write(b"head")
        handle.seek(5 * 1024 * 1024)
        handle.write(b"tail")
    read = []
    digest = fs.sha256_file(str(path), on_bytes=read.append)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sum(read) < 5 * 1024 * 1024  # the hole was not read
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert fs.sha256_file(str(empty)) == hashlib.sha256(b"").hexdigest()


def test_fsync_dir_of_a_missing_directory_is_quiet(tmp_path):
    fs.fsync_dir(str(tmp_path))
    fs.fsync_dir(str(tmp_path / "missing"))


# --- _core/binaries, Context.get_bin_path ----------------------------------------------------------


def test_find_binary_searches_path_then_the_sbin_directories(tmp_path):
    tool = tmp_path / "virtops-test-tool"
    tool.write_text(u"#!/bin/sh\n")
    tool.chmod(0o755)
    assert binaries.find_binary("virtops-test-tool", path=str(tmp_path)) == str(tool)
    assert binaries.find_binary("virtops-test-tool", path="", extra_dirs=(str(tmp_path),)) == str(tool)
    assert binaries.find_binary("virtops-test-tool", path="/nonexistent", extra_dirs=()) is None
    assert binaries.find_binary("sh") is not None


def test_context_get_bin_path_raises_only_when_required():
    ctx = Context()
    assert ctx.get_bin_path("sh")
    assert ctx.get_bin_path("virtops-no-such-program") is None
    with pytest.raises(MissingDependencyError) as err:
        ctx.get_bin_path("virtops-no-such-program", required=True, purpose="to test")
    assert "virtops-no-such-program is not installed" in err.value.msg and "to test" in err.value.msg


# --- _core/flags ------------------------------------------------------------------------------------


def test_flag_takes_the_binding_value_or_the_default():
    assert flags.flag("VIR_DOMAIN_XML_INACTIVE", 99) == libvirt.VIR_DOMAIN_XML_INACTIVE
    assert flags.flag("VIR_NO_SUCH_CONSTANT_ANYWHERE", 7) == 7
    assert flags.flag("VIR_NO_SUCH_CONSTANT_ANYWHERE") == 0


def test_flag_without_libvirt_gives_the_default(monkeypatch):
    monkeypatch.setattr(flags, "libvirt", None)
    assert flags.flag("VIR_DOMAIN_XML_INACTIVE", 2) == 2


# --- _core/lookups (libvirt's test driver) -----------------------------------------------------------


@pytest.fixture
def conn():
    c = libvirt.open("test:///default")
    yield c
    c.close()


def test_find_and_get_of_each_kind(conn):
    assert lookups.find_vm(conn, "test").name() == "test"
    assert lookups.get_vm(conn, "test").name() == "test"
    assert lookups.find_vm(conn, "nope") is None
    with pytest.raises(NotFoundError) as err:
        lookups.get_vm(conn, "nope")
    assert err.value.msg == "VM 'nope' does not exist"
    assert lookups.get_network(conn, "default").name() == "default"
    assert lookups.find_network(conn, "nope") is None
    with pytest.raises(NotFoundError, match="network 'nope'"):
        lookups.get_network(conn, "nope")
    pool = lookups.get_pool(conn, "default-pool")
    assert lookups.find_pool(conn, "nope") is None
    with pytest.raises(NotFoundError, match="storage pool 'nope'"):
        lookups.get_pool(conn, "nope")
    assert lookups.find_volume(pool, "nope") is None


def test_lookup_or_none_translates_other_errors(conn):
    def broken(name):
        raise libvirt.libvirtError("internal trouble")

    with pytest.raises(BackendError) as err:
        lookups.lookup_or_none(broken, "x", libvirt.VIR_ERR_NO_DOMAIN, "VM")
    assert "looking up VM 'x'" in err.value.msg


class _Busy(libvirt.libvirtError):
    def __init__(self, text):
        libvirt.libvirtError.__init__(self, text)
        self.text = text

    def get_error_message(self):
        return self.text


def test_retry_busy_waits_while_busy_then_returns():
    calls = []
    slept = []

    def func():
        calls.append(1)
        if len(calls) < 3:
            raise _Busy("pool 'p' has asynchronous jobs running")
        return "done"

    assert lookups.retry_busy(func, "refreshing", sleep=slept.append) == "done"
    assert len(calls) == 3 and slept == [0.1, 0.2]


def test_retry_busy_raises_other_errors_at_once_and_busy_after_the_timeout():
    slept = []

    def other():
        raise _Busy("permission denied")

    with pytest.raises(BackendError, match="refreshing"):
        lookups.retry_busy(other, "refreshing", sleep=slept.append)
    assert slept == []

    def busy():
        raise _Busy("volume is still being allocated")

    with pytest.raises(BackendError):
        lookups.retry_busy(busy, "refreshing", timeout=0, sleep=slept.append)


def test_refresh_pool_refreshes(conn):
    pool = lookups.get_pool(conn, "default-pool")
    assert lookups.refresh_pool(pool) == 0


# --- _core/options ----------------------------------------------------------------------------------

TABLE = [
    options.Option("name", required=True, model=True),
    options.Option("memory", type="raw", model=True, live=True),
    options.Option("state", default="present", choices=("present", "absent")),
    options.Option("password", no_log=True),
    options.Option("disks", type="list", elements="dict", model=True, suboptions=[
        options.Option("name", required=True),
        options.Option("size", type="raw"),
        options.Option("bus", default="virtio", choices=["virtio", "sata"]),
    ]),
    options.Option("shutdown_timeout", type="int", default=120, aliases=["stop_timeout"]),
]


def test_argument_spec_from_the_table():
    spec = options.argument_spec(TABLE, uri=dict(type="str"))
    assert spec["name"] == dict(type="str", required=True)
    assert spec["memory"] == dict(type="raw")
    assert spec["state"] == dict(type="str", default="present", choices=["present", "absent"])
    assert spec["password"] == dict(type="str", no_log=True)
    assert spec["disks"] == dict(type="list", elements="dict", options=dict(
        name=dict(type="str", required=True), size=dict(type="raw"),
        bus=dict(type="str", default="virtio", choices=["virtio", "sata"])))
    assert spec["shutdown_timeout"] == dict(type="int", default=120, aliases=["stop_timeout"])
    assert spec["uri"] == dict(type="str")
    with pytest.raises(ValueError, match="declared twice"):
        options.argument_spec(TABLE, name=dict(type="str"))


def test_argument_spec_is_accepted_by_ansible_module_validation():
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    result = ArgumentSpecValidator(options.argument_spec(TABLE)).validate(
        dict(name="web", disks=[dict(name="vda", size="1G")], stop_timeout=5))
    assert result.error_messages == []
    assert result.validated_parameters["disks"][0]["bus"] == "virtio"
    assert result.validated_parameters["shutdown_timeout"] == 5
    assert result.validated_parameters["state"] == "present"


def test_defaults_names_and_find():
    assert options.defaults(TABLE) == dict(state="present", shutdown_timeout=120)
    assert options.names(TABLE, model=True) == ("name", "memory", "disks")
    assert options.names(TABLE, model=True, live=True) == ("memory",)
    assert options.find(TABLE, "state").default == "present"
    with pytest.raises(KeyError):
        options.find(TABLE, "nope")
