# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Port forwards: validation, rules, reading back, the hook, and full network runs against the test
driver with an in-memory iptables (no firewall of this machine is touched)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._network import firewall as _firewall
from ansible_collections.virtops.libvirt.plugins.module_utils._network import firewall_hook as _firewall_hook
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    CommandError,
    ConflictError,
    InvalidInputError,
    MissingDependencyError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._network.firewall import PortForwards, uri_is_local
from ansible_collections.virtops.libvirt.plugins.module_utils._network.firewall_rules import (
    Iptables,
    chain_name,
    forward_label,
    in_sync,
    live_forwards,
    nat_rule,
    normalize_port_forwards,
    parse_comment,
    parse_rules,
    port_forwards_for,
    rule_comment,
    run_commands,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._network.resource import NetworkResource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context

SUBNET = ipaddress.ip_network("192.168.150.0/24")
BUILTIN = {"nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"), "filter": ("INPUT", "FORWARD", "OUTPUT")}


def _quote(token):
    if token and not any(c in token for c in ' "\\\''):
        return token
    return '"%s"' % token.replace("\\", "\\\\").replace('"', '\\"')


class FakeIptables:
    """Enough of iptables for our commands: -N -F -X -A -I -D -S with tables and chain checks."""

    def __init__(self, libvirt_chains=True):
        self.tables = dict((t, dict((c, []) for c in chains)) for t, chains in BUILTIN.items())
        self.calls = []
        if libvirt_chains:
            for name in ("LIBVIRT_FWX", "LIBVIRT_FWI", "LIBVIRT_FWO"):
                self.tables["filter"][name] = [["-o", "virbr1", "-j", "REJECT"]]
                self.tables["filter"]["FORWARD"].append(["-j", name])

    def __call__(self, argv, **_kwargs):
        self.calls.append(list(argv))
        args = list(argv[1:])
        assert args[0] == "-w" and args[1] == "-t", argv
        table = self.tables[args[2]]
        op, rest = args[3], args[4:]
        if op == "-S":
            return 0, self.save(args[2], rest[0] if rest else None), ""
        chain = rest[0]
        if op == "-N":
            if chain in table:
                return 1, "", "iptables: Chain already exists.\n"
            table[chain] = []
            return 0, "", ""
        if chain not in table:
            return 1, "", "iptables: No chain/target/match by that name.\n"
        if op == "-F":
            table[chain] = []
        elif op == "-X":
            if chain in BUILTIN[args[2]] or table[chain] or any("-j" in r and r[r.index("-j") + 1] == chain for c in table.values() for r in c):
                return 1, "", "iptables: Directory not empty.\n"
            del table[chain]
        elif op in ("-A", "-I"):
            spec = rest[1:]
            position = None
            if op == "-I":
                position, spec = int(spec[0]) - 1, spec[1:]
            target = spec[spec.index("-j") + 1]
            if target.isupper() and target not in ("DNAT", "ACCEPT", "REJECT", "RETURN") and target not in table:
                return 2, "", "iptables v1.8.9 (nf_tables): Chain '%s' does not exist\n" % target
            if position is None:
                table[chain].append(spec)
            else:
                table[chain].insert(position, spec)
        elif op == "-D":
            if rest[1:] not in table[chain]:
                return 1, "", "iptables: Bad rule (does a matching rule exist in that chain?).\n"
            table[chain].remove(rest[1:])
        else:
            raise AssertionError("unexpected iptables call %r" % argv)
        return 0, "", ""

    def save(self, table, only=None):
        lines = []
        for chain, rules in self.tables[table].items():
            if only is not None and chain != only:
                continue
            lines.append("-P %s ACCEPT" % chain if chain in BUILTIN[table] else "-N %s" % chain)
        for chain, rules in self.tables[table].items():
            if only is not None and chain != only:
                continue
            lines.extend("-A %s %s" % (chain, " ".join(_quote(t) for t in rule)) for rule in rules)
        return "\n".join(lines) + "\n"


def fwd(**kwargs):
    out = dict(protocol="tcp", host_address=None, host_port=8080, guest_address="192.168.150.10", guest_port=80)
    out.update(kwargs)
    return out


# ------------------------------------------------------------------------------- where we run ---

@pytest.mark.parametrize("uri, local", [
    (None, True),
    ("qemu:///system", True),
    ("qemu:///system?socket=/var/tmp/lab/host1/run/libvirt-sock", True),
    ("qemu+unix:///system", True),
    ("test:///default", True),
    ("qemu+ssh://root@hv1/system", False),
    ("qemu+tcp://10.213.0.11/system", False),
    ("qemu+tls://hv1.example.com/system", False),
    ("qemu://hv1/system", False),
    ("nonsense", False),
])
def test_uri_is_local(uri, local):
    assert uri_is_local(uri) is local


