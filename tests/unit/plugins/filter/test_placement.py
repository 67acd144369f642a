# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The placement filter and module_utils/_placement: spreading, limits, anti-affinity, arch, pins,
existing VMs, determinism and the capacity table of a failure."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os
import random
import tempfile

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.virtops.libvirt.plugins.filter import placement as filter_module
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._host.info import gather_host_info
from ansible_collections.virtops.libvirt.plugins.module_utils._cluster.placement import place
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.info import gather_vm_info
from ansible_collections.virtops.libvirt.tests.unit.plugins.inventory.nodes import node_xml

GIB = 1024 ** 3
placement = filter_module.FilterModule().filters()["placement"]


def host(cpus=8, memory_gib=16, available_gib=None, arch="x86_64", guest_arches=None, pools=(("default", 100),)):
    """A ``host`` result of host_info, with the keys placement reads (see test_shapes_match_the_modules)."""
    return dict(
        hostname="h",
        cpu=dict(arch=arch, count=cpus),
        guest_arches=guest_arches if guest_arches is not None else {arch: ["kvm", "qemu"]},
        memory=dict(total=memory_gib * GIB, free=0,
                    available=(available_gib if available_gib is not None else memory_gib) * GIB),
        pools=[dict(name=name, active=True, available=free_gib * GIB) for name, free_gib in pools],
    )


def vm(name, memory=1024, vcpus=1, state="running", metadata=None):
    """A VM of vm_info's ``vms``, with the keys placement reads."""
    return dict(name=name, memory=memory, vcpus=vcpus, state=state, active=state in ("running", "paused"),
                metadata=metadata or {}, tags=[])


def capacity(**hosts):
    """``capacity(kvm1=(host(...), [vm(...)]), ...)``"""
    return dict((name, dict(host=h, vms=list(vms))) for name, (h, vms) in hosts.items())


def three(**kwargs):
    return capacity(kvm1=(host(**kwargs), []), kvm2=(host(**kwargs), []), kvm3=(host(**kwargs), []))


def where(placed):
    return dict((g["name"], g["hypervisor"]) for g in placed)


def fail(guests, cap, **kwargs):
    with pytest.raises(AnsibleFilterError) as info:
        placement(guests, cap, **kwargs)
    return str(info.value)


# --- spreading ------------------------------------------------------------------------------------


def test_equal_guests_spread_over_equal_hosts():
    guests = [dict(name="g%d" % i, memory=1024) for i in range(1, 7)]
    assert where(placement(guests, three())) == dict(g1="kvm1", g2="kvm2", g3="kvm3", g4="kvm1", g5="kvm2", g6="kvm3")


def test_most_free_memory_wins():
    cap = capacity(small=(host(memory_gib=8), []), big=(host(memory_gib=32), [vm("old", memory=20 * 1024)]),
                   mid=(host(memory_gib=16), []))
    # memory left: small 7680, big 32768-512-20480=11776, mid 15872
    assert where(placement([dict(name="a", memory=4096)], cap)) == dict(a="mid")
    # largest first: a (8 GiB) -> mid (15872 left), then b (6 GiB) -> big (11776 > 7680 and > 7680 left on mid)
    placed = placement([dict(name="b", memory=6144), dict(name="a", memory=8192)], cap)
    assert where(placed) == dict(a="mid", b="big")
    assert [g["name"] for g in placed] == ["b", "a"]  # input order kept


def test_ties_go_to_lower_vcpu_ratio_then_pool_space_then_name():
    cap = capacity(kvm1=(host(cpus=4), []), kvm2=(host(cpus=8), []))
    assert where(placement([dict(name="a", vcpus=2, memory=1024)], cap)) == dict(a="kvm2")
    cap = capacity(kvm1=(host(pools=(("default", 50),)), []), kvm2=(host(pools=(("default", 80),)), []))
    assert where(placement([dict(name="a", disk_size="10G")], cap)) == dict(a="kvm2")
    cap = capacity(kvm2=(host(), []), kvm1=(host(), []))
    assert where(placement([dict(name="a")], cap)) == dict(a="kvm1")


def test_deterministic():
    guests = [dict(name="g%02d" % i, memory=random.Random(i).choice([512, 1024, 2048]), vcpus=1 + i % 3,
                   anti_affinity="grp%d" % (i % 8) if i % 2 else None) for i in range(20)]
    cap = capacity(**dict(("kvm%d" % i, (host(cpus=16, memory_gib=32), [vm("base%d" % i, memory=i * 512)]))
                          for i in range(1, 5)))
    first = placement(guests, cap)
    items = list(cap.items())
    for seed in range(3):
        random.Random(seed).shuffle(items)
        assert placement(copy.deepcopy(guests), dict(items)) == first  # the order of capacity does not matter
    assert len(set(where(first).values())) == 4


