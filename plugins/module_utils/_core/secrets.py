# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Secrets inside free-form options: found, registered for masking, and masked.

Options that are secrets as a whole (``password``, ``users[].password``, ``graphics.password``) are
``no_log`` in the argument specs.  Free-form options (``user_data``, ``vendor_data``,
``network_config``, ``meta_data``, ``write_files`` of a cloud-init seed; a VM's ``xml``; a volume's
``source`` URL) carry secrets among ordinary words: marking them ``no_log`` would mask every word
they contain everywhere (``define VM ********``).  So the secret values in them are found here
(:func:`seed_secrets`, :func:`vm_secrets`, :func:`url_secrets`) and registered before the module
does anything (``_runner.run_module(secrets=...)``): AnsibleModule masks its ``no_log_values`` in
the invocation arguments (``-vvv``), results, diffs, warnings and errors.  The resources mask them
in their diffs as well (:func:`mask`), for callers without AnsibleModule.

Secret values, wherever they are in the data (dicts and lists at any depth, YAML text parsed):

* the values of the keys in :data:`SECRET_KEYS` (``password``, ``passwd``, ``plain_text_passwd``,
  ``hashed_passwd``, ``token``, ``activation_key``, ...) and of keys ending in ``_private``
  (``ssh_keys: {rsa_private: ...}``);
* in ``chpasswd: {list: ...}`` (a text of ``user:password`` lines, or a list of them), each password
  (``R``/``RANDOM`` are not secrets);
