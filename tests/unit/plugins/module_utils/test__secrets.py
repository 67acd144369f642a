# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Secrets inside free-form options (_secrets), their registration (_runner) and the no_log argument specs."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtops.libvirt.plugins.module_utils._core import runner as _runner

from ansible_collections.virtops.libvirt.plugins.module_utils._core import secrets as _secrets
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.modules.vm import ARGUMENT_SPEC as VM_SPEC

PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"

# (what, user_data, the secrets in it)
USER_DATA = [
    ("top-level password", {"password": "Pw-top"}, {"Pw-top"}),
    ("a number", {"password": 123456}, {"123456"}),
    ("users", {"users": ["default", {"name": "a", "passwd": "$6$x$hash"}, {"name": "b", "plain_text_passwd": "Pw-plain"},
                         {"name": "c", "hashed_passwd": "$6$y$hash2", "lock_passwd": False}]},
     {"$6$x$hash", "Pw-plain", "$6$y$hash2"}),
    ("chpasswd list text", {"chpasswd": {"list": "root:Pw-root\nops:RANDOM\nweb:Pw-web:colon\n", "expire": False}},
     {"Pw-root", "Pw-web:colon"}),
    ("chpasswd list of lines", {"chpasswd": {"list": ["root:Pw-l1", "x:R"]}}, {"Pw-l1"}),
    ("chpasswd users", {"chpasswd": {"users": [{"name": "ops", "password": "Pw-cu", "type": "text"}]}}, {"Pw-cu"}),
    ("ssh host keys", {"ssh_keys": {"ed25519_private": PEM, "ed25519_public": "ssh-ed25519 AAAA"}}, {PEM}),
    ("subscription", {"rh_subscription": {"username": "me", "password": "Pw-rh", "activation-key": "Key-rh"}},
     {"Pw-rh", "Key-rh"}),
    ("tokens", {"ubuntu_pro": {"token": "Tok-pro"}, "landscape": {"client": {"registration_key": "Key-ls"}}},
     {"Tok-pro", "Key-ls"}),
    ("proxy URL", {"apt": {"http_proxy": "http://proxyuser:Pw-proxy@proxy.example:3128"}}, {"Pw-proxy"}),
    ("private key in a file", {"write_files": [{"path": "/k", "content": "x\n" + PEM + "\n"}]}, {PEM}),
    ("wireguard", {"wireguard": {"interfaces": [{"name": "wg0", "content": "[Interface]\nPrivateKey = WgKey=\n"}]}},
     {"WgKey="}),
    ("nothing", {"packages": ["nginx"], "ssh_pwauth": True, "chpasswd": {"expire": False}}, set()),
    ("one character", {"users": [{"name": "a", "hashed_passwd": "*"}]}, set()),
]


@pytest.mark.parametrize("what, data, expected", USER_DATA, ids=[u[0] for u in USER_DATA])
def test_secrets_in_cloud_config_data_and_text(what, data, expected):
    assert _secrets.seed_secrets(dict(user_data=data)) == expected
    text = "#cloud-config\n" + json.dumps(data)  # JSON is YAML: flow style
    found = _secrets.seed_secrets(dict(user_data=text))
    assert expected <= found and all(any(e.replace("\n", "\\n") == f for e in expected) for f in found - expected)


TEXTS = [
    ("block style", "#cloud-config\npassword: Pw-a\nusers:\n  - name: x\n    passwd: 'Pw-b'\n", {"Pw-a", "Pw-b"}),
    ("broken YAML", "#cloud-config\npassword: Pw-c\nusers: [\n  - {name: x, passwd: \"Pw-d\"\n", {"Pw-c"}),
    ("jinja", "## template: jinja\n#cloud-config\npassword: \"Pw-e\"\nhostname: {{ ds.meta_data.x }}\n", {"Pw-e"}),
    ("script", "#!/bin/sh\necho 'root:unseen' | chpasswd\ncat > /etc/app.yml <<EOF\npassword: Pw-f\nEOF\n", {"Pw-f"}),
    ("multipart", "Content-Type: multipart/mixed; boundary=\"B\"\nMIME-Version: 1.0\n\n--B\n"
                  "Content-Type: text/cloud-config\n\n#cloud-config\nchpasswd:\n  list: |\n    root:Pw-g\n--B--\n",
     {"Pw-g"}),
]


