# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""cloud-init seeds: rendering, validation, hashes, passwords, ISO builders read back by other tools, the resource.

Oracles we did not write: pycdlib's reader, ``isoinfo`` and ``xorriso`` for the ISOs, the ``crypt``
module (and passlib when installed) for SHA-512 crypt, PyYAML for the rendered YAML, libvirt's test
driver for volume creation and deletion.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import os
import shutil
import stat
import subprocess
from unittest.mock import patch

import pytest
import yaml

from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils.testing import patch_module_args

from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit import options as _options
from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit import targets as _targets
from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.content import build_seed, content_sha256, default_instance_id, mask_secrets
from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.render import classify_user_data_text, derive_salt, hash_password
from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.resource import CloudInitResource
from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.seed import ensure_seed, remove_seed
from ansible_collections.virtops.libvirt.plugins.module_utils._core.filemode import parse_mode
from ansible_collections.virtops.libvirt.plugins.module_utils._tools import crypt_hash as _crypt_hash
from ansible_collections.virtops.libvirt.plugins.module_utils._tools import iso as _iso
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.crypt_hash import crypt_backend, sha512_crypt_builtin, verify_password
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.iso import CommandBuilder, IsoReadError, PycdlibBuilder, choose_builder, read_iso
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    CommandError,
    ConflictError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Plan, reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.modules import cloudinit as cloudinit_module
from ansible_collections.virtops.libvirt.tests.unit.plugins.module_utils.crypt_oracles import crypt, passlib_sha512

try:
    import pycdlib
except ImportError:  # pragma: no cover
    pycdlib = None


POOL = "default-pool"
SEED_ID = "volume:default/s.iso"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvQ6uR5xOSnmIr3bnBxY6dTLvKlH8oW5uSg1c0JcG9x ops@example"
SECRET = "S3cret pässword!"
HAS = dict((tool, shutil.which(tool) is not None) for tool in ("xorriso", "genisoimage", "mkisofs", "isoinfo"))


def run_argv(argv, **_kwargs):
    assert isinstance(argv, list)  # never a shell string
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def opts(**kw):
    return dict(kw)


def user_data_of(seed):
    text = seed.files["user-data"].decode()
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def meta_of(seed):
    return yaml.safe_load(seed.files["meta-data"].decode())


# --- rendering ---------------------------------------------------------------------------------


def test_dict_user_data_becomes_sorted_cloud_config():
    seed = build_seed(opts(user_data={"timezone": "UTC", "runcmd": ["a", ["b", "c"]], "bootcmd": ["x"],
                                      "write_files": [{"path": "/etc/motd", "content": "line 1\nline 2\n"}]}), SEED_ID)
    text = seed.files["user-data"].decode()
    assert text.splitlines()[:2] == ["#cloud-config", "bootcmd:"]
    assert "content: |\n" in text  # multi-line strings as literal blocks, not escaped
    assert user_data_of(seed) == {"timezone": "UTC", "runcmd": ["a", ["b", "c"]], "bootcmd": ["x"],
                                  "write_files": [{"path": "/etc/motd", "content": "line 1\nline 2\n"}]}
    assert list(seed.files) == ["user-data", "meta-data"]
    assert seed.warnings == []


def test_no_user_data_is_an_empty_cloud_config():
    seed = build_seed({}, SEED_ID)
    assert seed.files["user-data"] == b"#cloud-config\n{}\n"
    assert set(meta_of(seed)) == {"instance-id"}


def test_long_and_special_strings_survive():
    long_key = "ssh-rsa " + "A" * 600 + " me@host"
    data = {"ssh_authorized_keys": [long_key], "final_message": "yes", "bootcmd": ["echo 'a: b' # c", "0644", "~"]}
    seed = build_seed(opts(user_data=data), SEED_ID)
    assert long_key in seed.files["user-data"].decode()  # no line folding
    assert user_data_of(seed) == data


@pytest.mark.parametrize("text", [
    "#cloud-config\nhostname: x\n# a comment kept as is\n",
    "#!/bin/sh\necho hi\n",
    "#include\nhttps://example.com/ud\n",
    "#cloud-boothook\n#!/bin/sh\necho boot\n",
    "## template: jinja\n#cloud-config\nhostname: {{ v1.local_hostname }}\n",
    "#cloud-config\n",
    'Content-Type: multipart/mixed; boundary="XX"\nMIME-Version: 1.0\n\n--XX\nContent-Type: text/cloud-config\n\n'
    "hostname: m\n--XX\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho hi\n--XX--\n",
])
def test_raw_text_is_kept_byte_for_byte(text):
    seed = build_seed(opts(user_data=text), SEED_ID)
    assert seed.files["user-data"] == text.encode()


@pytest.mark.parametrize("text,kind", [
    ("#cloud-config\n", "cloud-config"), ("#!/bin/bash\n", "script"), ("## template: jinja\n", "jinja"),
    ("#include-once\nx\n", "directive"), ("MIME-Version: 1.0\n", "multipart"), ("hostname: x\n", None), ("", None),
])
def test_classify_user_data_text(text, kind):
    assert classify_user_data_text(text) == kind


def test_convenience_options_merge_into_dict_user_data():
    seed = build_seed(opts(
        user_data={"timezone": "UTC"},
        hostname="web1.example.com",
        users=[{"name": "default"}, {"name": "ops", "password": SECRET, "ssh_authorized_keys": [KEY], "sudo": "ALL=(ALL) NOPASSWD:ALL",
                                     "groups": ["adm", "sudo"], "shell": "/bin/bash", "gecos": None, "lock_passwd": None}],
        password=SECRET,
        ssh_authorized_keys=[KEY],
        packages=["nginx", ["libc6", "2.36"]],
        runcmd=["echo hi", ["touch", "/x"]],
        write_files=[{"path": "/etc/x", "content": "x\n", "permissions": "0600"}],
    ), SEED_ID)
    data = user_data_of(seed)
    assert set(data) == {"timezone", "hostname", "users", "password", "ssh_authorized_keys", "packages", "runcmd", "write_files"}
    assert data["hostname"] == "web1.example.com"
    assert data["users"][0] == "default"
    ops = data["users"][1]
    assert set(ops) == {"name", "hashed_passwd", "lock_passwd", "ssh_authorized_keys", "sudo", "groups", "shell"}
    assert ops["lock_passwd"] is False and ops["ssh_authorized_keys"] == [KEY] and ops["groups"] == ["adm", "sudo"]
    assert verify_password(SECRET, ops["hashed_passwd"]) and ops["hashed_passwd"].startswith("$6$")
    assert verify_password(SECRET, data["password"]) and data["password"] != ops["hashed_passwd"]  # other salt
    assert data["packages"] == ["nginx", ["libc6", "2.36"]] and data["runcmd"] == ["echo hi", ["touch", "/x"]]
    assert meta_of(seed)["local-hostname"] == "web1.example.com"
    assert SECRET.encode() not in b"".join(seed.files.values())