# --- limits ---------------------------------------------------------------------------------------


def test_vcpu_overcommit_ratio():
    cap = capacity(kvm1=(host(cpus=4), [vm("old", vcpus=6)]))
    assert where(placement([dict(name="a", vcpus=2)], cap, max_vcpu_ratio=2.0)) == dict(a="kvm1")  # 6+2 = 8 = 4*2
    message = fail([dict(name="a", vcpus=3)], cap, max_vcpu_ratio=2.0)
    assert "vCPUs: needs 3, 2 left of 8" in message
    assert where(placement([dict(name="a", vcpus=3)], cap)) == dict(a="kvm1")  # default ratio 4


def test_memory_ratio_and_reserve():
    cap = capacity(kvm1=(host(memory_gib=8), [vm("old", memory=4096)]))
    # limit 8192 - 512 = 7680; 4096 used -> 3584 left
    assert where(placement([dict(name="a", memory=3584)], cap)) == dict(a="kvm1")
    assert "memory: needs 3585 MiB, 3584 MiB left of 7680" in fail([dict(name="a", memory=3585)], cap)
    assert where(placement([dict(name="a", memory=4096)], cap, reserve_memory_mib=0)) == dict(a="kvm1")
    # overcommit 1.5: limit 12288 - 512 = 11776
    assert where(placement([dict(name="a", memory=7680)], cap, max_memory_ratio=1.5)) == dict(a="kvm1")


def test_memory_available_now_counts_without_overcommit():
    # 16 GiB host, nothing defined, but only 2 GiB available (other processes)
    cap = capacity(busy=(host(memory_gib=16, available_gib=2), []), idle=(host(memory_gib=8), []))
    assert where(placement([dict(name="a", memory=4096)], cap)) == dict(a="idle")
    message = fail([dict(name="a", memory=4096)], capacity(busy=(host(memory_gib=16, available_gib=2), [])))
    assert "memory: needs 4096 MiB, 1536 MiB available now after the 512 MiB reserve" in message
    # with memory overcommit allowed, only the committed memory counts
    assert where(placement([dict(name="a", memory=4096)], capacity(busy=(host(memory_gib=16, available_gib=2), [])),
                           max_memory_ratio=1.2)) == dict(a="busy")


def test_pool_space():
    cap = capacity(kvm1=(host(pools=(("default", 30), ("fast", 10))), []),
                   kvm2=(host(pools=(("default", 30),)), []))
    placed = placement([dict(name="a", disk_size=25 * GIB), dict(name="b", disk_size="25G"),
                        dict(name="c", disk_size="8G", pool="fast")], cap)
    assert where(placed) == dict(a="kvm1", b="kvm2", c="kvm1")
    message = fail([dict(name="a", disk_size="20G"), dict(name="b", disk_size="20G"), dict(name="c", disk_size="20G")], cap)
    assert "guest 'c' (1024 MiB, 1 vCPU, 20 GiB in pool default)" in message
    assert "pool default: needs 20 GiB, 10 GiB free" in message
    assert "pool fast missing or inactive" in fail([dict(name="a", pool="fast", disk_size="11G")], cap).split("kvm2", 1)[1]
    assert where(placement([dict(name="a", pool="fast")], cap)) == dict(a="kvm1")  # only kvm1 has the pool


# --- anti-affinity --------------------------------------------------------------------------------


def test_anti_affinity_spreads_and_fails_when_impossible():
    guests = [dict(name="web%d" % i, memory=512, anti_affinity="web") for i in range(1, 4)]
    # without the group the bigger host would take all three
    cap = capacity(kvm1=(host(memory_gib=64), []), kvm2=(host(), []), kvm3=(host(), []))
    assert sorted(where(placement(guests, cap)).values()) == ["kvm1", "kvm2", "kvm3"]
    message = fail(guests + [dict(name="web4", memory=512, anti_affinity=["web"])], cap)
    assert message.startswith("placement: no hypervisor can take guest 'web4' (512 MiB, 1 vCPU, anti-affinity web):")
    for name in ("kvm1", "kvm2", "kvm3"):
        assert "anti-affinity web: web" in [line for line in message.splitlines() if line.startswith(name)][0]


