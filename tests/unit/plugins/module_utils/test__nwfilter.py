# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Network filter model <-> XML (checked by libvirt's schema), and reconcile runs.

libvirt's test driver has no network filter driver, so the runs use a small stand-in for the filter
calls (define, look up, list, undefine) next to the test driver's real domains: the usage guard reads
real domain XML.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import subprocess
import uuid as _uuid

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._nwfilter.codec import model_from_xml, xml_from_model
from ansible_collections.virtops.libvirt.plugins.module_utils._nwfilter.model import normalize_model, rule_text
from ansible_collections.virtops.libvirt.plugins.module_utils._nwfilter.resource import NwFilterResource, referrers

RULES = [
    dict(direction="in", action="drop", protocol="tcp", source="10.0.0.5", destination_ports="8000", state=["new"]),
    dict(direction="in", action="accept", protocol="tcp", source="10.0.0.0/24", destination_ports="8000:8010",
         priority=400),
    dict(direction="out", action="reject", protocol="udp", destination_ports=53, statematch=False),
    dict(direction="inout", action="accept", protocol="icmp", source="$IP", icmp_type="8"),
    dict(direction="inout", action="drop", protocol="tcp-ipv6", source="fd00::/64", source_ports="1024-65535"),
    dict(direction="out", action="accept", protocol="mac", protocol_id="ipv4", source_mac="52:54:00:AA:BB:CC"),
    dict(direction="in", action="return", protocol="all", attributes={"comment": "the rest"}),
]
REFS = [dict(filter="clean-traffic", parameters={"IP": ["10.0.0.7", "10.0.0.8"]}), dict(filter="allow-dhcp")]