def test_firewall_backend(tmp_path, monkeypatch):
    assert _firewall.libvirt_firewall_backend(9000000, str(tmp_path)) == "iptables"
    monkeypatch.setattr(_firewall, "find_binary", lambda name: "/usr/sbin/nft" if name == "nft" else None)
    assert _firewall.libvirt_firewall_backend(10004000, str(tmp_path)) == "nftables"
    (tmp_path / "network.conf").write_text('# comment\nfirewall_backend = "iptables"\n')
    assert _firewall.libvirt_firewall_backend(10004000, str(tmp_path)) == "iptables"
    (tmp_path / "network.conf").write_text('firewall_backend = "nftables"\n')
    monkeypatch.setattr(_firewall, "find_binary", lambda name: None)
    assert _firewall.libvirt_firewall_backend(11000000, str(tmp_path)) == "nftables"


# ----------------------------------------------------------------------------------- validation ---

def test_normalize_defaults_ranges_and_order():
    got = normalize_port_forwards([
        dict(host_port=8080, guest_address="192.168.150.10", guest_port=80),
        dict(protocol="udp", host_port="5000-5005", guest_address="192.168.150.11", guest_port=6000),
        dict(host_port="8000-8002", guest_address="192.168.150.10"),
        dict(host_address="203.0.113.5", host_port="8080", guest_address="192.168.150.12", guest_port="81"),
        dict(host_port=2222, guest_address="192.168.150.13", guest_port="2200-2200"),
    ], SUBNET, "192.168.150.1")
    assert got == [
        fwd(host_address="203.0.113.5", guest_address="192.168.150.12", guest_port=81),
        fwd(host_port=2222, guest_address="192.168.150.13", guest_port=2200),
        fwd(host_port="8000-8002", guest_port="8000-8002"),
        fwd(),
        fwd(protocol="udp", host_port="5000-5005", guest_address="192.168.150.11", guest_port="6000-6005"),
    ]
    assert normalize_port_forwards(None, SUBNET) is None
    assert normalize_port_forwards([], SUBNET) == []


@pytest.mark.parametrize("items, message", [
    ([dict(host_port=8080, guest_address="192.168.99.10")], "port_forwards[0].guest_address: 192.168.99.10 is outside the network's subnet 192.168.150.0/24"),
    ([dict(host_port=0, guest_address="192.168.150.10")], "port_forwards[0].host_port: port 0 is out of range (1-65535)"),
    ([dict(host_port=70000, guest_address="192.168.150.10")], "port_forwards[0].host_port: port 70000 is out of range"),
    ([dict(host_port="80-70", guest_address="192.168.150.10")], "host_port: the range 80-70 ends before it starts"),
    ([dict(host_port="http", guest_address="192.168.150.10")], "host_port: 'http' is not a port or a range such as 8000-8010"),
    ([dict(host_port=True, guest_address="192.168.150.10")], "is not a port or a range"),
    ([dict(host_port=80, guest_address="192.168.150.10", guest_port=70000)], "guest_port: port 70000 is out of range"),
    ([dict(host_port="8000-8010", guest_address="192.168.150.10", guest_port="9000-9001")],
     "guest_port: the range 9000-9001 has 2 ports but host_port 8000-8010 has 11"),
    ([dict(host_port=80, guest_address="192.168.150.10", guest_port="80-81")], "has 2 ports but host_port 80 has 1"),
    ([dict(host_port="100-200", guest_address="192.168.150.10", guest_port=65500)], "guest_port: 65500-65600 runs past port 65535"),
    ([dict(host_port=80, guest_address="192.168.150.255")], "192.168.150.255 is not a usable host address of 192.168.150.0/24"),
    ([dict(host_port=80, guest_address="192.168.150.1")], "192.168.150.1 is the hypervisor's own address on the network"),
    ([dict(host_port=80, guest_address="fd00::10")], "fd00::10 is not an IPv4 address"),
    ([dict(host_port=80, guest_address="not-an-ip")], "'not-an-ip' is not an IP address"),
    ([dict(host_port=80, guest_address="192.168.150.10", host_address="127.0.0.1")], "cannot be forwarded (loopback or multicast)"),
    ([dict(host_port=80, guest_address="192.168.150.10", host_address="0.0.0.0")], "leave host_address out to forward on all host addresses"),
    ([dict(host_port=80, guest_address="192.168.150.10", protocol="sctp")], "protocol: 'sctp' is not one of tcp, udp"),
    ([dict(guest_address="192.168.150.10")], "port_forwards[0]: host_port is required"),
    ([dict(host_port=80)], "port_forwards[0]: guest_address is required"),
    (["8080:80"], "port_forwards[0]: a port forward is a dict"),
    ([dict(host_port=8080, guest_address="192.168.150.10"), dict(host_port="8079-8081", guest_address="192.168.150.11", guest_port=9000)],
     "port_forwards[1]: tcp port 8079-8081 on all host addresses is already forwarded by port_forwards[0] (tcp *:8080 -> 192.168.150.10:8080)"),
    ([dict(host_address="203.0.113.5", host_port=53, protocol="udp", guest_address="192.168.150.10"),
      dict(host_address="203.0.113.5", host_port=53, protocol="udp", guest_address="192.168.150.11")],
     "udp port 53 on 203.0.113.5 is already forwarded by port_forwards[0]"),
])
def test_validation_messages(items, message):
    with pytest.raises(InvalidInputError) as info:
        normalize_port_forwards(items, SUBNET, "192.168.150.1")
    assert message in info.value.msg


