# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Network model <-> XML, validation, and full reconcile runs against libvirt's test driver."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import subprocess

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._network.codec import apply_model, model_from_xml, xml_from_model
from ansible_collections.virtops.libvirt.plugins.module_utils._network.live import bridge_update_xml, network_update_xml, reattach_interfaces
from ansible_collections.virtops.libvirt.plugins.module_utils._network.model import normalize_model, validate_bridge_name, validate_name
from ansible_collections.virtops.libvirt.plugins.module_utils._network.resource import NetworkResource
from ansible_collections.virtops.libvirt.plugins.module_utils._network.view import gather_network_info, ip_for_mac
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Plan, reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context

VIRT_XML_VALIDATE = "/usr/bin/virt-xml-validate"
SCHEMA = "network"
UUID = "2f5b8d52-7a5e-4e43-9c1c-5f7c0c0e8f11"

IPV4 = dict(
    address="192.168.210.1", prefix=24,
    dhcp_ranges=[dict(start="192.168.210.100", end="192.168.210.150")],
    dhcp_hosts=[dict(mac="52:54:00:AA:00:01", ip="192.168.210.10", name="web1")],
)
DNS = dict(enabled=True, forwarders=["192.0.2.53"], hosts=[dict(ip="192.168.210.10", hostnames=["web1", "www"])])

MODELS = [
    ("nat", dict(forward_mode="nat", bridge="vtestbr0", mtu=1400, domain="lab.example", ipv4=IPV4, dns=DNS,
                 ipv6=dict(address="fd00:210::1", prefix=64,
                           dhcp_ranges=[dict(start="fd00:210::100", end="fd00:210::1ff")]))),
    ("route", dict(forward_mode="route", ipv4=dict(address="192.168.211.1", prefix=24))),
    ("open", dict(forward_mode="open", ipv4=dict(address="192.168.212.1", prefix=24))),
    ("isolated", dict(forward_mode="isolated", ipv4=dict(address="192.168.213.1", prefix=28),
                      dns=dict(enabled=False))),
    ("bridge", dict(forward_mode="bridge", bridge="br0")),
]


def model(**params):
    return normalize_model(params)


@pytest.fixture(autouse=True)
def private_etc(tmp_path, monkeypatch):
    """libvirt's configuration directory (port forward records) is a private one, never /etc/libvirt."""
    monkeypatch.setattr(NetworkResource, "firewall_etc", str(tmp_path / "etc-libvirt"))


# ------------------------------------------------------------------------------ XML <-> model ---

