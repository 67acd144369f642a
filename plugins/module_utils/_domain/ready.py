# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What users mean by "the VM is ready": the guest agent answers (``agent``), cloud-init finished
(``cloud_init``); ``vm`` waits for them with ``wait_for`` (:func:`wait_ready`).

cloud-init is read through the agent without running anything in the guest: it writes
``/run/cloud-init/status.json`` while it runs (per stage: start, finished, errors) and
``/run/cloud-init/result.json`` when its last stage ended (``{"v1": {"datasource", "errors"}}``);
``/run`` is a tmpfs, so both are of this boot.  A failed module (a ``runcmd`` that exits non-zero
makes ``scripts-user`` fail in cloud-init 22.4) is an entry of ``errors``: the wait then fails with
cloud-init's own messages.  ``/run/cloud-init/disabled`` means cloud-init is off in this guest.
Only ``guest-file-open/read/close`` are used (the agent commands distributions leave enabled most
often besides ``guest-ping``); ``guest-exec`` is not needed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    InvalidInputError,
    OperationTimeoutError,
    VirtopsError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import agent as _agent
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.states import is_active, state_of

#: what ``wait_for`` accepts, in the order they are waited for
CONDITIONS = ("agent", "cloud_init", "ip")
RESULT_JSON = "/run/cloud-init/result.json"
STATUS_JSON = "/run/cloud-init/status.json"
DISABLED = "/run/cloud-init/disabled"
#: what cloud-init's modules (runcmd among them) wrote: its last lines go with a failure
OUTPUT_LOG = "/var/log/cloud-init-output.log"
OUTPUT_LINES = 20
#: the stages of cloud-init in the order they run (status.json keys)
STAGES = ("init-local", "init", "modules-config", "modules-final")
#: seconds one agent request may take while waiting
PING_TIMEOUT = 5
_MAX_FILE = 1024 * 1024


def conditions(wait_for, wait_for_ip=False):
    """The checked, ordered conditions of ``wait_for`` (a list) plus ``ip`` for ``wait_for_ip``."""
    wanted = [str(w) for w in wait_for or ()]
    unknown = [w for w in wanted if w not in CONDITIONS]
    if unknown:
        raise InvalidInputError("wait_for: %s is not one of %s" % (", ".join(unknown), ", ".join(CONDITIONS)))
    if wait_for_ip:
        wanted.append("ip")
    return tuple(c for c in CONDITIONS if c in wanted)


def read_guest_file(dom, path, timeout=PING_TIMEOUT, limit=_MAX_FILE, tail=False):
    """The bytes of ``path`` in the guest (at most ``limit``; with ``tail`` its last ``limit``), or None
    when it does not exist."""
    try:
        handle = _agent.agent_command(dom, "guest-file-open", {"path": path, "mode": "r"}, timeout)
    except BackendError as exc:
        if "no such file" in exc.msg.lower():
            return None
        raise
    data = b""
    try:
        if tail:
            end = _agent.agent_command(dom, "guest-file-seek", {"handle": handle, "offset": 0, "whence": "end"}, timeout)
            start = max(int(end.get("position") or 0) - limit, 0)
            _agent.agent_command(dom, "guest-file-seek", {"handle": handle, "offset": start, "whence": "set"}, timeout)
        while len(data) < limit:
            chunk = _agent.agent_command(dom, "guest-file-read", {"handle": handle, "count": 65536}, timeout)
            data += base64.b64decode(chunk.get("buf-b64") or "")
            if chunk.get("eof") or not chunk.get("count"):
                break
    finally:
        try:
            _agent.agent_command(dom, "guest-file-close", {"handle": handle}, timeout)
        except VirtopsError:
            pass  # the handle dies with the agent; reading worked or its error is raised
    return data[:limit]


def _json(data, path):
    if data is None:
        return None
    try:
        return json.loads(data.decode("utf-8", "replace"))
    except ValueError:
        return None  # written while we read it: the next look sees it whole


def _errors(items):
    return [str(e) for e in items or ()]


def parse_cloud_init(result, status, disabled=False):
    """cloud-init's state from the parsed ``result.json`` and ``status.json`` (either may be None).

    ``{status, finished, errors, recoverable_errors, datasource, stage, stages}``: ``status`` is
    ``disabled``, ``not started``, ``running``, ``done`` or ``error``; ``stages`` maps each stage
    that started to ``{start, finished, errors}``; ``errors`` are cloud-init's own messages.
    """
    v1 = (status or {}).get("v1") if isinstance(status, dict) else None
    v1 = v1 if isinstance(v1, dict) else {}
    stages = {}
    stage_errors = []
    for name in STAGES:
        entry = v1.get(name)
        if isinstance(entry, dict) and entry.get("start") is not None:
            errors = _errors(entry.get("errors"))
            stages[name] = dict(start=entry.get("start"), finished=entry.get("finished"), errors=errors)
            stage_errors.extend("%s: %s" % (name, e) for e in errors)
    recoverable = {}
    for source in (v1, ((result or {}).get("v1") if isinstance(result, dict) else None) or {}):
        for level, messages in (source.get("recoverable_errors") or {}).items():
            recoverable.setdefault(level, [])
            recoverable[level].extend(str(m) for m in messages if str(m) not in recoverable[level])
    out = dict(finished=False, errors=stage_errors, recoverable_errors=recoverable,
               datasource=v1.get("datasource"), stage=v1.get("stage"), stages=stages)
    res = (result or {}).get("v1") if isinstance(result, dict) else None
    if isinstance(res, dict):
        out.update(finished=True, errors=_errors(res.get("errors")) or stage_errors,
                   datasource=res.get("datasource") or out["datasource"])
        out["status"] = "error" if out["errors"] else "done"
    elif disabled:
        out["status"] = "disabled"
    elif not stages:
        out["status"] = "not started"
    else:
        out["status"] = "running"
    return out