def test_same_port_on_other_protocol_or_address_is_allowed():
    got = normalize_port_forwards([
        dict(host_port=53, guest_address="192.168.150.10"),
        dict(host_port=53, protocol="udp", guest_address="192.168.150.10"),
        dict(host_port=53, host_address="203.0.113.5", guest_address="192.168.150.11"),
    ], SUBNET)
    assert [forward_label(f) for f in got] == [
        "tcp 203.0.113.5:53 -> 192.168.150.11:53", "tcp *:53 -> 192.168.150.10:53", "udp *:53 -> 192.168.150.10:53"]


def test_no_subnet():
    with pytest.raises(InvalidInputError) as info:
        normalize_port_forwards([dict(host_port=80, guest_address="192.168.150.10")], None)
    assert "has no IPv4 address" in info.value.msg


# ------------------------------------------------------------------------------------ rules ---

@pytest.mark.parametrize("name", ["default", "virtops-it-pf", "a" * 17, "a" * 18, "net with spaces", "n\u00e9t", "x" * 128])
def test_chain_names_fit(name):
    chain = chain_name(name)
    assert chain.startswith("VIRTOPS_PF_") and len(chain) <= 28
    assert all(c.isalnum() or c in "_.-" for c in chain)


def test_chain_names_differ():
    assert chain_name("a" * 18) != chain_name("a" * 19)
    assert chain_name("exp") == "VIRTOPS_PF_exp"


@pytest.mark.parametrize("network", ["exp", 'net "quoted" \\ back', "a: tcp *:1 -> 10.0.0.1:1", "x" * 128])
@pytest.mark.parametrize("forward", [fwd(), fwd(host_address="203.0.113.5", protocol="udp", host_port="5000-5005", guest_port="6000-6005")])
def test_comment_round_trip(network, forward):
    comment = rule_comment(network, forward)
    assert len(comment) <= 255
    assert parse_comment(comment) == (network, forward)


def test_foreign_comments_are_not_ours():
    assert parse_comment("something else") is None
    assert parse_comment(None) is None


@pytest.mark.parametrize("forward, dest", [
    (fwd(), "192.168.150.10:80"),
    (fwd(host_port="8000-8002", guest_port="8000-8002"), "192.168.150.10"),
    (fwd(host_port="8000-8002", guest_port="9000-9002"), "192.168.150.10:9000-9002/8000"),
])
def test_dnat_destinations(forward, dest):
    rule = nat_rule("exp", forward)
    assert rule[-3:] == ["DNAT", "--to-destination", dest]
    assert "--dport" in rule and rule[rule.index("--dport") + 1] == str(forward["host_port"]).replace("-", ":")


def test_all_addresses_means_local_but_not_loopback():
    rule = nat_rule("exp", fwd())
    assert rule[:7] == ["!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL"]
    assert nat_rule("exp", fwd(host_address="203.0.113.5"))[:2] == ["-d", "203.0.113.5/32"]