def test_user_lock_passwd_explicit_wins():
    seed = build_seed(opts(users=[{"name": "ops", "password": SECRET, "lock_passwd": True}]), SEED_ID)
    assert user_data_of(seed)["users"][0]["lock_passwd"] is True


@pytest.mark.parametrize("option,value", [
    ("hostname", "h1"), ("users", [{"name": "u"}]), ("password", "pw"), ("ssh_authorized_keys", [KEY]),
    ("packages", ["p"]), ("runcmd", ["c"]), ("write_files", [{"path": "/p"}]),
])
def test_convenience_option_clashing_with_user_data_key(option, value):
    with pytest.raises(InvalidInputError, match="%s given both" % option):
        build_seed({option: value, "user_data": {option: value}}, SEED_ID)


@pytest.mark.parametrize("option,value", [
    ("users", [{"name": "u"}]), ("password", "pw"), ("packages", ["p"]), ("runcmd", ["c"]),
    ("write_files", [{"path": "/p"}]), ("ssh_authorized_keys", [KEY]),
])
def test_convenience_options_cannot_merge_into_text(option, value):
    with pytest.raises(InvalidInputError, match="only be merged into user_data given as a dict"):
        build_seed({option: value, "user_data": "#!/bin/sh\ntrue\n"}, SEED_ID)


def test_hostname_goes_to_meta_data_with_a_script():
    seed = build_seed(opts(hostname="h1", user_data="#!/bin/sh\ntrue\n"), SEED_ID)
    assert seed.files["user-data"] == b"#!/bin/sh\ntrue\n"
    assert meta_of(seed)["local-hostname"] == "h1"


def test_network_config_v1_v2_wrapper_and_text():
    v2 = {"version": 2, "ethernets": {"eth0": {"dhcp4": True}}}
    a = build_seed(opts(network_config=v2), SEED_ID)
    b = build_seed(opts(network_config={"network": v2}), SEED_ID)
    c = build_seed(opts(network_config="network:\n  version: 2\n  ethernets:\n    eth0: {dhcp4: true}\n"), SEED_ID)
    assert a.files["network-config"] == b.files["network-config"] == c.files["network-config"]
    assert yaml.safe_load(a.files["network-config"]) == v2
    v1 = {"version": 1, "config": [{"type": "physical", "name": "eth0", "subnets": [{"type": "dhcp"}]},
                                   {"type": "nameserver", "address": ["192.0.2.1"]}]}
    assert yaml.safe_load(build_seed(opts(network_config=v1), SEED_ID).files["network-config"]) == v1
    tunnels = build_seed(opts(network_config={"version": 2, "tunnels": {"t0": {"mode": "gre"}}}), SEED_ID)
    assert any("netplan" in w for w in tunnels.warnings)


def test_vendor_data_dict_and_text():
    seed = build_seed(opts(vendor_data={"runcmd": ["v"]}), SEED_ID)
    assert seed.files["vendor-data"] == b"#cloud-config\nruncmd:\n- v\n"
    assert list(seed.files) == ["user-data", "meta-data", "vendor-data"]
    assert build_seed(opts(vendor_data="#!/bin/sh\n"), SEED_ID).files["vendor-data"] == b"#!/bin/sh\n"


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize("options,match", [
    (dict(user_data="#cloud-config\nkey: [unclosed\n"), "not valid YAML"),
    (dict(user_data="#cloud-config\n- a\n- b\n"), "must be a YAML mapping"),
    (dict(user_data="#cloud-config\njust text\n"), "must be a YAML mapping"),
    (dict(user_data="hostname: x\n"), "must start with '#cloud-config'"),
    (dict(user_data="MIME-Version: 1.0\n\nnot multipart\n"), "not multipart"),
    (dict(user_data='Content-Type: multipart/mixed; boundary="B"\n\n--B\nContent-Type: text/cloud-config\n\n- x\n--B--\n'),
     "part 1 must be a YAML mapping"),
    (dict(user_data=["a"]), "must be a dict"),
    (dict(user_data={"a": object()}), "cannot be written to YAML"),
    (dict(vendor_data="plain words"), "vendor_data text must start"),
    (dict(network_config={"version": 3}), "'version: 1' or 'version: 2', not 3"),
    (dict(network_config={"ethernets": {}}), "not None"),
    (dict(network_config={"version": "2"}), "not '2'"),
    (dict(network_config={"version": True}), "not True"),
    (dict(network_config=["version", 2]), "must be a mapping"),
    (dict(network_config="version: 2\nethernets: [\n"), "not valid YAML"),
    (dict(network_config={"version": 1}), "needs 'config'"),
    (dict(network_config={"version": 1, "config": [{"type": "ethernet"}]}), "type must be one of"),
    (dict(network_config={"version": 1, "config": [], "ethernets": {}}), "only 'version' and 'config'"),
    (dict(network_config={"version": 2, "interfaces": {}}), "unknown section 'interfaces'"),
    (dict(network_config={"version": 2, "ethernets": ["eth0"]}), "must map interface names"),
    (dict(network_config={"version": 2, "ethernets": {"eth0": "dhcp"}}), "must map interface names"),
    (dict(meta_data={"instance-id": ""}), "instance-id must be a non-empty string"),
    (dict(meta_data=["x"]), "meta_data must be a dict"),
    (dict(hostname="web_1"), "not a valid host name"),
    (dict(hostname="-x"), "not a valid host name"),
    (dict(hostname="a" * 64), "not a valid host name"),
    (dict(hostname="h", meta_data={"local-hostname": "other"}), "differ"),
    (dict(users=[{"password": "x"}]), r"users\[0\]: name"),
    (dict(users=[{"name": "a b"}]), r"users\[0\]: name"),
    (dict(users=[{"name": "u", "uid": 5}]), "unknown key"),
    (dict(users=[{"name": "default", "shell": "/bin/sh"}]), "takes no other keys"),
    (dict(users=[{"name": "u", "password": ""}]), "non-empty"),
    (dict(users="alice"), "must be a list"),
    (dict(password=""), "non-empty"),
    (dict(ssh_authorized_keys=["ssh-ed25519 AAA\nssh-rsa BBB"]), "one public key on one line"),
    (dict(ssh_authorized_keys="ssh-ed25519 AAA"), "must be a list"),
    (dict(packages="nginx"), "packages must be a list"),
    (dict(runcmd=[{"a": 1}]), "runcmd: every entry"),
    (dict(write_files=[{"content": "x"}]), "needs 'path'"),
    (dict(write_files=[{"path": "relative"}]), "needs 'path'"),
    (dict(write_files=[{"path": "/x", "permissions": 420}]), "must be a string such as '0644'"),
    (dict(write_files={"path": "/x"}), "must be a list"),
])
def test_bad_input_is_a_clear_error(options, match):
    with pytest.raises(InvalidInputError, match=match):
        build_seed(options, SEED_ID)


