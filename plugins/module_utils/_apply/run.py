# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run the items of ``apply``: up to ``parallel`` at a time, each in the order of :class:`~.order.Graph`,
each worker thread with its own libvirt connection per URI, each item with the reconcile cycle of its
kind (so its own check mode, diff and rollback).

A failed item is reported and the others go on (``stop_on_error``: nothing new starts).  ``stop()``
(the module's SIGTERM/SIGINT) starts nothing new and makes the running items stop before their next
step and undo what they did (:class:`~._core.reconcile.Plan`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import traceback
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context

#: seconds the scheduler sleeps at most between looks at ``stop()`` (signals are handled in between)
POLL_SECONDS = 0.5


class Runner:
    """``run()`` -> the item results, in input order.

    ``base``: what every item's :class:`Context` shares (``check_mode``, ``diff``, ``run_command``,
    ``no_log_values``);
    ``connection_class(uri)``: what opens a worker's connection (``_core.connection.Connection``).
    """

    def __init__(self, items, graph, base, parallel=4, stop_on_error=False, stop=None, connection_class=Connection):
        self.items = dict((item.index, item) for item in items)
        self.graph = graph
        self.base = base
        self.parallel = max(1, parallel)
        self.stop_on_error = stop_on_error
        self.stop = stop or (lambda: None)
        self.connection_class = connection_class
        self._local = threading.local()
        self._opened = []
        self._lock = threading.Lock()
        self.results = {}
        self._waiting = dict((i, set(graph.waits_for(i))) for i in self.items)
        self._ready = []

    # --- scheduling -----------------------------------------------------------------------------

    def run(self):
        self._ready = self.graph.first()
        running = {}
        halted = None
        try:
            with ThreadPoolExecutor(max_workers=self.parallel) as pool:
                while self._ready or running:
                    halted = halted or self.stop()
                    while self._ready and len(running) < self.parallel and not halted:
                        index = self._ready.pop(0)
                        running[pool.submit(self._one, self.items[index])] = index
                    if not running:
                        break
                    done = wait(list(running), timeout=POLL_SECONDS, return_when=FIRST_COMPLETED).done
                    for future in sorted(done, key=running.get):
                        index = running.pop(future)
                        self._finish(index, future.result())
                        if self.results[index]["failed"] and self.stop_on_error and not halted:
                            halted = "stop_on_error is set and %s failed" % self.items[index].label
        finally:
            self._close()
        for index in sorted(self.items):
            if index not in self.results:
                self.results[index] = self._not_attempted(index, halted or "the run stopped")
        return [self.results[index] for index in sorted(self.items)]

    def _finish(self, index, result):
        """Record ``result`` of item ``index``; what waited for it may start, or, when it failed,
        the items that need it are not attempted."""
        self.results[index] = result
        if result["failed"] or result.get("skipped"):
            for user in self.graph.dependants(index):
                if user not in self.results:
                    self.results[user] = self._not_attempted(user, "it needs %s, which %s" % (
                        self.items[index].label, "failed" if result["failed"] else "was not attempted"))
                    self._release(user)
        self._release(index)

    def _release(self, index):
        for waiter in sorted(self.graph.waiters[index]):
            self._waiting[waiter].discard(index)
            if not self._waiting[waiter] and waiter not in self.results and waiter not in self._ready:
                self._ready.append(waiter)
        self._ready.sort()

    def _not_attempted(self, index, why):
        item = self.items[index]
        return dict(index=index, kind=item.kind.name, label=item.label, changed=False, failed=False, skipped=True,
                    msg="not attempted: %s" % why)

    # --- one item -------------------------------------------------------------------------------

    def _one(self, item):
        """Reconcile ``item`` (in a worker thread); never raises."""
        uri = item.params.get("uri")
        out = dict(index=item.index, kind=item.kind.name, label=item.label)
        ctx = None
        try:
            conn, connection = self._connection(uri) if item.kind.needs_libvirt(item.params) else (None, None)
            ctx = Context(conn=conn, connection=connection, params=item.params, uri=uri, stop=self.stop, **self.base)
            result = reconcile(item.kind.resource(ctx), check_mode=ctx.check_mode, want_diff=ctx.diff)
        except VirtopsError as exc:
            out.update(exc.to_fail_kwargs(), changed=False, failed=True)
        except Exception as exc:  # a bug in one item must not take the others down: report it as that item's
            out.update(changed=False, failed=True, msg="%s: %s" % (type(exc).__name__, exc),
                       exception=traceback.format_exc())
        else:
            out.update(result, failed=False)
        said = list(ctx.warnings) if ctx is not None else []
        if ctx is not None and ctx.conn is not None:
            self._local.conns[uri] = (ctx.conn, connection)  # a reconnect may have opened a new one
        warnings = said + [w for w in out.pop("warnings", None) or () if w not in said]
        if warnings:
            out["warnings"] = warnings
        return out

    def _connection(self, uri):
        """This thread's ``(conn, Connection)`` to ``uri``, opened on first use."""
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        if uri not in conns:
            connection = self.connection_class(uri)
            conns[uri] = (connection.open(), connection)
            with self._lock:
                self._opened.append(connection)
        return conns[uri]

    def _close(self):
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()