# What iptables -S printed in the lab after the module applied two forwards (iptables v1.8.9 nf_tables).
_C8080 = '-m comment --comment "virtops-libvirt port forward of network exp: tcp *:8080 -> 192.168.150.10:80"'
_C5000 = '-m comment --comment "virtops-libvirt port forward of network exp: udp *:5000-5005 -> 192.168.150.11:6000-6005"'
LAB_NAT = "\n".join([
    "-P PREROUTING ACCEPT",
    "-P INPUT ACCEPT",
    "-P OUTPUT ACCEPT",
    "-P POSTROUTING ACCEPT",
    "-N LIBVIRT_PRT",
    "-N VIRTOPS_PF_exp",
    '-A PREROUTING -m comment --comment "virtops-libvirt port forwards of network exp" -j VIRTOPS_PF_exp',
    '-A OUTPUT -m comment --comment "virtops-libvirt port forwards of network exp" -j VIRTOPS_PF_exp',
    "-A POSTROUTING -j LIBVIRT_PRT",
    "-A LIBVIRT_PRT -s 192.168.150.0/24 ! -d 192.168.150.0/24 -j MASQUERADE",
    "-A VIRTOPS_PF_exp ! -d 127.0.0.0/8 -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 8080 " + _C8080
    + " -j DNAT --to-destination 192.168.150.10:80",
    "-A VIRTOPS_PF_exp ! -d 127.0.0.0/8 -p udp -m addrtype --dst-type LOCAL -m udp --dport 5000:5005 " + _C5000
    + " -j DNAT --to-destination 192.168.150.11:6000-6005/5000",
]) + "\n"
LAB_FILTER = "\n".join([
    "-P INPUT ACCEPT",
    "-P FORWARD ACCEPT",
    "-P OUTPUT ACCEPT",
    "-N LIBVIRT_FWI",
    "-N VIRTOPS_PF_exp",
    '-A FORWARD -m comment --comment "virtops-libvirt port forwards of network exp" -j VIRTOPS_PF_exp',
    "-A FORWARD -j LIBVIRT_FWX",
    "-A FORWARD -j LIBVIRT_FWI",
    "-A FORWARD -j LIBVIRT_FWO",
    "-A LIBVIRT_FWI -o vexp0 -j REJECT --reject-with icmp-port-unreachable",
    "-A VIRTOPS_PF_exp -d 192.168.150.10/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT " + _C8080 + " -j ACCEPT",
    "-A VIRTOPS_PF_exp -d 192.168.150.11/32 -p udp -m udp --dport 6000:6005 -m conntrack --ctstate DNAT " + _C5000 + " -j ACCEPT",
]) + "\n"
LAB_FORWARDS = [fwd(), fwd(protocol="udp", host_port="5000-5005", guest_address="192.168.150.11", guest_port="6000-6005")]


def test_parse_real_iptables_output():
    state = parse_rules("exp", dict(nat=LAB_NAT, filter=LAB_FILTER))
    assert sorted(state["chains"]) == ["filter", "nat"]
    assert state["owners"] == {"exp"}
    assert state["forward_ok"]
    assert live_forwards("exp", state) == LAB_FORWARDS
    assert in_sync("exp", state, LAB_FORWARDS)
    assert not in_sync("exp", state, LAB_FORWARDS[:1])
    assert not in_sync("exp", state, [])
    assert live_forwards("other", parse_rules("other", dict(nat=LAB_NAT, filter=LAB_FILTER))) == []


def test_jump_behind_libvirt_is_out_of_sync():
    lines = LAB_FILTER.splitlines()
    lines.insert(8, lines.pop(5))  # our FORWARD jump after LIBVIRT_FWO
    state = parse_rules("exp", dict(nat=LAB_NAT, filter="\n".join(lines)))
    assert not state["forward_ok"] and not in_sync("exp", state, LAB_FORWARDS)


def test_missing_or_double_jumps_are_out_of_sync():
    nat = LAB_NAT.replace('-A OUTPUT -m comment --comment "virtops-libvirt port forwards of network exp" -j VIRTOPS_PF_exp\n', "")
    assert not in_sync("exp", parse_rules("exp", dict(nat=nat, filter=LAB_FILTER)), LAB_FORWARDS)
    double = LAB_FILTER + '-A FORWARD -m comment --comment "virtops-libvirt port forwards of network exp" -j VIRTOPS_PF_exp\n'
    assert not in_sync("exp", parse_rules("exp", dict(nat=LAB_NAT, filter=double)), LAB_FORWARDS)
    # without the PREROUTING jump nothing is in effect
    nat = LAB_NAT.replace('-A PREROUTING -m comment --comment "virtops-libvirt port forwards of network exp" -j VIRTOPS_PF_exp\n', "")
    assert live_forwards("exp", parse_rules("exp", dict(nat=nat, filter=LAB_FILTER))) == []


