# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Does a hypervisor's libvirt answer?  A real connection attempt (open, then one call), bounded by a
timeout: a powered-off host behind a TCP URI can leave ``virConnectOpen`` waiting for minutes, so the
attempt runs in a daemon thread that is abandoned when the time is up.

Only "cannot connect" counts as down: no socket, connection refused, no route, a connection that
broke off, or no answer in time.  A daemon that answers but refuses us (authentication) has answered;
any other error (a host name that does not resolve, an unknown transport...) leaves the question
open, and the caller refuses to act on an open question: a wrong URI must not pass for a dead host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import check_uri, libvirt

#: the probe's three answers
ANSWERS = "answers"
DOWN = "down"
UNKNOWN = "unknown"

_DOWN_CODES = ("VIR_ERR_SYSTEM_ERROR", "VIR_ERR_NO_CONNECT", "VIR_ERR_RPC")
#: what libvirt's message says when nothing listens (or the host is gone), lower case
DOWN_MARKERS = ("connection refused", "no such file or directory", "no route to host", "host is unreachable",
                "network is unreachable", "connection timed out", "connection reset", "end of file", "cannot recv data")


def _codes(names):
    return frozenset(getattr(libvirt, n) for n in names if libvirt is not None and hasattr(libvirt, n))


def _attempt(uri, out):
    try:
        conn = libvirt.openReadOnly(uri)
        try:
            out["version"] = conn.getLibVersion()
        finally:
            conn.close()
        out["answer"] = ANSWERS
    except libvirt.libvirtError as exc:
        message = " ".join((exc.get_error_message() or str(exc)).split())
        code = exc.get_error_code()
        low = message.lower()
        if "auth" in low:
            out["answer"] = ANSWERS
        elif code in _codes(_DOWN_CODES) and any(marker in low for marker in DOWN_MARKERS):
            out["answer"] = DOWN
        else:
            out["answer"] = UNKNOWN
        out["detail"] = message
    except Exception as exc:  # reported, never raised from the thread
        out["answer"] = UNKNOWN
        out["detail"] = str(exc)


def probe(uri, timeout, attempt=_attempt):
    """``(answer, detail)``: ``answer`` is :data:`ANSWERS`, :data:`DOWN` or :data:`UNKNOWN`."""
    check_uri(uri, "failed_uri")
    out = {}
    worker = threading.Thread(target=attempt, args=(uri, out), name="virtops-probe")
    worker.daemon = True
    worker.start()
    worker.join(timeout)
    if worker.is_alive() or "answer" not in out:
        return DOWN, "no answer within %s s" % timeout
    return out["answer"], out.get("detail") or ""
