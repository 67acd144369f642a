# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import (
    Connection,
    check_uri,
    explain_connect_failure,
    libvirt,
    libvirt_errors,
    translated,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
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


UNSUPPORTED_URIS = [
    # libvirt's client hands these to the local daemon: "daemon not running" (no socket) or "no
    # connection driver available" (a daemon without that driver); neither said what was wrong
    ("xen:///", "'xen' driver"),
    ("xen:///system", "'xen' driver"),
    ("xen+ssh://root@dom0/system", "'xen' driver"),
    ("vbox:///session", "'vbox' driver"),
    ("lxc:///system", "'lxc' driver"),
    ("esx://vcenter/?no_verify=1", "'esx' driver"),
    ("hyperv://host/", "'hyperv' driver"),
    ("bhyve:///system", "'bhyve' driver"),
    ("ch:///system", "'ch' driver"),
    ("vz:///system", "'vz' driver"),
    ("nosuch:///", "'nosuch' driver"),
    ("qemu:///bogus", "a qemu URI ends in /system (the system daemon) or /session (a user's own), not '/bogus'"),
    ("qemu+ssh://kvm1", "not 'nothing'"),
    ("qemu+ssh://kvm1/", "not 'nothing'"),
]


@pytest.mark.parametrize("uri, fragment", UNSUPPORTED_URIS)
def test_unsupported_uris_are_named_before_libvirt_tries_them(uri, fragment):
    with pytest.raises(InvalidInputError) as err:
        Connection(uri).open()
    assert err.value.msg.startswith("uri: %r" % uri) and fragment in err.value.msg
    assert "not running" not in err.value.msg and err.value.details["uri"] == uri


@pytest.mark.parametrize("uri", [
    "qemu:///system", "qemu:///system/", "qemu:///session", "qemu+ssh://root@kvm1:2222/system?keyfile=/k",
    "qemu+tcp://10.0.0.5/system", "qemu+tls://kvm1/system", "qemu+unix:///system?socket=/run/x", "QEMU:///system",
    "qemu:///embed?root=/var/tmp/x", "test:///default", "test:///tmp/node.xml", "qemu", "default-alias",
])
def test_qemu_and_test_uris_pass(uri):
    check_uri(uri)


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
