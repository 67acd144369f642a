# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one exception hierarchy of the collection.

Everything in module_utils raises a subclass of :class:`VirtopsError`; nothing there calls
``fail_json`` or exits.  Modules convert the exception exactly once (see ``_runner.run_module``),
the inventory plugin turns it into ``AnsibleError``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class VirtopsError(Exception):
    """Base class.  ``msg`` is a one-line, user-facing message; ``details`` are extra result keys."""

    #: short machine-readable kind, returned as ``error_kind`` in failed results
    kind = "error"

    def __init__(self, msg, **details):
        super(VirtopsError, self).__init__(msg)
        self.msg = msg
        self.details = details

    def to_fail_kwargs(self):
        """Keyword arguments for ``AnsibleModule.fail_json``: a string ``msg`` plus details."""
        kwargs = dict(self.details)
        kwargs["msg"] = self.msg
        kwargs["error_kind"] = self.kind
        return kwargs

    def __str__(self):
        return self.msg


class InvalidInputError(VirtopsError):
    """The user asked for something that cannot be valid (bad size, bad name, conflicting options)."""

    kind = "invalid_input"


class NotFoundError(VirtopsError):
    """A referenced object (domain, pool, volume, network, file) does not exist."""

    kind = "not_found"


class ConflictError(VirtopsError):
    """The request is valid but conflicts with the current state (in use, already exists, running)."""

    kind = "conflict"


class ConnectionFailedError(VirtopsError):
    """The libvirt daemon could not be reached or refused us."""

    kind = "connection"


class MissingDependencyError(VirtopsError):
    """A Python library or a command the operation needs is not installed on the managed node."""

    kind = "missing_dependency"


class BackendError(VirtopsError):
    """libvirt or an external command failed for a reason we do not classify further."""

    kind = "backend"


class CommandError(BackendError):
    """An external command (qemu-img, ...) failed.  Carries the argv, rc, stdout and stderr."""

    kind = "command"

    def __init__(self, msg, cmd, rc, stdout="", stderr=""):
        super(CommandError, self).__init__(msg, cmd=list(cmd), rc=rc, stdout=stdout, stderr=stderr)
        self.cmd = list(cmd)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr


class OperationTimeoutError(VirtopsError):
    """Something we waited for (an address, the guest agent, a guest command) did not happen in time."""

    kind = "timeout"


class StoppedError(VirtopsError):
    """The run was told to stop (a signal) between two steps; the steps already done were undone."""

    kind = "interrupted"
