# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The controller side of the ``virtops.libvirt.guest_agent`` connection plugin: one VM's QEMU guest
agent, reached through the libvirt API of any hypervisor URI.

Design notes:

* One libvirt connection per Ansible connection (per task), opened by :meth:`AgentClient.open`,
  which also finds the VM, checks that it runs and that its agent answers a ``guest-ping`` (asked again
  for up to ``agent_timeout`` s: libvirt gives up on a silent agent after 5 s, and a guest that boots
  under load can be silent that long).  Every request is one
  ``libvirt_qemu.qemuAgentCommand(dom, json, timeout, 0)``: the seam (``command=``) where unit tests put
  a fake agent.  The agent channel is not looked for in the VM's XML: the ping's error says what is
  missing (``agent_errors``).  Requests that may be sent twice (ping, exec status) are asked again
  while the agent is not connected or silent, for up to ``agent_timeout`` s; others fail at once.
* Errors name the VM and the URI.  What makes the VM unusable (not found, not running, no agent
  channel, agent not connected or not answering within ``agent_timeout``) raises
  ``AnsibleConnectionFailure`` (the host is unreachable); what the agent refused (a file that cannot
  be opened: the guest's own words) and a command that outlived ``command_timeout`` raise
  ``AnsibleError`` (the task fails).
* ``guest-exec`` with ``capture-output`` and ``input-data`` (stdin, for pipelining), then
  ``guest-exec-status`` polled from 2 ms, growing by half up to 50 ms, later up to 5 % of the time the
  command has run (at most 0.5 s): a short command costs a few round trips and waits at most 50 ms
  too long; a long one (a module under TCG emulation takes seconds) loses at most 5 % and does not
  keep the guest's CPU busy answering polls (each costs the guest a wake-up and two answers).
* Requests TO the guest must stay small: with QEMU 7.2's agent (Debian 12), a request of 226,745
  bytes never arrived intact (the agent hung or said "JSON parse error") while 220,077 bytes always
  did, under TCG and idle or loaded alike.  So files are written (``guest-file-write``) in chunks of
  ``put_chunk_size`` bytes, at most ``MAX_PUT_CHUNK`` (160 KiB, 218,533 bytes of request), default
  128 KiB; a command's standard input (``input-data``) of more than ``put_chunk_size`` bytes is
  written to a temporary file in the guest the same way, and the command reads it from there.
* Answers FROM the guest may be big: files are read (``guest-file-read``) in chunks of
  ``fetch_chunk_size`` bytes, at most 3 MiB (libvirt's remote protocol carries strings up to 4 MiB,
  base64 adds a third).  qemu-ga creates files 0600 as root.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib
import json
import os
import time

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection, libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.agent_errors import agent_error
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.states import error_message, has_code
from ansible_collections.virtops.libvirt.plugins.module_utils._tools import codecache

try:
    import libvirt_qemu
except ImportError:  # pragma: no cover - depends on the controller
    libvirt_qemu = None

#: the largest chunk read: base64 of it (4/3) and the JSON around it fit libvirt's 4 MiB string limit
MAX_FETCH_CHUNK = 3 * 1024 * 1024 - 4096
#: the largest chunk written (or given as stdin): QEMU 7.2's agent loses requests above ~220 KB
MAX_PUT_CHUNK = 160 * 1024
#: the defaults (measured in the lab: see the plugin's documentation)
DEFAULT_PUT_CHUNK = 128 * 1024
DEFAULT_FETCH_CHUNK = 1024 * 1024
#: where a command's standard input too big for one request waits in the guest
STDIN_DIR = "/tmp"
#: polling ``guest-exec-status``: first pause, growth factor, longest pause (seconds) for the first second;
#: then pauses of up to POLL_SHARE of the time the command has run, at most POLL_LONGEST
POLL_FIRST, POLL_GROWTH, POLL_MAX = 0.002, 1.5, 0.05
POLL_SHARE, POLL_LONGEST = 0.05, 0.5
#: the environment of commands run as root (qemu-ga's own has no HOME: ``~/.ansible/tmp`` needs it)
ROOT_ENV = ("HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/sh",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")


#: where the code cache lives in the guest (see ``module_utils/_tools/codecache.py``): the start-up hook in
#: ``hook-<its hash>/usercustomize.py``, the compiled code in ``code/`` (root's, 0700)
CODE_CACHE_DIR = "/var/cache/virtops-libvirt/python"
#: installs the hook (its text on stdin) and the code directory; $1: CODE_CACHE_DIR, $2: the hook's directory
CODE_CACHE_INSTALL = (
    'set -e; umask 022; mkdir -p "$1"; [ "$(stat -c %u "$1")" = 0 ]; mkdir -p -m 0700 "$1/code"; '
    'mkdir -p "$2"; t="$2/.usercustomize.$$"; cat > "$t"; mv -f "$t" "$2/usercustomize.py"')


def _hook_source():
    """The text of the code cache's start-up hook, and the directory it goes to in the guest."""
    path = os.path.splitext(codecache.__file__)[0] + ".py"
    with open(path, "rb") as f:
        text = f.read()
    digest = hashlib.sha256(text).hexdigest()[:16]
    return text, "%s/hook-%s" % (CODE_CACHE_DIR, digest)


def runs_module(cmd, stdin):
    """Whether a command the connection is asked to run is an Ansible module (AnsiballZ) run by Python:
    only those get the code cache's environment."""
    return b"_ANSIBALLZ_WRAPPER" in (stdin or b"") or b"AnsiballZ_" in to_bytes(cmd)


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _unb64(text, what):
    try:
        return base64.b64decode(text or "", validate=True)
    except (TypeError, ValueError) as exc:
        raise AnsibleConnectionFailure("the guest agent sent %s that is not base64: %s" % (what, exc))


def shell_argv(cmd, user=None, shell="/bin/sh"):
    """The ``guest-exec`` argv that runs the command line ``cmd`` with ``shell -c``, as ``user``
    (through ``runuser``, which sets HOME, USER, LOGNAME and SHELL from the user's entry) unless that
    is root or None."""
    if not user or user == "root":
        return [shell, "-c", cmd]
    return [shell, "-c", 'exec runuser -u "$0" -- %s -c "$1"' % shell, user, cmd]


class AgentClient:
    """The guest agent of VM ``vm`` at ``uri``.

    ``agent_timeout``: seconds libvirt waits for one answer; ``command_timeout``: seconds a command may
    run (0: no limit); ``put_chunk_size``/``fetch_chunk_size``: bytes per file request written/read;
    ``command``: the function that sends one request (``qemuAgentCommand``'s signature);
    ``code_cache``: let module runs as root keep compiled code in the guest (:meth:`module_env`);
    ``clock``/``sleep``: for tests.
    """

    def __init__(self, uri, vm, agent_timeout=10, command_timeout=0, put_chunk_size=DEFAULT_PUT_CHUNK,
                 fetch_chunk_size=DEFAULT_FETCH_CHUNK, command=None, clock=time.monotonic, sleep=time.sleep, log=None,
                 code_cache=False):
        self.uri, self.vm = uri, vm
        self.agent_timeout = int(agent_timeout)
        self.command_timeout = float(command_timeout or 0)
        self.put_chunk, self.fetch_chunk = int(put_chunk_size), int(fetch_chunk_size)
        if self.agent_timeout < 1:
            raise AnsibleError("agent_timeout: must be at least 1 s, got %s" % agent_timeout)
        for name, value, most in (("put_chunk_size", self.put_chunk, MAX_PUT_CHUNK),
                                  ("fetch_chunk_size", self.fetch_chunk, MAX_FETCH_CHUNK)):
            if not 4096 <= value <= most:
                raise AnsibleError("%s: must be between 4096 and %d bytes, got %s" % (name, most, value))
        self._command = command
        self._clock, self._sleep = clock, sleep
        self._log = log or (lambda text: None)
        self._connection = None
        self.dom = None
        self.code_cache = bool(code_cache)
        self._module_env = None  # the environment of module runs once the code cache is known to be there

    @property
    def where(self):
        return "VM '%s' at %s" % (self.vm, self.uri)

    # ------------------------------------------------------------------------ session ---

    def open(self):
        """Connect to the hypervisor, find the running VM, check that its agent answers."""
        if self._command is None:
            if libvirt_qemu is None:
                raise AnsibleError("the virtops.libvirt.guest_agent connection needs the libvirt Python binding (with "
                                   "its libvirt_qemu module) on the controller: install 'libvirt-python' from PyPI or "
                                   "python3-libvirt for the Python that runs Ansible")
            self._command = libvirt_qemu.qemuAgentCommand
        connection = Connection(self.uri)
        try:
            conn = connection.open()
        except VirtopsError as exc:
            raise AnsibleConnectionFailure("cannot reach %s: %s" % (self.where, exc.msg))
        self._connection = connection
        try:
            self.dom = conn.lookupByName(self.vm)
            active = self.dom.isActive()
        except libvirt.libvirtError as exc:
            self.close()
            if has_code(exc, "VIR_ERR_NO_DOMAIN"):
                raise AnsibleConnectionFailure("there is no VM named '%s' at %s (the VM name comes from "
                                               "ansible_libvirt_vm, else ansible_host, else the inventory name)"
                                               % (self.vm, self.uri))
            raise AnsibleConnectionFailure("cannot look up %s: %s" % (self.where, error_message(exc)))
        if not active:
            self.close()
            raise AnsibleConnectionFailure("%s is not running: its guest agent cannot answer" % self.where)
        self.ready()
        return self

    def close(self):
        if self._connection is not None:
            self._connection.close()
        self._connection, self.dom = None, None

    # ----------------------------------------------------------------------- requests ---

    def call(self, execute, arguments=None, quiet=False, retry=False):
        """One agent request; its ``return`` value.

        With ``retry`` (only for requests that may be sent twice), an agent that is not connected or does
        not answer is asked again, with pauses from 0.1 s to 1 s, until ``agent_timeout`` seconds have
        passed since the first try: a guest that is busy for a moment (booting, an agent restarting) does
        not fail the task.
        """
        request = {"execute": execute}
        if arguments is not None:
            request["arguments"] = arguments
        text = json.dumps(request)
        if not quiet:
            self._log("guest agent request %s (%d bytes)" % (execute, len(text)))
        deadline = self._clock() + self.agent_timeout
        pause = 0.1
        while True:
            wait = max(1, int(deadline - self._clock() + 0.999)) if retry else self.agent_timeout
            try:
                reply = self._command(self.dom, text, wait, 0)
                break
            except libvirt.libvirtError as exc:
                failure, again = self._failure(exc, execute)
                if not (retry and again and self._clock() + pause < deadline):
                    raise failure
                self._log("guest agent request %s: %s; asking again" % (execute, error_message(exc)))
                self._sleep(pause)
                pause = min(pause * 2, 1.0)
        try:
            parsed = json.loads(reply)
            return parsed["return"]
        except (TypeError, ValueError, KeyError):
            raise AnsibleConnectionFailure("the guest agent of %s answered %s with something unexpected: %r"
                                           % (self.where, execute, to_text(reply)[:200]))

    def ready(self):
        """Make sure the agent answers (``guest-ping``, asked again for up to ``agent_timeout`` s)."""
        self.call("guest-ping", retry=True)

    def _failure(self, exc, execute):
        """The Ansible exception for a failed request, and whether asking again may help."""
        message = error_message(exc)
        err, again = agent_error(exc, self.dom, "guest agent request '%s'" % execute, self.agent_timeout)
        text = "%s (libvirt URI %s)" % (err.msg, self.uri)
        if "unable to execute qemu agent command" in message.lower():
            return AnsibleError(text), False  # the agent answered: it refused (the guest's own reason)
        return AnsibleConnectionFailure(text), again

    # --------------------------------------------------------------------- code cache ---

    def module_env(self, user=None):
        """The environment for running a module: ``ROOT_ENV``, and with the code cache (root's modules only)
        the two variables that make the guest's Python keep compiled code (``_tools/codecache.py``).  Whether
        the cache's hook is in the guest is asked once per connection (two requests); a guest without it
        gets it (one command), and one where that fails runs modules without it."""
        if not self.code_cache or user:
            return ROOT_ENV
        if self._module_env is None:
            self._module_env = self._code_cache_env()
        return self._module_env

    def _code_cache_env(self):
        text, hook_dir = _hook_source()
        hook = hook_dir + "/usercustomize.py"
        try:
            handle = self._open_file(hook, "r")
        except AnsibleConnectionFailure:
            raise
        except AnsibleError:
            rc, out, err = self.run(["/bin/sh", "-c", CODE_CACHE_INSTALL, "sh", CODE_CACHE_DIR, hook_dir], text)
            if rc != 0:
                self._log("no code cache in %s: installing %s failed (rc %s): %s"
                          % (self.where, hook, rc, to_text(err or out).strip()))
                return ROOT_ENV
            self._log("code cache hook installed in %s: %s" % (self.where, hook))
        else:
            self._close_file(handle, False)
        return ROOT_ENV + ("PYTHONPATH=" + hook_dir, "%s=%s/code" % (codecache.ENV, CODE_CACHE_DIR))

    # ------------------------------------------------------------------------ execute ---

    def run(self, argv, stdin=b"", env=ROOT_ENV):
        """Run ``argv`` in the guest with ``stdin``; ``(rc, stdout, stderr)`` as bytes."""
        arguments = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
        if env:
            arguments["env"] = list(env)
        if len(stdin) > self.put_chunk:
            # too big for one request: from a file of the guest, written in chunks, removed by the command
            path = "%s/.virtops-guest-agent-stdin-%s" % (STDIN_DIR, binascii.hexlify(os.urandom(8)).decode())
            self._write(path, [stdin[i:i + self.put_chunk] for i in range(0, len(stdin), self.put_chunk)])
            script = 'f=$1; shift; "$@" < "$f"; rc=$?; rm -f -- "$f"; exit $rc'
            arguments["path"], arguments["arg"] = "/bin/sh", ["-c", script, "sh", path] + list(argv)
        elif stdin:
            arguments["input-data"] = _b64(stdin)
        pid = self.call("guest-exec", arguments)["pid"]
        started = self._clock()
        pause = POLL_FIRST
        polls = 0
        while True:
            status = self.call("guest-exec-status", {"pid": pid}, quiet=True, retry=True)
            polls += 1
            if status.get("exited"):
                break
            elapsed = self._clock() - started
            if self.command_timeout and elapsed >= self.command_timeout:
                self._kill(pid)
                raise AnsibleError("the command did not finish within command_timeout (%s s) in %s; its process %s "
                                   "was killed: %s" % (self.command_timeout, self.where, pid, argv[-1][:200]))
            if self.command_timeout:
                pause = min(pause, max(self.command_timeout - elapsed, 0.001))
            self._sleep(pause)
            pause = min(pause * POLL_GROWTH, max(POLL_MAX, min(POLL_LONGEST, elapsed * POLL_SHARE)))
        self._log("guest-exec pid %s exited after %d polls, %.3f s" % (pid, polls, self._clock() - started))
        out = _unb64(status.get("out-data"), "output")
        err = _unb64(status.get("err-data"), "error output")
        if status.get("out-truncated") or status.get("err-truncated"):
            err += b"\n[virtops.libvirt.guest_agent: the guest agent truncated the output of this command]\n"
        rc = status.get("exitcode")
        if rc is None:
            rc = 128 + int(status.get("signal") or 0)
        return rc, out, err

    def _kill(self, pid):
        try:
            self.call("guest-exec", {"path": "/bin/kill", "arg": ["-KILL", str(pid)], "env": list(ROOT_ENV)})
        except AnsibleError:
            pass  # best effort: the timeout is what the user is told about

    # -------------------------------------------------------------------------- files ---

    def _open_file(self, path, mode):
        return self.call("guest-file-open", {"path": path, "mode": mode})

    def _close_file(self, handle, failing):
        try:
            self.call("guest-file-close", {"handle": handle})
        except AnsibleError:
            if not failing:
                raise

    def put(self, local, remote):
        """Copy the controller's file ``local`` to ``remote`` in the guest; bytes written."""
        b_local = to_bytes(local, errors="surrogate_or_strict")
        if not os.path.exists(b_local):
            raise AnsibleFileNotFound("file or module does not exist: %s" % to_text(local))
        try:
            source = open(b_local, "rb")
        except (IOError, OSError) as exc:
            raise AnsibleError("cannot read %s to copy it to %s: %s" % (to_text(local), self.where, exc))
        with source:
            return self._write(remote, iter(lambda: source.read(self.put_chunk), b""))

    def _write(self, remote, chunks):
        """Write the byte strings ``chunks`` to ``remote`` in the guest (made or emptied); bytes written."""
        handle = self._wrap_file_error(self._open_file, remote, "wb", doing="open %s for writing" % remote)
        written = 0
        failing = True
        try:
            for chunk in chunks:
                answer = self.call("guest-file-write", {"handle": handle, "buf-b64": _b64(chunk)})
                if answer.get("count") != len(chunk):
                    raise AnsibleError("the guest agent wrote %s of %d bytes to %s in %s"
                                       % (answer.get("count"), len(chunk), remote, self.where))
                written += len(chunk)
            failing = False
        finally:
            self._close_file(handle, failing)
        return written

    def fetch(self, remote, local):
        """Copy ``remote`` in the guest to the controller's file ``local``; bytes read."""
        handle = self._wrap_file_error(self._open_file, remote, "rb", doing="open %s for reading" % remote)
        received = 0
        failing = True
        try:
            try:
                target = open(to_bytes(local, errors="surrogate_or_strict"), "wb")
            except (IOError, OSError) as exc:
                raise AnsibleError("cannot write %s on the controller: %s" % (to_text(local), exc))
            with target:
                while True:
                    answer = self.call("guest-file-read", {"handle": handle, "count": self.fetch_chunk})
                    data = _unb64(answer.get("buf-b64"), "file data")
                    target.write(data)
                    received += len(data)
                    if answer.get("eof") or not data:
                        break
            failing = False
        finally:
            self._close_file(handle, failing)
        return received

    def _wrap_file_error(self, func, path, mode, doing):
        try:
            return func(path, mode)
        except AnsibleConnectionFailure:
            raise
        except AnsibleError as exc:
            raise AnsibleError("cannot %s in %s: %s" % (doing, self.where, exc.message))