def test_apply_and_remove_with_fake_iptables():
    fake = FakeIptables()
    ipt = Iptables(fake, "/usr/sbin/iptables")
    assert in_sync("exp", ipt.read("exp"), [])
    run_commands(fake, ipt.apply_commands("exp", LAB_FORWARDS))
    state = ipt.read("exp")
    assert in_sync("exp", state, LAB_FORWARDS) and live_forwards("exp", state) == LAB_FORWARDS
    assert fake.tables["filter"]["FORWARD"][0][-1] == "VIRTOPS_PF_exp"
    # applying again (the hook at every start) keeps exactly one jump each, at the top
    run_commands(fake, ipt.apply_commands("exp", LAB_FORWARDS[1:]))
    state = ipt.read("exp")
    assert in_sync("exp", state, LAB_FORWARDS[1:])
    assert [len(v) for v in state["jumps"].values()] == [1, 1, 1]
    run_commands(fake, ipt.remove_commands("exp"))
    assert in_sync("exp", ipt.read("exp"), [])
    assert "VIRTOPS_PF_exp" not in fake.tables["nat"] and "VIRTOPS_PF_exp" not in fake.tables["filter"]
    run_commands(fake, ipt.remove_commands("exp"))  # nothing left to remove is fine


def test_run_commands_reports_failures():
    with pytest.raises(CommandError) as info:
        run_commands(lambda argv: (1, "", "iptables: Permission denied\n"), [dict(argv=["iptables", "-w", "-t", "nat", "-S"])])
    assert "Permission denied" in info.value.msg and info.value.rc == 1


def test_other_networks_rules_are_refused(tmp_path):
    fake = FakeIptables()
    ipt = Iptables(fake, "/usr/sbin/iptables")
    run_commands(fake, ipt.apply_commands("exp", LAB_FORWARDS))
    ctx = Context(run_command=fake, uri="qemu:///system")
    forwards = PortForwards(ctx, "exp", str(tmp_path))
    forwards.backend = ipt
    fake.tables["nat"]["VIRTOPS_PF_exp"][0][-5] = rule_comment("other", LAB_FORWARDS[0])
    with pytest.raises(ConflictError) as info:
        forwards.read_live()
    assert "also used by network(s) other" in info.value.msg


def test_port_forwards_for_a_network():
    ipv4 = dict(address="192.168.150.1", prefix=24)
    got = port_forwards_for([dict(host_port=8080, guest_address="192.168.150.10", guest_port=80)], "pf", "nat", ipv4)
    assert got == [dict(protocol="tcp", host_address=None, host_port=8080, guest_address="192.168.150.10", guest_port=80)]
    assert port_forwards_for([], "pf", "isolated", None) == []
    with pytest.raises(InvalidInputError, match="network 'pf' is isolated; port forwards need forward_mode nat"):
        port_forwards_for([dict(host_port=80, guest_address="192.168.150.10")], "pf", "isolated", ipv4)
    with pytest.raises(InvalidInputError, match="network 'pf' is a route network"):
        port_forwards_for([dict(host_port=80, guest_address="192.168.150.10")], "pf", "route", ipv4)
    with pytest.raises(InvalidInputError, match="is the hypervisor's own address"):
        port_forwards_for([dict(host_port=80, guest_address="192.168.150.1")], "pf", "nat", ipv4)


# ------------------------------------------------------------------------------------- hook ---

def test_hook_present_like_libvirt(tmp_path):
    hooks = tmp_path / "hooks"
    assert not _firewall_hook.network_hook_present(str(hooks))
    (hooks / "network.d").mkdir(parents=True)
    (hooks / "network.d" / "plain").write_text("x")
    assert not _firewall_hook.network_hook_present(str(hooks))
    os.chmod(str(hooks / "network.d" / "plain"), 0o755)
    assert _firewall_hook.network_hook_present(str(hooks))
    (hooks / "network.d" / "plain").unlink()
    (hooks / "network").write_text("#!/bin/sh\n")
    os.chmod(str(hooks / "network"), 0o755)
    assert _firewall_hook.network_hook_present(str(hooks))