@pytest.mark.parametrize("what, text, expected", TEXTS, ids=[t[0] for t in TEXTS])
def test_secrets_in_texts(what, text, expected):
    assert _secrets.seed_secrets(dict(user_data=text)) == expected


def test_seed_options_other_than_user_data():
    options = dict(password="Pw-opt", users=[dict(name="a", password="Pw-user")],
                   network_config={"version": 2, "wifis": {"wlan0": {"access-points": {"home": {"password": "Pw-wifi"}}}}},
                   vendor_data={"password": "Pw-vendor"}, meta_data={"token": "Tok-meta"}, hostname="web1", pool="default")
    assert _secrets.seed_secrets(options) == {"Pw-opt", "Pw-user", "Pw-wifi", "Pw-vendor", "Tok-meta"}


def test_vm_and_url_secrets():
    params = dict(cloud_init=dict(user_data={"password": "Pw-ci"}), graphics=dict(password="Vnc-pw"),
                  xml="<domain><devices><graphics type='vnc' passwd=\"Xml-pw\"/><graphics type='spice' passwd='S-pw'/>"
                      "</devices></domain>")
    assert _secrets.vm_secrets(params) == {"Pw-ci", "Vnc-pw", "Xml-pw", "S-pw"}
    assert _secrets.url_secrets(dict(source="https://me:Pw-url@example.org/a.qcow2")) == {"Pw-url"}
    assert _secrets.url_secrets(dict(source="https://example.org/a:b@c")) == set()
    assert _secrets.mask_xml_passwords("<graphics passwd='a b' type='vnc'/>") == "<graphics passwd='********' type='vnc'/>"


def test_mask_replaces_the_longest_first_everywhere():
    value = dict(msg="pw Pw-long and Pw", items=["Pw-long", 1, None], nested={"k": "xPw-longx"})
    assert _secrets.mask(value, {"Pw", "Pw-long"}) == dict(
        msg="pw ******** and ********", items=["********", 1, None], nested={"k": "x********x"})
    assert _secrets.mask("unchanged", set()) == "unchanged"


class FakeModule:
    def __init__(self, params):
        self.params = params
        self.no_log_values = set()
        self.check_mode = False
        self._diff = True
        self.exits = []

    def run_command(self, argv):
        raise AssertionError("not used")

    def warn(self, text):
        self.exits.append(("warn", text))

    def exit_json(self, **kwargs):
        self.exits.append(("exit", kwargs))

    def fail_json(self, **kwargs):
        self.exits.append(("fail", kwargs))
        raise SystemExit(1)


def test_run_module_registers_the_secrets_before_anything_runs():
    module = FakeModule(dict(user_data={"password": "Pw-run"}, uri=None))
    seen = []

    def handler(ctx):
        seen.append(set(ctx.no_log_values))
        ctx.secret("Pw-found", "x", None)
        raise InvalidInputError("user_data: something about Pw-run")

    with pytest.raises(SystemExit):
        _runner.run_module(module, handler, requires=(), connect=False, secrets=_secrets.seed_secrets)
    assert seen == [{"Pw-run"}], "the handler's context shares the module's no_log_values"
    assert module.no_log_values == {"Pw-run", "Pw-found"}
    assert module.exits[0][0] == "fail"


def test_vm_cloud_init_marks_only_the_secrets_no_log():
    given = dict(name="web1", cloud_init=dict(
        pool="ordinarypool", hostname="web1", password="Pw-default",
        users=[dict(name="ops", password="Pw-ops", ssh_authorized_keys=["ssh-ed25519 AAAA ops"])],
        user_data={"runcmd": ["echo hello"]}), graphics=dict(password="Vnc-pw"))
    result = ArgumentSpecValidator(VM_SPEC).validate(given)
    assert not result.error_messages
    assert result._no_log_values == {"Pw-default", "Pw-ops", "Vnc-pw"}
    assert result.validated_parameters["cloud_init"]["detach_timeout"] == 900