def validate(tmp_path, root):
    path = tmp_path / "f.xml"
    path.write_text(_xml.to_string(root))
    proc = subprocess.run(["virt-xml-validate", str(path), "nwfilter"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout + path.read_text()


def test_generated_xml_passes_libvirt_schema_and_reads_back(tmp_path):
    model = normalize_model(dict(chain="ipv4-web", priority=-650, rules=RULES, filterrefs=REFS))
    root = xml_from_model("web", model, uuid=str(_uuid.uuid4()))
    validate(tmp_path, root)
    back = model_from_xml(_xml.to_string(root))
    for key in ("chain", "priority", "rules", "filterrefs"):
        assert back[key] == model[key], key


def test_rules_normalised():
    rules = normalize_model(dict(rules=RULES))["rules"]
    assert rules[0] == dict(direction="in", action="drop", priority=500, protocol="tcp", source="10.0.0.5",
                            destination_ports="8000", state=["NEW"])
    assert rules[1]["destination_ports"] == "8000-8010"
    assert rules[2]["destination_ports"] == "53" and rules[2]["statematch"] is False
    assert rules[5]["source_mac"] == "52:54:00:aa:bb:cc"
    assert rule_text(rules[0]) == "500 in drop tcp from 10.0.0.5 to any dport 8000 state NEW"
    assert rule_text(rules[2]) == "500 out reject udp dport 53 statematch=false"


def test_libvirt_formatted_xml_reads_as_the_same_rules():
    """What libvirt returns for a filter defined from our XML (attribute order, priority filled in)."""
    text = """<filter name='t1' chain='ipv4' priority='-700'>
  <uuid>6c85e6b6-d804-44e7-8bda-4888c21f55c0</uuid>
  <rule action='drop' direction='in' priority='500'>
    <tcp srcipaddr='10.0.0.5' state='NEW,ESTABLISHED' dstportstart='8000' dstportend='8001'/>
  </rule>
  <filterref filter='clean-traffic'>
    <parameter name='IP' value='10.1.1.1'/>
  </filterref>
</filter>"""
    model = normalize_model(dict(chain="ipv4", priority=-700, filterrefs=[dict(filter="clean-traffic", parameters={"IP": "10.1.1.1"})],
                                 rules=[dict(direction="in", action="drop", protocol="tcp", source="10.0.0.5",
                                             destination_ports="8000-8001", state=["ESTABLISHED", "NEW"])]))
    back = model_from_xml(text)
    assert back["uuid"] == "6c85e6b6-d804-44e7-8bda-4888c21f55c0"
    assert back["rules"] == model["rules"] and back["filterrefs"] == model["filterrefs"]


@pytest.mark.parametrize("rule, text", [
    (dict(protocol="tcp", source="10.0.0.300"), "rules[0].source: '10.0.0.300' is not an IP address"),
    (dict(protocol="tcp", source="fd00::1"), "is an IPv6 address; this rule's protocol is IPv4"),
    (dict(protocol="icmp", destination_ports="80"), "protocol icmp has no ports"),
    (dict(protocol="arp", source="10.0.0.1"), "protocol arp has no IP addresses"),
    (dict(protocol="tcp", destination_ports="90-80"), "ends before it starts"),
    (dict(protocol="tcp", destination_ports="70000"), "is not between 0 and 65535"),
    (dict(protocol="tcp", state=["NEW", "BOGUS"]), "BOGUS: the states are"),
    (dict(protocol="mac", state=["NEW"]), "protocol mac has no connection state"),
    (dict(protocol="tcp", priority=2000), "rules[0].priority: 2000 is not between -1000 and 1000"),
    (dict(protocol="tcp", attributes={"srcipaddr": "1.2.3.4"}), "is not a free attribute"),
    (dict(protocol="mac", source_mac="52:54"), "is not a MAC address"),
])
def test_bad_rules_are_refused_with_a_clear_message(rule, text):
    with pytest.raises(InvalidInputError) as info:
        normalize_model(dict(rules=[rule]))
    assert text in info.value.msg


def test_bad_chain_and_parameters_refused():
    with pytest.raises(InvalidInputError, match="chain: 'ipv5'"):
        normalize_model(dict(chain="ipv5"))
    with pytest.raises(InvalidInputError, match="not a filter parameter name"):
        normalize_model(dict(filterrefs=[dict(filter="clean-traffic", parameters={"bad name": "x"})]))


# ------------------------------------------------------------------------------ reconcile ---

class _Filter:
    def __init__(self, store, name):
        self.store, self._name = store, name

    def name(self):
        return self._name

    def XMLDesc(self, flags=0):
        return self.store.filters[self._name]

    def UUIDString(self):
        return _xml.find_text(_xml.parse(self.store.filters[self._name]), "uuid")

    def undefine(self):
        if self._name in self.store.busy:
            raise libvirt.libvirtError("nwfilter is in use")
        del self.store.filters[self._name]


class FilterConn:
    """The test driver's connection with the network filter calls it lacks."""

    def __init__(self, conn):
        self.conn = conn
        self.filters = {}
        self.busy = set()
        self.defined = 0

    def __getattr__(self, name):
        return getattr(self.conn, name)

    def nwfilterLookupByName(self, name):
        if name not in self.filters:
            err = libvirt.libvirtError("Network filter not found: no nwfilter with matching name '%s'" % name)
            err.err = (libvirt.VIR_ERR_NO_NWFILTER, 0, "not found", 0, name, None, None, 0, 0)
            raise err
        return _Filter(self, name)

    def nwfilterDefineXML(self, text):
        root = _xml.parse(text)
        name = root.get("name")
        old = self.filters.get(name)
        if root.find("uuid") is None:
            assert old is None, "a redefine must keep the UUID"
            _xml.sub(root, "uuid", str(_uuid.uuid4()))
            root.insert(0, root[-1])
        elif old is not None:
            assert _xml.find_text(root, "uuid") == _xml.find_text(_xml.parse(old), "uuid")
        self.filters[name] = _xml.to_string(root)
        self.defined += 1
        return _Filter(self, name)

    def listAllNWFilters(self, flags=0):
        return [_Filter(self, n) for n in sorted(self.filters)]


@pytest.fixture
def fconn(test_conn):
    conn = FilterConn(test_conn)
    conn.nwfilterDefineXML("<filter name='clean-traffic' chain='root'><filterref filter='no-mac-spoofing'/></filter>")
    conn.nwfilterDefineXML("<filter name='no-mac-spoofing' chain='mac'/>")
    yield conn
    for name in ("sf-vm1",):
        try:
            dom = test_conn.lookupByName(name)
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        except libvirt.libvirtError:
            pass


def run(conn, check=False, diff=True, **params):
    params.setdefault("name", "web")
    params.setdefault("state", "present")
    ctx = Context(conn=conn, params=params, check_mode=check, diff=diff)
    return reconcile(NwFilterResource(ctx), check_mode=check, want_diff=diff)


def test_check_apply_check_apply_and_uuid_kept(fconn):
    params = dict(chain="ipv4", rules=RULES[:3], filterrefs=[dict(filter="clean-traffic", parameters={"IP": "10.0.0.7"})])
    assert run(fconn, check=True, **params)["changed"] is True
    assert "web" not in fconn.filters
    result = run(fconn, **params)
    assert result["changed"] is True and result["actions"] == ["define network filter web"]
    uuid = result["nwfilter"]["uuid"]
    assert run(fconn, check=True, **params)["changed"] is False
    assert run(fconn, **params)["changed"] is False
    # one rule changed: one redefine, UUID kept, the diff shows that rule's line
    params["rules"] = [dict(RULES[0], source="10.0.0.6")] + RULES[1:3]
    result = run(fconn, **params)
    assert result["changed"] is True and result["actions"][0].startswith("redefine network filter web (rules)")
    assert "500 in drop tcp from 10.0.0.5 to any dport 8000 state NEW" in result["diff"]["before"]["rules"]
    assert "500 in drop tcp from 10.0.0.6 to any dport 8000 state NEW" in result["diff"]["after"]["rules"]
    assert model_from_xml(fconn.filters["web"])["uuid"] == uuid
    assert run(fconn, **params)["changed"] is False
    # options not given are kept
    assert run(fconn, rules=[])["changed"] is True
    back = model_from_xml(fconn.filters["web"])
    assert back["rules"] == [] and back["chain"] == "ipv4" and back["filterrefs"][0]["filter"] == "clean-traffic"


def test_builtin_filters_are_neither_changed_nor_removed(fconn):
    with pytest.raises(InvalidInputError, match="ships with libvirt"):
        run(fconn, name="clean-traffic", state="absent")
    with pytest.raises(InvalidInputError, match="ships with libvirt"):
        run(fconn, name="clean-traffic", rules=RULES[:1])
    assert run(fconn, name="clean-traffic", filterrefs=[dict(filter="no-mac-spoofing")])["changed"] is False


def test_missing_reference_and_loops_refused(fconn):
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import NotFoundError
    with pytest.raises(NotFoundError, match="'nope' does not exist"):
        run(fconn, filterrefs=[dict(filter="nope")])
    assert "web" not in fconn.filters
    assert run(fconn, check=True, filterrefs=[dict(filter="nope")])["changed"] is True  # assumed in check mode
    run(fconn, name="outer", filterrefs=[dict(filter="clean-traffic")])
    run(fconn, name="web", rules=[])
    run(fconn, name="outer", filterrefs=[dict(filter="web")])
    with pytest.raises(InvalidInputError, match="would be a loop"):
        run(fconn, name="web", filterrefs=[dict(filter="outer")])
    assert referrers(dict(a=["b"], b=["c"], c=[]), "c") == ["a", "b"]


def test_removal_in_use_refused_naming_vms_and_filters(fconn, test_conn):
    run(fconn, name="web", rules=RULES[:1])
    run(fconn, name="outer", filterrefs=[dict(filter="web")])
    test_conn.defineXML("""<domain type='test'><name>sf-vm1</name><memory>65536</memory><os><type>hvm</type></os>
      <devices><interface type='network'><mac address='52:54:00:00:5f:01'/><source network='default'/>
      <filterref filter='outer'/></interface></devices></domain>""")
    with pytest.raises(ConflictError) as info:
        run(fconn, name="web", state="absent")
    msg = info.value.msg
    assert "VM sf-vm1 (stopped: interface 52:54:00:00:5f:01 through filter outer)" in msg
    assert "is referenced by network filter(s) outer" in msg and "force: true" in msg
    assert info.value.details["referenced_by"] == ["outer"]
    assert "web" in fconn.filters
    # check mode: a warning, changed
    result = run(fconn, name="web", state="absent", check=True)
    assert result["changed"] is True and "sf-vm1" in " ".join(result["assumptions"])
    # force removes it
    result = run(fconn, name="web", state="absent", force=True)
    assert result["changed"] is True and "web" not in fconn.filters
    assert run(fconn, name="web", state="absent")["changed"] is False


def test_libvirt_refusal_for_a_running_guest_is_reported(fconn):
    run(fconn, name="web", rules=RULES[:1])
    fconn.busy.add("web")
    with pytest.raises(ConflictError, match="running guest's interface, and libvirt refuses"):
        run(fconn, name="web", state="absent", force=True)
    assert "web" in fconn.filters
