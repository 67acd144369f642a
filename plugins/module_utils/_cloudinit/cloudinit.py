# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cloud-init NoCloud seeds: render, validate, hash, build the ISO, store it as a pool volume or a file.

A seed is an ISO 9660 image (Joliet and Rock Ridge) with the volume id ``cidata`` and the files
``user-data``, ``meta-data`` and optionally ``network-config`` and ``vendor-data`` in its root.

The pieces, each usable alone (the ``vm`` module uses :func:`ensure_seed` and :func:`remove_seed`):

* :func:`build_seed` turns the options (the ``cloudinit`` module's option names) into a :class:`Seed`:
  the validated, rendered files, the instance-id and the content hash.  Pure: no I/O.
* :func:`content_sha256` / :func:`default_instance_id`: the hashes idempotency is built on.
* :func:`hash_password` / :func:`sha512_crypt`: SHA-512 crypt (``$6$``) with a deterministic salt.
* :func:`choose_builder`: an ISO builder (pycdlib, or the ``xorriso``/``genisoimage``/``mkisofs``
  command), all with one interface ``build(files, app_id) -> bytes``.
* :func:`read_seed_iso`: a small ISO 9660 reader (Rock Ridge, Joliet or plain names), used to read an
  existing seed back, whichever tool made it.
* :class:`CloudInitResource`: the ``cloudinit`` module's resource (read, desired, plan, result).

Idempotency compares content, never timestamps: the existing seed is read back (a file is read,
a volume is downloaded through a libvirt stream: seeds are small) and the SHA-256 over its files is
compared with the one of the files that would be written.  The same hash is written into the ISO's
application identifier for people and tools (``isoinfo -d``), but it is not trusted for decisions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import email
import hashlib
import hmac
import io
import os
import re
import shutil
import stat
import struct
import tempfile
import traceback
import warnings

from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record

from ansible_collections.virtops.libvirt.plugins.module_utils._core import secrets as _secrets

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    CommandError,
    ConflictError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
    VirtopsError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.filemode import parse_mode
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Resource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import Usage, guard, in_use_error, usage
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import refresh_pool, retry_busy
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.disks import disk_users, users_of
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import (
    lookup_pool,
    lookup_volume,
    parse_volume_xml,
    validate_name,
    volume_path,
    volume_xml,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_write import (
    build_volume_xml,
    volume_stream,
)

YAML_IMPORT_ERROR = None
try:
    import yaml
except ImportError:  # pragma: no cover - depends on the managed node
    yaml = None
    YAML_IMPORT_ERROR = traceback.format_exc()

PYCDLIB_IMPORT_ERROR = None
try:
    import pycdlib
except ImportError:  # pragma: no cover - depends on the managed node
    pycdlib = None
    PYCDLIB_IMPORT_ERROR = traceback.format_exc()

try:
    from passlib.hash import sha512_crypt as passlib_sha512_crypt
except ImportError:  # passlib is optional: crypt or the built-in implementation is used instead
    passlib_sha512_crypt = None

#: the files of a seed, in the order they are written and shown
SEED_FILES = ("user-data", "meta-data", "network-config", "vendor-data")
#: the filesystem label cloud-init's NoCloud datasource looks for
VOLUME_ID = "cidata"
#: prefix of the ISO application identifier, followed by the first 40 hex digits of the content hash in
#: upper case (ISO 9660 a-characters; Joliet holds at most 64 characters there)
APP_ID_PREFIX = "VIRTOPS.LIBVIRT SHA256:"
#: ISO builders, in the order ``auto`` tries them
BUILDERS = ("pycdlib", "xorriso", "genisoimage", "mkisofs")
#: the options :func:`build_seed` reads (the ``cloudinit`` module's content options)
SEED_OPTIONS = ("user_data", "meta_data", "network_config", "vendor_data", "hostname", "users", "password",
                "ssh_authorized_keys", "packages", "runcmd", "write_files")
#: the argument spec of the content options, shared by the ``cloudinit`` module and ``vm``'s ``cloud_init``;
#: only the passwords are ``no_log`` (secrets inside the free-form ones are found by ``_secrets``)
SEED_ARGUMENT_SPEC = dict(
    user_data=dict(type="raw"),
    meta_data=dict(type="dict"),
    network_config=dict(type="raw"),
    vendor_data=dict(type="raw"),
    hostname=dict(type="str"),
    users=dict(type="list", elements="dict", options=dict(
        name=dict(type="str", required=True),
        password=dict(type="str", no_log=True),
        ssh_authorized_keys=dict(type="list", elements="str", no_log=False),
        sudo=dict(type="str"),
        groups=dict(type="list", elements="str"),
        shell=dict(type="str"),
        lock_passwd=dict(type="bool", no_log=False),
        gecos=dict(type="str"),
    )),
    password=dict(type="str", no_log=True),
    ssh_authorized_keys=dict(type="list", elements="str", no_log=False),
    packages=dict(type="list", elements="raw"),
    runcmd=dict(type="list", elements="raw"),
    write_files=dict(type="list", elements="dict"),
)
#: options merged into a cloud-config ``user_data`` (option name -> cloud-config key)
CONVENIENCE_KEYS = (("hostname", "hostname"), ("users", "users"), ("password", "password"),
                    ("ssh_authorized_keys", "ssh_authorized_keys"), ("packages", "packages"),
                    ("runcmd", "runcmd"), ("write_files", "write_files"))
MAX_CONTENT_BYTES = 16 * 1024 * 1024  # the sum of the seed's files
MAX_READ_BYTES = 64 * 1024 * 1024  # an existing file/volume larger than this is not read (not a seed)
DEFAULT_FILE_MODE = 0o600  # a seed holds password hashes and keys; libvirt relabels it for QEMU

# Top-level keys cloud-init knows (its cloud-config schema of 22.4 plus base-config and newer keys).
# An unknown key is not an error (cloud-init ignores it) but very likely a typo: it gets a warning.
KNOWN_CLOUD_CONFIG_KEYS = frozenset((
    "allow_public_ssh_keys", "ansible", "apk_repos", "apt", "apt_pipelining", "apt_reboot_if_required",
    "apt_update", "apt_upgrade", "authkey_hash", "autoinstall", "bootcmd", "byobu_by_default", "ca-certs",
    "ca_certs", "chef", "chpasswd", "cloud_config_modules", "cloud_final_modules", "cloud_init_modules",
    "create_hostname_file", "datasource", "datasource_list", "def_log_file", "device_aliases",
    "disable_ec2_metadata", "disable_root", "disable_root_opts", "disk_setup", "drivers", "fan",
    "final_message", "fqdn", "fs_setup", "groups", "growpart", "grub-dpkg", "grub_dpkg", "hostname",
    "keyboard", "landscape", "locale", "locale_configfile", "log_cfgs", "lxd", "manage_etc_hosts",
    "manage_resolv_conf", "manual_cache_clean", "mcollective", "merge_how", "merge_type", "migrate",
    "mount_default_fields", "mounts", "no_ssh_fingerprints", "ntp", "output", "package_reboot_if_required",
    "package_update", "package_upgrade", "packages", "password", "phone_home", "power_state",
    "prefer_fqdn_over_hostname", "preserve_hostname", "puppet", "random_seed", "reporting", "resize_rootfs",
    "resolv_conf", "rh_subscription", "rsyslog", "runcmd", "salt_minion", "snap", "spacewalk", "ssh",
    "ssh_authorized_keys", "ssh_deletekeys", "ssh_fp_console_blacklist", "ssh_genkeytypes", "ssh_import_id",
    "ssh_key_console_blacklist", "ssh_keys", "ssh_publish_hostkeys", "ssh_pwauth", "ssh_quiet_keygen",
    "swap", "syslog_fix_perms", "system_info", "timezone", "ubuntu_advantage", "ubuntu_pro", "updates",
    "user", "users", "vendor_data", "wireguard", "write_files", "yum_repo_dir", "yum_repos", "zypper",
))

# network-config: what cloud-init's own parser accepts (v1 command types, v2 sections)
NETWORK_V1_TYPES = frozenset(("physical", "bond", "bridge", "vlan", "nameserver", "route", "infiniband", "loopback"))
NETWORK_V2_SECTIONS = frozenset(("ethernets", "bonds", "bridges", "vlans", "wifis"))
NETWORK_V2_NETPLAN_ONLY = frozenset(("tunnels", "vrfs", "modems", "nm-devices"))

USER_KEYS = frozenset(("name", "password", "ssh_authorized_keys", "sudo", "groups", "shell", "lock_passwd", "gecos"))
WRITE_FILES_KEYS = frozenset(("path", "content", "source", "owner", "permissions", "encoding", "append", "defer"))

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


def _load_yaml(text, what):
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


def _plain(value, what):
    """A deep copy of ``value`` made of plain dict/list/str/int/float/bool/None (what YAML can hold)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, dict):
        return dict((_plain(k, what), _plain(v, what)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v, what) for v in value]
    raise InvalidInputError("%s: a value of type %s cannot be written to YAML" % (what, type(value).__name__))


def _strip_none(mapping):
    return dict((k, v) for k, v in mapping.items() if v is not None)


# --- passwords: SHA-512 crypt ----------------------------------------------------------------------

_CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# byte order of the final SHA-512 crypt encoding (Drepper, "Unix crypt using SHA-256 and SHA-512")
_SHA512_ORDER = ((0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
                 (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
                 (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41))
_SALT_KEY = b"virtops.libvirt cloudinit password salt v1"
_HASH_RE = re.compile(r"^\$6\$(?:rounds=(\d+)\$)?([^$:\n]{0,16})\$([./0-9A-Za-z]{86})$")


def _b64_24(byte2, byte1, byte0, count):
    word = (byte2 << 16) | (byte1 << 8) | byte0
    out = []
    for _i in range(count):
        out.append(_CRYPT_ALPHABET[word & 0x3F])
        word >>= 6
    return "".join(out)


def _repeat_to(data, length):
    return (data * (length // len(data) + 1))[:length]


def sha512_crypt_builtin(password, salt, rounds=None):
    """SHA-512 crypt per the published specification (what glibc's ``crypt()`` does for ``$6$``).

    ``salt`` is used up to 16 characters; ``rounds`` None means the implicit 5000 (no ``rounds=`` field).
    """
    pw = password.encode("utf-8")
    salt_b = salt.encode("ascii")[:16]
    explicit = rounds is not None
    rounds = 5000 if rounds is None else min(max(int(rounds), 1000), 999999999)
    digest_b = hashlib.sha512(pw + salt_b + pw).digest()
    ctx = hashlib.sha512(pw + salt_b)
    ctx.update(_repeat_to(digest_b, len(pw)))
    length = len(pw)
    while length:
        ctx.update(digest_b if length & 1 else pw)
        length >>= 1
    digest_a = ctx.digest()
    p_bytes = _repeat_to(hashlib.sha512(pw * len(pw)).digest(), len(pw)) if pw else b""
    s_bytes = _repeat_to(hashlib.sha512(salt_b * (16 + digest_a[0])).digest(), len(salt_b)) if salt_b else b""
    current = digest_a
    for index in range(rounds):
        ctx = hashlib.sha512()
        ctx.update(p_bytes if index & 1 else current)
        if index % 3:
            ctx.update(s_bytes)
        if index % 7:
            ctx.update(p_bytes)
        ctx.update(current if index & 1 else p_bytes)
        current = ctx.digest()
    encoded = "".join(_b64_24(current[a], current[b], current[c], 4) for a, b, c in _SHA512_ORDER)
    encoded += _b64_24(0, 0, current[63], 2)
    prefix = "$6$rounds=%d$" % rounds if explicit else "$6$"
    return "%s%s$%s" % (prefix, salt_b.decode("ascii"), encoded)


def _crypt_module():
    """The standard library's ``crypt`` when it exists (removed in Python 3.13) and does SHA-512."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt as crypt_mod  # pylint: disable=import-outside-toplevel,deprecated-module
    except ImportError:
        return None
    try:
        probe = crypt_mod.crypt("probe", "$6$saltsalt")
    except Exception:  # some libcs raise instead of returning None
        return None
    if not probe or not probe.startswith("$6$saltsalt$"):
        return None
    return crypt_mod


def crypt_backend():
    """Name of the SHA-512 crypt implementation :func:`sha512_crypt` uses: crypt, passlib or builtin."""
    if _crypt_module() is not None:
        return "crypt"
    if passlib_sha512_crypt is not None:
        return "passlib"
    return "builtin"


def sha512_crypt(password, salt, rounds=None):
    """SHA-512 crypt of ``password`` with ``salt`` (``$6$[rounds=N$]salt$hash``).

    Uses the ``crypt`` module if present, else passlib, else :func:`sha512_crypt_builtin`; all three
    give the same string for the same salt and rounds.
    """
    if not salt or any(c not in _CRYPT_ALPHABET for c in salt):
        raise InvalidInputError("a crypt salt is 1 to 16 characters of [./0-9A-Za-z]")
    salt = salt[:16]
    if rounds is not None:
        rounds = min(max(int(rounds), 1000), 999999999)  # as the specification clamps (libxcrypt refuses instead)
    setting = "$6$%s%s" % ("rounds=%d$" % rounds if rounds is not None else "", salt)
    backend = crypt_backend()
    if backend == "crypt":
        hashed = _crypt_module().crypt(password, setting)
    elif backend == "passlib":
        hashed = passlib_sha512_crypt.using(salt=salt, rounds=rounds or 5000).hash(password)
        if rounds == 5000:  # passlib leaves out an explicit rounds=5000
            hashed = hashed.replace("$6$", "$6$rounds=5000$", 1) if "$rounds=" not in hashed else hashed
    else:
        hashed = sha512_crypt_builtin(password, salt, rounds)
    if not hashed or not hashed.startswith(setting + "$"):
        raise BackendError("SHA-512 crypt (%s) failed" % backend)
    return hashed


def derive_salt(seed_id, user):
    """A 16-character crypt salt derived from the seed's identity and the user name.

    Deterministic, so the same password gives the same hash on every run (idempotency); unique per
    seed and user.  It deliberately does not depend on the password: a salt that is a fast function
    of the password would let anyone test guesses against the salt alone, bypassing crypt's rounds.
    """
    msg = ("%s\0%s" % (seed_id, user)).encode("utf-8")
    digest = hmac.new(_SALT_KEY, msg, hashlib.sha256).digest()
    return "".join(_CRYPT_ALPHABET[b % 64] for b in digest[:16])


def hash_password(password, seed_id, user):
    """``$6$`` hash of ``password`` for ``user`` in the seed ``seed_id``; the same inputs give the same hash."""
    if not isinstance(password, str) or password == "":
        raise InvalidInputError("a password must be a non-empty string")
    return sha512_crypt(password, derive_salt(seed_id, user))


def verify_password(password, hashed):
    """True when ``hashed`` (a ``$6$`` crypt string) is the hash of ``password``."""
    match = _HASH_RE.match(hashed or "")
    if not match:
        return False
    rounds = int(match.group(1)) if match.group(1) else None
    again = sha512_crypt(password, match.group(2), rounds)
    return hmac.compare_digest(again, hashed)


# --- masking for diffs -----------------------------------------------------------------------------

_CRYPT_HASH_IN_TEXT = re.compile(r"\$(?:1|2[abxy]?|5|6|7|y|gy|sha1|md5)\$[^\s'\"]+")
_SECRET_LINE = re.compile(r"^(\s*(?:-\s+)?(?:password|passwd|hashed_passwd|plain_text_passwd)\s*:\s*)(\S.*)$",
                          re.MULTILINE)


_MASK_SALT = "virtops.mask"


def _fingerprint(secret):
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:8]


def _slow_fingerprint(secret):
    """A fingerprint of a clear-text secret that costs a guesser as much as its SHA-512 crypt hash."""
    return _fingerprint(sha512_crypt(secret, _MASK_SALT))


def mask_secrets(text, secrets=()):
    """``text`` with crypt hashes, password values and the given ``secrets`` replaced by ``<masked ...>``.

    A short fingerprint makes a changed password visible in a diff without showing it: 8 hex digits
    of a SHA-256 of the crypt hash, or of a SHA-512 crypt of a clear-text value (so that testing a
    guess against it costs as much as against the hash in the seed).
    """
    text = _CRYPT_HASH_IN_TEXT.sub(lambda m: "<masked password hash %s>" % _fingerprint(m.group(0)), text)
    text = _SECRET_LINE.sub(lambda m: m.group(1) + (m.group(2) if m.group(2).startswith("<masked")
                                                    else "<masked password %s>" % _slow_fingerprint(m.group(2))), text)
    return _secrets.mask(text, secrets, lambda s: "<masked secret %s>" % _slow_fingerprint(s))


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
    data = _load_yaml(body, what)
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
        data = _plain(user_data or {}, "user_data")
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
        data = _plain(vendor_data, "vendor_data")
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
        network_config = _load_yaml(network_config, "network_config")
    config = validate_network_config(_plain(network_config, "network_config"), warn)
    return dump_yaml(config).encode("utf-8")


def content_sha256(files):
    """SHA-256 (hex) over a seed's files: for each name in sorted order, name, NUL, length, NUL, bytes.

    Only the files count (no ISO metadata, no timestamps), so a seed read back from any ISO, whatever
    tool wrote it, hashes the same as the files it was built from.
    """
    hasher = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        hasher.update(name.encode("utf-8") + b"\0" + str(len(data)).encode("ascii") + b"\0")
        hasher.update(data)
    return hasher.hexdigest()


def default_instance_id(files):
    """``iid-`` + 20 hex digits of :func:`content_sha256` of ``files`` (meta-data without instance-id).

    Any change of user-data, network-config, vendor-data or the rest of meta-data gives a new
    instance-id, so cloud-init treats the changed seed as a new instance.
    """
    return "iid-" + content_sha256(files)[:20]


class Seed:
    """A rendered seed: ``files`` (name -> bytes, in :data:`SEED_FILES` order), ``instance_id``,
    ``content_sha256``, ``app_id`` (the ISO application identifier) and ``warnings``."""

    def __init__(self, files, instance_id, warnings_list):
        self.files = files
        self.instance_id = instance_id
        self.content_sha256 = content_sha256(files)
        self.app_id = APP_ID_PREFIX + self.content_sha256[:40].upper()
        self.warnings = list(warnings_list)

    def file_list(self):
        return file_list(self.files)


def file_list(files):
    """``[{name, size}]`` in :data:`SEED_FILES` order (other names after, sorted)."""
    order = [n for n in SEED_FILES if n in files] + sorted(n for n in files if n not in SEED_FILES)
    return [dict(name=n, size=len(files[n])) for n in order]


def build_seed(options, seed_id):
    """Validate ``options`` and render the seed; raises InvalidInputError, never does I/O.

    ``options`` is a dict with the keys of :data:`SEED_OPTIONS` (missing keys = not given).
    ``seed_id`` identifies where the seed is stored (``volume:POOL/NAME`` or ``file:PATH``); it
    salts password hashes so that they are stable for one seed and differ between seeds.
    Warnings (unknown cloud-config keys...) are in ``Seed.warnings``.
    """
    require_yaml()
    warnings_list = []
    warn = warnings_list.append
    user_data = render_user_data(options, seed_id, warn)
    network = render_network_config(options.get("network_config"), warn)
    vendor = render_vendor_data(options.get("vendor_data"), warn)

    meta = options.get("meta_data")
    if meta is not None and not isinstance(meta, dict):
        raise InvalidInputError("meta_data must be a dict")
    meta = _plain(meta or {}, "meta_data")
    hostname = options.get("hostname")
    if hostname is not None:
        if meta.get("local-hostname") not in (None, hostname):
            raise InvalidInputError("hostname %r and meta_data local-hostname %r differ: give one"
                                    % (hostname, meta["local-hostname"]))
        meta["local-hostname"] = hostname
    instance_id = meta.pop("instance-id", None)
    if instance_id is not None and (isinstance(instance_id, (bool, dict, list)) or str(instance_id).strip() == ""):
        raise InvalidInputError("meta_data instance-id must be a non-empty string")

    files = {"user-data": user_data, "meta-data": dump_yaml(meta).encode("utf-8")}
    if network is not None:
        files["network-config"] = network
    if vendor is not None:
        files["vendor-data"] = vendor
    if instance_id is None:
        instance_id = default_instance_id(files)
    meta["instance-id"] = str(instance_id)
    files["meta-data"] = dump_yaml(meta).encode("utf-8")
    files = dict((n, files[n]) for n in SEED_FILES if n in files)
    total = sum(len(v) for v in files.values())
    if total > MAX_CONTENT_BYTES:
        raise InvalidInputError("the seed's files are %d bytes; at most %d are supported" % (total, MAX_CONTENT_BYTES))
    return Seed(files, str(instance_id), warnings_list)


def seed_texts(files, secrets=()):
    """The seed's files as one text for diffs (``# ---- name ----`` headers), secrets masked: the
    crypt hashes and password lines, the given ``secrets`` and those the files show themselves."""
    parts = []
    for entry in file_list(files):
        text = files[entry["name"]].decode("utf-8", "replace")
        hidden = set(secrets) | _secrets.text_secrets(text)
        parts.append("# ---- %s ----\n%s%s" % (entry["name"], mask_secrets(text, hidden), "" if text.endswith("\n") else "\n"))
    return "".join(parts)


# --- reading an ISO 9660 image ---------------------------------------------------------------------


class IsoReadError(Exception):
    """The bytes are not an ISO 9660 image this reader understands."""


_SECTOR = 2048
_JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")


def _dir_entries(data, extent, size, block):
    """Directory records of one directory: dicts name (raw bytes), extent, size, flags, su (system use)."""
    start = extent * block
    end = start + size
    if size > 4 * 1024 * 1024 or end > len(data) or start < 0:
        raise IsoReadError("directory extent outside the image")
    pos = start
    while pos < end:
        length = data[pos]
        if length == 0:
            pos = (pos // _SECTOR + 1) * _SECTOR
            continue
        rec = data[pos:pos + length]
        if length < 34 or len(rec) < length:
            raise IsoReadError("truncated directory record")
        name_len = rec[32]
        if 33 + name_len > length:
            raise IsoReadError("bad directory record")
        su_start = 33 + name_len + (0 if name_len % 2 else 1)
        yield dict(name=rec[33:33 + name_len], extent=struct.unpack_from("<I", rec, 2)[0],
                   size=struct.unpack_from("<I", rec, 10)[0], flags=rec[25], su=rec[su_start:])
        pos += length


def _susp_entries(su):
    pos = 0
    while pos + 4 <= len(su):
        sig, length = su[pos:pos + 2], su[pos + 2]
        if length < 4 or pos + length > len(su):
            return
        yield sig, su[pos:pos + length]
        if sig == b"ST":
            return
        pos += length


def _rr_name(su):
    parts = [entry[5:] for sig, entry in _susp_entries(su) if sig == b"NM" and len(entry) >= 5 and not entry[4] & 0x06]
    return b"".join(parts).decode("utf-8", "replace") if parts else None


def _strip_version(name):
    return re.sub(r";\d*$", "", name)


def read_seed_iso(data):
    """Read an ISO 9660 image (bytes): dict(volume_id, application_id, names, files={name: bytes}).

    Only the root directory is read (a seed has no subdirectories).  File names come from Rock Ridge
    when present (what Linux shows, so what cloud-init sees), else from Joliet, else the ISO 9660
    names (version and trailing dot removed, lower case); ``names`` says which.  Raises IsoReadError.
    """
    if len(data) < 17 * _SECTOR:
        raise IsoReadError("too small for an ISO 9660 image")
    pvd = joliet = None
    for index in range(16, 16 + 32):
        desc = data[index * _SECTOR:(index + 1) * _SECTOR]
        if len(desc) < _SECTOR or desc[1:6] != b"CD001":
            raise IsoReadError("no ISO 9660 volume descriptor set")
        if desc[0] == 255:
            break
        if desc[0] == 1 and pvd is None:
            pvd = desc
        elif desc[0] == 2 and desc[88:91] in _JOLIET_ESCAPES and joliet is None:
            joliet = desc
    if pvd is None:
        raise IsoReadError("no ISO 9660 primary volume descriptor")
    block = struct.unpack_from("<H", pvd, 128)[0]
    if block not in (512, 1024, 2048):
        raise IsoReadError("unsupported logical block size %d" % block)

    def root_of(desc):
        rec = desc[156:190]
        return struct.unpack_from("<I", rec, 2)[0], struct.unpack_from("<I", rec, 10)[0]

    entries = list(_dir_entries(data, *root_of(pvd), block=block))
    rock_ridge = bool(entries) and entries[0]["name"] == b"\x00" and entries[0]["su"][:2] == b"SP"
    names = "iso9660"
    if rock_ridge:
        names = "rockridge"
    elif joliet is not None:
        entries = list(_dir_entries(data, *root_of(joliet), block=block))
        names = "joliet"
    files = {}
    for entry in entries:
        if entry["name"] in (b"\x00", b"\x01") or entry["flags"] & 0x02:
            continue
        if entry["flags"] & 0x80:
            raise IsoReadError("multi-extent files are not supported")
        if names == "rockridge":
            name = _rr_name(entry["su"]) or _strip_version(entry["name"].decode("ascii", "replace")).rstrip(".").lower()
        elif names == "joliet":
            name = _strip_version(entry["name"].decode("utf-16-be", "replace"))
        else:
            name = _strip_version(entry["name"].decode("ascii", "replace")).rstrip(".").lower()
        start = entry["extent"] * block
        if start + entry["size"] > len(data):
            raise IsoReadError("file %r lies outside the image" % name)
        files[name] = bytes(data[start:start + entry["size"]])
    return dict(
        volume_id=pvd[40:72].decode("ascii", "replace").rstrip(" \x00"),
        application_id=pvd[574:702].decode("ascii", "replace").rstrip(" \x00"),
        names=names,
        files=files,
    )


def inspect_seed(raw):
    """What an existing file/volume holds: dict(is_seed, reason, files, content_sha256, instance_id)."""
    out = dict(is_seed=False, reason=None, files=None, content_sha256=None, instance_id=None)
    try:
        iso = read_seed_iso(raw)
    except IsoReadError as exc:
        out["reason"] = "not an ISO 9660 image (%s)" % exc
        return out
    if iso["volume_id"].lower() != VOLUME_ID:
        out["reason"] = "an ISO 9660 image with volume id %r, not %r" % (iso["volume_id"], VOLUME_ID)
        return out
    out.update(is_seed=True, files=iso["files"], content_sha256=content_sha256(iso["files"]))
    meta = iso["files"].get("meta-data")
    if meta is not None and yaml is not None:
        try:
            loaded = yaml.safe_load(meta.decode("utf-8", "replace"))
        except yaml.YAMLError:
            loaded = None
        if isinstance(loaded, dict) and loaded.get("instance-id") is not None:
            out["instance_id"] = str(loaded["instance-id"])
    return out


# --- building the ISO ------------------------------------------------------------------------------


def _iso9660_name(name):
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())[:30] + ".;1"


class IsoBuilder:
    """Builds a seed ISO from files.  ``build(files, app_id)`` returns the image bytes."""

    name = None

    def build(self, files, app_id):
        raise NotImplementedError

    def build_checked(self, files, app_id):
        """:meth:`build`, then read the image back: it must be a ``cidata`` seed with exactly ``files``."""
        image = self.build(files, app_id)
        try:
            back = read_seed_iso(image)
        except IsoReadError as exc:
            raise BackendError("the ISO %s built cannot be read back: %s" % (self.name, exc))
        if back["volume_id"] != VOLUME_ID or back["files"] != files:
            raise BackendError("the ISO %s built does not hold the seed's files as given (volume id %r, files %s)"
                               % (self.name, back["volume_id"], sorted(back["files"])))
        return image


class PycdlibBuilder(IsoBuilder):
    """ISO 9660 level 3 with Joliet and Rock Ridge 1.09, written in memory by pycdlib."""

    name = "pycdlib"

    def build(self, files, app_id):
        if pycdlib is None:
            raise MissingDependencyError("the Python library pycdlib is not installed on the managed node",
                                         exception=PYCDLIB_IMPORT_ERROR)
        iso = pycdlib.PyCdlib()
        out = io.BytesIO()
        try:
            iso.new(interchange_level=3, sys_ident="LINUX", vol_ident=VOLUME_ID, app_ident_str=app_id,
                    joliet=3, rock_ridge="1.09")
        except pycdlib.pycdlibexception.PyCdlibException as exc:
            raise BackendError("pycdlib could not start the seed ISO: %s" % exc)
        try:
            for name, data in files.items():
                iso.add_fp(io.BytesIO(data), len(data), iso_path="/" + _iso9660_name(name), rr_name=name,
                           joliet_path="/" + name, file_mode=0o100444)
            iso.write_fp(out)
        except pycdlib.pycdlibexception.PyCdlibException as exc:
            raise BackendError("pycdlib could not build the seed ISO: %s" % exc)
        finally:
            iso.close()
        return out.getvalue()


class CommandBuilder(IsoBuilder):
    """``xorriso -as mkisofs``, ``genisoimage`` or ``mkisofs`` on a temporary directory (argv lists only)."""

    def __init__(self, name, binary, run_command):
        self.name = name
        self.binary = binary
        self.run_command = run_command

    def argv(self, output, source_dir, app_id):
        argv = [self.binary]
        if self.name == "xorriso":
            argv += ["-as", "mkisofs"]
        return argv + ["-quiet", "-output", output, "-volid", VOLUME_ID, "-appid", app_id, "-joliet",
                       "-rational-rock", "-input-charset", "utf-8", source_dir]

    def build(self, files, app_id):
        tmpdir = tempfile.mkdtemp(prefix="virtops-seed-")
        try:
            source = os.path.join(tmpdir, "root")
            os.mkdir(source)
            for name, data in files.items():
                with open(os.path.join(source, name), "wb") as handle:
                    handle.write(data)
            output = os.path.join(tmpdir, "seed.iso")
            argv = self.argv(output, source, app_id)
            rc, out, err = self.run_command(argv)
            if rc != 0:
                raise CommandError("%s failed to build the seed ISO (rc=%d): %s" % (self.name, rc, (err or out).strip()),
                                   argv, rc, out, err)
            with open(output, "rb") as handle:
                return handle.read()
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)


def choose_builder(preference="auto", run_command=None, which=shutil.which):
    """The ISO builder to use: ``preference`` is ``auto`` or one of :data:`BUILDERS`.

    ``auto`` takes pycdlib when it can be imported, else the first of xorriso, genisoimage and mkisofs
    found in PATH.  Commands run through ``run_command(argv) -> (rc, stdout, stderr)``.
    MissingDependencyError names what to install when nothing fits.
    """
    preference = preference or "auto"
    if preference not in ("auto",) + BUILDERS:
        raise InvalidInputError("iso_builder must be auto or one of %s" % ", ".join(BUILDERS))
    if preference in ("auto", "pycdlib") and pycdlib is not None:
        return PycdlibBuilder()
    if preference == "pycdlib":
        raise MissingDependencyError("iso_builder=pycdlib, but the Python library pycdlib is not installed on the "
                                     "managed node: pip install pycdlib", exception=PYCDLIB_IMPORT_ERROR)
    for name in BUILDERS[1:] if preference == "auto" else (preference,):
        binary = which(name)
        if binary:
            if run_command is None:
                raise BackendError("building the seed with %s needs a command runner" % name)
            return CommandBuilder(name, binary, run_command)
    if preference != "auto":
        raise MissingDependencyError("iso_builder=%s, but the command %s is not installed on the managed node"
                                     % (preference, preference))
    raise MissingDependencyError(
        "building a cloud-init seed ISO needs the Python library pycdlib (pip install pycdlib) or one of the "
        "commands xorriso, genisoimage or mkisofs (Debian/Ubuntu: apt-get install xorriso; Fedora/RHEL: "
        "dnf install xorriso) on the managed node",
        exception=PYCDLIB_IMPORT_ERROR,
    )


# --- where a seed is stored: a file or a pool volume -----------------------------------------------


class FileTarget:
    """A seed stored as a file on the managed node: written to a temporary file and renamed into place."""

    kind = "file"

    def __init__(self, path, mode=None, on_missing_dir=None):
        """``on_missing_dir(error)``: called when the directory of ``path`` does not exist (check
        mode: an earlier task may make it); without it the error is raised."""
        if not isinstance(path, str) or not os.path.isabs(path):
            raise InvalidInputError("path must be an absolute path, not %r" % (path,))
        self.on_missing_dir = on_missing_dir
        self.path = os.path.normpath(path)
        self.mode = parse_mode(mode)
        self.seed_id = "file:" + self.path
        self.label = self.path
        self._image = None

    def read(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackendError("cannot read %s: %s" % (self.path, exc))
        if stat.S_ISDIR(st.st_mode):
            raise InvalidInputError("path %s is a directory" % self.path)
        current = dict(path=self.path, mode=stat.S_IMODE(st.st_mode), owner=(st.st_uid, st.st_gid), raw=None)
        if st.st_size > MAX_READ_BYTES or not stat.S_ISREG(st.st_mode):
            current.update(is_seed=False, reason="not a regular file of at most %d bytes" % MAX_READ_BYTES,
                           files=None, content_sha256=None, instance_id=None)
            return current
        with open(self.path, "rb") as handle:
            current["raw"] = handle.read()
        current.update(inspect_seed(current["raw"]))
        return current

    def predicted_path(self, current):
        return self.path

    def desired_mode(self, current):
        if self.mode is not None:
            return self.mode
        return current["mode"] if current is not None else DEFAULT_FILE_MODE

    def check_writable(self):
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            error = NotFoundError("directory %s does not exist on the managed node" % parent)
            if self.on_missing_dir is None:
                raise error
            self.on_missing_dir(error)

    def _write(self, data, mode, owner=None):
        """Write ``data`` to a temporary file beside the target, then rename it over the target (atomic)."""
        parent = os.path.dirname(self.path)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix="." + os.path.basename(self.path) + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            if owner is not None and owner != (os.getuid(), os.getgid()):
                try:
                    os.chown(tmp, owner[0], owner[1])  # a replaced file keeps its owner and group
                except PermissionError:
                    pass
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def plan_write(self, plan, seed, builder, current):
        self.check_writable()
        mode = self.desired_mode(current)
        old = current["raw"] if current is not None else None
        old_mode = current["mode"] if current is not None else None
        owner = current["owner"] if current is not None else None

        def build():
            self._image = builder.build_checked(seed.files, seed.app_id)

        def write():
            self._write(self._image, mode, owner)

        def undo():
            if old is None:
                if os.path.exists(self.path):
                    os.unlink(self.path)
            else:
                self._write(old, old_mode, owner)

        plan.add("build the seed ISO with %s" % builder.name, build)
        plan.add("%s %s (a temporary file renamed into place)" % ("replace" if current else "write", self.path),
                 write, undo if current is None or old is not None else None)

    def plan_mode(self, plan, mode, current):
        old_mode = current["mode"]
        plan.add("set the mode of %s to %04o" % (self.path, mode), lambda: os.chmod(self.path, mode),
                 lambda: os.chmod(self.path, old_mode))

    def plan_remove(self, plan, current):
        old = current.get("raw")
        old_mode, owner = current["mode"], current["owner"]
        plan.add("remove %s" % self.path, lambda: os.unlink(self.path),
                 (lambda: self._write(old, old_mode, owner)) if old is not None else None)


def download_volume(conn, vol, length):
    """The first ``length`` bytes of volume ``vol`` through a libvirt stream (works for remote hosts)."""
    chunks = []
    with volume_stream(conn, "downloading volume %r" % vol.name()) as stream:
        vol.download(stream, 0, length, 0)
        stream.recvAll(lambda _stream, data, _opaque: chunks.append(data), None)
    return b"".join(chunks)


def upload_bytes(conn, vol, data):
    """Write ``data`` into volume ``vol`` from offset 0 through a libvirt stream."""
    source = io.BytesIO(data)
    with volume_stream(conn, "uploading the seed into volume %r" % vol.name()) as stream:
        vol.upload(stream, 0, len(data), 0)
        stream.sendAll(lambda _stream, nbytes, _opaque: source.read(nbytes), None)


class VolumeTarget:
    """A seed stored as a raw volume in an active libvirt storage pool (created, then uploaded)."""

    kind = "volume"

    def __init__(self, conn, pool_name, name, uri=None, on_missing_pool=None):
        """``on_missing_pool(error)``: called when the pool does not exist or is not active (the
        seed is then absent); without it the error is raised."""
        if not pool_name:
            raise InvalidInputError("pool must not be empty")
        validate_name(name)
        self.conn = conn
        self.uri = uri
        self.on_missing_pool = on_missing_pool
        self.pool_missing = False
        self.pool_name = pool_name
        self.name = name
        self.seed_id = "volume:%s/%s" % (pool_name, name)
        self.label = name
        self._pool = None
        self._vol = None
        self._created = None
        self._image = None
        self._users = None

    @property
    def pool(self):
        if self._pool is None and not self.pool_missing:
            try:
                self._pool = lookup_pool(self.conn, self.pool_name)
            except (NotFoundError, ConflictError) as exc:
                if self.on_missing_pool is None:
                    raise
                self.pool_missing = True
                self.on_missing_pool(exc)
        return self._pool

    def read(self):
        if self.pool is None:
            return None
        self._vol = lookup_volume(self.pool, self.name)
        if self._vol is None:
            return None
        model = parse_volume_xml(volume_xml(self._vol))
        current = dict(path=model["path"], format=model["format"], capacity=model["capacity"], raw=None)
        if model["format"] not in ("raw", "iso") or (model["capacity"] or 0) > MAX_READ_BYTES:
            current.update(is_seed=False, files=None, content_sha256=None, instance_id=None,
                           reason="a %s volume of %s bytes" % (model["format"], model["capacity"]))
            return current
        current["raw"] = download_volume(self.conn, self._vol, model["capacity"])
        current.update(inspect_seed(current["raw"]))
        return current

    def predicted_path(self, current):
        if current is not None:
            return current["path"]
        return volume_path(self.pool, self.name) if self.pool is not None else None

    def desired_mode(self, current):
        return None

    def domain_users(self, path):
        if self._users is None:
            self._users = disk_users(self.conn)
        return users_of(self._users, self.pool_name, self.name, path)

    def _call(self, func, what):
        return retry_busy(func, what)

    def _create(self, size):
        xml = _xml.to_string(build_volume_xml(self.name, size, "raw", allocation=0), pretty=False)
        self._created = self._call(lambda: self.pool.createXML(xml, 0), "creating volume %r" % self.name)
        # recorded raw: whatever libvirt probes from the ISO later, the seed is attached as raw
        path = _record.local_file(self.uri, parse_volume_xml(volume_xml(self._created)))
        if path:
            _record.write_record(path, _record.new_record("raw", "cloudinit"))
        return self._created

    def _delete_created(self):
        vol, self._created = self._created, None
        if vol is not None:
            self._call(lambda: vol.delete(0), "deleting the half-made volume %r" % self.name)

    def _restore(self, data):
        vol = self._create(len(data))
        self._created = None
        upload_bytes(self.conn, vol, data)
        refresh_pool(self.pool)

    def plan_write(self, plan, seed, builder, current):
        pool = self.pool_name

        def build():
            self._image = builder.build_checked(seed.files, seed.app_id)

        def create():
            self._create(len(self._image))

        def upload():
            upload_bytes(self.conn, self._created, self._image)
            refresh_pool(self.pool)

        plan.add("build the seed ISO with %s" % builder.name, build)
        if current is not None:
            old_vol, old = self._vol, current.get("raw")
            for user in self.domain_users(current["path"]):
                if user["active"]:
                    plan.warn("seed volume %r is attached to running domain %r (%s): the guest sees the new seed "
                              "only after it is restarted" % (self.name, user["domain"], user["target"]))
            plan.add("delete the old seed volume %r from pool %r" % (self.name, pool),
                     lambda: self._call(lambda: old_vol.delete(0), "deleting volume %r" % self.name),
                     (lambda: self._restore(old)) if old is not None else None)
        plan.add("create raw volume %r in pool %r for the seed" % (self.name, pool), create, self._delete_created)
        plan.add("upload the seed ISO into volume %r" % self.name, upload)

    def plan_remove(self, plan, current):
        vol, old = self._vol, current.get("raw")
        plan.add("delete seed volume %r from pool %r" % (self.name, self.pool_name),
                 lambda: self._call(lambda: vol.delete(0), "deleting volume %r" % self.name),
                 (lambda: self._restore(old)) if old is not None else None)


# --- the resource ----------------------------------------------------------------------------------


class CloudInitResource(Resource):
    """The ``cloudinit`` module: a NoCloud seed as volume ``name`` in ``pool``, or as file ``path``.

    ``params``: the module's parameters (``ctx.params`` unless given), see ``plugins/modules/cloudinit.py``.
    """

    kind = "cloud-init seed"

    def __init__(self, ctx, params=None):
        super(CloudInitResource, self).__init__(ctx)
        if params is not None:
            self.params = dict(params)
        p = self.params
        # first of all: a message about bad content must not show a password in it
        self.secrets = _secrets.seed_secrets(p)
        ctx.secret(*self.secrets)
        self.state = p.get("state") or "present"
        if self.state not in ("present", "absent"):
            raise InvalidInputError("state must be present or absent")
        if p.get("path") and (p.get("pool") or p.get("name")):
            raise InvalidInputError("give either path, or pool and name")
        if p.get("path"):
            self.target = FileTarget(p["path"], p.get("mode"), on_missing_dir=ctx.assume)
        elif p.get("pool") and p.get("name"):
            if p.get("mode") is not None:
                raise InvalidInputError("mode applies to a seed stored at path, not to a pool volume")
            self.target = VolumeTarget(ctx.conn, p["pool"], p["name"], ctx.uri, on_missing_pool=self._missing_pool)
        else:
            raise InvalidInputError("give either path, or pool and name")
        self.seed = build_seed(p, self.target.seed_id) if self.state == "present" else None

    @property
    def name(self):
        return self.target.label

    def _missing_pool(self, error):
        """A seed in a pool that does not exist is absent; to make one, in check mode, an earlier task
        may create (or start) the pool."""
        if self.state == "absent" and isinstance(error, NotFoundError):
            return
        self.ctx.assume(error)

    def read(self):
        return self.target.read()

    def desired(self, current):
        if self.seed is None:
            return None
        return dict(content_sha256=self.seed.content_sha256,
                    mode=self.target.mode if self.target.kind == "file" else None)

    def plan(self, current, desired, diff, plan):
        for text in (self.seed.warnings if self.seed is not None else ()):
            plan.warn(text)
        force = bool(self.params.get("force"))
        if current is not None and not current["is_seed"] and not force and (desired is None or diff):
            raise ConflictError(
                "%s %s exists and is not a cloud-init seed (%s): refusing to %s it; set force=true to do it anyway"
                % (self.target.kind, self.name, current["reason"], "remove" if desired is None else "overwrite"),
            )
        if desired is None:
            if current is not None:
                guard_remove(self.ctx, self.target, current, plan, force=force)
                self.target.plan_remove(plan, current)
            return
        if current is None or diff.touches("content_sha256"):
            builder = choose_builder(self.params.get("iso_builder"), self.ctx.run_command)
            self.target.plan_write(plan, self.seed, builder, current)
        elif diff.touches("mode"):
            self.target.plan_mode(plan, desired["mode"], current)

    def predict(self, current, desired):
        if desired is None:
            return None
        return dict(path=self.target.predicted_path(current), is_seed=True, files=self.seed.files,
                    content_sha256=self.seed.content_sha256, instance_id=self.seed.instance_id,
                    mode=self.target.desired_mode(current))

    def result(self, state, outcome):
        if state is None:
            return dict(path=None, instance_id=None, content_sha256=None, files=[])
        return dict(
            path=state.get("path"),
            instance_id=state.get("instance_id"),
            content_sha256=state.get("content_sha256"),
            files=file_list(state["files"]) if state.get("files") is not None else [],
        )

    def diff_views(self, current, desired):
        if current is None:
            before = ""
        elif not current["is_seed"]:
            before = "# %s (not a cloud-init seed)\n" % current["reason"]
        else:
            before = seed_texts(current["files"], self.secrets)
        after = "" if desired is None else seed_texts(self.seed.files, self.secrets)
        return before, after


def guard_remove(ctx, target, current, plan, detached_from=None, force=False):
    """Removing a seed that a VM (other than ``detached_from``) still has attached is refused unless
    ``force`` (check mode: a warning, see :func:`_usage.guard`).  A seed file is looked up in libvirt
    over a connection of its own when the run has none (``cloudinit`` with ``path``)."""
    volumes = [(target.pool_name, target.name)] if target.kind == "volume" else []
    exclude = [detached_from] if detached_from else []
    if ctx.conn is not None:
        users, dependants = usage(ctx).users_of([current["path"]], volumes, exclude_vms=exclude)
    else:
        connection = Connection(ctx.uri or ctx.params.get("uri"))
        try:
            users, dependants = Usage(connection.open()).users_of([current["path"]], volumes, exclude_vms=exclude)
        except VirtopsError as exc:
            plan.warn("could not ask libvirt at %s whether a VM uses %s: %s" % (connection.uri, target.label, exc.msg))
            return
        finally:
            connection.close()
    error = in_use_error("seed %s %s" % (target.kind, target.label if target.kind == "file" else repr(target.name)),
                         users, dependants, advice="detach it first (a VM whose disk is missing does not start)",
                         action="remove it")
    guard(ctx, error, force, plan.warn)


def _seed_params(options, pool, name, path, state, force, iso_builder, mode=None):
    params = dict((k, options.get(k)) for k in SEED_OPTIONS)
    params.update(pool=pool, name=name, path=path, state=state, force=force, iso_builder=iso_builder, mode=mode)
    return params


def ensure_seed(ctx, plan, options, pool=None, name=None, path=None, force=False, iso_builder="auto"):
    """Add to ``plan`` the steps that make the seed volume ``pool``/``name`` (or the file ``path``) hold ``options``.

    For resources that embed a seed (the ``vm`` module).  ``ctx`` is the run's Context (connection,
    command runner), ``plan`` the caller's :class:`~._reconcile.Plan`; ``options`` a dict with the keys
    of :data:`SEED_OPTIONS`.  Nothing happens until the plan executes; a later failing step of the
    plan undoes the seed steps too (a new volume is deleted, a replaced one restored).

    Returns dict(changed, path, pool, name, instance_id, content_sha256, files): ``changed`` is whether
    steps were added; ``path`` is the volume's path (predicted when it does not exist yet), for the
    domain's ``<disk>``.  Warnings go to ``plan.warn``.  Raises InvalidInputError on bad options,
    ConflictError when the volume exists and is not a seed (unless ``force``).
    """
    resource = CloudInitResource(ctx, params=_seed_params(options, pool, name, path, "present", force, iso_builder))
    result = plan.include(resource).result()
    result.update(pool=pool, name=name)
    return result


def remove_seed(ctx, plan, pool=None, name=None, path=None, detached_from=None, force=False):
    """Add to ``plan`` the step that deletes the seed volume ``pool``/``name`` (or the file ``path``).

    ``detached_from``: a domain whose reference to the volume the same plan removes (before this
    step); any other domain using the volume is a ConflictError unless ``force``.  Refuses to
    delete something that is not a seed unless ``force``.  Returns dict(changed, path).
    """
    resource = CloudInitResource(ctx, params=_seed_params({}, pool, name, path, "absent", force, "auto"))
    current = resource.read()
    if current is None:
        return dict(changed=False, path=None)
    if not current["is_seed"] and not force:
        raise ConflictError("%s %s is not a cloud-init seed (%s): refusing to remove it"
                            % (resource.target.kind, resource.name, current["reason"]))
    before = len(plan.steps)
    guard_remove(ctx, resource.target, current, plan, detached_from=detached_from, force=force)
    resource.target.plan_remove(plan, current)
    return dict(changed=len(plan.steps) > before, path=current["path"])
