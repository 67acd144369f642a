#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cloudinit
short_description: Build cloud-init NoCloud seed ISOs as libvirt volumes or files
version_added: 0.1.0
description:
  - Builds a cloud-init NoCloud seed, an ISO 9660 image (Joliet and Rock Ridge) with the volume id C(cidata)
    and the files C(user-data), C(meta-data) and, when given, C(network-config) and C(vendor-data).
  - Stores it as the raw volume O(name) in the active storage pool O(pool) (uploaded through libvirt, so
    remote hypervisors work too), or as the file O(path) on the managed node (a temporary file renamed into place).
  - Idempotent on content; the SHA-256 over the seed's files (not the ISO's timestamps) is compared with the
    one of the existing seed, which is read back. A changed seed replaces the old one; if that fails, the old
    one is restored.
  - O(meta_data) C(instance-id) defaults to a hash of the seed's content, so a changed seed is a new instance
    for cloud-init (which then runs its per-instance modules again on the next boot).
  - Input is validated before anything is written. user-data that is not valid YAML or not a mapping and
    network-config that is not version 1 or 2 are errors; unknown top-level cloud-config keys are warnings.
  - The ISO is written with the Python library pycdlib; without it, with C(xorriso), C(genisoimage) or C(mkisofs)
    if one is installed.
  - To attach a seed to a VM, use the O(name) and O(pool) (or O(path)) as a CD-ROM or disk of the
    M(virtops.libvirt.vm) module.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.resource_module
requirements:
  - PyYAML on the managed node
  - pycdlib on the managed node, or one of the commands C(xorriso), C(genisoimage), C(mkisofs)