def test_password_never_in_error_messages():
    with pytest.raises(InvalidInputError) as err:
        build_seed(dict(password=SECRET, user_data={"password": SECRET}), SEED_ID)
    assert SECRET not in str(err.value)


@pytest.mark.parametrize("options,expected", [
    (dict(user_data={"hostnme": "x", "runcmd": []}), ["user_data: unknown top-level cloud-config key(s) 'hostnme'"]),
    (dict(user_data="#cloud-config\npackages: []\npackagse: []\n"), ["unknown top-level cloud-config key(s) 'packagse'"]),
    (dict(user_data={"network": {"config": "disabled"}}), ["'network' has no effect"]),
    (dict(vendor_data={"bogus": 1}), ["vendor_data: unknown top-level"]),
    (dict(write_files=[{"path": "/x", "mode": "0644"}]), [r"write_files[0]: unknown key(s) mode"]),
    (dict(user_data={"merge_how": "dict()+list()+", "users": []}), []),
])
def test_unknown_keys_are_warnings(options, expected):
    seed = build_seed(options, SEED_ID)
    assert len(seed.warnings) == len(expected)
    for text, want in zip(seed.warnings, expected):
        assert want in text


# --- hashes and instance-id --------------------------------------------------------------------


def test_content_hash_is_over_names_sizes_and_bytes():
    base = {"user-data": b"a", "meta-data": b"b"}
    assert content_sha256(base) == content_sha256(dict(reversed(list(base.items()))))
    assert content_sha256(base) != content_sha256({"user-data": b"ab", "meta-data": b""})
    assert content_sha256(base) != content_sha256({"user-data": b"a", "meta-data": b"b", "vendor-data": b""})
    assert default_instance_id(base) == "iid-" + content_sha256(base)[:20]


def test_default_instance_id_is_stable_and_follows_content():
    one = build_seed(opts(user_data={"a": 1, "b": 2}, hostname="h"), SEED_ID)
    again = build_seed(opts(user_data={"b": 2, "a": 1}, hostname="h"), SEED_ID)  # key order does not matter
    assert (one.instance_id, one.content_sha256) == (again.instance_id, again.content_sha256)
    assert one.instance_id.startswith("iid-") and len(one.instance_id) == 24
    assert meta_of(one)["instance-id"] == one.instance_id
    changes = [opts(user_data={"a": 1, "b": 3}, hostname="h"), opts(user_data={"a": 1, "b": 2}, hostname="h2"),
               opts(user_data={"a": 1, "b": 2}, hostname="h", network_config={"version": 2}),
               opts(user_data={"a": 1, "b": 2}, hostname="h", vendor_data={"c": 1}),
               opts(user_data={"a": 1, "b": 2}, hostname="h", meta_data={"public-keys": [KEY]})]
    ids = set(build_seed(o, SEED_ID).instance_id for o in changes)
    assert len(ids) == len(changes) and one.instance_id not in ids


def test_explicit_instance_id_is_kept():
    seed = build_seed(opts(meta_data={"instance-id": "vm-42"}), SEED_ID)
    assert seed.instance_id == "vm-42" and meta_of(seed) == {"instance-id": "vm-42"}
    other = build_seed(opts(meta_data={"instance-id": "vm-42"}, user_data={"x": 1}), SEED_ID)
    assert other.instance_id == "vm-42" and other.content_sha256 != seed.content_sha256


def test_password_change_changes_seed_same_password_does_not():
    a = build_seed(opts(password="one"), SEED_ID)
    assert build_seed(opts(password="one"), SEED_ID).content_sha256 == a.content_sha256
    assert build_seed(opts(password="two"), SEED_ID).content_sha256 != a.content_sha256
    assert build_seed(opts(password="one"), "volume:default/other.iso").content_sha256 != a.content_sha256


# --- passwords (SHA-512 crypt itself: test__crypt_hash.py) ----------------------------------------

@pytest.mark.parametrize("backend", ["crypt", "passlib", "builtin"])
def test_every_backend_gives_the_same_hash(monkeypatch, backend):
    if backend == "crypt" and crypt is None:
        pytest.skip("no crypt module")
    if backend == "passlib" and passlib_sha512 is None:
        pytest.skip("no passlib")
    if backend != "crypt":
        monkeypatch.setattr(_crypt_hash, "_crypt_module", lambda: None)
    if backend == "builtin":
        monkeypatch.setattr(_crypt_hash, "passlib_sha512_crypt", None)
    assert crypt_backend() == backend
    assert hash_password(SECRET, SEED_ID, "ops") == sha512_crypt_builtin(SECRET, derive_salt(SEED_ID, "ops"))


