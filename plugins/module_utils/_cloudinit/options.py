# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cloud-init seeds: the content options (shared by the ``cloudinit`` module and ``vm``'s ``cloud_init``),
the files of a seed, and what cloud-init accepts (cloud-config keys, network-config sections).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

#: the files of a seed, in the order they are written and shown
SEED_FILES = ("user-data", "meta-data", "network-config", "vendor-data")
#: prefix of the ISO application identifier, followed by the first 40 hex digits of the content hash in
#: upper case (ISO 9660 a-characters; Joliet holds at most 64 characters there)
APP_ID_PREFIX = "VIRTOPS.LIBVIRT SHA256:"
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
