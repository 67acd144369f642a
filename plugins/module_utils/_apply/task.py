# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``apply`` module's run: validate every item, order them, run them, report them like a loop.

Nothing runs unless every item is valid.  The task fails, after every item that could run has run, when
one item failed; its ``msg`` names each failed item and each item not attempted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import signal

from ansible_collections.virtops.libvirt.plugins.module_utils._apply.items import validate
from ansible_collections.virtops.libvirt.plugins.module_utils._apply.order import Graph
from ansible_collections.virtops.libvirt.plugins.module_utils._apply.run import Runner
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection, require_libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError, VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.xml import require_lxml

APPLY_ARGUMENT_SPEC = dict(
    resources=dict(type="list", elements="dict", required=True),
    parallel=dict(type="int", default=4),
    stop_on_error=dict(type="bool", default=False),
    uri=dict(type="str", default="qemu:///system"),
)

#: the most workers (each with a libvirt connection) one task may use
MAX_PARALLEL = 32

_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name))


class Stopper:
    """Turns SIGTERM, SIGINT and SIGHUP into a request to stop (``reason()``), while installed."""

    def __init__(self):
        self.reason = None

    def __call__(self):
        return self.reason

    @contextlib.contextmanager
    def installed(self):
        def handler(signum, _frame):
            self.reason = "got %s" % signal.Signals(signum).name

        previous = {}
        try:
            for signum in _SIGNALS:
                previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main thread (a test): no signals, only reason
            pass
        try:
            yield self
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)


def plan_items(params):
    """``(items, graph, no_log_values)`` of the module's parameters; InvalidInputError when any item is bad."""
    parallel = params.get("parallel")
    if parallel is None or not 1 <= parallel <= MAX_PARALLEL:
        raise InvalidInputError("parallel must be between 1 and %d, got %r" % (MAX_PARALLEL, parallel))
    items, secrets = validate(params["resources"], params.get("uri"))
    return items, Graph(items), secrets


def run_apply(module, connection_class=Connection, stopper=None):
    """Run the module: exit with the results of every item, or fail naming the failed ones."""
    params = module.params
    try:
        items, graph, secrets = plan_items(params)
        module.no_log_values.update(secrets)
        if any(item.kind.needs_libvirt(item.params) for item in items):
            require_libvirt()
            require_lxml()
    except VirtopsError as exc:
        module.fail_json(**exc.to_fail_kwargs())
    stopper = stopper or Stopper()
    base = dict(check_mode=module.check_mode, diff=module._diff, run_command=module.run_command,  # pylint: disable=protected-access
                no_log_values=module.no_log_values)
    with stopper.installed():
        results = Runner(items, graph, base, parallel=params["parallel"], stop_on_error=params["stop_on_error"],
                         stop=stopper, connection_class=connection_class).run()
    for text in warnings(results, graph, module.check_mode):
        module.warn(text)
    out = dict(changed=any(r["changed"] for r in results), results=results)
    if module._diff:  # pylint: disable=protected-access
        out["diff"] = [r["diff"] for r in results if r.get("diff")]
    message = failure(results, stopper())
    if message:
        module.fail_json(msg=message, **out)
    module.exit_json(**out)


def warnings(results, graph, check_mode):
    """The items' warnings, each with its item's label.  In check mode an item's assumptions are no warning
    when an item it waits for is predicted to change (they are in the item's ``assumptions``)."""
    by_index = dict((r["index"], r) for r in results)
    for result in results:
        expected = ()
        if check_mode and any(by_index[j]["changed"] for j in graph.waits_for(result["index"])):
            expected = result.get("assumptions") or ()
        for text in result.get("warnings") or ():
            if text not in expected:
                yield "%s: %s" % (result["label"], text)


def failure(results, stopped):
    """The task's failure message, or None when every item succeeded."""
    failed = [r for r in results if r["failed"]]
    skipped = [r for r in results if r.get("skipped")]
    if not failed and not skipped and not stopped:
        return None
    parts = []
    if stopped:
        parts.append("the task was stopped (%s): items that had started undid their steps" % stopped)
    if failed:
        parts.append("%d of %d resources failed: %s" % (len(failed), len(results), "; ".join(
            "%s: %s" % (r["label"], r["msg"]) for r in failed)))
    if skipped:
        parts.append("%d not attempted: %s" % (len(skipped), ", ".join(r["label"] for r in skipped)))
    return ". ".join(parts)