def _hook_setup(tmp_path, uuid="3f1b0d4e-0000-4000-8000-000000000001"):
    """The hook, a state file whose commands are a logging stand-in for iptables."""
    log = tmp_path / "calls.log"
    tool = tmp_path / "fake-iptables"
    tool.write_text(
        "#!%s\nimport sys\nlog = %r\nopen(log, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "removes = open(log).read().count('remove')\n"
        "sys.exit(1 if 'FAIL' in sys.argv or (sys.argv[1] == 'remove' and removes >= 3) else 0)\n" % (sys.executable, str(log)))
    os.chmod(str(tool), 0o755)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    hook = tmp_path / "hook"
    hook.write_text(_firewall_hook.hook_text(str(state_dir), python=sys.executable))
    os.chmod(str(hook), 0o755)
    state = dict(uuid=uuid, apply=[dict(argv=[str(tool), "apply", "FAIL"]), dict(argv=[str(tool), "apply", "2"])],
                 remove=[dict(argv=[str(tool), "remove"], repeat=True)])
    (state_dir / "my net.json").write_text(json.dumps(state))
    return hook, log


def _run_hook(hook, *args, stdin=""):
    return subprocess.run([str(hook)] + list(args), input=stdin, capture_output=True, text=True, check=False)


def test_hook_applies_on_started_and_removes_on_stopped(tmp_path):
    hook, log = _hook_setup(tmp_path)
    xml = "<hookData><network><name>my net</name><uuid>3f1b0d4e-0000-4000-8000-000000000001</uuid></network></hookData>"
    proc = _run_hook(hook, "my net", "started", "begin", "-", stdin=xml)
    assert proc.returncode == 0  # a failed command never fails the network start
    assert "apply FAIL failed (rc 1)" in proc.stderr
    assert log.read_text() == "apply FAIL\napply 2\n"
    log.unlink()
    assert _run_hook(hook, "my net", "stopped", "end", "-", stdin=xml).returncode == 0
    assert log.read_text() == "remove\n" * 3  # repeat: until the command fails (no jump left to delete)


def test_hook_ignores_other_networks_and_operations(tmp_path):
    hook, log = _hook_setup(tmp_path)
    other = "<network><name>my net</name><uuid>3f1b0d4e-0000-4000-8000-000000000002</uuid></network>"
    proc = _run_hook(hook, "my net", "started", "begin", "-", stdin=other)
    assert proc.returncode == 0 and "was written for another network" in proc.stderr
    for args in (("my net", "start", "begin", "-"), ("my net", "port-created", "begin", "-"), ("nothing here", "started", "begin", "-"),
                 ("../state/my net", "started", "begin", "-")):
        assert _run_hook(hook, *args).returncode == 0
    assert not log.exists()


def test_hook_text_is_stable_python():
    text = _firewall_hook.hook_text("/etc/libvirt/virtops/port-forwards", python="/usr/bin/python3")
    assert text.startswith("#!/usr/bin/python3\n")
    assert text == _firewall_hook.hook_text("/etc/libvirt/virtops/port-forwards", python="/usr/bin/python3")
    compile(text, "hook", "exec")


# --------------------------------------------------------------------------- daemon lookup ---