def test_hash_password_is_deterministic_per_seed_and_user():
    first = hash_password(SECRET, SEED_ID, "ops")
    assert first == hash_password(SECRET, SEED_ID, "ops")
    assert first.startswith("$6$" + derive_salt(SEED_ID, "ops") + "$") and len(derive_salt(SEED_ID, "ops")) == 16
    others = {hash_password(SECRET, SEED_ID, "root"), hash_password(SECRET, "file:/x.iso", "ops"),
              hash_password(SECRET + "!", SEED_ID, "ops")}
    assert first not in others and len(others) == 3
    assert derive_salt(SEED_ID, "ops") == derive_salt(SEED_ID, "ops") != derive_salt(SEED_ID, "op")
    if crypt is not None:
        assert crypt.crypt(SECRET, first) == first  # the system's crypt verifies it


def test_mask_secrets():
    hashed = hash_password(SECRET, SEED_ID, "ops")
    text = "users:\n- hashed_passwd: %s\n  name: ops\npassword: %s\nchpasswd:\n  users:\n  - password: plain1\n" % (hashed, hashed)
    masked = mask_secrets(text)
    assert hashed not in masked and "plain1" not in masked and "name: ops" in masked
    assert masked.count("<masked password hash") == 2 and "<masked password " in masked
    assert mask_secrets(text) == masked  # stable: the same secret, the same fingerprint
    assert mask_secrets(text.replace(hashed, hash_password("other", SEED_ID, "ops"))) != masked


# --- ISO builders, read back by pycdlib, isoinfo and xorriso ---------------------------------------


def full_seed():
    return build_seed(opts(
        hostname="web1", users=[{"name": "ops", "password": SECRET, "ssh_authorized_keys": [KEY]}],
        packages=["nginx"], runcmd=["echo hi"], write_files=[{"path": "/etc/ü", "content": "ünïcödé\n"}],
        network_config={"version": 2, "ethernets": {"eth0": {"dhcp4": True}}}, vendor_data={"bootcmd": ["v"]},
    ), SEED_ID)


def builder_params():
    out = [pytest.param("pycdlib", marks=pytest.mark.skipif(pycdlib is None, reason="pycdlib missing"))]
    for tool in ("xorriso", "genisoimage", "mkisofs"):
        out.append(pytest.param(tool, marks=pytest.mark.skipif(not HAS[tool], reason="%s missing" % tool)))
    return out


def read_with_pycdlib(image):
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    try:
        files = {}
        for name in _options.SEED_FILES:
            for kind, path in (("joliet_path", "/" + name), ("rr_path", "/" + name)):
                out = io.BytesIO()
                try:
                    iso.get_file_from_iso_fp(out, **{kind: path})
                except pycdlib.pycdlibexception.PyCdlibInvalidInput:
                    break
                files.setdefault(name, set()).add(out.getvalue())
        volume_id = iso.pvd.volume_identifier.rstrip(b" ").decode()
        app_id = iso.pvd.application_identifier.text.rstrip(b" ").decode()
        return volume_id, app_id, dict((k, v.pop()) for k, v in files.items() if len(v) == 1)
    finally:
        iso.close()


@pytest.mark.parametrize("tool", builder_params())
def test_builder_output_is_a_nocloud_seed(tmp_path, tool):
    seed = full_seed()
    builder = choose_builder(tool, run_argv)
    assert builder.name == tool
    image = builder.build_checked(seed.files, seed.app_id)
    assert len(image) % 2048 == 0
    ours = read_iso(image)
    assert ours["files"] == seed.files and ours["volume_id"] == "cidata" and ours["names"] == "rockridge"
    assert ours["application_id"] == seed.app_id == "VIRTOPS.LIBVIRT SHA256:" + seed.content_sha256[:40].upper()
    assert content_sha256(ours["files"]) == seed.content_sha256
    assert SECRET.encode() not in image

    if pycdlib is not None:
        volume_id, app_id, files = read_with_pycdlib(image)
        assert volume_id == "cidata" and app_id == seed.app_id
        assert files == seed.files  # Joliet and Rock Ridge names agree and hold the same bytes

    iso_path = tmp_path / "seed.iso"
    iso_path.write_bytes(image)
    if HAS["isoinfo"]:
        rc, out, err = run_argv(["isoinfo", "-d", "-i", str(iso_path)])
        assert rc == 0, err
        assert "Volume id: cidata" in out.splitlines()
        assert "Joliet" in out and "Rock Ridge" in out
        assert "Application id: " + seed.app_id in out.splitlines()
        for name, data in seed.files.items():
            rc, content, _err = run_argv(["isoinfo", "-J", "-x", "/" + name, "-i", str(iso_path)])
            assert rc == 0 and content.encode() == data, name
        rc, listing, _err = run_argv(["isoinfo", "-R", "-l", "-i", str(iso_path)])
        assert sorted(line.split()[-1] for line in listing.splitlines() if line.startswith("-r--r--r--")) == sorted(seed.files)
    if HAS["xorriso"]:
        out_dir = tmp_path / "x"
        rc, _out, err = run_argv(["xorriso", "-osirrox", "on", "-indev", str(iso_path), "-extract", "/", str(out_dir)])
        assert rc == 0, err
        assert dict((p.name, p.read_bytes()) for p in out_dir.iterdir()) == seed.files


@pytest.mark.skipif(not HAS["genisoimage"], reason="genisoimage missing")
@pytest.mark.parametrize("flags,names,expected", [
    (["-J"], "joliet", ["meta-data", "user-data"]),
    ([], "iso9660", ["meta_dat", "user_dat"]),  # plain ISO 9660: 8.3 names (cloud-init would not find these)
])
def test_reader_without_rock_ridge(tmp_path, flags, names, expected):
    src = tmp_path / "src"
    src.mkdir()
    (src / "user-data").write_bytes(b"#cloud-config\n{}\n")
    (src / "meta-data").write_bytes(b"instance-id: x\n")
    out = tmp_path / "o.iso"
    rc, _o, err = run_argv(["genisoimage", "-quiet", "-o", str(out), "-V", "cidata", "-input-charset", "utf-8"] + flags + [str(src)])
    assert rc == 0, err
    back = read_iso(out.read_bytes())
    assert back["names"] == names and sorted(back["files"]) == expected and back["volume_id"] == "cidata"


@pytest.mark.parametrize("data", [b"", b"\0" * 40000, b"x" * (2048 * 20), (b"\0" * 32768) + b"\x01CD001" + b"\0" * 100])
def test_reader_rejects_non_iso(data):
    with pytest.raises(IsoReadError):
        read_iso(data)