def test_anti_affinity_counts_existing_vms():
    cap = capacity(kvm1=(host(), [vm("web1")]), kvm2=(host(), [vm("other", metadata=dict(anti_affinity="web, db"))]),
                   kvm3=(host(memory_gib=4), []))
    guests = [dict(name="web1", anti_affinity="web"), dict(name="web2", anti_affinity="web"), dict(name="db1", anti_affinity="db")]
    # web1 exists on kvm1; 'other' (not a guest) is in groups web and db through its metadata
    assert where(placement(guests, cap)) == dict(web1="kvm1", web2="kvm3", db1="kvm1")


def test_groups_of_several_names():
    cap = three()
    guests = [dict(name="a", anti_affinity=["x", "y"]), dict(name="b", anti_affinity="y"), dict(name="c", anti_affinity="x z")]
    placed = where(placement(guests, cap))
    assert placed["a"] != placed["b"] and placed["a"] != placed["c"]


def test_existing_violation_is_a_warning(monkeypatch):
    seen = []
    monkeypatch.setattr(filter_module.display, "warning", seen.append)
    cap = capacity(kvm1=(host(), [vm("web1"), vm("web2")]), kvm2=(host(), []))
    guests = [dict(name="web1", anti_affinity="web"), dict(name="web2", anti_affinity="web")]
    assert where(placement(guests, cap)) == dict(web1="kvm1", web2="kvm1")  # existing VMs are not moved
    assert seen == ["placement: anti-affinity group 'web' already has web1 and web2 on kvm1"]


# --- arch -----------------------------------------------------------------------------------------


def test_arch():
    cap = capacity(x86=(host(arch="x86_64", guest_arches={"x86_64": ["kvm"], "i686": ["kvm"]}), []),
                   arm=(host(arch="aarch64", memory_gib=8, guest_arches={"aarch64": ["kvm"]}), []))
    assert where(placement([dict(name="a", arch="aarch64")], cap)) == dict(a="arm")
    assert where(placement([dict(name="a", arch="i686")], cap)) == dict(a="x86")  # the x86 host runs i686
    assert where(placement([dict(name="a")], cap)) == dict(a="x86")  # most memory, any arch
    message = fail([dict(name="a", arch="s390x")], cap)
    assert "arch s390x not supported (host x86_64)" in message and "arch s390x not supported (host aarch64)" in message


def test_own_arch_comes_first():
    cap = capacity(emu=(host(arch="x86_64", memory_gib=64, guest_arches={"x86_64": ["kvm"], "aarch64": ["qemu"]}), []),
                   arm=(host(arch="aarch64", memory_gib=8, guest_arches={"aarch64": ["kvm"]}), []))
    assert where(placement([dict(name="a", arch="aarch64")], cap)) == dict(a="arm")
    cap["arm"]["vms"].append(vm("fat", memory=7 * 1024))
    assert where(placement([dict(name="a", arch="aarch64")], cap)) == dict(a="emu")  # emulated when it must


# --- pinned and existing --------------------------------------------------------------------------


def test_pinned_guests_stay_pinned_and_count():
    guests = [dict(name="a", memory=4096), dict(name="p1", memory=4096, hypervisor="kvm1"),
              dict(name="p2", memory=4096, hypervisor="kvm1")]
    assert where(placement(guests, three())) == dict(a="kvm2", p1="kvm1", p2="kvm1")


def test_pinned_to_unknown_host():
    with pytest.raises(AnsibleFilterError, match="pinned to hypervisor 'kvm9', which is not in capacity .kvm1, kvm2, kvm3."):
        placement([dict(name="a", hypervisor="kvm9")], three())


def test_pinned_guest_that_does_not_fit():
    message = fail([dict(name="a", memory=8192, hypervisor="kvm1"), dict(name="b", memory=8192, hypervisor="kvm1")],
                   three(memory_gib=16))
    assert message.startswith("placement: pinned hypervisor kvm1 cannot take guest 'b' (8192 MiB, 1 vCPU):")
    assert "placed before it in this run: a -> kvm1" in message
    message = fail([dict(name="w1", anti_affinity="w", hypervisor="kvm1"), dict(name="w2", anti_affinity="w", hypervisor="kvm1")],
                   three())
    assert "anti-affinity w: w1 already here" in message


def test_existing_vms_stay_even_on_a_full_host():
    cap = capacity(full=(host(memory_gib=4, cpus=1), [vm("a", memory=8192, vcpus=8)]), empty=(host(), []))
    assert where(placement([dict(name="a", memory=8192, vcpus=8)], cap)) == dict(a="full")
    assert where(placement([dict(name="a", hypervisor="full")], cap)) == dict(a="full")


