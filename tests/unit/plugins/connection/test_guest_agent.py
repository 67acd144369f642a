# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The guest agent connection against libvirt's test driver (real libvirt: the VM lookup) and a fake
agent put where ``libvirt_qemu.qemuAgentCommand`` is called.  The fake speaks qemu-ga's protocol for
real on this machine: ``guest-exec`` starts the process (with its stdin and environment),
``guest-exec-status`` reports it, ``guest-file-*`` open, read and write files.  So these tests prove our
framing, chunking, polling, become handling and error mapping; the real agent is the integration
target ``guest_agent``'s business."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import os
import subprocess
import threading

import pytest

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import become_loader, connection_loader

from ansible_collections.virtops.libvirt.plugins.connection import guest_agent as plugin_module
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.plugin_utils import _guest_agent
from ansible_collections.virtops.libvirt.plugins.plugin_utils._guest_agent import AgentClient, shell_argv


def libvirt_error(code_name, message):
    exc = libvirt.libvirtError(message)
    exc.err = (getattr(libvirt, code_name), 0, message, 2, None, None, None, 0, 0)
    return exc


class FakeAgent:
    """qemu-ga's requests, carried out on this machine; ``fail`` maps a request name to an exception."""

    def __init__(self):
        self.requests = []
        self.procs = {}
        self.files = {}
        self.fail = {}
        self.next_handle = 1000

    def __call__(self, dom, text, timeout, flags):
        assert dom.name() == "test" and flags == 0 and timeout >= 1
        request = json.loads(text)
        name, args = request["execute"], request.get("arguments", {})
        self.requests.append((name, args, len(text)))
        if name in self.fail:
            raise self.fail[name]
        return json.dumps({"return": getattr(self, name.replace("-", "_"))(args)})

    def guest_ping(self, args):
        return {}

    def guest_exec(self, args):
        env = dict(e.split("=", 1) for e in args["env"]) if "env" in args else None
        proc = subprocess.Popen([args["path"]] + args.get("arg", []), stdin=subprocess.PIPE, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        data = base64.b64decode(args.get("input-data", ""))
        worker = threading.Thread(target=lambda: setattr(proc, "streams", proc.communicate(data)))
        worker.start()
        self.procs[proc.pid] = [proc, worker, 0]
        return {"pid": proc.pid}

    def guest_exec_status(self, args):
        entry = self.procs[args["pid"]]
        proc, worker = entry[0], entry[1]
        entry[2] += 1
        if entry[2] == 1 or worker.is_alive():
            return {"exited": False}  # the first status of any command: still running
        out, err = proc.streams
        answer = {"exited": True, "out-data": base64.b64encode(out).decode(), "err-data": base64.b64encode(err).decode()}
        if proc.returncode < 0:
            answer["signal"] = -proc.returncode
        else:
            answer["exitcode"] = proc.returncode
        return answer

    def guest_file_open(self, args):
        try:
            handle = open(args["path"], args["mode"])
        except (IOError, OSError) as exc:
            raise libvirt_error("VIR_ERR_INTERNAL_ERROR", "internal error: unable to execute QEMU agent command "
                                "'guest-file-open': Failed to open file '%s' (mode: '%s'): %s"
                                % (args["path"], args["mode"], exc.strerror))
        self.next_handle += 1
        self.files[self.next_handle] = handle
        return self.next_handle

    def guest_file_write(self, args):
        data = base64.b64decode(args["buf-b64"])
        self.files[args["handle"]].write(data)
        return {"count": len(data), "eof": False}

    def guest_file_read(self, args):
        data = self.files[args["handle"]].read(args["count"])
        return {"count": len(data), "buf-b64": base64.b64encode(data).decode(), "eof": len(data) < args["count"]}

    def guest_file_close(self, args):
        self.files.pop(args["handle"]).close()
        return {}

    def names(self):
        return [r[0] for r in self.requests]


@pytest.fixture
def agent(test_conn):
    """A fake agent for the test driver's running VM 'test' (``test_conn`` keeps the driver's state)."""
    return FakeAgent()


def client(agent, vm="test", **kwargs):
    return AgentClient("test:///default", vm, command=agent, **kwargs).open()


NAME = "virtops.libvirt.guest_agent"


@pytest.fixture(autouse=True, scope="module")
def registered():
    """Register the plugin's options with Ansible's configuration manager, as the plugin loader does."""
    connection_loader._load_config_defs(NAME, plugin_module, plugin_module.__file__)


def connection(agent, **options):
    conn = plugin_module.Connection(PlayContext(), None)
    conn._load_name = NAME
    conn.set_options(direct=dict(dict(remote_addr="test", uri="test:///default"), **options))
    conn.agent_command = agent
    return conn


# ------------------------------------------------------------------------------ commands ---

def test_exec_runs_through_sh_with_stdin_and_returns_rc_and_both_streams(agent):
    conn = connection(agent)
    rc, out, err = conn.exec_command("read line; echo \"got $line\"; echo oops >&2; exit 3", in_data=b"hello\n")
    assert (rc, out, err) == (3, b"got hello\n", b"oops\n")
    assert agent.names()[0] == "guest-ping"
    name, args, _size = agent.requests[1]
    assert name == "guest-exec" and args["path"] == "/bin/sh" and args["arg"][0] == "-c"
    assert args["capture-output"] is True
    assert base64.b64decode(args["input-data"]) == b"hello\n"
    assert "HOME=/root" in args["env"]
    statuses = agent.names()[2:]
    assert len(statuses) >= 2 and set(statuses) == set(["guest-exec-status"])


def test_exec_without_stdin_sends_no_input_data_and_a_signal_gives_128_plus_it(agent):
    rc, out, err = connection(agent).exec_command("kill -TERM $$")
    assert rc == 128 + 15 and out == b"" and err == b""
    assert "input-data" not in agent.requests[1][1]


def test_pipelining_is_on_by_default_and_can_be_turned_off(agent):
    assert connection(agent).is_pipelining_enabled()
    assert not connection(agent, pipelining=False).is_pipelining_enabled()


def test_polling_starts_small_and_backs_off_to_the_maximum():
    clock = [0.0]
    pauses = []

    def sleep(seconds):
        pauses.append(seconds)
        clock[0] += seconds

    def command(dom, text, timeout, flags):
        request = json.loads(text)
        if request["execute"] == "guest-ping":
            return json.dumps({"return": {}})
        if request["execute"] == "guest-exec":
            return json.dumps({"return": {"pid": 7}})
        return json.dumps({"return": {"exited": clock[0] >= 1.0, "exitcode": 0}})

    ga = AgentClient("test:///default", "test", command=command, clock=lambda: clock[0], sleep=sleep).open()
    assert ga.run(["/bin/true"]) == (0, b"", b"")
    assert pauses[0] == _guest_agent.POLL_FIRST
    assert all(b >= a for a, b in zip(pauses, pauses[1:]))
    assert max(pauses) == _guest_agent.POLL_MAX
    assert len(pauses) < 40  # one second of a command: not hundreds of polls


def test_polling_of_a_long_command_backs_off_further():
    clock = [0.0]
    pauses = []

    def sleep(seconds):
        pauses.append(seconds)
        clock[0] += seconds

    def command(dom, text, timeout, flags):
        request = json.loads(text)
        if request["execute"] == "guest-exec":
            return json.dumps({"return": {"pid": 7}})
        if request["execute"] == "guest-ping":
            return json.dumps({"return": {}})
        return json.dumps({"return": {"exited": clock[0] >= 60.0, "exitcode": 0}})

    ga = AgentClient("test:///default", "test", command=command, clock=lambda: clock[0], sleep=sleep).open()
    ga.run(["/bin/sleep", "60"])
    assert max(pauses) == _guest_agent.POLL_LONGEST
    assert clock[0] < 60.0 + _guest_agent.POLL_LONGEST
    assert all(p <= max(_guest_agent.POLL_MAX, 0.05 * t) + 1e-9
               for p, t in zip(pauses, [sum(pauses[:i]) for i in range(len(pauses))]))
    assert len(pauses) < 200  # a minute: not 1,200 polls of 50 ms


def test_command_timeout_kills_the_command_and_fails_the_task(agent):
    ga = client(agent, command_timeout=0.3)
    with pytest.raises(AnsibleError) as caught:
        ga.run(["/bin/sh", "-c", "sleep 30"])
    assert not isinstance(caught.value, AnsibleConnectionFailure)
    assert "command_timeout (0.3 s)" in caught.value.message and "VM 'test' at test:///default" in caught.value.message
    kill = agent.requests[-1][1]
    assert kill["path"] == "/bin/kill" and kill["arg"][0] == "-KILL"


def test_stdin_too_big_for_one_request_goes_through_a_file_that_the_command_removes(agent):
    data = os.urandom(10000)
    rc, out, err = client(agent, put_chunk_size=4096).run(["/bin/sh", "-c", "cat; echo done >&2"], data)
    assert (rc, out, err) == (0, data, b"done\n")
    assert agent.names()[1:5] == ["guest-file-open", "guest-file-write", "guest-file-write", "guest-file-write"]
    path = agent.requests[1][1]["path"]
    assert path.startswith("/tmp/.virtops-guest-agent-stdin-") and not os.path.exists(path)
    exec_args = [args for name, args, _size in agent.requests if name == "guest-exec"][0]
    assert "input-data" not in exec_args and exec_args["arg"][-3:] == ["/bin/sh", "-c", "cat; echo done >&2"]
    assert max(size for _name, _args, size in agent.requests) < 4096 * 4 / 3 + 200


def test_stdin_that_fits_goes_in_the_request(agent):
    data = b"x" * 4096
    assert client(agent, put_chunk_size=4096).run(["/bin/cat"], data)[1] == data
    assert "guest-file-open" not in agent.names()


@pytest.mark.parametrize("user, argv", [
    (None, ["/bin/sh", "-c", "id"]),
    ("root", ["/bin/sh", "-c", "id"]),
    ("ops", ["/bin/sh", "-c", 'exec runuser -u "$0" -- /bin/sh -c "$1"', "ops", "id"]),
])
def test_shell_argv_runs_as_the_remote_user_through_runuser(user, argv):
    assert shell_argv("id", user) == argv


def test_the_runuser_wrapper_passes_user_and_command_as_they_are():
    argv = shell_argv("printf '%s|' \"$0\" 'a b' \"it's\"", "some user")
    wrapper = argv[2].replace("runuser -u", "printf '%s;' ").replace("--", "")
    out = subprocess.check_output(argv[:2] + [wrapper] + argv[3:])
    parts = out.split(b";")
    assert parts[0] == b"some user"
    assert parts[3] == b"printf '%s|' \"$0\" 'a b' \"it's\""


def _become(conn, **options):
    become = become_loader.get("sudo")
    become.set_options(direct=options)
    conn.set_become_plugin(become)
    return become


def test_become_success_marker_is_stripped_and_no_password_goes_to_root(agent):
    conn = connection(agent)
    become = _become(conn, become_pass="secret")
    cmd = become.build_become_command("echo module-output", conn._shell)
    # the guest: sudo is not there; run what it would run after the password
    plain = cmd.split(" /bin/sh -c ", 1)[1]
    rc, out, err = conn.exec_command("/bin/sh -c " + plain, in_data=b"")
    assert (rc, out) == (0, b"module-output\n")
    assert "input-data" not in agent.requests[1][1]  # root: sudo asks no password


def test_become_password_goes_first_on_stdin_for_another_user(agent):
    conn = connection(agent, remote_user="ops")
    become = _become(conn, become_pass="secret")
    become.build_become_command("true", conn._shell)
    with pytest.raises(AssertionError):  # no such user here: the fake cannot run runuser; see what was sent
        agent.fail["guest-exec"] = AssertionError("stop")
        conn.exec_command("true", in_data=b"module")
    sent = agent.requests[1][1]
    assert base64.b64decode(sent["input-data"]) == b"secret\nmodule"
    assert sent["arg"][1].startswith("exec runuser") and sent["arg"][2] == "ops"


# --------------------------------------------------------------------------------- files ---

@pytest.mark.parametrize("size", [0, 1, 4096, 3 * 4096 + 5])
def test_put_and_fetch_in_chunks_keep_every_byte(agent, tmp_path, size):
    data = os.urandom(size)
    source = tmp_path / "src"
    source.write_bytes(data)
    name = tmp_path / "dir with spaces and ünïcödé ✓"
    name.mkdir()
    remote = str(name / "f ü.bin")
    conn = connection(agent, put_chunk_size=4096, fetch_chunk_size=4096)
    conn.put_file(str(source), remote)
    writes = agent.names().count("guest-file-write")
    assert writes == -(-size // 4096)
    assert open(remote, "rb").read() == data
    back = tmp_path / "back"
    conn.fetch_file(remote, str(back))
    assert hashlib.sha1(back.read_bytes()).hexdigest() == hashlib.sha1(data).hexdigest()
    assert agent.names().count("guest-file-read") == size // 4096 + 1
    assert agent.names().count("guest-file-close") == 2 and not agent.files


def test_requests_stay_under_what_the_agent_takes_at_the_largest_chunks(agent, tmp_path):
    source = tmp_path / "big"
    source.write_bytes(os.urandom(2 * _guest_agent.MAX_FETCH_CHUNK + 1))
    ga = client(agent, put_chunk_size=_guest_agent.MAX_PUT_CHUNK, fetch_chunk_size=_guest_agent.MAX_FETCH_CHUNK)
    ga.put(str(source), str(tmp_path / "copy"))
    sizes = [size for name, _args, size in agent.requests if name == "guest-file-write"]
    assert len(sizes) == 39 and max(sizes) < 220077  # the biggest request QEMU 7.2's agent was seen to take
    answers = []
    real = ga._command
    ga._command = lambda *a: answers.append(real(*a)) or answers[-1]
    ga.fetch(str(tmp_path / "copy"), str(tmp_path / "back"))
    assert len(answers) == 5 and max(len(a) for a in answers) < 4 * 1024 * 1024  # libvirt's string limit
    assert (tmp_path / "back").read_bytes() == source.read_bytes()


def test_remote_user_gets_the_file_put(agent, tmp_path):
    source = tmp_path / "src"
    source.write_bytes(b"x")
    conn = connection(agent, remote_user="ops")
    conn._connect()
    agent.fail["guest-exec"] = AssertionError("stop")
    with pytest.raises(AssertionError):
        conn.put_file(str(source), str(tmp_path / "dst"))
    assert agent.requests[-1][1]["path"] == "/bin/chown" and agent.requests[-1][1]["arg"][-2:] == ["ops", str(tmp_path / "dst")]


def test_file_errors_carry_the_guests_reason(agent, tmp_path):
    with pytest.raises(AnsibleError) as caught:
        client(agent).fetch("/nonexistent/file", str(tmp_path / "x"))
    assert not isinstance(caught.value, AnsibleConnectionFailure)
    message = caught.value.message
    assert "cannot open /nonexistent/file for reading in VM 'test' at test:///default" in message
    assert "No such file or directory" in message
    with pytest.raises(AnsibleFileNotFound):
        client(agent).put(str(tmp_path / "missing"), "/tmp/x")


def test_a_failed_write_still_closes_the_file(agent, tmp_path):
    source = tmp_path / "src"
    source.write_bytes(b"abc")
    agent.fail["guest-file-write"] = libvirt_error(
        "VIR_ERR_INTERNAL_ERROR", "internal error: unable to execute QEMU agent command 'guest-file-write': "
        "failed to write to file: No space left on device")
    with pytest.raises(AnsibleError, match="No space left on device"):
        client(agent).put(str(source), str(tmp_path / "dst"))
    assert agent.names()[-1] == "guest-file-close" and not agent.files


# -------------------------------------------------------------------------------- errors ---

NOT_CONNECTED = ("VIR_ERR_AGENT_UNRESPONSIVE", "Guest agent is not responding: QEMU guest agent is not connected")
SILENT = ("VIR_ERR_AGENT_UNRESPONSIVE", "Guest agent is not responding: Guest agent not available for now")
NO_CHANNEL = ("VIR_ERR_ARGUMENT_UNSUPPORTED", "argument unsupported: QEMU guest agent is not configured")


class Clock:
    def __init__(self):
        self.now = 0.0
        self.pauses = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.pauses.append(seconds)
        self.now += seconds


def flaky(agent, clock, failures, error, busy=0.0):
    """``agent``, but its first ``failures`` requests fail with ``error`` after ``busy`` seconds."""
    left = [failures]

    def command(dom, text, timeout, flags):
        if left[0] > 0:
            left[0] -= 1
            clock.now += min(busy, timeout)
            raise libvirt_error(*error)
        return agent(dom, text, timeout, flags)

    return command


@pytest.mark.parametrize("error, expected, tries", [
    (NOT_CONNECTED, "the guest agent of VM 'test' is not connected", 13),
    (SILENT, "did not answer guest agent request 'guest-ping' within 10 s", 2),
    (NO_CHANNEL, "VM 'test' has no guest agent channel", 1),
])
def test_an_agent_that_cannot_answer_makes_the_host_unreachable_within_the_timeout(agent, error, expected, tries):
    clock = Clock()
    command = flaky(agent, clock, 1000, error, busy=5.0 if error is SILENT else 0.0)
    with pytest.raises(AnsibleConnectionFailure) as caught:
        AgentClient("test:///default", "test", command=command, clock=clock, sleep=clock.sleep).open()
    assert expected in caught.value.message
    assert "libvirt URI test:///default" in caught.value.message
    assert clock.now <= 10 + 1.0  # asked again until agent_timeout, no longer
    assert len(clock.pauses) == tries - 1


def test_an_agent_silent_for_a_moment_is_asked_again(agent):
    clock = Clock()
    ga = AgentClient("test:///default", "test", command=flaky(agent, clock, 3, SILENT, busy=1.0), clock=clock,
                     sleep=clock.sleep).open()
    assert ga.run(["/bin/echo", "hi"])[1] == b"hi\n"
    assert clock.pauses[:3] == [0.1, 0.2, 0.4]


def test_requests_that_must_not_be_sent_twice_fail_at_once(agent):
    ga = client(agent)
    agent.fail["guest-exec"] = libvirt_error(*SILENT)
    with pytest.raises(AnsibleConnectionFailure, match="did not answer guest agent request 'guest-exec'"):
        ga.run(["/bin/true"])
    assert agent.names() == ["guest-ping", "guest-exec"]


def test_vm_not_found_and_vm_not_running(agent, test_conn):
    with pytest.raises(AnsibleConnectionFailure, match="there is no VM named 'nosuch' at test:///default"):
        client(agent, vm="nosuch")
    dom = test_conn.defineXML("<domain type='test'><name>ga-off</name><memory>1024</memory>"
                              "<os><type>hvm</type></os></domain>")
    try:
        with pytest.raises(AnsibleConnectionFailure, match="VM 'ga-off' at test:///default is not running"):
            client(agent, vm="ga-off")
    finally:
        dom.undefine()
    assert agent.requests == []


def test_unreachable_hypervisor_names_the_vm_and_uri(agent):
    with pytest.raises(AnsibleConnectionFailure, match="cannot reach VM 'test' at qemu:///system[?]socket=/nonexistent"):
        AgentClient("qemu:///system?socket=/nonexistent/sock", "test", command=agent).open()


def test_an_answer_that_is_not_json_is_reported(agent):
    ga = client(agent)
    ga._command = lambda dom, text, timeout, flags: "garbage"
    with pytest.raises(AnsibleConnectionFailure, match="answered guest-info with something unexpected: 'garbage'"):
        ga.call("guest-info")


@pytest.mark.parametrize("options, message", [
    (dict(agent_timeout=0), "agent_timeout: must be at least 1 s"),
    (dict(put_chunk_size=100), "put_chunk_size: must be between 4096 and 163840"),
    (dict(put_chunk_size=200 * 1024), "put_chunk_size: must be between 4096 and 163840"),
    (dict(fetch_chunk_size=4 * 1024 * 1024), "fetch_chunk_size: must be between 4096 and 3141632"),
])
def test_bad_options(agent, options, message):
    with pytest.raises(AnsibleError, match=message):
        AgentClient("test:///default", "test", command=agent, **options)


def test_close_closes_the_libvirt_connection(agent):
    conn = connection(agent)
    conn.exec_command("true")
    ga = conn._client
    conn.close()
    assert ga.dom is None and conn._client is None and not conn._connected


# ---------------------------------------------------------------------------- code cache ---

SYSTEM_PYTHON = "/usr/bin/python3"  # a venv's Python imports no usercustomize: the guest's is a system one
MODULE = b"""
import json, os, sys, zipimport, zipfile, tempfile
_ANSIBALLZ_WRAPPER = True
d = tempfile.mkdtemp()
z = os.path.join(d, "payload.zip")
with zipfile.ZipFile(z, "w") as f:
    f.writestr("payload.py", "VALUE = 42\\n")
sys.path.insert(0, z)
import payload
print(json.dumps([payload.VALUE, getattr(zipimport._compile_source, "virtops_code_cache", False),
                  os.environ.get("PYTHONPATH"), os.environ.get("VIRTOPS_LIBVIRT_CODE_CACHE")]))
"""


@pytest.fixture
def code_cache_dir(tmp_path, monkeypatch):
    if os.geteuid() != 0 or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("the hook is installed for root's modules, run by a system Python")
    directory = str(tmp_path / "virtops-libvirt" / "python")
    monkeypatch.setattr(_guest_agent, "CODE_CACHE_DIR", directory)
    return directory


def test_a_module_run_gets_the_code_cache_hook_installed_once_and_used(agent, code_cache_dir):
    conn = connection(agent)
    rc, out, _err = conn.exec_command(SYSTEM_PYTHON, in_data=MODULE)
    assert rc == 0 and json.loads(out) == [42, True, None, None]  # the hook took its variables out
    code = os.path.join(code_cache_dir, "code")
    assert oct(os.stat(code).st_mode & 0o777) == oct(0o700) and len(os.listdir(code)) == 1
    hooks = [n for n in os.listdir(code_cache_dir) if n.startswith("hook-")]
    assert len(hooks) == 1
    hook = os.path.join(code_cache_dir, hooks[0], "usercustomize.py")
    assert open(hook, "rb").read() == open(_guest_agent.codecache.__file__.replace(".pyc", ".py"), "rb").read()
    # the next task (a new connection) asks whether the hook is there: it is, nothing is written
    agent.requests[:] = []
    rc, out, _err = connection(agent).exec_command(SYSTEM_PYTHON, in_data=MODULE)
    assert rc == 0 and json.loads(out)[1] is True
    assert agent.names()[:4] == ["guest-ping", "guest-file-open", "guest-file-close", "guest-exec"]
    env = agent.requests[3][1]["env"]
    assert "PYTHONPATH=%s" % os.path.dirname(hook) in env and "VIRTOPS_LIBVIRT_CODE_CACHE=%s" % code in env


def test_commands_that_are_not_modules_and_other_users_get_no_code_cache(agent, code_cache_dir):
    rc, out, _err = connection(agent).exec_command("env")
    assert rc == 0 and b"PYTHONPATH" not in out and b"VIRTOPS_LIBVIRT_CODE_CACHE" not in out
    assert "guest-file-open" not in agent.names() and not os.path.exists(code_cache_dir)
    client = AgentClient("test:///default", "test", command=agent, code_cache=True).open()
    assert client.module_env("ops") == _guest_agent.ROOT_ENV
    assert not os.path.exists(code_cache_dir)


def test_the_code_cache_can_be_turned_off(agent, code_cache_dir):
    rc, out, _err = connection(agent, code_cache=False).exec_command(SYSTEM_PYTHON, in_data=MODULE)
    assert rc == 0 and json.loads(out)[1] is False
    assert not os.path.exists(code_cache_dir)


def test_a_guest_where_the_hook_cannot_be_written_runs_modules_without_it(agent, code_cache_dir):
    os.makedirs(os.path.dirname(code_cache_dir))
    with open(code_cache_dir, "w") as f:
        f.write("a file where the directory should be\n")
    rc, out, _err = connection(agent).exec_command(SYSTEM_PYTHON, in_data=MODULE)
    assert rc == 0 and json.loads(out)[:2] == [42, False]