@pytest.mark.skipif(pycdlib is None, reason="pycdlib missing")
def test_reader_rejects_truncated_image():
    seed = full_seed()
    image = PycdlibBuilder().build(seed.files, seed.app_id)
    with pytest.raises(IsoReadError):
        read_iso(image[:-4096])


def test_choose_builder(monkeypatch):
    found = {"xorriso": "/usr/bin/xorriso", "genisoimage": "/usr/bin/genisoimage"}
    if pycdlib is not None:
        assert choose_builder("auto", run_argv).name == "pycdlib"
    monkeypatch.setattr(_iso, "pycdlib", None)
    assert choose_builder("auto", run_argv, which=found.get).name == "xorriso"
    assert choose_builder("auto", run_argv, which={"mkisofs": "/m"}.get).name == "mkisofs"
    assert choose_builder("genisoimage", run_argv, which=found.get).binary == "/usr/bin/genisoimage"
    with pytest.raises(MissingDependencyError) as err:
        choose_builder("auto", run_argv, which=lambda _n: None)
    assert "pycdlib" in err.value.msg and "xorriso" in err.value.msg and "apt-get install xorriso" in err.value.msg
    with pytest.raises(MissingDependencyError, match="pip install pycdlib"):
        choose_builder("pycdlib", run_argv)
    with pytest.raises(MissingDependencyError, match="mkisofs is not installed"):
        choose_builder("mkisofs", run_argv, which=found.get)
    with pytest.raises(InvalidInputError):
        choose_builder("cdrtools", run_argv)


def test_command_builder_argv_and_failure():
    calls = []

    def failing(argv):
        calls.append(argv)
        return 1, "", "xorriso : FAILURE : out of cheese\n"

    builder = CommandBuilder("xorriso", "/usr/bin/xorriso", failing)
    with pytest.raises(CommandError) as err:
        builder.build({"user-data": b"#cloud-config\n{}\n", "meta-data": b"instance-id: x\n"}, "APP")
    argv = calls[0]
    assert argv[:3] == ["/usr/bin/xorriso", "-as", "mkisofs"] and argv[argv.index("-volid") + 1] == "cidata"
    assert "-joliet" in argv and "-rational-rock" in argv and argv[argv.index("-appid") + 1] == "APP"
    assert err.value.rc == 1 and "out of cheese" in err.value.msg and err.value.cmd == argv
    assert not os.path.exists(os.path.dirname(argv[-1]))  # the temporary directory is gone
    assert CommandBuilder("genisoimage", "/g", failing).argv("/o", "/s", "A")[:2] == ["/g", "-quiet"]


def test_build_checked_catches_a_broken_builder():
    class Liar(_iso.IsoBuilder):
        name = "liar"

        def build(self, files, app_id):
            return PycdlibBuilder().build(dict(files, extra=b"x"), app_id) if pycdlib else b"junk"

    with pytest.raises(BackendError, match="liar"):
        Liar().build_checked({"user-data": b"#cloud-config\n{}\n", "meta-data": b"i: x\n"}, "A")


# --- the resource: a seed file -----------------------------------------------------------------


def file_params(path, **kw):
    base = dict(uri="test:///default", name=None, pool=None, path=None if path is None else str(path), mode=None, state="present", force=False,
                iso_builder="auto")
    for key in _options.SEED_OPTIONS:
        base[key] = None
    base.update(kw)
    return base


def run_file(path, check=False, diff=True, **kw):
    ctx = Context(conn=None, params=file_params(path, **kw), check_mode=check, diff=diff, run_command=run_argv)
    return reconcile(CloudInitResource(ctx), check_mode=check, want_diff=diff)


