# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cloud-init seeds: validate the content options and render ``user-data``, ``vendor-data`` and
``network-config`` (YAML, passwords as SHA-512 crypt hashes with a deterministic salt).  Pure: no I/O.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import email
import hashlib
import hmac
import re
import traceback

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError, MissingDependencyError
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.crypt_hash import CRYPT_ALPHABET, sha512_crypt
from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.options import (
    KNOWN_CLOUD_CONFIG_KEYS,
    NETWORK_V1_TYPES,
    NETWORK_V2_NETPLAN_ONLY,
    NETWORK_V2_SECTIONS,
    USER_KEYS,
    WRITE_FILES_KEYS,
)

YAML_IMPORT_ERROR = None
try:
    import yaml
except ImportError:  # pragma: no cover - depends on the managed node
    yaml = None
    YAML_IMPORT_ERROR = traceback.format_exc()


_USER_DATA_HEADERS = ("#!", "#include", "#include-once", "#cloud-boothook", "#part-handler", "#upstart-job",
                      "#cloud-config-archive", "#cloud-config-jsonp")
_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_USER_NAME = re.compile(r"^[^\s:/,]+$")


# --- YAML ----------------------------------------------------------------------------------------


def require_yaml():
    if yaml is None:
        raise MissingDependencyError(
            "The PyYAML Python library is not installed on the managed node: install 'PyYAML' from PyPI "
            "(or python3-yaml from your distribution)",
            exception=YAML_IMPORT_ERROR,
        )


if yaml is not None:

    class _SeedDumper(yaml.SafeDumper):  # pylint: disable=too-many-ancestors
        """SafeDumper that never writes anchors and writes multi-line strings as literal blocks."""

        def ignore_aliases(self, data):
            return True

    def _represent_str(dumper, data):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)

    _SeedDumper.add_representer(str, _represent_str)


def dump_yaml(data):
    """``data`` as YAML text: keys sorted, block style, no anchors, no line folding, multi-line strings as ``|``."""
    require_yaml()
    return yaml.dump(data, Dumper=_SeedDumper, default_flow_style=False, sort_keys=True, allow_unicode=True,
                     width=1 << 20)


def load_yaml(text, what):
    """Parsed YAML; the error names the problem and where, never the text (it may hold a password)."""
    require_yaml()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " at line %d, column %d" % (mark.line + 1, mark.column + 1) if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        context = getattr(exc, "context", None)
        raise InvalidInputError("%s is not valid YAML: %s%s%s" % (what, "%s, " % context if context else "", problem, where))


