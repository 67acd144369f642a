# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""settings: the per-task cost of virtops.libvirt.vm and of ansible.builtin.ping under standard Ansible settings.

Every variant is one ansible-playbook run of playbooks/virtops/settings.yml (BENCH_TASK_N, 20, items of ping, then
as many of virtops.libvirt.vm {name, state: running} on a VM that already runs) with an ansible.cfg and an
inventory of its own, over one of two connections:
  local  connection: local, as the lab's inventory has it
  ssh    ssh as root to an sshd this scenario starts in lab1's network namespace, listening on lab1's lab
         address only (its own keys, config and pid file in the work dir; stopped by that pid file)
ansible-playbook runs inside lab1's network namespace for both (`ip netns exec`), so that the ssh client reaches the
lab address; libvirt is reached through its unix socket either way.
Variants per connection: Ansible's defaults (the play has no `gather_facts`, so facts are gathered; the inventory
names the tools venv's python), `gathering = explicit`, `pipelining = True`, `module_compression = ZIP_STORED`,
the system's /usr/bin/python3 named, the interpreter discovered (no `ansible_python_interpreter`; these two need
Debian's python3-libvirt and python3-lxml), and the recommended set (pipelining, gathering explicit, interpreter
given). Repetitions are interleaved (every variant once, then again). Per item: the in-playbook time of each
loop; per run: the whole ansible-playbook process and its CPU time (controller, module processes and, for ssh,
what the sshd's sessions ran), which other load on the machine disturbs less. Ratios to the defaults of the same
connection, medians over BENCH_REPS. Checked after every run: item statuses, the VM still running, facts gathered
or not and the interpreter discovered or not as the variant says, and for ssh that
the run went through the ssh control socket. python -m benchmarks settings (benchmarks/README.md).
"""

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

from . import _ansible, _session
from ._report import Report, Runs, median, table
from ._util import BenchError, loadavg, log, need_tools, run, virsh, write
from ._virt import DirPool, domains, remove_domains
from .vm_overhead import domain_xml

IDLE = "vbench-set-idle"  # the running VM, disk vbench-set-idle.qcow2
CONNECTIONS = ("local", "ssh")
SSH_PORT = 2222
SYSTEM_PYTHON = "/usr/bin/python3"  # what interpreter discovery finds on Debian 12
# ansible-playbook's PATH (local modules inherit it; discovery searches it): the system's, not the caller's (a
# pyenv shim there was discovered, then failed)
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# key, what, [defaults] settings, interpreter in the inventory (the tools venv's python, the system's, or none:
# discovered), facts gathered
VARIANTS = (
    ("defaults", "Ansible's defaults (facts gathered: `gathering = implicit`; the venv's python in the inventory)",
     {}, "venv", True),
    ("explicit", "`gathering = explicit` (no facts unless a play asks)", {"gathering": "explicit"}, "venv", False),
    ("pipelining", "`pipelining = True`", {"pipelining": "True"}, "venv", True),
    ("stored", "`module_compression = ZIP_STORED` (payload not compressed)", {"module_compression": "ZIP_STORED"},
     "venv", True),
    ("system", "`ansible_python_interpreter: /usr/bin/python3` (Debian's python3-libvirt, python3-lxml)", {},
     "system", True),
    ("discovery", "interpreter discovered (no `ansible_python_interpreter`)", {}, None, True),
    ("recommended", "recommended: `pipelining = True`, `gathering = explicit`, the venv's python in the inventory",
     {"pipelining": "True", "gathering": "explicit"}, "venv", False),
)


def ansible_cfg(settings, control_path_dir):
    """The text of a variant's ansible.cfg: benchmarks/ansible.cfg's setting, the variant's, the ssh control
    sockets in the work dir.

    >>> print(ansible_cfg({"pipelining": "True"}, "/w/cp"))
    [defaults]
    retry_files_enabled = False
    pipelining = True
    <BLANKLINE>
    [ssh_connection]
    control_path_dir = /w/cp
    <BLANKLINE>
    """
    lines = ["[defaults]", "retry_files_enabled = False"]
    lines += ["%s = %s" % (k, v) for k, v in sorted(settings.items())]
    lines += ["", "[ssh_connection]", "control_path_dir = %s" % control_path_dir, ""]
    return "\n".join(lines)


def inventory(host_vars):
    """A YAML inventory of host lab1 with these variables (strings; values quoted as JSON strings are YAML).

    >>> print(inventory({"ansible_connection": "local"}))
    all:
      hosts:
        lab1:
          ansible_connection: "local"
    <BLANKLINE>
    """
    lines = ["all:", "  hosts:", "    lab1:"]
    lines += ['      %s: "%s"' % (k, str(v).replace("\\", "\\\\").replace('"', '\\"'))
              for k, v in sorted(host_vars.items())]
    return "\n".join(lines) + "\n"


def _process_is(pid, name):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip() == name
    except OSError:
        return False


def _children(pid):
    """The pids whose parent is pid."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % entry) as f:
                if entry.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


class SshServer:
    """An sshd of this scenario in a lab network namespace, on that namespace's lab address and SSH_PORT only:
    host key, client key, authorized_keys, known_hosts, config, log and pid file in `path`. stop() (registered on
    the stack by start()) closes the client's control masters, then stops the sshd of the pid file."""

    def __init__(self, path, ns, addr):
        self.path, self.ns, self.addr = path, ns, addr
        self.key = os.path.join(path, "id_ed25519")
        self.known_hosts = os.path.join(path, "known_hosts")
        self.pidfile = os.path.join(path, "sshd.pid")
        self.control_dir = os.path.join(path, "cp")
        self.made_privsep = False

    def start(self, stack):
        os.makedirs(self.control_dir, 0o700)
        hostkey = os.path.join(self.path, "host_ed25519")
        for key in (hostkey, self.key):
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "virtops-bench-settings", "-f", key])
        with open(self.key + ".pub") as f:
            write(os.path.join(self.path, "authorized_keys"), f.read(), 0o600)
        with open(hostkey + ".pub") as f:
            write(self.known_hosts, "[%s]:%d %s" % (self.addr, SSH_PORT, " ".join(f.read().split()[:2])) + "\n")
        config = write(os.path.join(self.path, "sshd_config"), "\n".join([
            "ListenAddress %s:%d" % (self.addr, SSH_PORT),
            "HostKey %s" % hostkey,
            "PidFile %s" % self.pidfile,
            "AuthorizedKeysFile %s" % os.path.join(self.path, "authorized_keys"),
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "Subsystem sftp internal-sftp",
            # bash, root's shell, sources ~/.bashrc for commands run by sshd unless SHLVL shows it is not the
            # first shell; root's ~/.bashrc may run anything (here `pyenv init`, whose shim discovery then found
            # first): the commands of a managed host with a plain shell
            "SetEnv SHLVL=1",
            ""]))
        if not os.path.isdir("/run/sshd"):  # sshd's privilege separation directory (its package's init makes it)
            os.makedirs("/run/sshd", 0o755)
            self.made_privsep = True
        stack.callback(self.stop)
        run(["ip", "netns", "exec", self.ns, "/usr/sbin/sshd", "-f", config, "-E", os.path.join(self.path, "sshd.log")])
        deadline = time.time() + 10
        while not os.path.exists(self.pidfile):
            if time.time() > deadline:
                raise BenchError("sshd in %s wrote no pid file (log %s/sshd.log)" % (self.ns, self.path))
            time.sleep(0.1)
        out = run(["ip", "netns", "exec", self.ns, "ssh"] + self.client_args() + ["root@" + self.addr, "echo ok"])
        if out.strip() != "ok":
            raise BenchError("ssh to %s:%d in %s: %r" % (self.addr, SSH_PORT, self.ns, out))
        log("sshd in %s on %s:%d (pid file %s)" % (self.ns, self.addr, SSH_PORT, self.pidfile))
        return self

    def client_args(self):
        return ["-p", str(SSH_PORT), "-i", self.key] + self.common_args()

    def common_args(self):
        return ["-o", "UserKnownHostsFile=%s" % self.known_hosts, "-o", "StrictHostKeyChecking=yes",
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]

    def close_masters(self):
        """Close the ssh control masters (ControlPersist) of the last run; the number closed."""
        closed = 0
        for sock in sorted(os.listdir(self.control_dir)) if os.path.isdir(self.control_dir) else ():
            subprocess.run(["ssh", "-o", "ControlPath=%s" % os.path.join(self.control_dir, sock), "-O", "exit",
                            "root@" + self.addr], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            closed += 1
        return closed

    def pid(self):
        try:
            with open(self.pidfile) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def reaped_cpu(self):
        """CPU seconds (user + system) of the sshd's finished sessions, with everything they ran (the module
        processes of the ssh variants), since the last call: the listener's cutime + cstime, read once its
        sessions have ended (after close_masters)."""
        pid = self.pid()
        deadline = time.time() + 5
        while time.time() < deadline and _children(pid):
            time.sleep(0.05)
        if _children(pid):
            raise BenchError("sshd sessions still open after the control masters were closed: %s" % _children(pid))
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total = (int(fields[13]) + int(fields[14])) / float(os.sysconf("SC_CLK_TCK"))  # cutime, cstime
        delta, self.cpu_seen = total - getattr(self, "cpu_seen", 0.0), total
        return delta

    def stop(self):
        self.close_masters()
        pid = self.pid()
        if pid and _process_is(pid, "sshd"):
            os.kill(pid, signal.SIGTERM)
            deadline = time.time() + 5
            while _process_is(pid, "sshd"):
                if time.time() > deadline:
                    log("warning: sshd pid %d did not stop" % pid)
                    break
                time.sleep(0.1)
        if self.made_privsep:
            shutil.rmtree("/run/sshd", ignore_errors=True)
            self.made_privsep = False


class Scenario(_session.Scenario):
    name = "settings"
    title = "per-task cost of vm and ping under standard Ansible settings (pipelining, gathering, ...), local and ssh"
    files = ("playbooks/virtops/settings.yml", "playbooks/community/templates/domain.xml.j2")

    def read_knobs(self):
        self.task_n = self.knobs.int("BENCH_TASK_N", 20)
        self.reps = self.knobs.int("BENCH_REPS", 3)
        self.connections = self.knobs.subset("BENCH_CONNECTIONS", ",".join(CONNECTIONS), CONNECTIONS)
        self.virt_type = self.knobs.choice("BENCH_VIRT_TYPE", "kvm", ("kvm", "qemu"))
        self.pool_name = self.knobs.name("BENCH_POOL", "vbench-set")
        self.pool_dir = self.knobs.path("BENCH_POOL_DIR", "/var/tmp/virtops-bench-set-pool")

    def preflight(self):
        """What is missing for a connection or a variant leaves it out, with a note in the report."""
        need_tools("make", "virsh", "qemu-img", "ip")
        self.notes = []
        self.variants = VARIANTS
        if "ssh" in self.connections and not (shutil.which("ssh") and shutil.which("ssh-keygen")
                                              and os.access("/usr/sbin/sshd", os.X_OK)):
            self.connections = [c for c in self.connections if c != "ssh"]
            self.notes.append("ssh NOT measured: no /usr/sbin/sshd, ssh or ssh-keygen (Debian: openssh-server, "
                              "openssh-client; sshd need not run)")
        if subprocess.run([SYSTEM_PYTHON, "-c", "import libvirt, lxml"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False).returncode != 0:
            self.variants = tuple(v for v in VARIANTS if v[0] not in ("discovery", "system"))
            self.notes.append("variants `system` and `discovery` NOT measured: %s, the interpreter Ansible "
                              "discovers, lacks libvirt or lxml (Debian: python3-libvirt, python3-lxml)"
                              % SYSTEM_PYTHON)
        for note in self.notes:
            log(note)

    def run(self, session, stack):
        self.session = session
        self.build = session.build
        self.build.require("plugins/modules/vm.py")
        lab = session.lab
        self.uri, self.ns, self.addr = lab.uri(1), lab.ns(1), lab.addr(1)
        self.logs = session.scratch(self.name)
        if domains(self.uri, lambda d: d == IDLE):
            raise BenchError("domain %s already exists on %s" % (IDLE, self.uri))
        pool = DirPool(self.uri, self.pool_name, self.pool_dir, ("base.qcow2", IDLE + ".qcow2")).create(stack)
        stack.callback(lambda: remove_domains(self.uri, domains(self.uri, lambda d: d == IDLE)))
        virsh(self.uri, "vol-create-as", self.pool_name, "base.qcow2", "1G", "--format", "qcow2")
        disk = pool.file(IDLE + ".qcow2")
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", pool.file("base.qcow2"), "-F", "qcow2", disk, "1G"])
        virsh(self.uri, "define", write(os.path.join(self.logs, IDLE + ".xml"), domain_xml(IDLE, disk, self.virt_type)))
        virsh(self.uri, "start", IDLE)
        self.ssh = SshServer(os.path.join(self.logs, "ssh"), self.ns, self.addr)
        os.makedirs(self.ssh.path)
        if "ssh" in self.connections:
            self.ssh.start(stack)
        self.runs = Runs()
        self.discovered = set()
        self.loads = []
        for rep in range(1, self.reps + 1):
            log("repetition %d/%d" % (rep, self.reps))
            for conn in self.connections:
                for variant in self.variants:
                    self.measure(rep, conn, variant)
            if rep < self.reps:  # what the repetitions so far show, in case the run is cut short
                partial = self.report()
                partial.scenario = self.name + "-partial"
                partial.fact("PARTIAL: %d of %d repetitions (the full results follow when the run ends)" % (
                    rep, self.reps))
                partial.write()
        return self.report()

    def files_for(self, conn, variant):
        """The variant's ansible.cfg and inventory, written once."""
        key, _what, settings, interpreter, _facts = variant
        cfg = os.path.join(self.logs, "%s-%s.cfg" % (conn, key))
        inv = os.path.join(self.logs, "%s-%s.yml" % (conn, key))
        if not os.path.exists(cfg):
            write(cfg, ansible_cfg(settings, self.ssh.control_dir))
            host = dict(libvirt_uri=self.uri)
            if interpreter:
                host["ansible_python_interpreter"] = self.build.python if interpreter == "venv" else SYSTEM_PYTHON
            if conn == "local":
                host["ansible_connection"] = "local"
            else:
                host.update(ansible_connection="ssh", ansible_host=self.addr, ansible_port=SSH_PORT,
                            ansible_user="root", ansible_ssh_private_key_file=self.ssh.key,
                            ansible_ssh_common_args=" ".join(self.ssh.common_args()))
            write(inv, inventory(host))
        return cfg, inv

    def measure(self, rep, conn, variant):
        key, _what, _settings, interpreter, facts = variant
        cfg, inv = self.files_for(conn, variant)
        label = "%s-%s-%d" % (conn, key, rep)
        self.loads.append(float(loadavg().split()[0]))
        log("%s: %s, %s, %d items of ping and of vm" % (label, conn, key, self.task_n))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = _ansible.playbook(
            label, self.build.venv, "virtops/settings.yml", inv, self.logs, collections=self.build.installed,
            env=dict(ANSIBLE_CONFIG=cfg, PATH=SYSTEM_PATH), prefix=["ip", "netns", "exec", self.ns],
            extra_vars=dict(bench_n=self.task_n, bench_idle=IDLE))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        closed = self.ssh.close_masters() if conn == "ssh" else 0
        if conn == "ssh":
            cpu += self.ssh.reaped_cpu()
        result.check_items("Timed ping", "ok", self.task_n)
        result.check_items("Timed vm", "ok", self.task_n)
        if virsh(self.uri, "domstate", IDLE).strip() != "running":
            raise BenchError("%s: %s is not running" % (label, IDLE))
        state = re.findall(r'"BENCH_STATE (\S+) (\d+)"', result.text)
        if not state:
            raise BenchError("%s: no BENCH_STATE in %s" % (label, result.log))
        discovered, fact_count = state[-1][0], int(state[-1][1])
        if discovered != "-":
            self.discovered.add(discovered)
        if (discovered != "-") == bool(interpreter):
            raise BenchError("%s: interpreter discovered %r, expected %s" % (
                label, discovered, "none (it is in the inventory)" if interpreter else "one"))
        if (fact_count > 10) != facts:
            raise BenchError("%s: %d facts, expected %s" % (label, fact_count, "gathered" if facts else "none"))
        if conn == "ssh" and not closed:
            raise BenchError("%s: no ssh control socket in %s: the run did not go through ssh" % (
                label, self.ssh.control_dir))
        t0, t1, t2, t3 = (float(v) for v in result.marks(4))
        marker = t3 - t2
        name = "%s-%s" % (conn, key)
        self.runs.add(name + "-ping", 1000 * (t1 - t0 - marker) / self.task_n)
        self.runs.add(name + "-vm", 1000 * (t2 - t1 - marker) / self.task_n)
        self.runs.add(name + "-run", result.seconds)
        self.runs.add(name + "-cpu", cpu)

    # ----------------------------------------------------------------------------------------------- report
    def report(self):
        report = Report(self.name, self.title)
        report.fact("guest %s: %s, 64 MiB, 1 vCPU, q35, SeaBIOS, no OS, running; pool dir %s" % (
            IDLE, self.virt_type, self.pool_dir))
        report.fact("repetitions: %d, interleaved (median shown); %d items per loop; ratios to `defaults` of the same "
                    "connection; ansible-playbook inside %s; ssh: OpenSSH client and sshd on %s:%d (Ansible's "
                    "default ssh_args: ControlPersist=60s; masters closed after each run)"
                    % (self.reps, self.task_n, self.ns, self.addr, SSH_PORT))
        report.fact("CPU per run: user + system seconds of the ansible-playbook process and all it waited for "
                    "(workers, local module processes, ssh clients), plus for ssh what the sshd's sessions ran (the "
                    "module processes); not the daemonized ssh control master, not libvirtd; less disturbed by "
                    "other load than the wall times")
        report.fact("interpreter: the venv's is %s; discovered from PATH=%s: %s" % (
            self.build.python, SYSTEM_PATH, ", ".join(sorted(self.discovered)) or "-"))
        report.fact("1-minute load average before the runs: %.1f to %.1f (median %.1f)" % (
            min(self.loads), max(self.loads), median(self.loads)))
        for note in self.notes:
            report.fact(note)
        r = self.runs
        rows = []
        for conn in self.connections:
            base = "%s-defaults" % conn
            for key, what, _settings, _interpreter, _facts in self.variants:
                name = "%s-%s" % (conn, key)
                rows.append([
                    conn, key, what,
                    "%.0f (%.0f)" % (r.median(name + "-ping"), r.fastest(name + "-ping")),
                    "%.2fx" % r.ratio(name + "-ping", base + "-ping"),
                    "%.0f (%.0f)" % (r.median(name + "-vm"), r.fastest(name + "-vm")),
                    "%.2fx" % r.ratio(name + "-vm", base + "-vm"),
                    "%.2fx" % (r.median(name + "-vm") / r.median(name + "-ping")),
                    "%.2f" % r.median(name + "-run"), "%+.2f" % (r.median(name + "-run") - r.median(base + "-run")),
                    "%.2f" % r.median(name + "-cpu"), "%.2fx" % r.ratio(name + "-cpu", base + "-cpu"),
                    "%s / %s / %s / %s" % (r.listed(name + "-ping", "%.0f"), r.listed(name + "-vm", "%.0f"),
                                           r.listed(name + "-run", "%.1f"), r.listed(name + "-cpu", "%.1f"))])
        report.section(table(
            ["connection", "variant", "settings", "ping ms/item (fastest)", "ping ratio", "vm ms/item (fastest)",
             "vm ratio", "vm / ping", "whole run s", "run - defaults s", "CPU s per run", "CPU ratio",
             "all runs: ping / vm / run / CPU"],
            rows, right=(3, 4, 5, 6, 7, 8, 9, 10, 11)))
        report.data = dict(task_n=self.task_n, reps=self.reps, runs=r.values, loads=self.loads,
                           variants=[dict(key=v[0], what=v[1], settings=v[2], interpreter=v[3], facts=v[4])
                                     for v in self.variants], notes=self.notes)
        return report


if __name__ == "__main__":
    sys.exit(_session.main([Scenario.name]))