def test_existing_elsewhere_than_the_pin_is_an_error():
    cap = capacity(kvm1=(host(), [vm("a")]), kvm2=(host(), []))
    with pytest.raises(AnsibleFilterError, match="guest 'a' exists on kvm1 but is pinned to kvm2: migrate it"):
        placement([dict(name="a", hypervisor="kvm2")], cap)


def test_vm_defined_on_several_hypervisors():
    cap = capacity(kvm1=(host(), [vm("a", state="stopped")]), kvm2=(host(), [vm("a", state="running")]))
    assert where(placement([dict(name="a")], cap)) == dict(a="kvm2")
    cap["kvm2"]["vms"][0] = vm("a", state="stopped")
    with pytest.raises(AnsibleFilterError, match="defined on several hypervisors .kvm1, kvm2. and active on none"):
        placement([dict(name="a")], cap)


def test_placement_is_idempotent():
    """Place, 'create' the guests where they were placed, place again: the same answer, nothing moves."""
    guests = [dict(name="web%d" % i, memory=1024, vcpus=2, anti_affinity="web") for i in range(1, 4)]
    guests += [dict(name="db%d" % i, memory=2048, vcpus=2) for i in range(1, 3)]
    cap = three(memory_gib=8)
    first = placement(guests, cap)
    for guest in first:
        cap[guest["hypervisor"]]["vms"].append(vm(guest["name"], memory=guest["memory"], vcpus=guest["vcpus"]))
    assert placement(guests, cap) == first
    # and a new guest now goes where there is most room left
    more = placement(guests + [dict(name="cache1", memory=512)], cap)
    assert more[:-1] == first


# --- the table of a failure -----------------------------------------------------------------------


def test_failure_table():
    cap = capacity(kvm1=(host(cpus=2, memory_gib=4), [vm("web1", memory=1024, vcpus=2)]),
                   kvm2=(host(cpus=4, memory_gib=4, pools=()), [vm("big", memory=3000)]))
    message = fail([dict(name="web2", memory=2048, vcpus=4, anti_affinity="web", disk_size="1G"),
                    dict(name="web1", anti_affinity="web")], cap, max_vcpu_ratio=2.0)
    lines = message.splitlines()
    assert len(lines) == 4
    assert lines[0] == "placement: no hypervisor can take guest 'web2' (2048 MiB, 4 vCPUs, 1 GiB in pool default, anti-affinity web):"
    assert lines[1].split() == ["hypervisor", "arch", "memory", "MiB", "used/limit", "available", "MiB", "vCPUs", "used/limit",
                                "pool", "default", "free", "why", "not"]
    assert lines[2].split()[:6] == ["kvm1", "x86_64", "1024/3584", "4096", "2/4", "100"]
    assert lines[2].endswith("vCPUs: needs 4, 2 left of 4; anti-affinity web: web1 already here")
    assert lines[3].split()[:6] == ["kvm2", "x86_64", "3000/3584", "4096", "1/8", "-"]
    assert lines[3].endswith("memory: needs 2048 MiB, 584 MiB left of 3584; pool default missing or inactive")
    # the columns line up
    assert lines[1].index("vCPUs") == lines[2].index("2/4") == lines[3].index("1/8")
    assert lines[1].index("why not") == lines[2].index("vCPUs: needs") == lines[3].index("memory: needs")


# --- input ----------------------------------------------------------------------------------------


def test_defaults_units_and_extra_keys_pass_through():
    guests = [dict(name="a", memory="2GiB", image="debian", networks=["default"]), dict(name="b")]
    placed = placement(guests, capacity(kvm1=(host(memory_gib=4), []), kvm2=(host(memory_gib=2), [])))
    assert placed == [dict(name="a", memory="2GiB", image="debian", networks=["default"], hypervisor="kvm1"),
                      dict(name="b", hypervisor="kvm2")]  # b (1024 MiB, vm's default): as much room left, lower vCPU ratio
    assert guests[0].get("hypervisor") is None  # the input is not changed


def test_templated_numbers_are_accepted():
    placed = placement([dict(name="a", vcpus="2", memory="512", disk_size="1073741824")], three())
    assert placed == [dict(name="a", vcpus="2", memory="512", disk_size="1073741824", hypervisor="kvm1")]
    with pytest.raises(AnsibleFilterError, match="vcpus must be a whole number"):
        placement([dict(name="a", vcpus="two")], three())