def plain(value, what):
    """A deep copy of ``value`` made of plain dict/list/str/int/float/bool/None (what YAML can hold)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, dict):
        return dict((plain(k, what), plain(v, what)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [plain(v, what) for v in value]
    raise InvalidInputError("%s: a value of type %s cannot be written to YAML" % (what, type(value).__name__))


def _strip_none(mapping):
    return dict((k, v) for k, v in mapping.items() if v is not None)


_SALT_KEY = b"virtops.libvirt cloudinit password salt v1"


def derive_salt(seed_id, user):
    """A 16-character crypt salt derived from the seed's identity and the user name.

    Deterministic, so the same password gives the same hash on every run (idempotency); unique per
    seed and user.  It deliberately does not depend on the password: a salt that is a fast function
    of the password would let anyone test guesses against the salt alone, bypassing crypt's rounds.
    """
    msg = ("%s\0%s" % (seed_id, user)).encode("utf-8")
    digest = hmac.new(_SALT_KEY, msg, hashlib.sha256).digest()
    return "".join(CRYPT_ALPHABET[b % 64] for b in digest[:16])


def hash_password(password, seed_id, user):
    """``$6$`` hash of ``password`` for ``user`` in the seed ``seed_id``; the same inputs give the same hash."""
    if not isinstance(password, str) or password == "":
        raise InvalidInputError("a password must be a non-empty string")
    return sha512_crypt(password, derive_salt(seed_id, user))


# --- rendering and validation ----------------------------------------------------------------------


def _warn_unknown_keys(data, what, warn):
    unknown = sorted(str(k) for k in data if k not in KNOWN_CLOUD_CONFIG_KEYS)
    if "network" in data:
        warn("%s: the key 'network' has no effect in user-data or vendor-data; use network_config" % what)
        unknown = [k for k in unknown if k != "network"]
    if unknown:
        warn("%s: unknown top-level cloud-config key(s) %s: cloud-init ignores them (a typo?)"
             % (what, ", ".join(repr(k) for k in unknown)))


def _validate_cloud_config_text(body, what, warn):
    data = load_yaml(body, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInputError("%s must be a YAML mapping after '#cloud-config', not a %s" % (what, type(data).__name__))
    _warn_unknown_keys(data, what, warn)
    return data


def _validate_multipart(text, what, warn):
    message = email.message_from_string(text)
    if not message.is_multipart():
        raise InvalidInputError("%s looks like a MIME message but is not multipart" % what)
    for index, part in enumerate(message.walk()):
        if part.get_content_type() == "text/cloud-config":
            payload = part.get_payload(decode=True) or b""
            _validate_cloud_config_text(payload.decode("utf-8", "replace"), "%s part %d" % (what, index), warn)


def classify_user_data_text(text):
    """The kind of a raw user-data text: cloud-config, jinja, script/include/..., multipart; else None."""
    first = text.lstrip("\ufeff").split("\n", 1)[0].rstrip()
    if first == "#cloud-config":
        return "cloud-config"
    if first.lower().startswith("## template:"):
        return "jinja"
    if first.startswith("#!"):
        return "script"
    if any(first.startswith(h) for h in _USER_DATA_HEADERS):
        return "directive"
    head = text.lstrip()[:200].lower()
    if head.startswith("content-type: multipart") or head.startswith("mime-version:"):
        return "multipart"
    return None


def validate_user_data_text(text, what, warn):
    """Check a raw user-data/vendor-data text; returns its kind (see :func:`classify_user_data_text`)."""
    kind = classify_user_data_text(text)
    if kind is None:
        raise InvalidInputError(
            "%s text must start with '#cloud-config', a '#!' script line, another cloud-init header "
            "(#include, #cloud-boothook, ...) or be a MIME multipart archive; to give cloud-config as "
            "data, pass %s as a dict" % (what, what.split()[0])
        )
    if kind == "cloud-config":
        _validate_cloud_config_text(text.split("\n", 1)[1] if "\n" in text else "", what, warn)
    elif kind == "multipart":
        _validate_multipart(text, what, warn)
    return kind


def _check_hostname(name):
    if not isinstance(name, str) or len(name) > 253 or not all(_HOSTNAME_LABEL.match(l) for l in name.rstrip(".").split(".")):
        raise InvalidInputError("hostname %r is not a valid host name (labels of letters, digits and '-', "
                                "at most 63 characters each)" % (name,))
    return name


def _check_keys(keys, what):
    if not isinstance(keys, list):
        raise InvalidInputError("%s must be a list of public keys" % what)
    out = []
    for key in keys:
        if not isinstance(key, str) or not key.strip() or "\n" in key.strip() or "\r" in key:
            raise InvalidInputError("%s: every entry must be one public key on one line" % what)
        out.append(key.strip())
    return out


def _render_users(users, seed_id):
    if not isinstance(users, list):
        raise InvalidInputError("users must be a list")
    out = []
    for index, user in enumerate(users):
        what = "users[%d]" % index
        if not isinstance(user, dict):
            raise InvalidInputError("%s must be a dict with at least 'name'" % what)
        user = _strip_none(user)
        unknown = sorted(set(user) - USER_KEYS)
        if unknown:
            raise InvalidInputError("%s: unknown key(s) %s (for other cloud-init user settings, put 'users' "
                                    "in user_data)" % (what, ", ".join(unknown)))
        name = user.get("name")
        if not isinstance(name, str) or not _USER_NAME.match(name):
            raise InvalidInputError("%s: name must be a user name without spaces, ':', ',' or '/'" % what)
        if name == "default":
            if len(user) > 1:
                raise InvalidInputError("%s: the 'default' entry (the image's default user) takes no other keys" % what)
            out.append("default")
            continue
        entry = dict(name=name)
        if "password" in user:
            entry["hashed_passwd"] = hash_password(user["password"], seed_id, name)
            entry["lock_passwd"] = False
        if "lock_passwd" in user:
            entry["lock_passwd"] = bool(user["lock_passwd"])
        if "ssh_authorized_keys" in user:
            entry["ssh_authorized_keys"] = _check_keys(user["ssh_authorized_keys"], what + ".ssh_authorized_keys")
        for key in ("sudo", "shell", "gecos"):
            if key in user:
                entry[key] = user[key]
        if "groups" in user:
            groups = user["groups"]
            entry["groups"] = groups if isinstance(groups, list) else [g.strip() for g in str(groups).split(",") if g.strip()]
        out.append(entry)
    return out


def _render_write_files(items, warn):
    if not isinstance(items, list):
        raise InvalidInputError("write_files must be a list of dicts")
    out = []
    for index, item in enumerate(items):
        what = "write_files[%d]" % index
        if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not item["path"].startswith("/"):
            raise InvalidInputError("%s needs 'path', an absolute path" % what)
        item = _strip_none(item)
        unknown = sorted(set(item) - WRITE_FILES_KEYS)
        if unknown:
            warn("%s: unknown key(s) %s: cloud-init ignores them" % (what, ", ".join(unknown)))
        perms = item.get("permissions")
        if perms is not None and not isinstance(perms, str):
            raise InvalidInputError("%s.permissions must be a string such as '0644' (quote it: YAML reads 0644 "
                                    "as the number 420)" % what)
        out.append(item)
    return out


def _render_list(value, what):
    if not isinstance(value, list):
        raise InvalidInputError("%s must be a list" % what)
    for item in value:
        if not isinstance(item, (str, list)):
            raise InvalidInputError("%s: every entry must be a string or a list of strings" % what)
    return value


def _convenience(options, seed_id, warn):
    """The cloud-config keys the convenience options produce (only those given)."""
    out = {}
    if options.get("hostname") is not None:
        out["hostname"] = _check_hostname(options["hostname"])
    if options.get("users") is not None:
        out["users"] = _render_users(options["users"], seed_id)
    if options.get("password") is not None:
        out["password"] = hash_password(options["password"], seed_id, "")
    if options.get("ssh_authorized_keys") is not None:
        out["ssh_authorized_keys"] = _check_keys(options["ssh_authorized_keys"], "ssh_authorized_keys")
    if options.get("packages") is not None:
        out["packages"] = _render_list(options["packages"], "packages")
    if options.get("runcmd") is not None:
        out["runcmd"] = _render_list(options["runcmd"], "runcmd")
    if options.get("write_files") is not None:
        out["write_files"] = _render_write_files(options["write_files"], warn)
    return out


def render_user_data(options, seed_id, warn):
    """The ``user-data`` file (bytes).

    * ``user_data`` a dict (or unset): the convenience options are merged into it and the result is
      written as ``#cloud-config`` YAML; a key given both ways is an error.
    * ``user_data`` a text: written as given, after validation; only ``hostname`` (which goes to
      meta-data) can be combined with it.
    """
    user_data = options.get("user_data")
    extra = _convenience(options, seed_id, warn)
    if user_data is None or isinstance(user_data, dict):
        data = plain(user_data or {}, "user_data")
        clash = sorted(k for k in extra if k in data)
        if clash:
            raise InvalidInputError("%s given both as option(s) and as key(s) of user_data: give each only once"
                                    % ", ".join(clash))
        data.update(extra)
        _warn_unknown_keys(data, "user_data", warn)
        return ("#cloud-config\n" + dump_yaml(data)).encode("utf-8")
    if isinstance(user_data, str):
        validate_user_data_text(user_data, "user_data", warn)
        mixed = sorted(k for k in extra if k != "hostname")
        if mixed:
            raise InvalidInputError("%s can only be merged into user_data given as a dict, not as text: put them "
                                    "in the text or pass user_data as a dict" % ", ".join(mixed))
        return user_data.encode("utf-8")
    raise InvalidInputError("user_data must be a dict (cloud-config) or a text, not %s" % type(user_data).__name__)


def render_vendor_data(vendor_data, warn):
    """The ``vendor-data`` file (bytes) or None: a dict becomes ``#cloud-config`` YAML, a text is kept."""
    if vendor_data is None:
        return None
    if isinstance(vendor_data, dict):
        data = plain(vendor_data, "vendor_data")
        _warn_unknown_keys(data, "vendor_data", warn)
        return ("#cloud-config\n" + dump_yaml(data)).encode("utf-8")
    if isinstance(vendor_data, str):
        validate_user_data_text(vendor_data, "vendor_data", warn)
        return vendor_data.encode("utf-8")
    raise InvalidInputError("vendor_data must be a dict (cloud-config) or a text, not %s" % type(vendor_data).__name__)