def cloud_init_state(dom, timeout=PING_TIMEOUT):
    """:func:`parse_cloud_init` of what the guest's ``/run/cloud-init`` holds now (through the agent)."""
    result = _json(read_guest_file(dom, RESULT_JSON, timeout), RESULT_JSON)
    status = _json(read_guest_file(dom, STATUS_JSON, timeout), STATUS_JSON)
    disabled = result is None and read_guest_file(dom, DISABLED, timeout) is not None
    return parse_cloud_init(result, status, disabled)


def output_tail(dom, timeout=PING_TIMEOUT, lines=OUTPUT_LINES):
    """The last ``lines`` lines of cloud-init's output log in the guest (what ``runcmd`` printed), or []."""
    try:
        data = read_guest_file(dom, OUTPUT_LOG, timeout, limit=16384, tail=True)
    except VirtopsError:
        return []
    return (data or b"").decode("utf-8", "replace").splitlines()[-lines:]


def cloud_init_failure(name, state, output=()):
    """The BackendError of a cloud-init that finished with errors, with cloud-init's messages (and in
    ``cloud_init.output`` the last lines of its output log)."""
    state = dict(state, output=list(output))
    return BackendError("cloud-init failed in VM '%s' (datasource %s): %s%s"
                        % (name, state.get("datasource") or "unknown", "; ".join(state["errors"]),
                           "; the last lines of %s are in cloud_init.output" % OUTPUT_LOG if output else ""),
                        cloud_init=state)


class Waiter:
    """Waits until VM ``dom`` meets each condition before ``deadline`` (``clock()`` seconds)."""

    def __init__(self, dom, timeout, sleep=time.sleep, clock=time.monotonic):
        self.dom = dom
        self.name = dom.name()
        self.timeout = timeout
        self.sleep = sleep
        self.clock = clock
        self.started = clock()
        self.deadline = self.started + timeout

    def left(self):
        return self.deadline - self.clock()

    def _pause(self, interval):
        self.sleep(max(min(interval, self.left()), 0))
        if not is_active(self.dom):
            state, reason = state_of(self.dom)
            raise ConflictError("VM '%s' stopped (%s, %s) while waiting for it to be ready" % (self.name, state, reason),
                                state=state, reason=reason)

    def _late(self, what, seen):
        return OperationTimeoutError("timed out after %g s waiting for %s of VM '%s'; %s"
                                     % (self.timeout, what, self.name, seen))

    def agent(self):
        """Until ``guest-ping`` answers; a VM without an agent channel fails at once."""
        interval = 0.5
        while True:
            bound = int(max(min(PING_TIMEOUT, self.left()), 1))
            try:
                _agent.agent_command(self.dom, "guest-ping", None, bound)
                return True
            except VirtopsError as exc:
                if not getattr(exc, "transient", False):
                    raise
                seen = exc.msg
            if self.left() <= 0:
                raise self._late("its guest agent", "last answer: %s" % seen)
            self._pause(interval)
            interval = min(interval * 2, 5.0)

    def cloud_init(self, fail_on_error=True):
        """Until cloud-init's result is written; its errors fail the wait (with cloud-init's messages), or
        without ``fail_on_error`` are in the state returned."""
        self.agent()
        interval = 1.0
        while True:
            bound = int(max(min(PING_TIMEOUT, self.left()), 1))
            try:
                state = cloud_init_state(self.dom, bound)
                seen = "cloud-init is %s (stage %s)" % (state["status"], state.get("stage") or "none")
                if state["status"] == "not started":
                    seen += ": nothing in /run/cloud-init; is cloud-init installed in the guest?"
            except VirtopsError as exc:
                if not getattr(exc, "transient", False):
                    raise
                state, seen = None, "the agent: %s" % exc.msg
            if state is not None and state["status"] == "error" and fail_on_error:
                raise cloud_init_failure(self.name, state, output_tail(self.dom, bound))
            if state is not None and state["status"] == "disabled":
                raise ConflictError("cloud-init is disabled in VM '%s' (%s exists): it will not run, so there is "
                                    "nothing to wait for" % (self.name, DISABLED), cloud_init=state)
            if state is not None and state["finished"]:
                return state
            if self.left() <= 0:
                raise self._late("cloud-init to finish", seen)
            self._pause(interval)
            interval = min(interval * 2, 5.0)


def wait_ready(dom, wanted, timeout, sleep=time.sleep, clock=time.monotonic):
    """Wait for ``agent`` and ``cloud_init`` of ``wanted`` (``ip`` is ``address_wait``'s);
    ``{agent: True, cloud_init: state, seconds}`` of what was waited for."""
    name = dom.name()
    if not is_active(dom):
        raise ConflictError("VM '%s' is not running (%s, %s): start it before waiting for it to be ready"
                            % ((name,) + state_of(dom)))
    waiter = Waiter(dom, timeout, sleep, clock)
    out = {}
    if "agent" in wanted or "cloud_init" in wanted:
        out["agent"] = waiter.agent()
    if "cloud_init" in wanted:
        out["cloud_init"] = waiter.cloud_init()
    out["seconds"] = round(clock() - waiter.started, 1)
    return out
