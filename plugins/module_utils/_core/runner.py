# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The glue between AnsibleModule and the rest of module_utils.

This is the one place where our exceptions become ``fail_json``.  A module's ``main()`` is::

    module = AnsibleModule(argument_spec=..., supports_check_mode=True)
    run_resource(module, PoolResource)        # resource modules (in _core/kind.py, beside Kind)
    run_module(module, gather_host_info)      # info modules / custom handlers
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import (
    Connection,
    require_libvirt,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.binaries import find_binary
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConnectionFailedError, MissingDependencyError, VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.xml import require_lxml

_REQUIREMENTS = dict(libvirt=require_libvirt, lxml=require_lxml)


#: how long a lost libvirt connection is tried again before a rollback gives up on it
RECONNECT_SECONDS = 30


class _Link:
    """The libvirt connection of a run, shared by a context and its children (:meth:`Context.child`),
    so that a new connection opened by :meth:`Context.reconnect_if_lost` reaches all of them."""

    def __init__(self, conn=None, connection=None):
        self.conn = conn
        self.connection = connection  # the _connection.Connection that opened ``conn``, if any


class Context:
    """What module_utils code may use of the run: connection, parameters, modes, a command runner.

    Built from an AnsibleModule by :func:`context_from_module`; tests and controller plugins can
    build one directly.  ``connection`` (a ``_connection.Connection``) lets a rollback open a new
    connection when the daemon went away and came back (:meth:`reconnect_if_lost`).
    """

    def __init__(self, conn=None, params=None, check_mode=False, diff=False, run_command=None, warn=None,
                 uri=None, connection=None, no_log_values=None, stop=None):
        self._link = _Link(conn, connection)
        self.params = dict(params or {})
        self.check_mode = check_mode
        self.diff = diff
        self.uri = uri
        self._run_command = run_command
        self._warn = warn
        self.warnings = []
        self.assumptions = []
        #: secret values to mask in everything the run returns (AnsibleModule's own set in a module)
        self.no_log_values = set() if no_log_values is None else no_log_values
        #: ``stop()`` -> None, or why the run must stop before its next step (see ``reconcile.Plan``)
        self.stop = stop

    @property
    def conn(self):
        return self._link.conn

    @conn.setter
    def conn(self, value):
        self._link.conn = value

    def child(self, params):
        """A context for a resource inside this one (``vm_import``'s VM): its own parameters, the same
        connection (also after a reconnect), modes, runner and warnings."""
        ctx = Context(params=params, check_mode=self.check_mode, diff=self.diff, run_command=self._run_command,
                      warn=self.warn, uri=self.uri, no_log_values=self.no_log_values, stop=self.stop)
        ctx._link = self._link
        ctx.assumptions = self.assumptions  # one list: each assumption is reported once, in the result too
        return ctx

    def reconnect_if_lost(self, timeout=RECONNECT_SECONDS, sleep=time.sleep, clock=time.monotonic):
        """After a failed undo: False when the connection is alive (or cannot be renewed here); when it
        was lost (libvirtd restarted), open a new one, trying for ``timeout`` seconds, and return True.
        Raises ConnectionFailedError when the daemon does not answer in time."""
        connection = self._link.connection
        if connection is None or self._alive():
            return False
        connection.close()
        deadline = clock() + timeout
        while True:
            try:
                self.conn = connection.open()
                return True
            except ConnectionFailedError as exc:
                if clock() >= deadline:
                    raise ConnectionFailedError("%s (tried for %d s)" % (exc.msg, timeout))
                sleep(1.0)

    def _alive(self):
        try:
            return self.conn is not None and self.conn.isAlive() == 1
        except libvirt.libvirtError:
            return False

    def run_command(self, argv, **kwargs):
        """Run an argv list (never a shell string); returns ``(rc, stdout, stderr)``."""
        if self._run_command is None:
            raise RuntimeError("this context cannot run commands")
        return self._run_command(list(argv), **kwargs)

    def get_bin_path(self, name, required=False, purpose=None):
        """Absolute path of the host program ``name`` (PATH and the sbin directories), or None;
        ``required``: MissingDependencyError naming it (and ``purpose``: what it is needed for)."""
        path = find_binary(name)
        if path is None and required:
            raise MissingDependencyError("%s is not installed on the host%s" % (name, " (needed %s)" % purpose if purpose else ""))
        return path

    def secret(self, *values):
        """Register secret values found during the run (see ``_secrets``): they are masked in results,
        diffs, warnings and errors."""
        self.no_log_values.update(v for v in values if isinstance(v, str) and len(v.strip()) > 1)

    def warn(self, text):
        self.warnings.append(text)
        if self._warn is not None:
            self._warn(text)

    def assume(self, error):
        """State that an earlier task of the same play would change is in the way (a missing pool,
        network or base volume an earlier task creates; VMs an earlier task removes).

        A real run raises ``error`` (a :class:`VirtopsError`).  In check mode the earlier tasks did not
        run, so the error becomes a prediction: a warning that names the assumption, and the caller
        goes on planning as if the earlier task had done its work.
        """
        if not self.check_mode:
            raise error
        text = "check mode: %s; assumed to be done by an earlier task (a real run fails if it is not)" % error.msg
        if text not in self.assumptions:
            self.assumptions.append(text)
            self.warn(text)


def context_from_module(module, conn=None, connection=None):
    return Context(
        conn=conn,
        connection=connection,
        params=module.params,
        check_mode=module.check_mode,
        diff=module._diff,
        run_command=module.run_command,
        warn=module.warn,
        uri=module.params.get("uri"),
        no_log_values=module.no_log_values,
    )


def run_module(module, handler, requires=("libvirt", "lxml"), connect=True, secrets=None):
    """Call ``handler(ctx)`` inside one libvirt connection and exit with its result dict.

    Every :class:`VirtopsError` raised on the way becomes ``fail_json`` here and only here.
    ``secrets(params)``: the secret values inside free-form options (``_secrets``), registered before
    anything runs so that AnsibleModule masks them in the invocation, results, diffs and errors.
    """
    if secrets is not None:
        module.no_log_values.update(secrets(module.params))
    try:
        for name in requires:
            _REQUIREMENTS[name]()
        if connect:
            connection = Connection(module.params.get("uri"))
            try:
                result = handler(context_from_module(module, connection.open(), connection))
            finally:
                connection.close()
        else:
            result = handler(context_from_module(module))
    except VirtopsError as exc:
        module.fail_json(**exc.to_fail_kwargs())
    # module.warn, not a 'warnings' result key: ansible-core 2.19 deprecates warnings in exit_json
    for text in result.pop("warnings", None) or ():
        module.warn(text)
    module.exit_json(**result)