def four_times(runner, *args, **kw):
    results = [runner(*args, check=c, **kw) for c in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[0]["actions"] == results[1]["actions"] and results[2]["actions"] == []
    for key in ("path", "instance_id", "content_sha256", "files"):
        assert results[0][key] == results[1][key] == results[3][key], key
    return results


def test_file_seed_four_times_change_and_absent(tmp_path):
    seed_path = tmp_path / "seed.iso"
    content = dict(hostname="h1", users=[{"name": "ops", "password": SECRET}], runcmd=["echo 1"])
    first = four_times(run_file, seed_path, **content)
    assert first[0]["actions"] == ["build the seed ISO with %s" % choose_builder("auto", run_argv).name,
                                   "write %s (a temporary file renamed into place)" % seed_path]
    assert first[1]["path"] == str(seed_path) and first[1]["instance_id"].startswith("iid-")
    assert [f["name"] for f in first[1]["files"]] == ["user-data", "meta-data"]
    assert stat.S_IMODE(seed_path.stat().st_mode) == 0o600
    back = read_iso(seed_path.read_bytes())
    assert content_sha256(back["files"]) == first[1]["content_sha256"]
    diff = first[0]["diff"]
    assert diff["before"] == "" and "# ---- user-data ----\n#cloud-config\n" in diff["after"]
    assert "<masked password hash" in diff["after"] and "$6$" not in diff["after"] and SECRET not in json.dumps(first)
    assert [p.name for p in tmp_path.iterdir()] == ["seed.iso"]  # no temporary files left

    new_content = dict(content)
    new_content["runcmd"] = ["echo 2"]
    changed = four_times(run_file, seed_path, **new_content)
    assert changed[1]["instance_id"] != first[1]["instance_id"]
    assert changed[0]["actions"][1].startswith("replace ")
    assert "- echo 1" in changed[0]["diff"]["before"] and "- echo 2" in changed[0]["diff"]["after"]

    gone = four_times(run_file, seed_path, state="absent")
    assert gone[0]["actions"] == ["remove %s" % seed_path] and gone[1]["path"] is None
    assert gone[0]["diff"]["after"] == "" and not seed_path.exists()


def test_file_seed_check_mode_writes_nothing(tmp_path):
    result = run_file(tmp_path / "s.iso", check=True, hostname="h")
    assert result["changed"] and result["path"] == str(tmp_path / "s.iso")
    assert list(tmp_path.iterdir()) == []


def test_file_seed_mode(tmp_path):
    seed_path = tmp_path / "s.iso"
    four_times(run_file, seed_path, mode="0600")
    assert stat.S_IMODE(seed_path.stat().st_mode) == 0o600
    results = four_times(run_file, seed_path, mode="0640")
    assert results[0]["actions"] == ["set the mode of %s to 0640" % seed_path]
    assert stat.S_IMODE(seed_path.stat().st_mode) == 0o640
    assert not run_file(seed_path)["changed"]  # no mode given: the existing one is kept


@pytest.mark.parametrize("mode,expected", [("0644", 0o644), ("600", 0o600), (0o640, 0o640), (None, None)])
def test_parse_mode(mode, expected):
    assert parse_mode(mode) == expected


@pytest.mark.parametrize("mode", ["u=rw", "0999", "12345", True, 0o17777])
def test_bad_mode(mode):
    with pytest.raises(InvalidInputError):
        parse_mode(mode)


def test_replaced_file_keeps_owner_and_group(tmp_path):
    seed_path = tmp_path / "s.iso"
    run_file(seed_path, hostname="h1")
    if os.getuid() != 0:
        pytest.skip("needs root to give the file away")
    os.chown(str(seed_path), 12345, 23456)
    assert run_file(seed_path, hostname="h2")["changed"]
    st = seed_path.stat()
    assert (st.st_uid, st.st_gid) == (12345, 23456)
    assert stat.S_IMODE(st.st_mode) == 0o600


def test_file_seed_refuses_to_overwrite_other_files(tmp_path):
    other = tmp_path / "disk.img"
    other.write_bytes(b"precious data" * 1000)
    for state in ("present", "absent"):
        with pytest.raises(ConflictError, match="not a cloud-init seed .*force=true"):
            run_file(other, state=state, check=True)
    assert other.read_bytes() == b"precious data" * 1000
    result = run_file(other, force=True, hostname="h")
    assert result["changed"] and read_iso(other.read_bytes())["volume_id"] == "cidata"


def test_other_iso_is_not_a_seed(tmp_path):
    if not HAS["genisoimage"]:
        pytest.skip("genisoimage missing")
    src = tmp_path / "src"
    src.mkdir()
    (src / "README").write_text("install me")
    iso = tmp_path / "install.iso"
    assert run_argv(["genisoimage", "-quiet", "-o", str(iso), "-V", "DEBIAN", "-J", "-r", str(src)])[0] == 0
    with pytest.raises(ConflictError, match="volume id 'DEBIAN'"):
        run_file(iso, hostname="h")


def test_seed_written_by_another_tool_with_the_same_files_is_up_to_date(tmp_path):
    """Idempotency is on content: an ISO from genisoimage with our files is not rewritten."""
    if not HAS["genisoimage"]:
        pytest.skip("genisoimage missing")
    seed_path = tmp_path / "s.iso"
    seed = build_seed(dict(hostname="h"), "file:" + str(seed_path))
    seed_path.write_bytes(CommandBuilder("genisoimage", shutil.which("genisoimage"), run_argv).build(seed.files, "OTHER"))
    result = run_file(seed_path, hostname="h")
    assert not result["changed"] and result["content_sha256"] == seed.content_sha256


def test_file_seed_errors(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        run_file(tmp_path / "missing" / "s.iso")
    predicted = run_file(tmp_path / "missing" / "s.iso", check=True, hostname="h")  # an earlier task may make it
    assert predicted["changed"] and predicted["assumptions"] == [
        "check mode: directory %s does not exist on the managed node; assumed to be done by an earlier task (a real run "
        "fails if it is not)" % (tmp_path / "missing")]
    with pytest.raises(InvalidInputError, match="is a directory"):
        run_file(tmp_path)
    with pytest.raises(InvalidInputError, match="absolute"):
        run_file("relative/s.iso")


@pytest.mark.parametrize("kw", [dict(pool=POOL), dict(name="x.iso"), dict(pool=POOL, name="x.iso")])
def test_path_xor_pool(tmp_path, kw):
    with pytest.raises(InvalidInputError, match="either path, or pool and name"):
        run_file(tmp_path / "s.iso", **kw)


def test_failed_build_leaves_the_old_file(tmp_path, monkeypatch):
    seed_path = tmp_path / "s.iso"
    run_file(seed_path, hostname="h1")
    before = seed_path.read_bytes()

    def broken(self, files, app_id):
        raise BackendError("disk full")

    monkeypatch.setattr(PycdlibBuilder, "build", broken)
    monkeypatch.setattr(CommandBuilder, "build", broken)
    with pytest.raises(BackendError, match="disk full"):
        run_file(seed_path, hostname="h2")
    assert seed_path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["s.iso"]


def test_later_failing_step_restores_the_old_file(tmp_path):
    """ensure_seed in a caller's plan: when a later step of that plan fails, the old seed comes back."""
    seed_path = tmp_path / "s.iso"
    run_file(seed_path, hostname="h1")
    before = seed_path.read_bytes()
    ctx = Context(conn=None, params={}, run_command=run_argv)
    plan = Plan()
    out = ensure_seed(ctx, plan, dict(hostname="h2"), path=str(seed_path))
    assert out["changed"] and out["path"] == str(seed_path)

    def boom():
        raise BackendError("the domain could not be defined")

    plan.add("define the domain", boom)
    with pytest.raises(BackendError, match="could not be defined"):
        plan.execute()
    assert seed_path.read_bytes() == before


# --- the resource: a seed volume in a pool (libvirt's test driver) ---------------------------------


@pytest.fixture
def clean_pool(test_conn):
    def clean():
        pool = test_conn.storagePoolLookupByName(POOL)
        if not pool.isActive():
            pool.create(0)
        for vol in pool.listAllVolumes(0):
            vol.delete(0)
        for name in test_conn.listDefinedDomains():
            if name.startswith("seeduser"):
                test_conn.lookupByName(name).undefine()

    clean()
    yield
    clean()


@pytest.fixture
def volume_store(monkeypatch):
    """The test driver cannot stream volumes: keep uploaded bytes per volume path instead."""
    store = {}

    def upload(_conn, vol, data):
        store[vol.path()] = bytes(data)

    def download(_conn, vol, length):
        return store.get(vol.path(), b"\0" * length)[:length]

    monkeypatch.setattr(_targets, "upload_bytes", upload)
    monkeypatch.setattr(_targets, "download_volume", download)
    return store


def vol_params(**kw):
    base = file_params(None, pool=POOL, name="seed.iso")
    base.update(kw)
    return base


def run_vol(conn, check=False, diff=True, **kw):
    ctx = Context(conn=conn, params=vol_params(**kw), check_mode=check, diff=diff, run_command=run_argv)
    return reconcile(CloudInitResource(ctx), check_mode=check, want_diff=diff)


def volumes(conn):
    return sorted(conn.storagePoolLookupByName(POOL).listVolumes())


def test_volume_check_mode_predicts(test_conn, clean_pool):
    result = run_vol(test_conn, check=True, hostname="h")
    assert result["changed"] and result["path"] == "/default-pool/seed.iso"
    assert result["actions"][1:] == ["create raw volume 'seed.iso' in pool 'default-pool' for the seed",
                                     "upload the seed ISO into volume 'seed.iso'"]
    assert volumes(test_conn) == []


def test_volume_failed_upload_removes_the_new_volume(test_conn, clean_pool):
    """The real upload: the test driver refuses streams, so the step fails and its volume is deleted again."""
    with pytest.raises(Exception, match="upload"):
        run_vol(test_conn, hostname="h")
    assert volumes(test_conn) == []


def test_volume_four_times_replace_and_absent(test_conn, clean_pool, volume_store):
    first = four_times(run_vol, test_conn, hostname="h1", password=SECRET)
    path = "/default-pool/seed.iso"
    assert first[1]["path"] == path and volumes(test_conn) == ["seed.iso"]
    image = volume_store[path]
    vol = test_conn.storagePoolLookupByName(POOL).storageVolLookupByName("seed.iso")
    assert vol.info()[1] == len(image)  # capacity: the ISO's size
    assert read_iso(image)["volume_id"] == "cidata" and SECRET.encode() not in image

    second = four_times(run_vol, test_conn, hostname="h2", password=SECRET)
    assert second[0]["actions"][1] == "delete the old seed volume 'seed.iso' from pool 'default-pool'"
    assert second[1]["instance_id"] != first[1]["instance_id"]
    assert "local-hostname: h1" in second[0]["diff"]["before"] and "local-hostname: h2" in second[0]["diff"]["after"]

    gone = four_times(run_vol, test_conn, state="absent")
    assert gone[0]["actions"] == ["delete seed volume 'seed.iso' from pool 'default-pool'"]
    assert volumes(test_conn) == []


def test_volume_replace_failure_restores_the_old_seed(test_conn, clean_pool, volume_store, monkeypatch):
    run_vol(test_conn, hostname="h1")
    old = dict(volume_store)

    def upload_fails_for_new(_conn, vol, data):
        if read_iso(data)["files"]["meta-data"].find(b"h2") >= 0:
            raise BackendError("stream broke")
        volume_store[vol.path()] = bytes(data)

    monkeypatch.setattr(_targets, "upload_bytes", upload_fails_for_new)
    with pytest.raises(BackendError, match="stream broke"):
        run_vol(test_conn, hostname="h2")
    assert volumes(test_conn) == ["seed.iso"] and volume_store == old
    assert not run_vol(test_conn, hostname="h1")["changed"]


def test_volume_not_a_seed_and_in_use(test_conn, clean_pool, volume_store):
    pool = test_conn.storagePoolLookupByName(POOL)
    pool.createXML("<volume><name>seed.iso</name><capacity>1048576</capacity><target><format type='qcow2'/></target></volume>", 0)
    with pytest.raises(ConflictError, match="not a cloud-init seed"):
        run_vol(test_conn, hostname="h")
    with pytest.raises(ConflictError, match="not a cloud-init seed"):
        run_vol(test_conn, state="absent")
    assert run_vol(test_conn, hostname="h", force=True)["changed"]

    # a defined domain using the seed: removal is refused, replacement warns only for running domains
    dom = _domain_with_disk(test_conn, "seeduser1", "/default-pool/seed.iso")
    with pytest.raises(ConflictError, match="seed volume 'seed.iso' is used by VM seeduser1 "):
        run_vol(test_conn, state="absent")
    predicted = run_vol(test_conn, state="absent", check=True)  # an earlier task may remove seeduser1
    assert predicted["changed"] and "is used by VM seeduser1" in predicted["assumptions"][0]
    plan = Plan()
    ctx = Context(conn=test_conn, params={}, run_command=run_argv)
    assert remove_seed(ctx, plan, pool=POOL, name="seed.iso", detached_from="seeduser1")["changed"]
    with pytest.raises(ConflictError):
        remove_seed(ctx, Plan(), pool=POOL, name="seed.iso")
    forced = run_vol(test_conn, state="absent", force=True)
    assert forced["changed"] and any("force" in w for w in forced["warnings"])
    dom.undefine()


def _domain_with_disk(conn, name, path):
    from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
    root = _xml.parse(conn.lookupByName("test").XMLDesc(0))
    root.find("name").text = name
    root.remove(root.find("uuid"))
    root.find("devices/disk/source").set("file", path)
    return conn.defineXML(_xml.to_string(root))


def test_ensure_seed_api(test_conn, clean_pool, volume_store):
    ctx = Context(conn=test_conn, params={}, check_mode=False, run_command=run_argv)
    options = dict(hostname="vm1", user_data={"runcmd": ["true"]})
    plan = Plan()
    out = ensure_seed(ctx, plan, options, pool=POOL, name="vm1-seed.iso")
    assert out["changed"] and out["path"] == "/default-pool/vm1-seed.iso" and out["pool"] == POOL
    assert out["name"] == "vm1-seed.iso" and out["instance_id"].startswith("iid-")
    assert [f["name"] for f in out["files"]] == ["user-data", "meta-data"]
    assert len(plan) == 3 and volumes(test_conn) == []  # planned, not done
    plan.execute()
    assert volumes(test_conn) == ["vm1-seed.iso"]
    again = Plan()
    same = ensure_seed(ctx, again, options, pool=POOL, name="vm1-seed.iso")
    assert not same["changed"] and len(again) == 0
    assert (same["instance_id"], same["content_sha256"]) == (out["instance_id"], out["content_sha256"])
    with pytest.raises(InvalidInputError):
        ensure_seed(ctx, Plan(), dict(user_data="nonsense"), pool=POOL, name="vm1-seed.iso")
    gone = Plan()
    assert remove_seed(ctx, gone, pool=POOL, name="vm1-seed.iso")["changed"]
    gone.execute()
    assert volumes(test_conn) == [] and remove_seed(ctx, Plan(), pool=POOL, name="vm1-seed.iso") == dict(changed=False, path=None)


@pytest.mark.parametrize("kw,error,match", [
    (dict(name="../x.iso"), InvalidInputError, "separator"),
    (dict(pool="no-such-pool"), NotFoundError, "no-such-pool"),
    (dict(mode="0644"), InvalidInputError, "mode applies to a seed stored at path"),
])
def test_volume_bad_input(test_conn, clean_pool, kw, error, match):
    with pytest.raises(error, match=match):
        run_vol(test_conn, **kw)


def test_missing_pool_is_assumed_in_check_mode_and_absent_is_absent(test_conn, clean_pool):
    predicted = run_vol(test_conn, check=True, pool="no-such-pool", hostname="h")
    assert predicted["changed"] and predicted["path"] is None
    assert predicted["assumptions"] == ["check mode: storage pool 'no-such-pool' does not exist; assumed to be done "
                                        "by an earlier task (a real run fails if it is not)"]
    for check in (True, False):
        gone = run_vol(test_conn, check=check, pool="no-such-pool", state="absent")
        assert not gone["changed"] and "assumptions" not in gone and "warnings" not in gone
    ctx = Context(conn=test_conn, params={}, run_command=run_argv)
    assert remove_seed(ctx, Plan(), pool="no-such-pool", name="x.iso") == dict(changed=False, path=None)


# --- the module, in process --------------------------------------------------------------------


def run_module(capsys, args):
    # a module process is never the controller; other tests of this process (inventory plugin) may
    # have made ansible think it is, and module.warn would then print instead of returning warnings
    with patch_module_args(args), patch.object(ansible_internal, "is_controller", False):
        with pytest.raises(SystemExit) as exit_info:
            cloudinit_module.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def test_module_file_seed_end_to_end(capsys, tmp_path):
    args = dict(path=str(tmp_path / "m.iso"), hostname="m1", users=[dict(name="ops", password=SECRET, ssh_authorized_keys=[KEY])],
                password=SECRET, user_data={"timezone": "UTC", "typo_key": 1}, _ansible_diff=True)
    outcomes = []
    for check in (True, False, True, False):
        rc, result = run_module(capsys, dict(args, _ansible_check_mode=check))
        assert rc == 0, result
        outcomes.append(result)
    assert [r["changed"] for r in outcomes] == [True, True, False, False]
    assert "typo_key" in json.dumps(outcomes[1]["warnings"])
    text = json.dumps(outcomes)
    assert SECRET not in text and "$6$" not in text
    assert read_iso((tmp_path / "m.iso").read_bytes())["volume_id"] == "cidata"


@pytest.mark.parametrize("args,text", [
    (dict(pool=POOL), "pool, name"),
    (dict(path="/tmp/x.iso", pool=POOL, name="x"), "mutually exclusive"),
    (dict(name="x"), "required together: pool, name"),
    (dict(state="absent"), "one of the following is required: path, pool"),
    (dict(path="/nonexistent-dir/x.iso"), "does not exist"),
    (dict(path="/tmp/x.iso", network_config={"version": 3}), "version: 2"),
])
def test_module_failures(capsys, args, text):
    rc, result = run_module(capsys, args)
    assert rc == 1 and result["failed"] and text in result["msg"], result


# --- secrets in free-form options ------------------------------------------------------------------

FREE_FORM_SECRETS = ["Pw-list-1", "Pw-flow-2", "Pw-top-3", "Pw-wifi-4", "Pw-vendor-5", "Pw-user-6"]


def test_secrets_in_free_form_options_never_reach_results_or_diffs(tmp_path):
    user_data = ("#cloud-config\nchpasswd:\n  expire: false\n  list: |\n    root:Pw-list-1\n"
                 "users: [default, {name: ops, passwd: 'Pw-flow-2', lock_passwd: false}]\npassword: Pw-top-3\n")
    options = dict(user_data=user_data, vendor_data={"password": "Pw-vendor-5"},
                   network_config={"version": 2, "wifis": {"wlan0": {"access-points": {"home": {"password": "Pw-wifi-4"}}}}})
    ctx = Context(conn=None, params=file_params(tmp_path / "s.iso", **options), check_mode=True, diff=True,
                  run_command=run_argv)
    result = reconcile(CloudInitResource(ctx), check_mode=True, want_diff=True)
    shown = json.dumps(result)
    assert "<masked secret" in result["diff"]["after"]
    assert [s for s in FREE_FORM_SECRETS if s in shown] == [] and "$6$" not in shown
    assert ctx.no_log_values == set(FREE_FORM_SECRETS[:5]), "registered for AnsibleModule's masking"
    # the seed of another password: the old one is masked in 'before' too
    first = run_file(tmp_path / "t.iso", users=[dict(name="a", password="Pw-user-6")], user_data={"chpasswd": {"list": ["a:Pw-list-1"]}})
    changed = run_file(tmp_path / "t.iso", users=[dict(name="a", password="Other-8")], user_data={"chpasswd": {"list": ["a:Pw-flow-2"]}})
    assert first["changed"] and changed["changed"]
    assert [s for s in FREE_FORM_SECRETS + ["Other-8"] if s in json.dumps(changed)] == []
    assert changed["diff"]["before"] != changed["diff"]["after"], "a changed secret shows as another fingerprint"


@pytest.mark.parametrize("user_data", [
    "#cloud-config\npassword: Pw-broken-9\nusers: [\n",
    "#cloud-config\nusers:\n  - name: a\n   passwd: Pw-broken-9\n",
])
def test_a_yaml_error_does_not_show_the_text(tmp_path, user_data):
    with pytest.raises(InvalidInputError) as info:
        run_file(tmp_path / "s.iso", user_data=user_data)
    assert "Pw-broken-9" not in info.value.msg and "line" in info.value.msg