notes:
  - With O(path), no libvirt connection is needed. Only O(state=absent) of an existing seed file asks libvirt at
    O(uri) whether a VM uses it, and warns instead when libvirt-python, lxml or the daemon is missing.
  - The same clear-text password always gives the same hash for the same seed and user, so re-running does not
    change the seed. Clear-text passwords never appear in the results, the diff or the seed.
  - O(password) and O(users[].password) are C(no_log). In O(user_data), O(vendor_data), O(network_config),
    O(meta_data) and O(write_files) (dicts, or YAML text, MIME multipart parts included) the module finds the secret
    values and masks them in the logged arguments (C(-vvv)), the results, the diff, warnings and errors. Secret
    values are those of the keys C(password), C(passwd), C(plain_text_passwd), C(hashed_passwd), C(token),
    C(activation_key), C(activation-key), C(registration_key), C(validation_key), C(validation_cert),
    C(private_key), C(psk), C(secret), C(client_secret) and keys ending in C(_private) (SSH host keys), at any
    depth; the passwords in C(chpasswd.list); and in any string, the password of a URL (C(http://user:PASSWORD@...)),
    PEM private key blocks and WireGuard C(PrivateKey) lines. Values of one character are not masked. Scripts are
    scanned only for lines that set one of those keys (C(password:) followed by a value). Everything else stays readable in messages and diffs.
  - In the diff, crypt hashes and secret values are shown as C(<masked ... FINGERPRINT>); the fingerprint changes
    when the value does, and costs as much to test a guess against as the SHA-512 crypt hash in the seed.
options:
  name:
    description:
      - Name of the seed volume in O(pool), for example C(web1-seed.iso).
      - Must not contain C(/), C(..) or control characters.
      - Required with O(pool); not allowed with O(path).
    type: str
  pool:
    description: Active storage pool that holds the seed volume. Either O(pool) and O(name), or O(path).
    type: str
  path:
    description:
      - Absolute path of the seed ISO file on the managed node. Its directory must exist.
      - Either O(path), or O(pool) and O(name).
    type: path
  mode:
    description:
      - Permissions of the file at O(path), as an octal string such as V('0644').
      - Unset keeps the mode of an existing file; a new file gets V('0600') (a seed holds password hashes
        and keys; libvirt gives QEMU access when it starts the VM).
    type: raw
  state:
    description:
      - V(present) builds and stores the seed; V(absent) removes it.
      - A seed that a VM (running or not, or one of its snapshots) still has attached is not removed
        unless O(force=true). The error names the VMs and returns them as C(used_by). For a seed file
        (O(path)) the module asks libvirt at O(uri) when it can reach it, and warns when it cannot.
      - A seed in a pool that does not exist is absent already.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - Overwrite or remove the volume or file even when it is not a cloud-init seed (not an ISO 9660 image
        labelled C(cidata)); its old content is then lost.
      - With O(state=absent), also remove a seed that VMs use (with a warning that names them).
    type: bool
    default: false
  iso_builder:
    description:
      - How the ISO is written. V(auto) uses pycdlib when it is installed, else the first of C(xorriso),
        C(genisoimage) and C(mkisofs) found.
    type: str
    choices: [auto, pycdlib, xorriso, genisoimage, mkisofs]
    default: auto
  user_data:
    description:
      - The user-data.
      - A dict is cloud-config; it is written as C(#cloud-config) YAML, with the convenience options
        (O(hostname), O(users), O(password), O(ssh_authorized_keys), O(packages), O(runcmd), O(write_files))
        merged in. A key that is given both ways is an error.
      - A text is written as given, after validation; it must be a C(#cloud-config) document (a YAML mapping),
        a script (C(#!)), another cloud-init format (C(#include), C(#cloud-boothook), ...) or a MIME multipart
        archive. Only O(hostname) may be combined with a text.
      - Unset means an empty cloud-config plus the convenience options.
    type: raw
  meta_data:
    description:
      - The meta-data, a dict, for example C(instance-id) and C(local-hostname).
      - C(instance-id) defaults to C(iid-) and 20 hex digits of a SHA-256 over all the seed's files (meta-data
        without instance-id). The same content gives the same instance-id, a changed one a new instance-id.
      - O(hostname) sets C(local-hostname).
    type: dict
  network_config:
    description:
      - The network-config, version 1 or 2 (netplan style), as a dict or a YAML text; an outer C(network:)
        key is removed.
      - It is written as YAML; anything but version 1 or 2 is an error.
    type: raw
  vendor_data:
    description: The vendor-data, a dict (cloud-config) or a text, like O(user_data). Unset means no C(vendor-data) file.
    type: raw
  hostname:
    description:
      - Host name of the guest; becomes C(hostname) in the cloud-config and C(local-hostname) in the meta-data.
    type: str
  users:
    description:
      - Users to create, the cloud-config C(users) list.
      - As in cloud-init, giving users replaces the image's default user unless an entry with the name
        V(default) is in the list.
    type: list
    elements: dict
    suboptions:
      name:
        description: User name; V(default) means the image's default user (no other keys then).
        type: str
        required: true
      password:
        description:
          - Password of the user; written only as a SHA-512 crypt hash (C(hashed_passwd)) and
            the account is unlocked (C(lock_passwd=false)) unless O(users[].lock_passwd) says otherwise.
        type: str
      ssh_authorized_keys:
        description: Public SSH keys for the user, one key per entry.
        type: list
        elements: str
      sudo:
        description: A sudoers rule, for example V(ALL=(ALL\) NOPASSWD:ALL).
        type: str
      groups:
        description: Supplementary groups.
        type: list
        elements: str
      shell:
        description: Login shell.
        type: str
      lock_passwd:
        description: Whether password login is locked (cloud-init's default is V(true) without a password).
        type: bool
      gecos:
        description: Full name or comment.
        type: str
  password:
    description:
      - Password of the image's default user (the cloud-config C(password)); written only as a SHA-512 crypt
        hash.
      - cloud-init may expire it at first login; add C(chpasswd) with C(expire=false) to O(user_data) to prevent that.
    type: str
  ssh_authorized_keys:
    description: Public SSH keys for the image's default user, one key per entry.
    type: list
    elements: str
  packages:
    description: Packages to install at first boot (names, or [name, version] lists).
    type: list
    elements: raw
  runcmd:
    description: Commands to run at the end of the first boot (strings for the shell, or argv lists).
    type: list
    elements: raw
  write_files:
    description:
      - Files to write at first boot, the cloud-config C(write_files) entries (C(path), C(content), C(owner),
        C(permissions), C(encoding), C(append), C(defer)).
      - C(permissions) must be a string such as V('0644').
    type: list
    elements: dict
"""

EXAMPLES = r"""
- name: A seed volume for web1 with a user, packages and a first-boot command
  virtops.libvirt.cloudinit:
    name: web1-seed.iso
    pool: default
    hostname: web1
    users:
      - name: ops
        sudo: ALL=(ALL) NOPASSWD:ALL
        ssh_authorized_keys:
          - "{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"
    packages: [qemu-guest-agent, nginx]
    runcmd:
      - [systemctl, enable, --now, qemu-guest-agent]

- name: Full cloud-config as data, a static network and a password for the default user
  virtops.libvirt.cloudinit:
    name: db1-seed.iso
    pool: default
    password: "{{ vault_db1_password }}"
    user_data:
      timezone: Europe/Berlin
      chpasswd: {expire: false}
      ssh_pwauth: true
    network_config:
      version: 2
      ethernets:
        eth0:
          addresses: [192.0.2.10/24]
          routes: [{to: default, via: 192.0.2.1}]
          nameservers: {addresses: [192.0.2.1]}

- name: A seed file from a user-data script
  virtops.libvirt.cloudinit:
    path: /var/lib/libvirt/images/test-seed.iso
    user_data: |
      #!/bin/sh
      echo hello > /root/hello

- name: Remove the seed once the VM has booted
  virtops.libvirt.cloudinit:
    name: web1-seed.iso
    pool: default
    state: absent
"""

RETURN = r"""
path:
  description: Path of the seed file, or of the volume on the hypervisor (predicted in check mode); null when absent.
  returned: success
  type: str
  sample: /var/lib/libvirt/images/web1-seed.iso
instance_id:
  description: The seed's meta-data instance-id; null when absent.
  returned: success
  type: str
  sample: iid-3f6c0a8e1b2d4c5e6f70
content_sha256:
  description:
    - SHA-256 over the seed's files (names, sizes and contents), what idempotency compares; null when absent.
    - Its first 40 hex digits are in the ISO's application identifier.
  returned: success
  type: str
  sample: 3aef4514862fc88b9a1281c999eff7739727d03c46f52d60e51017e983a3dfae
files:
  description: The files in the seed.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: File name.
      type: str
      sample: user-data
    size:
      description: Size in bytes.
      type: int
      sample: 212
actions:
  description: What was done (or would be done in check mode), in order.
  returned: success
  type: list
  elements: str
  sample:
    - build the seed ISO with pycdlib
    - create raw volume 'web1-seed.iso' in pool 'default' for the seed
    - upload the seed ISO into volume 'web1-seed.iso'
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.kind import CLOUDINIT

ARGUMENT_SPEC = CLOUDINIT.argument_spec


def main():
    CLOUDINIT.run(AnsibleModule(**CLOUDINIT.module_kwargs()))


if __name__ == "__main__":
    main()