* passwords of URLs (``http://user:PASSWORD@host``), PEM private key blocks, and WireGuard
  ``PrivateKey``/``PresharedKey`` lines in any string;
* in text that is not YAML (a script, a broken document), ``key: value`` lines of the keys above.

Values of one character are not registered (masking every ``*`` or ``!`` of the output protects
nothing).  Scripts are not otherwise interpreted: a password a shell script sets is not found.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import email
import re


#: keys whose values are secrets, at any depth of cloud-config data (compared in lower case)
SECRET_KEYS = frozenset((
    "password", "passwd", "plain_text_passwd", "hashed_passwd", "token", "activation_key", "activation-key",
    "registration_key", "validation_key", "validation_cert", "private_key", "psk", "secret", "client_secret",
))
SECRET_SUFFIXES = ("_private",)
NOT_SECRET = ("R", "RANDOM")
MASK = "********"

_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:([^@\s/]+)@")
_PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----", re.S)
_WIREGUARD = re.compile(r"^\s*(?:PrivateKey|PresharedKey)\s*=\s*(\S+)", re.M)
_KEY_LINE = re.compile(r"^[ \t]*(?:-[ \t]+)?[\"']?([A-Za-z_-]+)[\"']?[ \t]*:[ \t]*(\S.*?)[ \t]*$", re.M)
_XML_PASSWD = re.compile(r"""(\bpasswd\s*=\s*)(["'])(.*?)\2""", re.S)


def _yaml():
    """PyYAML, imported when a text is parsed (tasks without free-form data do not pay for it), or None
    when the managed node lacks it (text is then scanned line by line only)."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - depends on the managed node
        return None
    return yaml


def is_secret_key(key):
    key = str(key).lower()
    return key in SECRET_KEYS or key.endswith(SECRET_SUFFIXES)


def _leaves(value):
    """The leaf values of ``value`` (a scalar, or dicts and lists of them) as strings."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _leaves(item)]
    if value is None or isinstance(value, bool):
        return []
    return [str(value)]


def _chpasswd_list(value):
    lines = value.splitlines() if isinstance(value, str) else [str(v) for v in value or [] if v is not None]
    for line in lines:
        if ":" in line:
            secret = line.split(":", 1)[1].strip()
            if secret not in NOT_SECRET:
                yield secret


def _unquote(text):
    text = text.strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _in_string(text):
    """Secrets any string may hold: URL passwords, PEM private keys, WireGuard keys."""
    found = set(_URL_PASSWORD.findall(text))
    found.update(_PEM_PRIVATE.findall(text))
    found.update(_WIREGUARD.findall(text))
    return found


def find(value):
    """The secret values in ``value`` (dicts, lists, strings), as a set of strings."""
    found = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if is_secret_key(key):
                found.update(_leaves(item))
            elif str(key).lower() == "chpasswd" and isinstance(item, dict):
                if item.get("list") is not None:
                    found.update(_chpasswd_list(item["list"]))
                found.update(find(dict((k, v) for k, v in item.items() if k != "list")))
            else:
                found.update(find(item))
    elif isinstance(value, (list, tuple)):
        for item in value:
            found.update(find(item))
    elif isinstance(value, str):
        found.update(_in_string(value))
    return found


def text_secrets(text):
    """Secrets in a user-data/vendor-data/network-config text: parsed as YAML (a ``#cloud-config``
    document, or each ``text/cloud-config`` part of a MIME multipart archive), and scanned line by
    line for ``key: value`` of the secret keys (what YAML cannot read, scripts, Jinja templates)."""
    found = _in_string(text)
    for key, value in _KEY_LINE.findall(text):
        if is_secret_key(key):
            found.add(_unquote(value))
    head = text.lstrip()[:200].lower()
    if head.startswith("content-type: multipart") or head.startswith("mime-version:"):
        for part in email.message_from_string(text).walk():
            if part.get_content_maintype() == "text":
                payload = part.get_payload(decode=True) or b""
                found.update(text_secrets(payload.decode("utf-8", "replace")))
    elif _yaml() is not None:
        try:
            found.update(find(_yaml().safe_load(text)))
        except Exception:  # YAMLError, RecursionError...: the line scan above is all there is for such text
            pass
    return found


def _any(value):
    return text_secrets(value) if isinstance(value, str) else find(value)


def _keep(values):
    return set(v for v in values if isinstance(v, str) and len(v.strip()) > 1)


def seed_secrets(options):
    """Secret values of a cloud-init seed's options (the ``cloudinit`` module's, or ``vm``'s ``cloud_init``)."""
    options = options or {}
    found = set()
    for key in ("user_data", "vendor_data", "network_config", "meta_data", "write_files", "users"):
        if options.get(key) is not None:
            found.update(_any(options[key]))
    if options.get("password") is not None:
        found.add(str(options["password"]))
    return _keep(found)


def xml_passwords(text):
    """``passwd`` attribute values (graphics consoles) in an XML text."""
    if not isinstance(text, str):
        return set()
    return _keep(m[2] for m in _XML_PASSWD.findall(text))


def mask_xml_passwords(text):
    """``text`` with every ``passwd='...'`` attribute value replaced by :data:`MASK`."""
    return _XML_PASSWD.sub(lambda m: "%s%s%s%s" % (m.group(1), m.group(2), MASK, m.group(2)), text)


def vm_secrets(params):
    """Secret values of the ``vm`` module's options: the seed's, ``xml``'s passwords (the graphics
    password is ``no_log`` already)."""
    found = seed_secrets(params.get("cloud_init"))
    found.update(xml_passwords(params.get("xml")))
    graphics = params.get("graphics") or {}
    if graphics.get("password"):
        found.add(graphics["password"])
    return _keep(found)


def url_secrets(params, keys=("source",)):
    """Passwords of URLs in the options ``keys`` (``http://user:PASSWORD@host/...``)."""
    found = set()
    for key in keys:
        value = params.get(key)
        if isinstance(value, str):
            found.update(_URL_PASSWORD.findall(value))
    return _keep(found)


def mask(value, secrets, replacement=MASK):
    """A copy of ``value`` (str, dict, list) with every occurrence of each secret replaced."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in sorted(secrets, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, replacement(secret) if callable(replacement) else replacement)
        return value
    if isinstance(value, dict):
        return dict((k, mask(v, secrets, replacement)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [mask(v, secrets, replacement) for v in value]
    return value