def test_daemon_found_by_socket_peer(tmp_path, monkeypatch):
    path = str(tmp_path / "sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    try:
        assert _firewall_hook._socket_peer(path) == os.getpid()
        monkeypatch.setattr(_firewall_hook, "_comm", lambda pid: "libvirtd" if pid == os.getpid() else None)
        assert _firewall_hook.network_daemon_pids("qemu:///system?socket=%s" % path) == [os.getpid()]
    finally:
        server.close()
    assert _firewall_hook._socket_peer(str(tmp_path / "missing")) is None


# ------------------------------------------------------------------- network runs (test driver) ---

@pytest.fixture
def hypervisor(tmp_path, monkeypatch):
    """This process as a hypervisor: libvirt's config dir in tmp_path, an in-memory iptables, a
    recorded daemon reload instead of a signal."""
    fake = FakeIptables()
    reloads = []
    monkeypatch.setattr(NetworkResource, "firewall_etc", str(tmp_path))
    monkeypatch.setattr(_firewall, "find_binary", lambda name: "/usr/sbin/" + name if name == "iptables" else None)
    monkeypatch.setattr(_firewall, "is_root", lambda: True)
    monkeypatch.setattr(_firewall, "network_daemon_pids", lambda uri: [4242])
    monkeypatch.setattr(_firewall, "reload_daemon", reloads.append)
    fake.reloads = reloads
    fake.etc = tmp_path
    return fake


@pytest.fixture
def networks(test_conn):
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


def run(conn, fake, check=False, uri="test:///default", **params):
    params.setdefault("state", "active")
    ctx = Context(conn=conn, params=params, check_mode=check, diff=True, run_command=fake, uri=uri)
    return reconcile(NetworkResource(ctx), check_mode=check, want_diff=True)


def four(conn, fake, **params):
    return [run(conn, fake, check=check, **params) for check in (True, False, True, False)]


NAT = dict(forward_mode="nat", ipv4=dict(address="192.168.150.1", prefix=24))
FORWARDS = [dict(host_port=8080, guest_address="192.168.150.10", guest_port=80),
            dict(protocol="udp", host_port="5000-5005", guest_address="192.168.150.11", guest_port=6000)]


def test_network_with_port_forwards_four_times(test_conn, hypervisor, networks):
    networks.append("pf-net")
    results = four(test_conn, hypervisor, name="pf-net", port_forwards=FORWARDS, **NAT)
    assert [r["changed"] for r in results] == [True, True, False, False], [r["actions"] for r in results]
    state_path = os.path.join(str(hypervisor.etc), "virtops", "port-forwards", "pf-net.json")
    hook_path = os.path.join(str(hypervisor.etc), "hooks", "network.d", "virtops-port-forwards")
    assert results[1]["actions"] == [
        "define network pf-net",
        "start network pf-net",
        "record port forwards of network pf-net in %s" % state_path,
        "install the libvirt network hook %s" % hook_path,
        "reload the libvirt daemon (pid 4242) so that it runs the new network hook",
        "apply port forwards of network pf-net: tcp *:8080 -> 192.168.150.10:80, udp *:5000-5005 -> 192.168.150.11:6000-6005",
    ]
    assert hypervisor.reloads == [4242]
    assert results[0]["network"]["port_forwards"] == results[3]["network"]["port_forwards"] == LAB_FORWARDS
    state = json.loads(open(state_path).read())
    assert state["uuid"] == test_conn.networkLookupByName("pf-net").UUIDString()
    assert state["forwards"] == LAB_FORWARDS and state["apply"] and state["remove"]
    assert stat.S_IMODE(os.stat(hook_path).st_mode) == 0o755
    assert in_sync("pf-net", Iptables(hypervisor, "/usr/sbin/iptables").read("pf-net"), LAB_FORWARDS)
    assert results[1]["diff"]["before"] == {"state": "absent"}

    # one forward less: rules and record follow, nothing else
    results = four(test_conn, hypervisor, name="pf-net", port_forwards=FORWARDS[:1])
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert [a.split(" of network")[0] for a in results[1]["actions"]] == ["record port forwards", "apply port forwards"]
    assert results[1]["diff"]["before"]["port_forwards"] == LAB_FORWARDS
    assert live_forwards("pf-net", Iptables(hypervisor, "/usr/sbin/iptables").read("pf-net")) == LAB_FORWARDS[:1]

    # rules lost behind our back (a firewall reload): put back
    run_commands(hypervisor, Iptables(hypervisor, "/usr/sbin/iptables").remove_commands("pf-net"))
    again = run(test_conn, hypervisor, name="pf-net", port_forwards=FORWARDS[:1])
    assert again["changed"] and again["actions"] == ["apply port forwards of network pf-net: tcp *:8080 -> 192.168.150.10:80"]

    # absent takes rules and record along; the hook stays for other networks
    results = four(test_conn, hypervisor, name="pf-net", state="absent")
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[1]["actions"] == ["stop network pf-net", "undefine network pf-net",
                                     "remove the port forward record %s" % state_path,
                                     "remove the port forward rules of network pf-net"]
    assert not os.path.exists(state_path) and os.path.exists(hook_path)
    assert "VIRTOPS_PF_pf-net" not in hypervisor.tables["nat"]
    assert hypervisor.reloads == [4242]


def test_check_mode_changes_nothing(test_conn, hypervisor, networks):
    networks.append("pf-check")
    run(test_conn, hypervisor, name="pf-check", **NAT)
    result = run(test_conn, hypervisor, check=True, name="pf-check", port_forwards=FORWARDS)
    assert result["changed"] and len(result["actions"]) == 4
    assert not os.path.exists(os.path.join(str(hypervisor.etc), "virtops"))
    assert not os.path.exists(os.path.join(str(hypervisor.etc), "hooks"))
    assert not [c for c in hypervisor.calls if "-S" not in c]
    assert hypervisor.reloads == []


def test_inactive_network_records_then_starts(test_conn, hypervisor, networks):
    networks.append("pf-cold")
    results = four(test_conn, hypervisor, name="pf-cold", state="present", port_forwards=FORWARDS, **NAT)
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert not [a for a in results[1]["actions"] if a.startswith("apply")]
    assert results[3]["network"]["port_forwards"] == LAB_FORWARDS  # recorded, not yet live
    assert "VIRTOPS_PF_pf-cold" not in hypervisor.tables["nat"]
    results = four(test_conn, hypervisor, name="pf-cold", state="active", port_forwards=FORWARDS)
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[1]["actions"][0] == "start network pf-cold" and results[1]["actions"][-1].startswith("apply port forwards")
    # stopping the network takes the rules away (the hook would too)
    results = four(test_conn, hypervisor, name="pf-cold", state="inactive", port_forwards=FORWARDS)
    assert results[1]["actions"] == ["stop network pf-cold", "remove the port forward rules of network pf-cold"]
    assert "VIRTOPS_PF_pf-cold" not in hypervisor.tables["nat"]
    # an empty list removes the record as well
    results = four(test_conn, hypervisor, name="pf-cold", state="inactive", port_forwards=[])
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[1]["actions"][0].startswith("remove the port forward record")


def test_existing_hook_needs_no_reload(test_conn, hypervisor, networks):
    networks.append("pf-hooked")
    hooks = hypervisor.etc / "hooks"
    hooks.mkdir()
    (hooks / "network").write_text("#!/bin/sh\nexit 0\n")
    os.chmod(str(hooks / "network"), 0o755)
    result = run(test_conn, hypervisor, name="pf-hooked", port_forwards=FORWARDS, **NAT)
    assert not [a for a in result["actions"] if a.startswith("reload")] and hypervisor.reloads == []


@pytest.mark.parametrize("params, error, message", [
    (dict(forward_mode="route", ipv4=NAT["ipv4"]), InvalidInputError, "network 'pf-bad' is a route network; port forwards need forward_mode nat"),
    (dict(forward_mode="isolated", ipv4=NAT["ipv4"]), InvalidInputError, "is isolated; port forwards need forward_mode nat"),
    (dict(forward_mode="nat"), InvalidInputError, "the network has no IPv4 address"),
    (dict(NAT, uri="qemu+ssh://root@hv1/system"), InvalidInputError, "uri 'qemu+ssh://root@hv1/system' is remote"),
])
def test_refused_before_anything_changes(test_conn, hypervisor, networks, params, error, message):
    networks.append("pf-bad")
    with pytest.raises(error) as info:
        run(test_conn, hypervisor, name="pf-bad", port_forwards=FORWARDS, **params)
    assert message in info.value.msg
    assert not [c for c in hypervisor.calls if "-S" not in c]
    with pytest.raises(Exception):
        test_conn.networkLookupByName("pf-bad")


def test_not_root_and_nftables_and_no_iptables(test_conn, hypervisor, networks, monkeypatch):
    networks.append("pf-env")
    monkeypatch.setattr(_firewall, "is_root", lambda: False)
    with pytest.raises(InvalidInputError) as info:
        run(test_conn, hypervisor, name="pf-env", port_forwards=FORWARDS, **NAT)
    assert "run the module as root" in info.value.msg
    monkeypatch.setattr(_firewall, "is_root", lambda: True)
    monkeypatch.setattr(_firewall, "libvirt_firewall_backend", lambda version, etc: "nftables")
    with pytest.raises(ConflictError) as info:
        run(test_conn, hypervisor, name="pf-env", port_forwards=FORWARDS, **NAT)
    assert "uses its nftables firewall backend" in info.value.msg
    monkeypatch.setattr(_firewall, "libvirt_firewall_backend", lambda version, etc: "iptables")
    monkeypatch.setattr(_firewall, "find_binary", lambda name: None)
    with pytest.raises(MissingDependencyError):
        run(test_conn, hypervisor, name="pf-env", port_forwards=FORWARDS, **NAT)


def test_failed_apply_is_undone(test_conn, hypervisor, networks):
    networks.append("pf-fail")
    run(test_conn, hypervisor, name="pf-fail", **NAT)

    def failing(argv, **kwargs):
        if "-A" in argv and "DNAT" in argv:
            return 4, "", "iptables: Resource temporarily unavailable.\n"
        return hypervisor(argv, **kwargs)

    with pytest.raises(CommandError):
        run(test_conn, failing, name="pf-fail", port_forwards=FORWARDS)
    assert not os.path.exists(os.path.join(str(hypervisor.etc), "virtops", "port-forwards", "pf-fail.json"))
    assert not os.path.exists(os.path.join(str(hypervisor.etc), "hooks", "network.d", "virtops-port-forwards"))
    assert "VIRTOPS_PF_pf-fail" not in hypervisor.tables["nat"] and "VIRTOPS_PF_pf-fail" not in hypervisor.tables["filter"]