def validate_network_config(config, warn):
    """Check a network-config (v1 or v2, a ``network:`` wrapper removed); returns the unwrapped dict."""
    if isinstance(config, dict) and set(config) == {"network"} and isinstance(config["network"], dict):
        config = config["network"]
    if not isinstance(config, dict):
        raise InvalidInputError("network_config must be a mapping with 'version: 1' or 'version: 2'")
    version = config.get("version")
    if version == 1 and not isinstance(version, bool):
        items = config.get("config")
        if not isinstance(items, list):
            raise InvalidInputError("network_config version 1 needs 'config', a list of entries with a 'type'")
        for index, item in enumerate(items):
            kind = item.get("type") if isinstance(item, dict) else None
            if kind not in NETWORK_V1_TYPES:
                raise InvalidInputError("network_config config[%d]: type must be one of %s, not %r"
                                        % (index, ", ".join(sorted(NETWORK_V1_TYPES)), kind))
        extra = sorted(set(config) - {"version", "config"})
        if extra:
            raise InvalidInputError("network_config version 1 has only 'version' and 'config', not %s" % ", ".join(extra))
        return config
    if version == 2 and not isinstance(version, bool):
        for key, value in config.items():
            if key == "version":
                continue
            if key == "renderer":
                if not isinstance(value, str):
                    raise InvalidInputError("network_config renderer must be a string")
                continue
            if key in NETWORK_V2_NETPLAN_ONLY:
                warn("network_config: %r is only applied where netplan renders the network" % key)
            elif key not in NETWORK_V2_SECTIONS:
                raise InvalidInputError("network_config version 2: unknown section %r (sections are %s)"
                                        % (key, ", ".join(sorted(NETWORK_V2_SECTIONS | NETWORK_V2_NETPLAN_ONLY))))
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise InvalidInputError("network_config %s must map interface names to settings" % key)
        return config
    raise InvalidInputError("network_config must have 'version: 1' or 'version: 2', not %r" % (version,))


def render_network_config(network_config, warn):
    """The ``network-config`` file (bytes) or None; a text is parsed, validated and written as YAML."""
    if network_config is None:
        return None
    if isinstance(network_config, str):
        network_config = load_yaml(network_config, "network_config")
    config = validate_network_config(plain(network_config, "network_config"), warn)
    return dump_yaml(config).encode("utf-8")
