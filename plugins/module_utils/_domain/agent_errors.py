# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The errors of QEMU guest agent calls as our exceptions (:func:`agent_error`): what reading
addresses through the agent and running agent commands (``agent``) both need.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, translate_libvirt_error
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    InvalidInputError,
    OperationTimeoutError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.states import error_message, has_code, state_names

AGENT_NOT_CONNECTED = (
    "the guest agent of VM '%s' is not connected: is qemu-guest-agent running in the guest and does "
    "the VM have an org.qemu.guest_agent.0 channel?"
)
AGENT_NOT_CONFIGURED = (
    "VM '%s' has no guest agent channel: add <channel type='unix'><target type='virtio' "
    "name='org.qemu.guest_agent.0'/></channel> and install qemu-guest-agent in the guest"
)


def agent_error(exc, dom, doing, timeout=None):
    """The VirtopsError for a libvirtError of a guest agent call, and whether waiting may cure it."""
    name = dom.name()
    message = error_message(exc)
    low = message.lower()
    if has_code(exc, "VIR_ERR_NO_DOMAIN"):
        return translate_libvirt_error(exc, "%s in VM '%s'" % (doing, name)), False
    if has_code(exc, "VIR_ERR_OPERATION_INVALID") and "not running" in low:
        # libvirt says "not running" for paused domains too: tell them apart
        try:
            state, reason = state_names(*dom.state(0)[:2])
        except libvirt.libvirtError:
            state, reason = "unknown", "unknown"
        if state in ("paused", "pmsuspended"):
            return ConflictError("VM '%s' is %s (%s): its guest agent cannot answer %s until it runs again"
                                 % (name, state, reason, doing), state=state, reason=reason), True
        return ConflictError("VM '%s' is not running (%s, %s): %s needs a running guest"
                             % (name, state, reason, doing), state=state, reason=reason), False
    if has_code(exc, "VIR_ERR_AGENT_UNRESPONSIVE") and "not connected" in low:
        return BackendError(AGENT_NOT_CONNECTED % name, libvirt_error=message), True
    if "agent is not configured" in low:
        return InvalidInputError(AGENT_NOT_CONFIGURED % name, libvirt_error=message), False
    if has_code(exc, "VIR_ERR_AGENT_UNRESPONSIVE") or has_code(exc, "VIR_ERR_OPERATION_TIMEOUT") \
            or has_code(exc, "VIR_ERR_AGENT_UNSYNCED"):
        within = " within %s s" % timeout if timeout is not None else ""
        return OperationTimeoutError(
            "the guest agent of VM '%s' did not answer %s%s (is the guest busy, hung or still "
            "booting?): %s" % (name, doing, within, message), libvirt_error=message), True
    if has_code(exc, "VIR_ERR_NO_SUPPORT"):
        return InvalidInputError(
            "this libvirt driver has no guest agent support (only QEMU/KVM has): %s" % message), False
    if "unable to execute qemu agent command" in low:
        # "internal error: unable to execute QEMU agent command 'x': <the agent's reason>"
        reason = re.sub(r"^.*?unable to execute qemu agent command '[^']*': ", "", message, flags=re.IGNORECASE)
        return BackendError("%s failed in VM '%s': %s" % (doing, name, reason), libvirt_error=message), False
    return translate_libvirt_error(exc, "%s in VM '%s'" % (doing, name)), False
