# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Changes to a running network without redefining it.

DHCP host reservations and DNS host entries are changed with ``virNetworkUpdate`` (live, no
restart; dnsmasq keeps running).

Restarting a network recreates its bridge, and libvirt does not put the tap devices of running
VMs back into it; the module re-plugs each such interface with two live device updates (type
``bridge`` on the new bridge, then ``network`` again), which keeps MAC, PCI address and tap.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._network.codec import dns_host_element, host_element, ip_nodes
from ansible_collections.virtops.libvirt.plugins.module_utils._network.view import interface_summary, running_interfaces


def bridge_update_xml(iface, bridge):
    """The live interface as ``type='bridge'`` on ``bridge``: the first of the two re-plugging updates.

    A changed interface type makes libvirt (qemuDomainChangeNet) move the tap into the bridge; MAC,
    model, PCI address, alias and tap name stay, so the guest sees no change.
    """
    node = copy.deepcopy(iface)
    node.set("type", "bridge")
    source = node.find("source")
    source.attrib.clear()
    source.set("bridge", bridge)
    return _xml.to_string(node, pretty=False)


def network_update_xml(iface):
    """The live interface back as ``type='network'`` (without the old port and bridge of its source)."""
    node = copy.deepcopy(iface)
    source = node.find("source")
    for attr in ("portid", "bridge"):
        source.attrib.pop(attr, None)
    return _xml.to_string(node, pretty=False)


def reattach_interfaces(conn, name):
    """Put the running domains' interfaces on network ``name`` back into its bridge.

    Returns ``(reattached, failures)``: summaries of the interfaces re-plugged, and messages.
    """
    with libvirt_errors("reading network '%s'" % name):
        bridge = _xml.find_attr(_xml.parse(conn.networkLookupByName(name).XMLDesc(0), "network XML"), "bridge", "name")
    if not bridge:
        return [], ["network '%s' runs without a bridge device to put them into" % name]
    live = flag("VIR_DOMAIN_AFFECT_LIVE", 1)
    done, failures = [], []
    for dom, iface in running_interfaces(conn, name):
        summary = interface_summary(dom.name(), iface)
        try:
            dom.updateDeviceFlags(bridge_update_xml(iface, bridge), live)
            dom.updateDeviceFlags(network_update_xml(iface), live)
        except libvirt.libvirtError as exc:
            failures.append("%s interface %s: %s" % (summary["domain"], summary["mac"], " ".join(str(exc).split())))
            continue
        done.append(summary)
    return done, failures


def plan_live_updates(plan, name, current, desired, flags, update_call):
    """DHCP reservations and DNS hosts through virNetworkUpdate: no restart, dnsmasq keeps running.

    ``update_call(command, section, parent_index, node, flags)`` returns the plan action of one update.
    """
    add = flag("VIR_NETWORK_UPDATE_COMMAND_ADD_LAST", 3)
    delete = flag("VIR_NETWORK_UPDATE_COMMAND_DELETE", 2)
    modify = flag("VIR_NETWORK_UPDATE_COMMAND_MODIFY", 1)
    wanted = ((desired.get("ipv4") or {}).get("dhcp_hosts"))
    if wanted is not None:
        section = flag("VIR_NETWORK_SECTION_IP_DHCP_HOST", 4)
        root = _xml.parse(current["xml"])
        parent = root.findall("ip").index(ip_nodes(root, 4)[0])
        have = dict((h["mac"], h) for h in current["ipv4"]["dhcp_hosts"])
        want = dict((h["mac"], h) for h in wanted)
        for mac in sorted(set(have) - set(want)):
            plan.add("remove DHCP reservation %s (%s) from network %s" % (mac, have[mac]["ip"], name),
                     update_call(delete, section, parent, host_element(have[mac]), flags),
                     undo=update_call(add, section, parent, host_element(have[mac]), flags))
        for mac in sorted(set(have) & set(want)):
            if have[mac] != want[mac]:
                plan.add("change DHCP reservation %s to %s in network %s" % (mac, want[mac]["ip"], name),
                         update_call(modify, section, parent, host_element(want[mac]), flags),
                         undo=update_call(modify, section, parent, host_element(have[mac]), flags))
        for mac in sorted(set(want) - set(have)):
            plan.add("add DHCP reservation %s (%s) to network %s" % (mac, want[mac]["ip"], name),
                     update_call(add, section, parent, host_element(want[mac]), flags),
                     undo=update_call(delete, section, parent, host_element(want[mac]), flags))
    wanted = (desired.get("dns") or {}).get("hosts")
    if wanted is not None:
        section = flag("VIR_NETWORK_SECTION_DNS_HOST", 10)
        have = dict((h["ip"], h) for h in current["dns"]["hosts"])
        want = dict((h["ip"], h) for h in wanted)
        for ip in sorted(set(have) - set(want)) + sorted(k for k in set(have) & set(want) if have[k] != want[k]):
            plan.add("remove DNS host %s from network %s" % (ip, name),
                     update_call(delete, section, -1, dns_host_element(have[ip]), flags),
                     undo=update_call(add, section, -1, dns_host_element(have[ip]), flags))
        for ip in sorted(set(want) - set(have)) + sorted(k for k in set(have) & set(want) if have[k] != want[k]):
            plan.add("add DNS host %s (%s) to network %s" % (ip, ", ".join(want[ip]["hostnames"]), name),
                     update_call(add, section, -1, dns_host_element(want[ip]), flags),
                     undo=update_call(delete, section, -1, dns_host_element(want[ip]), flags))


def update_flags(active):
    """virNetworkUpdate flags: the saved definition, and the running network when it is ``active``."""
    flags = flag("VIR_NETWORK_UPDATE_AFFECT_CONFIG", 2)
    if active:
        flags |= flag("VIR_NETWORK_UPDATE_AFFECT_LIVE", 1)
    return flags
