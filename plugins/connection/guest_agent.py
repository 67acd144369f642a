# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: guest_agent
short_description: Run tasks inside a libvirt/KVM guest through its QEMU guest agent
version_added: 0.2.0
description:
  - Runs Ansible modules inside a VM through the QEMU guest agent (qemu-guest-agent in the guest, an
    C(org.qemu.guest_agent.0) channel in the VM), through the libvirt API of the hypervisor. The guest
    needs no network, no SSH server and no user account, so this works on first boot, with a broken
    network or in an isolated lab.
  - Reaches any hypervisor the controller can open a libvirt connection to (V(qemu:///system),
    V(qemu+ssh://root@kvm1/system), V(qemu+tls://kvm1/system), ...). Nothing is run on the hypervisor
    besides libvirt itself; no C(virsh) process is started.
  - Commands run with C(/bin/sh -c) through the agent's C(guest-exec), with their standard input
    given in the same request, so pipelining works (and is on by default, see O(pipelining)).
    Files are copied with C(guest-file-open), C(guest-file-write), C(guest-file-read) in chunks of
    O(put_chunk_size) and O(fetch_chunk_size) bytes.
  - The guest agent runs as root, so commands run as root unless O(remote_user) names another user;
    then they run as that user through C(runuser -u USER), and files the plugin copies are given to
    that user. C(become) works as over SSH; from root, C(sudo) and C(su) need no password.
  - "Errors name the VM and the hypervisor URI. The host is unreachable (the play stops for it) when the VM
    does not exist or is not running, has no agent channel, or its agent does not answer within
    O(agent_timeout) seconds (not installed, stopped, still booting, guest hung). The task fails when a
    command runs longer than O(command_timeout) or a file cannot be opened in the guest (with the guest's
    reason)."
author:
  - virtops.libvirt developers (@virtops)
requirements:
  - libvirt-python (the C(libvirt) and C(libvirt_qemu) Python modules) for the Python that runs Ansible
  - a read-write libvirt connection to the hypervisor (for example root, or a member of the C(libvirt) group)
  - qemu-guest-agent running in a POSIX guest with C(/bin/sh), and commands C(guest-exec),
    C(guest-exec-status) and C(guest-file-*) not blocked in its configuration
options:
  remote_addr:
    description:
      - The name of the VM (libvirt domain) on the hypervisor.
      - The inventory plugin P(virtops.libvirt.libvirt#inventory) sets C(ansible_libvirt_vm) when its
        O(virtops.libvirt.libvirt#inventory:guest_agent_connection) option hands a VM to this plugin.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_libvirt_vm
  uri:
    description: The libvirt URI of the hypervisor the VM is on.
    type: str
    default: qemu:///system
    vars:
      - name: ansible_libvirt_uri
    env:
      - name: ANSIBLE_LIBVIRT_URI
    ini:
      - section: virtops_guest_agent
        key: uri
  remote_user:
    description:
      - The user in the guest that commands run as. Unset or V(root) runs them as root, the agent's user
        (with C(HOME=/root)). Another user's commands run through C(runuser -u USER) (util-linux), which
        gives them that user's HOME and shell variables, as a login over SSH would.
      - The user must exist in the guest (for example made by cloud-init).
    type: str
    vars:
      - name: ansible_user
      - name: ansible_libvirt_user
    keyword:
      - name: remote_user
  agent_timeout:
    description:
      - Seconds to wait for the guest agent to answer one request. A guest agent that is not running,
        not installed or stuck fails the task within this time, as unreachable.
    type: int
    default: 10
    vars:
      - name: ansible_libvirt_agent_timeout
    env:
      - name: ANSIBLE_LIBVIRT_AGENT_TIMEOUT
    ini:
      - section: virtops_guest_agent
        key: agent_timeout
  command_timeout:
    description:
      - Seconds a command may run in the guest; one that runs longer is killed (C(kill -KILL) of its
        shell) and the task fails. V(0) means no limit, as over SSH (Ansible's task keyword C(timeout)
        still applies).
      - The status of a running command is asked for after 2 ms, then with pauses that grow to 50 ms.
    type: int
    default: 0
    vars:
      - name: ansible_libvirt_command_timeout
    env:
      - name: ANSIBLE_LIBVIRT_COMMAND_TIMEOUT
    ini:
      - section: virtops_guest_agent
        key: command_timeout
  put_chunk_size:
    description:
      - Bytes of a file written per guest agent request (C(guest-file-write)), and the most standard input
        sent with a command in its request; more input goes through a temporary file in the guest's C(/tmp).
      - At most 163840 (160 KiB). Base64 makes a request a third bigger, and QEMU 7.2's agent lost requests
        of about 220 KB and more (measured); bigger chunks save round trips.
    type: int
    default: 131072
    vars:
      - name: ansible_libvirt_put_chunk_size
    env:
      - name: ANSIBLE_LIBVIRT_PUT_CHUNK_SIZE
    ini:
      - section: virtops_guest_agent
        key: put_chunk_size
  fetch_chunk_size:
    description:
      - Bytes of a file read per guest agent request (C(guest-file-read)).
      - At most 3141632 (3 MiB less 4 KiB), as libvirt carries at most 4 MiB per answer and base64 adds a third.
    type: int
    default: 1048576
    vars:
      - name: ansible_libvirt_fetch_chunk_size
    env:
      - name: ANSIBLE_LIBVIRT_FETCH_CHUNK_SIZE
    ini:
      - section: virtops_guest_agent
        key: fetch_chunk_size
  pipelining:
    description:
      - Send modules to the guest on the standard input of the command that runs them, instead of as
        files, so most tasks take one request instead of five.
      - On by default for this connection, unlike the others. A module bigger than O(put_chunk_size)
        is written to a temporary file in the guest first (removed by the command that reads it).
    type: bool
    default: true
    env:
      - name: ANSIBLE_PIPELINING
    ini:
      - section: defaults
        key: pipelining
      - section: virtops_guest_agent
        key: pipelining
    vars:
      - name: ansible_pipelining
  code_cache:
    description:
      - Keep the compiled code of modules in the guest, so that the guest's Python does not compile the
        same C(module_utils) again for every task. Ansible runs modules from a zip file, for which Python
        keeps no C(.pyc) files; under TCG emulation compiling is a large part of a small module's time
        (see the collection's C(guest_agent) benchmark).
      - The plugin puts a start-up hook (C(usercustomize.py), standard library only) in
        C(/var/cache/virtops-libvirt/python/hook-HASH/) the first time, and module runs as root get
        C(PYTHONPATH) and C(VIRTOPS_LIBVIRT_CODE_CACHE) pointing to it; the hook takes both out of the environment
        at once, so nothing the module starts sees them. Compiled code goes to
        C(/var/cache/virtops-libvirt/python/code/) (root's, mode 0700), keyed by the SHA-256 of the
        Python version's magic number and the source, so a change of either compiles again; entries
        unused for 30 days are removed. Removing the directory is always safe.
      - Only modules run as root use it (not those of another O(remote_user), nor after C(become), which
        clears the environment); commands of C(raw) and C(script) never get the variables. A guest where
        the hook cannot be written (read-only C(/var)) runs modules as without it.
    type: bool
    default: true
    vars:
      - name: ansible_libvirt_code_cache
    env:
      - name: ANSIBLE_LIBVIRT_CODE_CACHE
    ini:
      - section: virtops_guest_agent
        key: code_cache
notes:
  - Each task opens one libvirt connection and finds the VM; nothing is kept between tasks.
  - C(become) with a password is supported for C(sudo) when O(remote_user) is not root (the
    password is given on the standard input, as C(sudo -S) reads it); other methods that ask for a
    password at a terminal (C(su) from a user that is not root) do not work, there is no terminal.
  - qemu-ga keeps the whole output of a command in memory (QEMU 7.2 keeps up to 16 MiB of each stream
    and says so when it cuts it).
  - Windows guests are not supported.
seealso:
  - name: The guest agent connection guide
    description: How the connection works, what it needs in the VM, its limits.
    link: https://github.com/virtops/virtops.libvirt/blob/main/docs/docsite/rst/guide_guest_agent.rst
  - name: community.libvirt.libvirt_qemu
    description: community.libvirt's guest agent connection (compared in the collection's guest_agent benchmark).
    link: https://docs.ansible.com/ansible/latest/collections/community/libvirt/libvirt_qemu_connection.html
"""

EXAMPLES = r"""
# inventory.yml: two VMs without network, on a remote hypervisor
all:
  children:
    isolated:
      vars:
        ansible_connection: virtops.libvirt.guest_agent
        ansible_libvirt_uri: qemu+ssh://root@kvm1.example.com/system
        ansible_python_interpreter: /usr/bin/python3
      hosts:
        build01: {}                       # the VM is named build01
        web:
          ansible_libvirt_vm: web-2024    # the VM's name differs from the host's

---
# A play that configures them as the user 'ops' (made by cloud-init) and becomes root for one task
- name: Configure guests through their agent
  hosts: isolated
  gather_facts: true
  remote_user: ops
  vars:
    ansible_libvirt_agent_timeout: 20
    ansible_libvirt_command_timeout: 600
  tasks:
    - name: A file in the user's home
      ansible.builtin.copy:
        content: "configured without a network\n"
        dest: ~/README
    - name: A package from the local mirror of the image
      ansible.builtin.apt:
        name: htop
      become: true
"""

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from ansible_collections.virtops.libvirt.plugins.plugin_utils._guest_agent import ROOT_ENV, AgentClient, runs_module, shell_argv

display = Display()


class Connection(ConnectionBase):
    """A VM's QEMU guest agent, through libvirt."""

    transport = "virtops.libvirt.guest_agent"
    has_pipelining = True
    has_tty = False

    def __init__(self, *args, **kwargs):
        super(Connection, self).__init__(*args, **kwargs)
        self._client = None
        self.agent_command = None  # the function that sends one request: libvirt_qemu.qemuAgentCommand

    def _user(self):
        user = self.get_option("remote_user")
        return None if not user or user == "root" else user

    def _connect(self):
        if not self._connected:
            client = AgentClient(
                self.get_option("uri"), self.get_option("remote_addr"),
                agent_timeout=self.get_option("agent_timeout"),
                command_timeout=self.get_option("command_timeout"),
                put_chunk_size=self.get_option("put_chunk_size"),
                fetch_chunk_size=self.get_option("fetch_chunk_size"),
                command=self.agent_command,
                code_cache=self.get_option("code_cache"),
                log=lambda text: display.vvvv(text, host=self._play_context.remote_addr),
            )
            display.vvv("GUEST AGENT CONNECTION to %s" % client.where, host=client.vm)
            self._client = client.open()
            self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        client = self._client
        display.vvv("EXEC %s" % to_text(cmd), host=client.vm)
        user = self._user()
        become = self.become if sudoable and self.become and getattr(self.become, "_id", None) else None
        stdin = to_bytes(in_data) if in_data else b""
        if become and user and become.expect_prompt():
            # sudo -S reads the password from stdin, one line, before the command reads the rest
            stdin = to_bytes(become.get_option("become_pass")) + b"\n" + stdin
        env = client.module_env(user) if runs_module(cmd, stdin) else ROOT_ENV
        rc, out, err = client.run(shell_argv(to_text(cmd, errors="surrogate_or_strict"), user), stdin, env=env)
        if become:
            if become.check_success(out):
                out = become.strip_become_success(out)
            err = become.strip_become_prompt(err)
        return rc, out, err

    def put_file(self, in_path, out_path):
        super(Connection, self).put_file(in_path, out_path)
        display.vvv("PUT %s TO %s" % (in_path, out_path), host=self._client.vm)
        self._client.put(in_path, out_path)
        user = self._user()
        if user:
            # qemu-ga made it as root, 0600: the user must be able to read and replace it
            rc, out, err = self._client.run(["/bin/chown", "--", user, out_path])
            if rc != 0:
                raise AnsibleError("cannot give %s to %s in %s: %s" % (out_path, user, self._client.where,
                                                                       to_text(err or out).strip()))

    def fetch_file(self, in_path, out_path):
        super(Connection, self).fetch_file(in_path, out_path)
        display.vvv("FETCH %s TO %s" % (in_path, out_path), host=self._client.vm)
        self._client.fetch(in_path, out_path)

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None
        self._connected = False

    def reset(self):
        self.close()