@pytest.mark.parametrize("label, params", MODELS, ids=[m[0] for m in MODELS])
def test_generated_xml_passes_libvirt_schema(tmp_path, label, params):
    path = tmp_path / ("%s.xml" % label)
    path.write_text(_xml.to_string(xml_from_model("n-" + label, model(**params), uuid=UUID)))
    proc = subprocess.run([VIRT_XML_VALIDATE, str(path), SCHEMA], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr + path.read_text()


def test_schema_oracle_can_fail(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_text("<network><name>x</name><forward mode='nonsense'/></network>")
    proc = subprocess.run([VIRT_XML_VALIDATE, str(path), SCHEMA], capture_output=True, text=True, check=False)
    assert proc.returncode != 0


@pytest.mark.parametrize("label, params", MODELS, ids=[m[0] for m in MODELS])
def test_model_xml_round_trip(label, params):
    wanted = model(**params)
    back = model_from_xml(_xml.to_string(xml_from_model("n", wanted)))
    for key in ("forward_mode", "bridge", "mtu", "domain"):
        if wanted[key] is not None:
            assert back[key] == wanted[key], key
    for key in ("ipv4", "ipv6"):
        if wanted[key] is not None:
            for sub, value in wanted[key].items():
                if value is not None:
                    assert back[key][sub] == value, (key, sub)
    if wanted["dns"] is not None:
        for sub, value in wanted["dns"].items():
            if value is not None:
                assert back["dns"][sub] == value, sub


def test_apply_model_keeps_uuid_mac_bridge_and_nat_ports():
    text = """<network><name>n</name><uuid>%s</uuid><forward mode='nat'><nat><port start='1024' end='65535'/></nat>
      </forward><bridge name='virbr7' stp='on' delay='0'/><mac address='52:54:00:01:02:03'/>
      <ip address='192.168.210.1' netmask='255.255.255.0'><dhcp><range start='192.168.210.2' end='192.168.210.9'/>
      </dhcp></ip></network>""" % UUID
    root = apply_model(_xml.parse(text), model(forward_mode="nat", mtu=1300, ipv4=dict(address="192.168.210.1", prefix=25)))
    out = _xml.to_string(root)
    assert UUID in out and "52:54:00:01:02:03" in out and "virbr7" in out and "port start" in out
    back = model_from_xml(out)
    assert back["ipv4"]["prefix"] == 25 and back["mtu"] == 1300
    assert back["ipv4"]["dhcp_ranges"] == [dict(start="192.168.210.2", end="192.168.210.9")]
    assert root.find("ip").get("netmask") is None


def test_dns_hosts_of_both_families_sort():
    got = model(dns=dict(hosts=[dict(ip="fd00::5", hostnames=["b"]), dict(ip="192.168.1.5", hostnames=["a"])]))
    assert [h["ip"] for h in got["dns"]["hosts"]] == ["192.168.1.5", "fd00::5"]
    back = model_from_xml(_xml.to_string(xml_from_model("n", got)))
    assert back["dns"]["hosts"] == got["dns"]["hosts"]


def test_model_from_xml_netmask_and_isolated():
    got = model_from_xml("<network><name>x</name><ip address='10.0.0.1' netmask='255.255.0.0'/></network>")
    assert got["forward_mode"] == "isolated" and got["ipv4"]["prefix"] == 16
    assert got["dns"] == dict(enabled=True, forwarders=[], hosts=[])


# ----------------------------------------------------------------------------------- validation ---

def ip(**extra):
    base = dict(address="192.168.220.1", prefix=24)
    base.update(extra)
    return base


BAD = [
    ("overlap", dict(ipv4=ip(dhcp_ranges=[dict(start="192.168.220.10", end="192.168.220.50"),
                                          dict(start="192.168.220.40", end="192.168.220.60")])),
     "ipv4.dhcp_ranges[1] (192.168.220.40-192.168.220.60) overlaps ipv4.dhcp_ranges[0] (192.168.220.10-192.168.220.50)"),
    ("outside", dict(ipv4=ip(dhcp_ranges=[dict(start="192.168.220.10", end="192.168.221.5")])),
     "ipv4.dhcp_ranges[0]: end 192.168.221.5 is outside the subnet 192.168.220.0/24"),
    ("reversed", dict(ipv4=ip(dhcp_ranges=[dict(start="192.168.220.50", end="192.168.220.10")])),
     "ipv4.dhcp_ranges[0]: start 192.168.220.50 is after end 192.168.220.10"),
    ("host-outside", dict(ipv4=ip(dhcp_hosts=[dict(mac="52:54:00:00:00:01", ip="10.1.1.1")])),
     "ipv4.dhcp_hosts[0].ip: 10.1.1.1 is outside the subnet 192.168.220.0/24"),
    ("bad-mac", dict(ipv4=ip(dhcp_hosts=[dict(mac="52:54:00:00:00", ip="192.168.220.5")])),
     "ipv4.dhcp_hosts[0].mac: '52:54:00:00:00' is not a MAC address such as 52:54:00:12:34:56"),
    ("dup-mac", dict(ipv4=ip(dhcp_hosts=[dict(mac="52:54:00:00:00:01", ip="192.168.220.5"),
                                         dict(mac="52:54:00:00:00:01", ip="192.168.220.6")])),
     "ipv4.dhcp_hosts[1].mac: 52:54:00:00:00:01 is already reserved by ipv4.dhcp_hosts[0]"),
    ("long-bridge", dict(bridge="virtops-bridge-x"),
     "bridge: 'virtops-bridge-x' is 16 characters long; Linux interface names have at most 15 (IFNAMSIZ-1)"),
    ("network-address", dict(ipv4=dict(address="192.168.220.0", prefix=24)),
     "ipv4.address: 192.168.220.0 is the network address of 192.168.220.0/24, not a usable host address"),
    ("wrong-family", dict(ipv4=dict(address="fd00::1", prefix=64)), "ipv4.address: fd00::1 is not an IPv4 address"),
    ("bridge-needs-name", dict(forward_mode="bridge"), "forward_mode bridge needs bridge: the name of an existing host bridge"),
    ("bridge-no-ip", dict(forward_mode="bridge", bridge="br0", ipv4=ip()),
     "ipv4 cannot be used with forward_mode bridge: the host bridge has its own addressing"),
    ("v6-range-outside", dict(ipv6=dict(address="fd00:1::1", prefix=64, dhcp_ranges=[dict(start="fd00:2::1", end="fd00:2::9")])),
     "ipv6.dhcp_ranges[0]: start fd00:2::1 is outside the subnet fd00:1::/64"),
    ("dns-disabled-hosts", dict(dns=dict(enabled=False, hosts=[dict(ip="192.168.220.5", hostnames=["a"])])),
     "dns: forwarders and hosts need dns.enabled true (libvirt's DNS server)"),
    ("mtu", dict(mtu=20), "mtu: 20 is out of range (68-65535)"),
    ("host-is-gateway", dict(ipv4=ip(dhcp_hosts=[dict(mac="52:54:00:00:00:01", ip="192.168.220.1")])),
     "ipv4.dhcp_hosts[0].ip: 192.168.220.1 is the network's own address (ipv4.address, the guests' gateway); "
     "reserve another address of 192.168.220.0/24"),
    ("host-is-broadcast", dict(ipv4=ip(dhcp_hosts=[dict(mac="52:54:00:00:00:01", ip="192.168.220.255")])),
     "ipv4.dhcp_hosts[0].ip: 192.168.220.255 is not a usable host address of 192.168.220.0/24"),
]


@pytest.mark.parametrize("label, params, message", BAD, ids=[b[0] for b in BAD])
def test_validation_messages(label, params, message):
    with pytest.raises(InvalidInputError) as info:
        normalize_model(params)
    assert info.value.msg == message


@pytest.mark.parametrize("name", ["", "a/b", ".", " x", "x\n"])
def test_bad_names(name):
    with pytest.raises(InvalidInputError):
        validate_name(name)


def test_bridge_name_limit():
    assert validate_bridge_name("a" * 15) == "a" * 15
    with pytest.raises(InvalidInputError):
        validate_bridge_name("a" * 16)


# ------------------------------------------------------------------------------ reconcile runs ---

def run(conn, check=False, diff=True, **params):
    params.setdefault("state", "active")
    ctx = Context(conn=conn, params=params, check_mode=check, diff=diff)
    return reconcile(NetworkResource(ctx), check_mode=check, want_diff=diff)


def four(conn, **params):
    return [run(conn, check=check, **params) for check in (True, False, True, False)]


@pytest.fixture
def cleanup(test_conn):
    names = []
    yield names
    for name in names:
        try:
            net = test_conn.networkLookupByName(name)
        except Exception:  # pylint: disable=broad-except
            continue
        if net.isActive():
            net.destroy()
        if net.isPersistent():
            net.undefine()


def assert_four(results):
    assert [r["changed"] for r in results] == [True, True, False, False], [r["actions"] for r in results]


def test_create_nat_network_four_times(test_conn, cleanup):
    cleanup.append("u-nat")
    results = four(test_conn, name="u-nat", forward_mode="nat", ipv4=IPV4, dns=DNS, autostart=True)
    assert_four(results)
    assert results[0]["network"]["uuid"] is None
    assert results[1]["actions"] == ["define network u-nat", "set autostart of network u-nat to true", "start network u-nat"]
    net = test_conn.networkLookupByName("u-nat")
    assert net.isActive() and net.autostart()
    got = model_from_xml(net.XMLDesc(0))
    assert got["forward_mode"] == "nat" and got["ipv4"]["dhcp_hosts"][0]["mac"] == "52:54:00:aa:00:01"
    assert results[3]["network"]["uuid"] == net.UUIDString()


@pytest.mark.parametrize("mode", ["route", "open", "isolated"])
def test_other_modes(test_conn, cleanup, mode):
    name = "u-" + mode
    cleanup.append(name)
    assert_four(four(test_conn, name=name, forward_mode=mode, ipv4=dict(address="192.168.230.1", prefix=24)))
    assert model_from_xml(test_conn.networkLookupByName(name).XMLDesc(0))["forward_mode"] == mode


def test_dhcp_and_dns_hosts_change_live(test_conn, cleanup):
    cleanup.append("u-live")
    run(test_conn, name="u-live", forward_mode="nat", ipv4=IPV4)
    uuid = test_conn.networkLookupByName("u-live").UUIDString()
    hosts = IPV4["dhcp_hosts"] + [dict(mac="52:54:00:aa:00:02", ip="192.168.210.11", name="web2")]
    ipv4 = dict(IPV4, dhcp_hosts=hosts)
    dns = dict(hosts=[dict(ip="192.168.210.11", hostnames=["web2"])])
    results = four(test_conn, name="u-live", ipv4=ipv4, dns=dns)
    assert_four(results)
    assert results[1]["actions"] == [
        "add DHCP reservation 52:54:00:aa:00:02 (192.168.210.11) to network u-live",
        "add DNS host 192.168.210.11 (web2) to network u-live",
    ]
    assert results[1]["restart_required"] is False
    net = test_conn.networkLookupByName("u-live")
    assert net.UUIDString() == uuid
    got = model_from_xml(net.XMLDesc(0))  # the test driver has no VIR_NETWORK_XML_INACTIVE; the lab test checks both
    assert [h["mac"] for h in got["ipv4"]["dhcp_hosts"]] == ["52:54:00:aa:00:01", "52:54:00:aa:00:02"]
    assert got["dns"]["hosts"] == [dict(ip="192.168.210.11", hostnames=["web2"])]
    # change one reservation and remove the other
    results = four(test_conn, name="u-live", ipv4=dict(IPV4, dhcp_hosts=[dict(mac="52:54:00:aa:00:02", ip="192.168.210.12")]))
    assert_four(results)
    assert results[1]["actions"] == [
        "remove DHCP reservation 52:54:00:aa:00:01 (192.168.210.10) from network u-live",
        "change DHCP reservation 52:54:00:aa:00:02 to 192.168.210.12 in network u-live",
    ]
    got = model_from_xml(net.XMLDesc(0))
    assert got["ipv4"]["dhcp_hosts"] == [dict(mac="52:54:00:aa:00:02", ip="192.168.210.12", name=None)]


def test_live_sections_on_inactive_network_change_config_only(test_conn, cleanup):
    cleanup.append("u-cold")
    run(test_conn, name="u-cold", state="present", ipv4=dict(address="192.168.245.1", prefix=24))
    hosts = [dict(mac="52:54:00:aa:00:05", ip="192.168.245.5")]
    results = four(test_conn, name="u-cold", state="present",
                   ipv4=dict(address="192.168.245.1", prefix=24, dhcp_hosts=hosts))
    assert_four(results)
    assert results[1]["actions"] == ["add DHCP reservation 52:54:00:aa:00:05 (192.168.245.5) to network u-cold"]
    net = test_conn.networkLookupByName("u-cold")
    assert not net.isActive()
    assert model_from_xml(net.XMLDesc(0))["ipv4"]["dhcp_hosts"] == [dict(hosts[0], name=None)]


def test_ip_for_mac_prefers_lease():
    facts = [dict(dhcp_leases=[dict(mac="52:54:00:00:00:01", ip="10.0.0.50")],
                  ipv4=dict(dhcp_hosts=[dict(mac="52:54:00:00:00:01", ip="10.0.0.5"),
                                        dict(mac="52:54:00:00:00:02", ip="10.0.0.6")]))]
    assert ip_for_mac(facts, "52:54:00:00:00:01") == "10.0.0.50"
    assert ip_for_mac(facts, "52:54:00:00:00:02") == "10.0.0.6"
    assert ip_for_mac(facts, "52:54:00:00:00:03") is None


def test_definition_change_keeps_uuid_and_bridge(test_conn, cleanup):
    cleanup.append("u-redef")
    run(test_conn, name="u-redef", state="present", forward_mode="nat", bridge="vredef0",
        ipv4=dict(address="192.168.240.1", prefix=24))
    uuid = test_conn.networkLookupByName("u-redef").UUIDString()
    results = four(test_conn, name="u-redef", state="present", forward_mode="route", mtu=1400)
    assert_four(results)
    assert results[1]["actions"] == ["redefine network u-redef"] and results[1]["restart_required"] is False
    got = model_from_xml(test_conn.networkLookupByName("u-redef").XMLDesc(0))
    assert (got["forward_mode"], got["mtu"], got["bridge"]) == ("route", 1400, "vredef0")
    assert got["ipv4"]["address"] == "192.168.240.1"
    assert test_conn.networkLookupByName("u-redef").UUIDString() == uuid


def test_active_definition_change_needs_restart(test_conn, cleanup):
    cleanup.append("u-restart")
    run(test_conn, name="u-restart", forward_mode="nat", ipv4=dict(address="192.168.244.1", prefix=24))
    first = run(test_conn, name="u-restart", forward_mode="route")
    assert first["changed"] and first["restart_required"] is True
    assert first["actions"] == ["redefine network u-restart"]
    assert "restart: true" in first["warnings"][0]
    # The test driver neither shows nor applies the saved definition of an active network (no
    # VIR_NETWORK_XML_INACTIVE), so only the plan is checked here; the lab target checks the effect.
    restarted = run(test_conn, name="u-restart", forward_mode="route", restart=True)
    assert restarted["restart_required"] is False
    assert restarted["actions"][-2:] == ["stop network u-restart to apply its new definition", "start network u-restart"]


def test_plan_returns_restart_required_in_its_outcome(test_conn, cleanup):
    """The contract: what the plan found out travels in the Outcome, not on the resource."""
    cleanup.append("u-outcome")
    run(test_conn, name="u-outcome", forward_mode="nat", ipv4=dict(address="192.168.245.1", prefix=24))
    resource = NetworkResource(Context(conn=test_conn, params=dict(name="u-outcome", state="active", forward_mode="route")))
    current = resource.read()
    desired = resource.desired(current)
    plan = Plan()
    outcome = resource.plan(current, desired, resource.compare(current, desired), plan)
    assert outcome.values == dict(restart_required=True, reattached=[])
    assert plan.descriptions == ["redefine network u-outcome"]
    assert not hasattr(resource, "restart_required") or resource.restart_required is False
    assert resource.result(resource.predict(current, desired), outcome)["restart_required"] is True


def test_states_and_absent(test_conn, cleanup):
    cleanup.append("u-state")
    assert_four(four(test_conn, name="u-state", state="present", ipv4=dict(address="192.168.241.1", prefix=24)))
    assert not test_conn.networkLookupByName("u-state").isActive()
    assert_four(four(test_conn, name="u-state", state="active"))
    assert_four(four(test_conn, name="u-state", state="inactive"))
    assert_four(four(test_conn, name="u-state", state="absent"))
    with pytest.raises(Exception):
        test_conn.networkLookupByName("u-state")


DOMAIN = """<domain type='test'><name>u-dom</name><memory>65536</memory><os><type>hvm</type></os>
<devices><interface type='network'><source network='u-used'/></interface></devices></domain>"""


def test_absent_refused_with_running_domain(test_conn, cleanup):
    cleanup.append("u-used")
    run(test_conn, name="u-used", ipv4=dict(address="192.168.242.1", prefix=24))
    dom = test_conn.createXML(DOMAIN, 0)
    try:
        with pytest.raises(ConflictError) as info:
            run(test_conn, name="u-used", state="absent")
        assert info.value.msg.startswith("network 'u-used' is used by VM u-dom (running: interface ")
        assert info.value.details["attached_domains"] == ["u-dom"]
        facts = gather_network_info(Context(conn=test_conn, params=dict(name="u-used")))
        assert facts["networks"][0]["attached_domains"] == ["u-dom"]
        forced = run(test_conn, name="u-used", state="absent", force=True)
        assert forced["changed"] and forced["actions"] == ["stop network u-used", "undefine network u-used"]
    finally:
        dom.destroy()


def test_xml_passthrough(test_conn, cleanup):
    cleanup.append("u-xml")
    text = "<network><name>u-xml</name><forward mode='nat'/><ip address='192.168.243.1' prefix='24'/></network>"
    assert_four(four(test_conn, name="u-xml", xml=text))
    with pytest.raises(InvalidInputError):
        run(test_conn, name="u-xml", xml="<network><name>other</name></network>")


def test_bridge_mode_checks_host_interface(test_conn, cleanup):
    cleanup.append("u-br")
    with pytest.raises(InvalidInputError) as info:
        run(test_conn, name="u-br", forward_mode="bridge", bridge="nosuchbr0")
    assert "has no interface 'nosuchbr0'" in info.value.msg
    predicted = run(test_conn, check=True, name="u-br", forward_mode="bridge", bridge="nosuchbr0")  # an earlier task may make it
    assert predicted["changed"] and "has no interface 'nosuchbr0'" in predicted["assumptions"][0]
    assert_four(four(test_conn, name="u-br", forward_mode="bridge", bridge="eth1", state="present"))


def test_info_all_and_mac(test_conn, cleanup):
    cleanup.append("u-info")
    run(test_conn, name="u-info", ipv4=IPV4)
    facts = gather_network_info(Context(conn=test_conn, params=dict(mac="52:54:00:aa:00:01")))
    names = [n["name"] for n in facts["networks"]]
    assert "default" in names and "u-info" in names
    assert facts["ip"] == "192.168.210.10"
    with pytest.raises(NotFoundError):
        gather_network_info(Context(conn=test_conn, params=dict(name="u-nope")))


# ----------------------------------------------------------------------- reattach after restart ---

LIVE_DOMAIN = """<domain type='kvm' id='3'>
  <name>web1</name>
  <uuid>6695eb01-f6a4-8304-79aa-97f2502e1930</uuid>
  <memory unit='KiB'>65536</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <interface type='network'>
      <mac address='52:54:00:50:5a:3f'/>
      <source network='exp' portid='e446ccda-cd1b-4cac-b288-631b011ab2df' bridge='vexp0'/>
      <target dev='vnet0'/>
      <model type='virtio'/>
      <alias name='net0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:9a:0c:8a'/>
      <source network='other' portid='40a3aee4-3a42-4502-99f8-bbf53cbbf577' bridge='vother0'/>
      <target dev='vnet1'/>
      <model type='e1000'/>
      <alias name='net1'/>
    </interface>
  </devices>
</domain>"""


def test_replug_xml_keeps_the_device(tmp_path):
    iface = _xml.parse(LIVE_DOMAIN).find("devices/interface")
    as_bridge = _xml.parse(bridge_update_xml(iface, "vexp1"))
    assert as_bridge.get("type") == "bridge" and dict(as_bridge.find("source").attrib) == {"bridge": "vexp1"}
    as_network = _xml.parse(network_update_xml(iface))
    assert as_network.get("type") == "network" and dict(as_network.find("source").attrib) == {"network": "exp"}
    for node in (as_bridge, as_network):
        assert node.find("mac").get("address") == "52:54:00:50:5a:3f"
        assert node.find("target").get("dev") == "vnet0" and node.find("alias").get("name") == "net0"
        assert node.find("address").get("slot") == "0x02" and node.find("model").get("type") == "virtio"
    # each update, put into the domain, is a valid domain definition for libvirt's schema
    for text in (bridge_update_xml(iface, "vexp1"), network_update_xml(iface)):
        root = _xml.parse(LIVE_DOMAIN)
        devices = root.find("devices")
        devices.replace(devices.find("interface"), _xml.parse(text))
        path = tmp_path / "domain.xml"
        path.write_text(_xml.to_string(root))
        proc = subprocess.run([VIRT_XML_VALIDATE, str(path), "domain"], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


class FakeDomain:
    def __init__(self, xml, fail=False):
        self.xml = xml
        self.calls = []
        self.fail = fail

    def name(self):
        return _xml.find_text(_xml.parse(self.xml), "name")

    def XMLDesc(self, _flags=0):
        return self.xml

    def updateDeviceFlags(self, text, flags):
        if self.fail:
            import libvirt  # pylint: disable=import-outside-toplevel
            raise libvirt.libvirtError("unable to change config on 'bridge' network type")
        self.calls.append((_xml.parse(text).get("type"), _xml.parse(text).find("source").attrib.get("bridge"), flags))


class FakeNetwork:
    def __init__(self, xml):
        self.xml = xml

    def XMLDesc(self, _flags=0):
        return self.xml


class FakeConn:
    def __init__(self, domains, network_xml="<network><name>exp</name><bridge name='vexp1'/></network>"):
        self.domains = domains
        self.network_xml = network_xml

    def listAllDomains(self, _flags=0):
        return self.domains

    def networkLookupByName(self, _name):
        return FakeNetwork(self.network_xml)


def test_reattach_replugs_only_the_networks_interfaces():
    dom = FakeDomain(LIVE_DOMAIN)
    done, failures = reattach_interfaces(FakeConn([dom]), "exp")
    assert done == [dict(domain="web1", mac="52:54:00:50:5a:3f", device="vnet0")] and failures == []
    assert dom.calls == [("bridge", "vexp1", 1), ("network", None, 1)]  # live only, bridge first
    broken = FakeDomain(LIVE_DOMAIN.replace("web1", "web2"), fail=True)
    done, failures = reattach_interfaces(FakeConn([broken, dom]), "exp")
    assert [d["domain"] for d in done] == ["web1"]
    assert failures == ["web2 interface 52:54:00:50:5a:3f: unable to change config on 'bridge' network type"]
    no_bridge = FakeConn([dom], "<network><name>exp</name></network>")
    assert reattach_interfaces(no_bridge, "exp") == ([], ["network 'exp' runs without a bridge device to put them into"])


RESTART_DOMAIN = """<domain type='test'><name>u-rdom</name><memory>65536</memory><os><type>hvm</type></os>
<devices><interface type='network'><mac address='52:54:00:aa:10:01'/><source network='u-replug'/></interface></devices></domain>"""


def test_restart_plans_reattach_of_running_domains(test_conn, cleanup):
    cleanup.append("u-replug")
    run(test_conn, name="u-replug", forward_mode="nat", bridge="vreplug0", ipv4=dict(address="192.168.246.1", prefix=24))
    dom = test_conn.createXML(RESTART_DOMAIN, 0)
    try:
        predicted = run(test_conn, check=True, name="u-replug", mtu=1400, restart=True)
        assert predicted["actions"][-1] == "reattach the interfaces of the running domain(s) u-rdom to network u-replug"
        assert [(r["domain"], r["mac"]) for r in predicted["reattached"]] == [("u-rdom", "52:54:00:aa:10:01")]
        # the test driver cannot update devices: the restart happens, the failure is reported per interface
        with pytest.raises(BackendError) as info:
            run(test_conn, name="u-replug", mtu=1400, restart=True)
        assert "some interfaces could not be reattached to its bridge: u-rdom interface 52:54:00:aa:10:01" in info.value.msg
        assert test_conn.networkLookupByName("u-replug").isActive()
        untouched = run(test_conn, name="u-replug", mtu=1400)
        assert untouched["reattached"] == []
        # a network stopped under running domains: starting it reattaches them as well
        test_conn.networkLookupByName("u-replug").destroy()
        started = run(test_conn, check=True, name="u-replug", state="active")
        assert started["actions"] == ["start network u-replug",
                                      "reattach the interfaces of the running domain(s) u-rdom to network u-replug"]
    finally:
        dom.destroy()


@pytest.mark.parametrize("host, message", [
    ("<host mac='52:54:00:00:00:01' ip='192.168.244.1'/>", "192.168.244.1 is the network's own address"),
    ("<host mac='52:54:00:00:00:01' ip='10.9.9.9'/>", "10.9.9.9 is outside the subnet 192.168.244.0/24"),
])
def test_xml_reservations_are_checked_too(test_conn, cleanup, host, message):
    cleanup.append("u-xmlres")
    text = ("<network><name>u-xmlres</name><ip address='192.168.244.1' netmask='255.255.255.0'><dhcp>"
            "<range start='192.168.244.10' end='192.168.244.20'/>%s</dhcp></ip></network>" % host)
    with pytest.raises(InvalidInputError, match=message):
        run(test_conn, check=True, name="u-xmlres", xml=text)


def test_subnet_overlapping_an_active_network(test_conn, cleanup):
    """test:///default runs 'default' on 192.168.122.0/24."""
    cleanup.extend(["u-overlap", "u-apart"])
    for check in (True, False):
        with pytest.raises(ConflictError) as info:
            run(test_conn, check=check, name="u-overlap", ipv4=dict(address="192.168.122.129", prefix=25))
        assert info.value.msg.startswith("network 'u-overlap': its subnet 192.168.122.128/25 overlaps "
                                         "192.168.122.0/24 of the active network 'default'")
        assert info.value.details["overlapping_network"] == "default"
    with pytest.raises(ConflictError, match="of the active network 'default'"):
        run(test_conn, name="u-overlap", xml="<network><name>u-overlap</name><ip address='192.168.0.1' prefix='16'/>"
                                             "</network>")
    assert "u-overlap" not in test_conn.listNetworks() + test_conn.listDefinedNetworks()
    # a subnet of its own; then changed onto 'default': refused, the definition stays
    run(test_conn, name="u-apart", ipv4=dict(address="192.168.245.1", prefix=24))
    with pytest.raises(ConflictError, match="overlaps 192.168.122.0/24"):
        run(test_conn, name="u-apart", ipv4=dict(address="192.168.122.2", prefix=24))
    assert "192.168.245.1" in test_conn.networkLookupByName("u-apart").XMLDesc(0)
    # an inactive network may overlap; starting it may not, while 'default' runs
    default = test_conn.networkLookupByName("default")
    default.destroy()
    try:
        run(test_conn, name="u-overlap", state="inactive", ipv4=dict(address="192.168.122.129", prefix=25))
    finally:
        default.create()
    with pytest.raises(ConflictError, match="of the active network 'default'"):
        run(test_conn, name="u-overlap", state="active")
    assert not test_conn.networkLookupByName("u-overlap").isActive()
    # the network itself is no other network
    assert not run(test_conn, name="default", state="active")["changed"]
