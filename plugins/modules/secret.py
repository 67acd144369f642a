#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: secret
short_description: Manage libvirt secrets (LUKS passphrases, Ceph and iSCSI credentials) and their values
version_added: 0.1.0
description:
  - Defines, changes and removes a libvirt secret, and sets its value from Ansible (for example from
    Ansible Vault).
  - The value is never returned, shown in C(--diff), written in actions or put in error messages.
    C(--diff) shows V((changed)) when the value is set.
  - A secret is found by O(uuid) when given, else by its usage (O(usage_type) and O(usage_id)), which
    libvirt keeps unique.
  - "Idempotency of the value (O(update_value=when_changed)): the value of a non-private secret is read
    back and compared. libvirt never hands out the value of a private secret (the default), so the module
    keeps a fingerprint of the value in the secret's description, after your own description text:
    C([virtops-value pbkdf2-sha256$200000$SALT$DIGEST]). It is PBKDF2-HMAC-SHA256 with a random salt
    per value and 200,000 iterations. A private secret made elsewhere, or whose value was set outside this
    module, has no matching fingerprint, so the first run sets its value again and reports a change."
  - If a fingerprint in the description is not acceptable, use O(update_value=on_create) (the value is
    set only when the secret is created) or O(private=false).
  - The usage, O(private) and O(ephemeral) of an existing secret are not changed (libvirt refuses to
    change O(private)). Remove the secret and create it again.
  - Removing a secret is refused while it is in use, unless O(force=true). Uses are VM disks whose
    encryption or authentication names it, volumes encrypted with it, and storage pools that
    authenticate with it. The error names them.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.resource_module
options:
  usage_type:
    description:
      - What the secret is for. V(volume) is a LUKS passphrase of an encrypted volume, V(ceph) a Ceph
        RBD key, V(iscsi) an iSCSI CHAP password, V(tls) a TLS key passphrase, V(vtpm) a vTPM state
        encryption key.
      - Required with O(usage_id).
    type: str
    choices: [ceph, iscsi, tls, volume, vtpm]
  usage_id:
    description:
      - The usage identifier. For V(volume) it is the volume's absolute path. For V(ceph), V(tls) and
        V(vtpm) it is a name, and for V(iscsi) the target.
      - Together with O(usage_type) it identifies the secret.
    type: str
  uuid:
    description:
      - UUID of the secret. A new secret gets this UUID (libvirt picks one when it is not given).
    type: str
  state:
    description: V(present) makes sure the secret exists as specified; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  description:
    description: Free text describing the secret.
    type: str
  private:
    description:
      - Whether libvirt refuses to hand the value out. A new secret is private unless this is V(false).
    type: bool
  ephemeral:
    description: Whether libvirt keeps the secret only in memory (not on disk). Default V(false).
    type: bool
  value:
    description:
      - The secret's value. Use Ansible Vault for it. It is never shown.
      - Without it, a new secret has no value and an existing one keeps its value.
    type: str
  value_encoding:
    description: V(text) uses O(value) as UTF-8 text; V(base64) decodes it first (binary keys, Ceph keys as base64).
    type: str
    choices: [text, base64]
    default: text
  update_value:
    description:
      - V(when_changed) sets the value when it differs (see above how it is compared).
      - V(always) sets it on every run and always reports a change.
      - V(on_create) sets it only when the secret is created.
    type: str
    choices: [when_changed, always, on_create]
    default: when_changed
  force:
    description: Remove the secret although it is in use.
    type: bool
    default: false
seealso:
  - name: libvirt secret XML format
    description: Usage types and flags of libvirt secrets.
    link: https://libvirt.org/formatsecret.html
"""

EXAMPLES = r"""
- name: The LUKS passphrase of an encrypted volume, from Ansible Vault
  virtops.libvirt.secret:
    usage_type: volume
    usage_id: /var/lib/libvirt/images/data-enc.qcow2
    description: LUKS passphrase of data-enc
    value: "{{ vault_data_enc_passphrase }}"

- name: A Ceph client key (base64, as ceph auth get-key prints it)
  virtops.libvirt.secret:
    usage_type: ceph
    usage_id: client.libvirt
    value: "{{ vault_ceph_key }}"
    value_encoding: base64

- name: Remove it
  virtops.libvirt.secret:
    usage_type: ceph
    usage_id: client.libvirt
    state: absent
"""

RETURN = r"""
secret:
  description: The secret after the run (predicted in check mode), without its value; null when absent.
  returned: success
  type: dict
  contains:
    uuid:
      description: UUID of the secret (null for one a check run would create without O(uuid)).
      type: str
    usage_type:
      description: Its usage type.
      type: str
    usage_id:
      description: Its usage identifier.
      type: str
    description:
      description: Its description, without the value fingerprint.
      type: str
    private:
      description: Whether the value is private.
      type: bool
    ephemeral:
      description: Whether it is kept only in memory.
      type: bool
  sample:
    uuid: 5b70c73d-a926-4b02-b0f6-7d35caf93441
    usage_type: volume
    usage_id: /var/lib/libvirt/images/data-enc.qcow2
    description: LUKS passphrase of data-enc
    private: true
    ephemeral: false
value_changed:
  description: Whether the run set (or, in check mode, would set) the value.
  returned: success
  type: bool
actions:
  description: What the module did (or would do in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["define secret volume /var/lib/libvirt/images/data-enc.qcow2", "set the value of secret volume /var/lib/libvirt/images/data-enc.qcow2"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._secret.kind import SECRET

ARGUMENT_SPEC = SECRET.argument_spec


def main():
    SECRET.run(AnsibleModule(**SECRET.module_kwargs()))


if __name__ == "__main__":
    main()
