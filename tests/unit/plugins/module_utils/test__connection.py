# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._connection import (
    Connection,
    explain_connect_failure,
    libvirt,
    libvirt_errors,
    translated,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._errors import (
    BackendError,
    ConflictError,
    ConnectionFailedError,
    InvalidInputError,
    NotFoundError,
    VirtopsError,
)


def test_connection_opens_once_and_closes():
    connection = Connection("test:///default")
    with connection as conn:
        assert connection.open() is conn  # one connection per run
        assert conn.getType().lower() == "test"
    assert connection._conn is None


def test_missing_socket_says_daemon_not_running(tmp_path):
    uri = "qemu:///system?socket=%s" % (tmp_path / "no-such-sock")
    with pytest.raises(ConnectionFailedError) as err:
        Connection(uri).open()
    assert err.value.msg.startswith("The libvirt daemon is not running at %s" % uri)
    assert "\n" not in err.value.msg
    assert err.value.to_fail_kwargs()["error_kind"] == "connection"


def test_socket_that_is_not_a_socket_gives_one_line(tmp_path):
    path = tmp_path / "plain-file"
    path.write_text("x")
    with pytest.raises(ConnectionFailedError) as err:
        Connection("qemu:///system?socket=%s" % path).open()
    assert "\n" not in err.value.msg


@pytest.mark.parametrize(
    "message, start",
    [
        ("Failed to connect socket to '/var/run/libvirt/libvirt-sock': Permission denied", "Permission denied"),
        ("authentication unavailable: no polkit agent available to authenticate action", "Permission denied"),
        ("Unable to resolve address 'kvm9' service '16509': Name or service not known", "No such host"),
        ("Cannot recv data: ssh: Could not resolve hostname kvm9: Name or service not known", "No such host"),
        ("Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory", "The libvirt daemon is not running"),
        ("unable to connect to server at 'kvm9:16509': Connection refused", "The libvirt daemon is not running"),
        ("no connection driver available for xen:///", "libvirt cannot handle URI"),
        ("something\nelse   entirely", "Cannot connect to libvirt at"),
    ],
)
def test_connect_failures_are_explained(message, start):
    text = explain_connect_failure("qemu+tcp://kvm9/system", message)
    assert text.startswith(start)
    assert "qemu+tcp://kvm9/system" in text
    assert "\n" not in text


@pytest.mark.parametrize(
    "call, exc_class",
    [
        (lambda c: c.lookupByName("nope"), NotFoundError),
        (lambda c: c.storagePoolLookupByName("nope"), NotFoundError),
        (lambda c: c.networkLookupByName("nope"), NotFoundError),
        (lambda c: c.networkLookupByName("default").create(), ConflictError),  # already running
        (lambda c: c.defineXML("<domain"), InvalidInputError),
    ],
)
def test_libvirt_errors_map_to_our_hierarchy(test_conn, call, exc_class):
    with pytest.raises(exc_class) as err:
        with libvirt_errors("doing it"):
            call(test_conn)
    assert err.value.msg.startswith("doing it: ")
    assert isinstance(err.value, VirtopsError)
    assert isinstance(err.value.details["libvirt_error_code"], int)


def test_translated_decorator(test_conn):
    @translated("looking up")
    def lookup(name):
        return test_conn.lookupByName(name)

    assert lookup("test").name() == "test"
    with pytest.raises(NotFoundError):
        lookup("absent")


def test_unknown_codes_become_backend_errors():
    err = libvirt.libvirtError("odd")
    err.err = (libvirt.VIR_ERR_INTERNAL_ERROR, 0, "internal error: odd", 2, None, None, None, 0, 0)
    with pytest.raises(BackendError):
        with libvirt_errors():
            raise err


def test_fail_kwargs_have_string_msg_and_details():
    err = NotFoundError("pool 'x' not found", pool="x")
    assert err.to_fail_kwargs() == {"msg": "pool 'x' not found", "pool": "x", "error_kind": "not_found"}
    assert str(err) == "pool 'x' not found"
