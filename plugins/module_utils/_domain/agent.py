# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The QEMU guest agent of a VM: commands (:func:`agent_command`) and running a program in the VM
(:func:`guest_exec`).  The errors of agent calls are in ``agent_errors``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import time
import traceback

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    InvalidInputError,
    MissingDependencyError,
    OperationTimeoutError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.agent_errors import agent_error

LIBVIRT_QEMU_IMPORT_ERROR = None
try:
    import libvirt_qemu
except ImportError:  # pragma: no cover - depends on the managed node
    libvirt_qemu = None
    LIBVIRT_QEMU_IMPORT_ERROR = traceback.format_exc()


def require_libvirt_qemu():
    if libvirt_qemu is None:
        raise MissingDependencyError(
            "The libvirt_qemu module of the libvirt Python binding is missing on the managed node: install "
            "the 'libvirt-python' package from PyPI (or python3-libvirt from your distribution)",
            exception=LIBVIRT_QEMU_IMPORT_ERROR,
        )


def agent_command(dom, command, arguments=None, timeout=10):
    """Run one qemu-guest-agent command and return its parsed ``return`` value.

    ``timeout`` (seconds) is how long libvirt waits for the answer.  Errors: no agent channel
    (InvalidInputError), agent not connected (BackendError), no answer in time
    (OperationTimeoutError), the command failed in the guest (BackendError), domain not running
    (ConflictError).  The error's ``transient`` says whether waiting may cure it.
    """
    require_libvirt_qemu()
    try:
        timeout = int(timeout)
    except (TypeError, ValueError):
        raise InvalidInputError("guest agent timeout must be a whole number of seconds, got %r" % (timeout,))
    if timeout < 1:
        raise InvalidInputError("guest agent timeout must be at least 1 s, got %s" % timeout)
    request = {"execute": command}
    if arguments is not None:
        request["arguments"] = arguments
    name = dom.name()
    doing = "guest agent command '%s'" % command
    try:
        reply = libvirt_qemu.qemuAgentCommand(dom, json.dumps(request), timeout, 0)
    except libvirt.libvirtError as exc:
        error, transient = agent_error(exc, dom, doing, timeout)
        error.transient = transient  # waiting may cure it (agent not connected yet, guest busy)
        raise error
    try:
        parsed = json.loads(reply)
    except (TypeError, ValueError):
        raise BackendError("%s in VM '%s' answered with something that is not JSON: %r"
                           % (doing, name, str(reply)[:200]))
    if not isinstance(parsed, dict) or "return" not in parsed:
        error = parsed.get("error") if isinstance(parsed, dict) else None
        desc = error.get("desc") if isinstance(error, dict) else parsed
        raise BackendError("%s failed in VM '%s': %s" % (doing, name, desc), reply=parsed)
    return parsed["return"]


def _b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def _unb64(text):
    if not text:
        return ""
    return base64.b64decode(text).decode("utf-8", "replace")


def guest_exec(dom, path, args=(), input_data=None, timeout=30, sleep=time.sleep, clock=time.monotonic):
    """Run ``path args...`` in the guest through the agent; ``{exitcode, signal, stdout, stderr, truncated}``.

    ``input_data`` (str or bytes) is the command's stdin.  Polls ``guest-exec-status`` (0.1 s,
    doubling up to 1 s) until the command ends; after ``timeout`` seconds OperationTimeoutError
    (the command keeps running in the guest: the agent cannot kill it).  Output is decoded as
    UTF-8 (invalid bytes replaced); the agent keeps at most 16 MiB of each stream (``truncated``).
    """
    arguments = {"path": str(path), "arg": [str(a) for a in args], "capture-output": True}
    if input_data is not None:
        arguments["input-data"] = _b64(input_data)
    started = agent_command(dom, "guest-exec", arguments)
    pid = started.get("pid") if isinstance(started, dict) else None
    if pid is None:
        raise BackendError("guest-exec in VM '%s' returned no pid: %r" % (dom.name(), started))
    deadline = clock() + float(timeout)
    interval = 0.1
    while True:
        status = agent_command(dom, "guest-exec-status", {"pid": pid})
        if status.get("exited"):
            return dict(
                exitcode=status.get("exitcode"),
                signal=status.get("signal"),
                stdout=_unb64(status.get("out-data")),
                stderr=_unb64(status.get("err-data")),
                truncated=bool(status.get("out-truncated") or status.get("err-truncated")),
            )
        now = clock()
        if now >= deadline:
            raise OperationTimeoutError(
                "'%s' (pid %s in VM '%s') did not finish within %g s; it is still running in the guest"
                % (path, pid, dom.name(), float(timeout)), pid=pid)
        sleep(min(interval, max(deadline - now, 0)))
        interval = min(interval * 2, 1.0)