def test_registered_results_are_accepted():
    cap = dict(kvm1=dict(host=dict(changed=False, host=host()), vms=dict(changed=False, vms=[vm("x")])))
    assert where(placement([dict(name="x"), dict(name="y")], cap)) == dict(x="kvm1", y="kvm1")


@pytest.mark.parametrize("guests, cap, message", [
    ("web1", three(), "must be a list of guests"),
    ([dict(name="a"), dict(name="a")], three(), "declared twice"),
    ([dict(memory=512)], three(), r"guests\[0\].name: required"),
    ([dict(name="a/b")], three(), "contains '/'"),
    ([dict(name="a", memory="lots")], three(), "memory"),
    ([dict(name="a", vcpus=0)], three(), "vcpus must be a whole number"),
    ([dict(name="a", disk_size="-1G")], three(), "disk_size"),
    ([dict(name="a", anti_affinity=5)], three(), "anti_affinity"),
    ([dict(name="a", hypervisor="")], three(), "hypervisor must be a non-empty string"),
    (["a"], three(), "must be a dictionary"),
    ([dict(name="a")], {}, "capacity must be a non-empty dictionary"),
    ([dict(name="a")], dict(kvm1=dict(host=host())), "'host' .* and 'vms'"),
    ([dict(name="a")], dict(kvm1=dict(host=dict(cpu=dict(count=2)), vms=[])), "has no memory.total"),
    ([dict(name="a")], dict(kvm1=dict(host=host(), vms=[dict(memory=5)])), r"vms\[0\]"),
])
def test_bad_input(guests, cap, message):
    with pytest.raises(AnsibleFilterError, match=message):
        placement(guests, cap)


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_vcpu_ratio=0), "max_vcpu_ratio"),
    (dict(max_memory_ratio="1"), "max_memory_ratio"),
    (dict(reserve_memory_mib=-1), "reserve_memory_mib"),
])
def test_bad_limits(kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        placement([dict(name="a")], three(), **kwargs)


def test_errors_are_ours_in_module_utils():
    with pytest.raises(ConflictError) as info:
        place([dict(name="a", memory=10 ** 6)], three())
    assert info.value.details["guest"] == "a" and "why not" in info.value.details["table"]
    with pytest.raises(InvalidInputError):
        place([dict(name="a")], "kvm1")


# --- the real data --------------------------------------------------------------------------------


def _gather(uri):
    with Connection(uri) as conn:
        return dict(host=gather_host_info(Context(conn=conn))["host"],
                    vms=gather_vm_info(Context(conn=conn, params=dict(addresses=False)))["vms"])


def test_shapes_match_the_modules():
    """Placement on what host_info and vm_info really return (libvirt's test driver), and the
    synthetic dicts above use the same keys."""
    directory = tempfile.mkdtemp(prefix="virtops-placement-")
    uris = {}
    try:
        for name, domains in (("t1", [dict(name="web1", memory=512, vcpus=2, metadata=dict(anti_affinity="web"))]),
                              ("t2", [dict(name="db1", memory=2048, state="stopped")])):
            path = os.path.join(directory, name + ".xml")
            with open(path, "w") as handle:
                handle.write(node_xml(domains=domains, cpus=4, memory_mib=8192))
            uris[name] = "test://" + path
        cap = dict((name, _gather(uri)) for name, uri in uris.items())
    finally:
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)
    synthetic_host, synthetic_vm = host(), vm("x")
    real_host, real_vm = cap["t1"]["host"], cap["t1"]["vms"][0]
    assert set(synthetic_host) <= set(real_host)
    assert set(synthetic_host["cpu"]) <= set(real_host["cpu"]) and set(synthetic_host["memory"]) <= set(real_host["memory"])
    assert set(synthetic_host["pools"][0]) <= set(real_host["pools"][0])
    assert set(synthetic_vm) <= set(real_vm)
    # the test driver's host arch is i686 and it reports no available memory (checked as unknown)
    assert real_host["cpu"]["arch"] == "i686" and real_host["memory"]["available"] == 0
    guests = [dict(name="web1", anti_affinity="web"), dict(name="web2", memory=1024, anti_affinity="web"),
              dict(name="db1"), dict(name="new", memory=4096, disk_size="10G", arch="i686")]
    placed = where(placement(guests, cap))
    # web1 stays; web2 is kept from t1 by web1's group; 'new' goes where most memory is left (t1: 8192-512-512)
    assert placed == dict(web1="t1", web2="t2", db1="t2", new="t1")
    message = fail([dict(name="x", arch="x86_64")], cap)
    assert "arch x86_64 not supported (host i686)" in message
