# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inventory plugin virtops.libvirt.libvirt against hypervisors of libvirt's test driver.

The plugin runs the way ansible-inventory runs it: its options come from its DOCUMENTATION through
Ansible's configuration manager and from a source file on disk.  One test runs ansible-inventory
itself.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest
import yaml
from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader

from ansible_collections.virtops.libvirt.plugins.inventory import libvirt as plugin_module
from ansible_collections.virtops.libvirt.plugins.module_utils._cluster import inventory as _inventory
NAME = "virtops.libvirt.libvirt"
STAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(_inventory.__file__)))))))
COLLECTION = os.path.join(STAGE, "ansible_collections", "virtops", "libvirt")

WEB1 = dict(name="web1", state="running", memory=512, vcpus=2, tags=["web", "prod"], metadata=dict(role="frontend"),
            interfaces=[dict(network="default", mac="52:54:00:00:01:01")])
WEB2 = dict(name="web2", state="running", memory=512, vcpus=2, tags=["web"], metadata=dict(role="frontend"),
            interfaces=[dict(network="default", mac="52:54:00:00:02:01")])
DB1 = dict(name="db1", state="stopped", memory=2048, vcpus=4, tags=["db"], metadata=dict(role="database"),
           interfaces=[dict(network="default", mac="52:54:00:00:02:02")])
SPARE = dict(name="spare", state="paused", memory=128)


class Warnings(object):
    def __init__(self):
        self.messages = []

    def warning(self, msg, *args, **kwargs):
        self.messages.append(msg)

    def __getattr__(self, name):  # debug, vvv, ... go nowhere
        return lambda *args, **kwargs: None


@pytest.fixture(scope="module", autouse=True)
def plugin_config():
    """Register the plugin's options with Ansible's configuration manager, as the plugin loader does."""
    inventory_loader._load_config_defs(NAME, plugin_module, plugin_module.__file__)


@pytest.fixture
def hypervisors(make_node):
    return dict(
        kvm1=make_node("kvm1", domains=[WEB1, SPARE], cpus=8, memory_mib=16384),
        kvm2=make_node("kvm2", domains=[WEB2, DB1], cpus=4, memory_mib=8192),
    )


