# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Context: a new libvirt connection after the daemon went away, shared with child contexts."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection, libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConnectionFailedError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context


class _Conn:
    def __init__(self, alive=1, raises=False):
        self.alive = alive
        self.raises = raises

    def isAlive(self):
        if self.raises:
            raise libvirt.libvirtError("client socket is closed")
        return self.alive


class _Connection:
    """A _connection.Connection that answers ``open`` from a script: a connection or an error."""

    def __init__(self, script):
        self.script = list(script)
        self.closed = 0

    def open(self):
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self):
        self.closed += 1


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_an_alive_connection_is_kept():
    conn = _Conn(alive=1)
    ctx = Context(conn=conn, connection=_Connection([]))
    assert ctx.reconnect_if_lost() is False and ctx.conn is conn


def test_without_a_connection_object_nothing_is_renewed():
    ctx = Context(conn=_Conn(alive=0))
    assert ctx.reconnect_if_lost() is False


@pytest.mark.parametrize("old", [_Conn(alive=0), _Conn(raises=True)])
def test_a_lost_connection_is_renewed_when_the_daemon_answers_again(old):
    new = _Conn()
    down = ConnectionFailedError("The libvirt daemon is not running at qemu:///system")
    connection = _Connection([down, down, new])
    clock = _Clock()
    ctx = Context(conn=old, connection=connection)
    child = ctx.child(dict(name="x"))
    assert ctx.reconnect_if_lost(timeout=30, sleep=clock.sleep, clock=clock) is True
    assert ctx.conn is new and child.conn is new  # children use the new connection too
    assert connection.closed == 1 and clock.now == 2.0


def test_the_daemon_that_does_not_come_back_is_an_error():
    down = ConnectionFailedError("The libvirt daemon is not running at qemu:///system")
    clock = _Clock()
    ctx = Context(conn=_Conn(alive=0), connection=_Connection([down] * 100))
    with pytest.raises(ConnectionFailedError, match="tried for 5 s"):
        ctx.reconnect_if_lost(timeout=5, sleep=clock.sleep, clock=clock)


def test_child_context_shares_modes_and_warnings():
    warned = []
    ctx = Context(conn=_Conn(), params=dict(a=1), check_mode=True, diff=True, warn=warned.append, uri="qemu:///system")
    child = ctx.child(dict(b=2))
    child.warn("w")
    assert child.params == dict(b=2) and child.check_mode and child.diff and child.uri == "qemu:///system"
    assert warned == ["w"] and ctx.warnings == ["w"]


def test_real_connection_renewed(test_conn):
    connection = Connection("test:///default")
    ctx = Context(conn=connection.open(), connection=connection)
    first = ctx.conn
    first.close()  # as if libvirtd had gone away
    assert ctx.reconnect_if_lost() is True
    assert ctx.conn is not first and ctx.conn.getURI() == "test:///default"
    connection.close()