def run(tmp_path, config, inventory=None, cache=False, name="vms.libvirt.yml"):
    """Parse a source file with ``config``; returns (inventory, warnings)."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(dict(dict(plugin=NAME), **config)))
    plugin = plugin_module.InventoryModule()
    plugin._load_name = NAME
    warnings = Warnings()
    plugin.display = warnings
    inventory = inventory if inventory is not None else InventoryData()
    assert plugin.verify_file(str(path))
    plugin.parse(inventory, DataLoader(), str(path), cache=cache)
    if getattr(plugin, "_cache", None) is not None:
        plugin.update_cache_if_changed()  # as the inventory manager does after parse
    return inventory, warnings.messages


def uris(hypervisors):
    return [dict(uri=uri, name=name) for name, uri in sorted(hypervisors.items())]


def hostvars(inventory, host):
    return inventory.get_host(host).get_vars()


def set_vars(inventory, host):
    """What was set for ``host``, without what Ansible adds (inventory_dir, inventory_file)."""
    return dict((k, v) for k, v in inventory.get_host(host).vars.items() if not k.startswith("inventory_"))


def members(inventory, group):
    return sorted(h.name for h in inventory.groups[group].get_hosts())


# --- hosts and their variables ------------------------------------------------------------------


def test_every_vm_of_every_hypervisor_is_a_host(tmp_path, hypervisors):
    inventory, warnings = run(tmp_path, dict(uris=uris(hypervisors)))
    assert warnings == []
    assert sorted(inventory.hosts) == ["db1", "spare", "web1", "web2"]
    web1 = hostvars(inventory, "web1")
    assert web1["libvirt_hypervisor"] == "kvm1"
    assert web1["libvirt_uri"] == hypervisors["kvm1"]
    assert (web1["libvirt_state"], web1["libvirt_vcpus"], web1["libvirt_memory"]) == ("running", 2, 512)
    assert web1["libvirt_tags"] == ["prod", "web"]
    assert web1["libvirt_metadata"] == {"role": "frontend"}
    assert web1["libvirt_macs"] == ["52:54:00:00:01:01"]
    assert web1["libvirt_ip_addresses"] and web1["ansible_host"] == web1["libvirt_ip_addresses"][0]
    assert web1["libvirt_ip"] == web1["ansible_host"]
    assert web1["libvirt_interfaces"][0]["addresses"][0]["address"] == web1["ansible_host"]
    db1 = hostvars(inventory, "db1")
    assert db1["libvirt_hypervisor"] == "kvm2"
    assert (db1["libvirt_state"], db1["libvirt_vcpus"], db1["libvirt_memory"]) == ("stopped", 4, 2048)
    assert "ansible_host" not in db1  # no address known for a stopped VM
    assert db1["libvirt_ip_addresses"] == []
    assert hostvars(inventory, "spare")["libvirt_state"] == "paused"


def test_vars_prefix_and_no_addresses(tmp_path, hypervisors):
    inventory, _warnings = run(tmp_path, dict(uris=uris(hypervisors), vars_prefix="kvm_", ip_source="none"))
    web1 = hostvars(inventory, "web1")
    assert web1["kvm_hypervisor"] == "kvm1" and web1["kvm_state"] == "running"
    assert not any(key.startswith("libvirt_") for key in web1)
    assert "ansible_host" not in web1 and web1["kvm_ip_addresses"] == []


def test_ansible_host_networks(tmp_path, hypervisors):
    inventory, _warnings = run(tmp_path, dict(uris=uris(hypervisors), ansible_host_networks=["10.0.0.0/8"]))
    assert "ansible_host" not in hostvars(inventory, "web1")  # its address is not in 10/8
    inventory, _warnings = run(tmp_path, dict(uris=uris(hypervisors), ansible_host_networks=["10.0.0.0/8", "192.168.0.0/16"]))
    assert hostvars(inventory, "web1")["ansible_host"].startswith("192.168.")


def test_bad_network_is_an_error(tmp_path, hypervisors):
    with pytest.raises(AnsibleParserError, match=r"ansible_host_networks\[0\]"):
        run(tmp_path, dict(uris=uris(hypervisors), ansible_host_networks=["10.0.0.0/33"]))


def test_variables_sets_only_the_chosen_ones(tmp_path, hypervisors):
    config = dict(uris=uris(hypervisors), variables=["hypervisor", "state", "tags", "ansible_host"],
                  keyed_groups=[dict(key="libvirt_tags", prefix="tag")],
                  groups=dict(up="libvirt_state == 'running'"), compose=dict(where="libvirt_hypervisor"),
                  filters=[dict(exclude="libvirt_state == 'stopped'")])
    inventory, warnings = run(tmp_path, config)
    assert warnings == []
    assert sorted(inventory.hosts) == ["spare", "web1", "web2"]  # db1 (stopped) filtered out
    web1 = set_vars(inventory, "web1")
    assert sorted(web1) == ["ansible_host", "libvirt_hypervisor", "libvirt_state", "libvirt_tags", "where"]
    assert sorted(set_vars(inventory, "spare")) == ["libvirt_hypervisor", "libvirt_state", "libvirt_tags", "where"]
    assert members(inventory, "tag_web") == ["web1", "web2"]
    assert members(inventory, "up") == ["web1", "web2"]
    # the same values as without the option
    full, _warnings = run(tmp_path, dict(config, variables=None))
    assert dict((k, v) for k, v in set_vars(full, "web1").items() if k in web1) == web1
    assert len(set_vars(full, "web1")) > len(web1) + 20


def test_variables_that_need_no_definition(tmp_path, hypervisors):
    inventory, _warnings = run(tmp_path, dict(uris=uris(hypervisors), variables=["name", "uuid", "state", "active"]))
    assert sorted(inventory.hosts) == ["db1", "spare", "web1", "web2"]
    db1 = set_vars(inventory, "db1")
    assert sorted(db1) == ["libvirt_active", "libvirt_name", "libvirt_state", "libvirt_uuid"]
    assert (db1["libvirt_name"], db1["libvirt_state"], db1["libvirt_active"]) == ("db1", "stopped", False)


def test_variables_cache_made_with_fewer_is_refreshed(tmp_path, make_node):
    uri = make_node("c2", domains=[WEB1, DB1])
    config = dict(uris=[dict(uri=uri, name="kvm1")], cache=True, cache_plugin="jsonfile",
                  cache_connection=str(tmp_path / "cache"), cache_timeout=600, variables=["state"])
    run(tmp_path, config, cache=False)
    make_node("c2", domains=[WEB1])  # db1 is gone from the hypervisor
    inventory, _warnings = run(tmp_path, config, cache=True)
    assert sorted(inventory.hosts) == ["db1", "web1"]  # from the cache
    inventory, _warnings = run(tmp_path, dict(config, variables=["state", "memory"]), cache=True)
    assert sorted(inventory.hosts) == ["web1"]  # the cache lacked memory: read again
    assert set_vars(inventory, "web1")["libvirt_memory"] == 512


def test_variables_unknown_name_is_an_error(tmp_path, hypervisors):
    with pytest.raises(AnsibleParserError, match="variables: unknown libvirt_state, nothing"):
        run(tmp_path, dict(uris=uris(hypervisors), variables=["state", "libvirt_state", "nothing"]))


# --- constructable --------------------------------------------------------------------------------


def test_keyed_groups_groups_and_compose(tmp_path, hypervisors):
    config = dict(
        uris=uris(hypervisors),
        keyed_groups=[
            dict(key="libvirt_hypervisor", prefix="on"),
            dict(key="libvirt_state", prefix="state"),
            dict(key="libvirt_tags", prefix="tag"),
            dict(key="libvirt_metadata", prefix="meta"),
        ],
        groups=dict(big="libvirt_memory >= 1024", webservers="'web' in libvirt_tags"),
        compose=dict(memory_gib="libvirt_memory / 1024", ansible_user="libvirt_metadata.user | default('debian')"),
    )
    inventory, _warnings = run(tmp_path, config)
    assert members(inventory, "on_kvm1") == ["spare", "web1"]
    assert members(inventory, "on_kvm2") == ["db1", "web2"]
    assert members(inventory, "state_running") == ["web1", "web2"]
    assert members(inventory, "state_stopped") == ["db1"]
    assert members(inventory, "state_paused") == ["spare"]
    assert members(inventory, "tag_web") == ["web1", "web2"]
    assert members(inventory, "tag_prod") == ["web1"]
    assert members(inventory, "meta_role_frontend") == ["web1", "web2"]
    assert members(inventory, "meta_role_database") == ["db1"]
    assert members(inventory, "big") == ["db1"]
    assert members(inventory, "webservers") == ["web1", "web2"]
    assert hostvars(inventory, "db1")["memory_gib"] == 2
    assert hostvars(inventory, "web1")["ansible_user"] == "debian"


def test_compose_error_is_fatal_only_when_strict(tmp_path, hypervisors):
    config = dict(uris=uris(hypervisors), compose=dict(broken="libvirt_nothing.at_all"))
    inventory, _warnings = run(tmp_path, config)
    assert "broken" not in hostvars(inventory, "web1")
    with pytest.raises(AnsibleError, match="broken"):
        run(tmp_path, dict(config, strict=True))


# --- filters ------------------------------------------------------------------------------------


@pytest.mark.parametrize("filters, expected", [
    ([], ["db1", "spare", "web1", "web2"]),
    ([dict(include="libvirt_state == 'running'"), dict(exclude=True)], ["web1", "web2"]),
    ([dict(exclude="libvirt_state == 'running'")], ["db1", "spare"]),
    ([dict(include="inventory_hostname == 'web2'"), dict(exclude="'web' in libvirt_tags")], ["db1", "spare", "web2"]),
    ([dict(exclude="libvirt_hypervisor == 'kvm2'"), dict(include="libvirt_state == 'running'"), dict(exclude=True)], ["web1"]),
    ([dict(exclude=False)], ["db1", "spare", "web1", "web2"]),
])
def test_filters_first_match_decides(tmp_path, hypervisors, filters, expected):
    inventory, _warnings = run(tmp_path, dict(uris=uris(hypervisors), filters=filters))
    assert sorted(inventory.hosts) == expected


@pytest.mark.parametrize("filters, message", [
    ([dict(keep="true")], "include or exclude"),
    ([dict(include="true", exclude="false")], "one key"),
    ([dict(include=3)], "conditional"),
    ([dict(include="libvirt_state ==")], "cannot evaluate"),
])
def test_bad_filters(tmp_path, hypervisors, filters, message):
    with pytest.raises(AnsibleParserError, match=message):
        run(tmp_path, dict(uris=uris(hypervisors), filters=filters))


# --- naming -------------------------------------------------------------------------------------


@pytest.fixture
def twins(make_node):
    """web1 on both hypervisors (for example a copy left behind by a migration)."""
    return dict(
        kvm1=make_node("t1", domains=[WEB1]),
        kvm2=make_node("t2", domains=[dict(WEB1, state="stopped"), DB1]),
    )


def test_same_name_on_two_hypervisors(tmp_path, twins):
    inventory, warnings = run(tmp_path, dict(uris=uris(twins)))
    assert sorted(inventory.hosts) == ["db1", "web1@kvm1", "web1@kvm2"]
    assert hostvars(inventory, "web1@kvm1")["libvirt_state"] == "running"
    assert hostvars(inventory, "web1@kvm2")["libvirt_state"] == "stopped"
    assert hostvars(inventory, "web1@kvm2")["libvirt_name"] == "web1"
    assert len(warnings) == 1 and "'web1'" in warnings[0] and "web1@kvm1, web1@kvm2" in warnings[0]


def test_name_at_hypervisor_and_uuid(tmp_path, hypervisors):
    inventory, warnings = run(tmp_path, dict(uris=uris(hypervisors), host_naming="name_at_hypervisor"))
    assert sorted(inventory.hosts) == ["db1@kvm2", "spare@kvm1", "web1@kvm1", "web2@kvm2"]
    assert warnings == []
    inventory, _warnings = run(tmp_path, dict(uris=uris(hypervisors), host_naming="uuid"))
    uuids = sorted(inventory.hosts)
    assert len(uuids) == 4
    assert all(hostvars(inventory, u)["libvirt_uuid"] == u for u in uuids)


def test_earlier_host_of_the_same_name_gets_the_vm_vars(tmp_path, hypervisors):
    inventory = InventoryData()
    inventory.add_host("web1")
    inventory.set_variable("web1", "ansible_user", "admin")
    inventory, _warnings = run(tmp_path, dict(uris=uris(hypervisors)), inventory=inventory)
    web1 = hostvars(inventory, "web1")
    assert web1["ansible_user"] == "admin" and web1["libvirt_hypervisor"] == "kvm1"


# --- hypervisors that fail ------------------------------------------------------------------------


def test_hypervisor_down_is_a_warning(tmp_path, hypervisors):
    down = "qemu:///system?socket=%s" % (tmp_path / "down.sock")
    config = dict(uris=uris(hypervisors) + [dict(uri=down, name="kvm9")])
    inventory, warnings = run(tmp_path, config)
    assert sorted(inventory.hosts) == ["db1", "spare", "web1", "web2"]
    assert len(warnings) == 1
    assert warnings[0].startswith("hypervisor kvm9 (%s) was not listed: The libvirt daemon is not running" % down)
    with pytest.raises(AnsibleParserError, match="hypervisor kvm9 .* was not listed"):
        run(tmp_path, dict(config, strict=True))


def test_two_hypervisors_with_one_name_is_an_error(tmp_path, hypervisors):
    # without names, both test:/// URIs are named after the machine the test driver runs on
    with pytest.raises(AnsibleParserError, match="both named"):
        run(tmp_path, dict(uris=sorted(hypervisors.values())))


@pytest.mark.parametrize("config, message", [
    (dict(), "no hypervisor"),
    (dict(uris=[dict(url="test:///default")]), "unknown keys url"),
    (dict(uris=[dict(uri="")]), "non-empty"),
    (dict(uris=[5]), "must be a URI"),
    (dict(uris=["test:///default", "test:///default"]), "given twice"),
    (dict(uris=["test:///default"], workers=0), "workers"),
    (dict(uris=["test:///default"], hypervisor_group="nowhere"), "no group 'nowhere'"),
    (dict(uris=["test:///default"], vars_prefix="vm-"), "vars_prefix"),
    (dict(uris=["test:///default"], ip_source="dhcp"), "ip_source"),
])
def test_bad_configuration(tmp_path, config, message):
    with pytest.raises(AnsibleError, match=message):  # AnsibleParserError; AnsibleOptionsError for choices
        run(tmp_path, config)


def test_uris_are_templates(tmp_path, hypervisors, monkeypatch):
    monkeypatch.setenv("VIRTOPS_TEST_NODE", hypervisors["kvm2"][len("test://"):])
    config = dict(uris=[dict(uri="test://{{ lookup('env', 'VIRTOPS_TEST_NODE') }}", name="{{ 'kvm' ~ (1 + 1) }}")])
    inventory, _warnings = run(tmp_path, config)
    assert sorted(inventory.hosts) == ["db1", "web2"]
    assert hostvars(inventory, "db1")["libvirt_hypervisor"] == "kvm2"
    assert hostvars(inventory, "db1")["libvirt_uri"] == hypervisors["kvm2"]
    with pytest.raises(AnsibleParserError, match=r"uris\[0\].uri: must be a non-empty string"):
        run(tmp_path, dict(uris=[dict(uri="{{ '' }}")]))


def test_missing_libvirt_binding_is_explained(tmp_path, monkeypatch):
    monkeypatch.setattr(plugin_module, "HAS_LIBVIRT", False)
    monkeypatch.setattr(plugin_module, "LIBVIRT_IMPORT_ERROR", "Traceback...\nModuleNotFoundError: No module named 'libvirt'\n")
    with pytest.raises(AnsibleError, match="needs the libvirt Python binding on the controller.*libvirt-python.*No module named"):
        run(tmp_path, dict(uris=["test:///default"]))


def test_verify_file(tmp_path):
    plugin = plugin_module.InventoryModule()
    for name, ok in (("x.libvirt.yml", True), ("libvirt.yaml", True), ("x.yml", False), ("libvirt.json", False)):
        path = tmp_path / name
        path.write_text("plugin: %s\n" % NAME)
        assert plugin.verify_file(str(path)) is ok, name


# --- hypervisors from an inventory group ----------------------------------------------------------


def test_hypervisor_group(tmp_path, make_node):
    kvm1 = make_node("g1", domains=[WEB1, dict(name="kvm2", memory=64)])  # a VM named like a hypervisor host
    kvm2 = make_node("g2", domains=[DB1])
    inventory = InventoryData()
    inventory.add_group("hypervisors")
    for host in ("kvm1", "kvm2"):
        inventory.add_host(host, group="hypervisors")
    inventory.set_variable("kvm1", "libvirt_uri", kvm1)
    inventory.set_variable("kvm2", "lab_node", os.path.basename(kvm2[len("test://"):]))
    inventory.set_variable("kvm2", "lab_dir", os.path.dirname(kvm2[len("test://"):]))
    config = dict(hypervisor_group="hypervisors", uri_template="test://{{ lab_dir }}/{{ lab_node }}",
                  keyed_groups=[dict(key="libvirt_hypervisor", prefix="on")])
    inventory, warnings = run(tmp_path, config, inventory=inventory)
    assert sorted(inventory.hosts) == ["db1", "kvm1", "kvm2", "kvm2@kvm1", "web1"]
    assert members(inventory, "on_kvm1") == ["kvm2@kvm1", "web1"]
    assert members(inventory, "on_kvm2") == ["db1"]
    assert hostvars(inventory, "db1")["libvirt_uri"] == kvm2  # made from the template
    assert "libvirt_hypervisor" not in hostvars(inventory, "kvm2")  # the hypervisor host is left alone
    assert len(warnings) == 1 and "kvm2@kvm1" in warnings[0]


def test_hypervisor_group_default_uri(tmp_path):
    inventory = InventoryData()
    inventory.add_group("hv")
    inventory.add_host("kvm5", group="hv")
    inventory.set_variable("kvm5", "ansible_host", "192.0.2.55")
    plugin = plugin_module.InventoryModule()
    plugin._load_name = NAME
    path = tmp_path / "x.libvirt.yml"
    path.write_text(yaml.safe_dump(dict(plugin=NAME, hypervisor_group="hv")))
    plugin.loader = DataLoader()
    plugin.inventory = inventory
    plugin._read_config_data(str(path))
    assert plugin._hypervisors() == [dict(uri="qemu+ssh://192.0.2.55/system", name="kvm5", from_group=True)]


# --- cache ----------------------------------------------------------------------------------------


def test_cache(tmp_path, make_node):
    uri = make_node("c1", domains=[WEB1, DB1])
    cache_dir = tmp_path / "cache"
    config = dict(uris=[dict(uri=uri, name="kvm1")], cache=True, cache_plugin="jsonfile",
                  cache_connection=str(cache_dir), cache_timeout=600)
    inventory, _warnings = run(tmp_path, config, cache=False)  # refresh: reads the hypervisor, fills the cache
    assert sorted(inventory.hosts) == ["db1", "web1"]
    assert os.listdir(str(cache_dir))
    make_node("c1", domains=[WEB1])  # db1 is gone from the hypervisor
    inventory, _warnings = run(tmp_path, config, cache=True)
    assert sorted(inventory.hosts) == ["db1", "web1"]  # from the cache
    inventory, _warnings = run(tmp_path, dict(config, filters=[dict(exclude="libvirt_name == 'web1'")]), cache=True)
    assert sorted(inventory.hosts) == ["db1"]  # filters apply to cached data
    inventory, _warnings = run(tmp_path, config, cache=False)
    assert sorted(inventory.hosts) == ["web1"]
    inventory, _warnings = run(tmp_path, dict(config, cache=False), cache=True)
    assert sorted(inventory.hosts) == ["web1"]


# --- the real command -----------------------------------------------------------------------------


def test_ansible_inventory_command(tmp_path, hypervisors):
    path = tmp_path / "fleet.libvirt.yml"
    down = "qemu:///system?socket=%s" % (tmp_path / "down.sock")
    path.write_text(yaml.safe_dump(dict(
        plugin=NAME,
        uris=uris(hypervisors) + [down],
        keyed_groups=[dict(key="libvirt_state", prefix="state")],
        filters=[dict(exclude="libvirt_state == 'paused'")],
    )))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=STAGE, ANSIBLE_NOCOLOR="1", ANSIBLE_INVENTORY_UNPARSED_FAILED="1")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-inventory"), "-i", str(path), "--list"]
    proc = subprocess.run(command, env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert sorted(data["_meta"]["hostvars"]) == ["db1", "web1", "web2"]
    assert sorted(data["state_running"]["hosts"]) == ["web1", "web2"]
    assert data["state_stopped"]["hosts"] == ["db1"]
    assert "was not listed" in proc.stderr and down in proc.stderr


# --- guest_agent_connection -------------------------------------------------------------------------

AGENT_VARS = ("ansible_connection", "ansible_libvirt_uri", "ansible_libvirt_vm")


@pytest.fixture
def with_plain(make_node):
    """kvm1: web1 (running, an address), spare (paused, no NIC), plain (running, no agent channel)."""
    return dict(kvm1=make_node("kvm1", domains=[WEB1, SPARE, dict(name="plain", state="running", guest_agent=False)]))


def agent_vars(inventory, host):
    variables = hostvars(inventory, host)
    return dict((k, variables[k]) for k in AGENT_VARS if k in variables)


def test_guest_agent_connection_never_is_the_default(tmp_path, with_plain):
    inventory, _warnings = run(tmp_path, dict(uris=uris(with_plain)))
    assert all(agent_vars(inventory, host) == {} for host in ("web1", "spare", "plain"))
    assert hostvars(inventory, "web1")["libvirt_guest_agent"] is True
    assert hostvars(inventory, "plain")["libvirt_guest_agent"] is False


def test_guest_agent_connection_always_hands_every_vm_with_a_channel(tmp_path, with_plain):
    inventory, _warnings = run(tmp_path, dict(uris=uris(with_plain), guest_agent_connection="always"))
    assert agent_vars(inventory, "web1") == dict(ansible_connection="virtops.libvirt.guest_agent",
                                                 ansible_libvirt_uri=with_plain["kvm1"], ansible_libvirt_vm="web1")
    assert agent_vars(inventory, "spare")["ansible_libvirt_vm"] == "spare"
    assert agent_vars(inventory, "plain") == {}  # no agent channel


def test_guest_agent_connection_without_address_leaves_vms_with_an_address(tmp_path, with_plain):
    inventory, _warnings = run(tmp_path, dict(uris=uris(with_plain), guest_agent_connection="without_address"))
    assert "ansible_host" in hostvars(inventory, "web1") and agent_vars(inventory, "web1") == {}
    assert agent_vars(inventory, "spare")["ansible_connection"] == "virtops.libvirt.guest_agent"
    assert agent_vars(inventory, "plain") == {}


def test_guest_agent_connection_with_few_variables_reads_what_it_needs(tmp_path, with_plain):
    config = dict(uris=uris(with_plain), guest_agent_connection="without_address", variables=["state"])
    inventory, _warnings = run(tmp_path, config)
    assert sorted(set_vars(inventory, "spare")) == sorted(AGENT_VARS + ("libvirt_state",))
    assert sorted(set_vars(inventory, "web1")) == ["libvirt_state"]  # it has an address (not set: not chosen)
    assert sorted(set_vars(inventory, "plain")) == ["libvirt_state"]


def test_guest_agent_connection_compose_has_the_last_word(tmp_path, with_plain):
    config = dict(uris=uris(with_plain), guest_agent_connection="always", compose=dict(ansible_connection="'ssh'"))
    inventory, _warnings = run(tmp_path, config)
    assert hostvars(inventory, "web1")["ansible_connection"] == "ssh"


def test_guest_agent_connection_bad_value(tmp_path, with_plain):
    with pytest.raises(AnsibleError, match="guest_agent_connection"):
        run(tmp_path, dict(uris=uris(with_plain), guest_agent_connection="sometimes"))
