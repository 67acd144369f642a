# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The guests_* filters (plugins/plugin_utils/_guests.py), table-driven.

guests_normalize is also checked against the Jinja program the guests role used before it (kept
here as the oracle), rendered by Ansible's own templar: the filter must give the same result for
every case of the table."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.virtops.libvirt.plugins.filter import guests_capacity as capacity_module
from ansible_collections.virtops.libvirt.plugins.filter import guests_normalize as normalize_module
from ansible_collections.virtops.libvirt.plugins.filter import guests_placement_input as placement_input_module
from ansible_collections.virtops.libvirt.plugins.filter import guests_problems as problems_module
from ansible_collections.virtops.libvirt.plugins.filter import guests_report as report_module
from ansible_collections.virtops.libvirt.plugins.filter import guests_resources as resources_module
from ansible_collections.virtops.libvirt.plugins.filter import guests_summary as summary_module
from ansible_collections.virtops.libvirt.plugins.filter import guests_vm_args as vm_args_module
from ansible_collections.virtops.libvirt.plugins.modules.vm import ARGUMENT_SPEC


def _filter(module, name):
    return module.FilterModule().filters()[name]


normalize = _filter(normalize_module, "guests_normalize")
vm_args = _filter(vm_args_module, "guests_vm_args")
problems = _filter(problems_module, "guests_problems")
capacity = _filter(capacity_module, "guests_capacity")
placement_input = _filter(placement_input_module, "guests_placement_input")
report = _filter(report_module, "guests_report")
resources = _filter(resources_module, "guests_resources")
summary = _filter(summary_module, "guests_summary")

# the role's defaults (roles/guests/defaults/main.yml)
ROLE_DEFAULTS = dict(state="running", vcpus=1, memory=1024, disk_size="10G", networks=["default"])
IMAGES = [dict(name="deb.qcow2", source="/x.qcow2", pool="images"), dict(name="alma.qcow2", source="/y.qcow2")]
SETTINGS = dict(defaults=ROLE_DEFAULTS, pool="vms", images=IMAGES, cluster="c1", cloud_init_hostname=True)


# --- guests_normalize ---------------------------------------------------------------------------

# (case id, guests_vms, settings that differ from SETTINGS, {name: {key: expected value}})
NORMALIZE_CASES = [
    ("defaults only", [dict(name="a")], {}, dict(a=dict(
        state="running", hypervisor=None, pool="vms", anti_affinity=[], vcpus=1, memory=1024, _image_pool="vms",
        _disks=[dict(pool="vms", size="10G")], _interfaces=[dict(network="default")],
        _metadata=dict(cluster="c1"), _cloud_init=None, _seed=False))),
    ("item keys win over defaults", [dict(name="a", vcpus=4, state="stopped", pool="fast")], {}, dict(a=dict(
        vcpus=4, state="stopped", pool="fast", _disks=[dict(pool="fast", size="10G")]))),
    ("blank state, pool and hypervisor take their defaults", [dict(name="a", state="", pool=None, hypervisor="")], {},
     dict(a=dict(state="running", pool="vms", hypervisor=None))),
    ("image from guests_images: backing pool is the image's", [dict(name="a", image="deb.qcow2", disk_size="20G")], {},
     dict(a=dict(_image_pool="images", _disks=[dict(pool="vms", backing_volume="deb.qcow2", backing_pool="images", size="20G")]))),
    ("image of guests_images without a pool: the item's image_pool", [dict(name="a", image="alma.qcow2", image_pool="base")], {},
     dict(a=dict(_image_pool="base", _disks=[dict(pool="vms", backing_volume="alma.qcow2", backing_pool="base", size="10G")]))),
    ("unknown image, no image_pool: the VM's pool", [dict(name="a", image="other.qcow2", disk_size=None)], {},
     dict(a=dict(_image_pool="vms", _disks=[dict(pool="vms", backing_volume="other.qcow2", backing_pool="vms")]))),
    ("no image, disk_size null: no root disk", [dict(name="a", disk_size=None)], {}, dict(a=dict(_disks=[]))),
    ("more disks after the root disk", [dict(name="a", disks=[dict(volume="a-data.qcow2", size="1G")])], {},
     dict(a=dict(_disks=[dict(pool="vms", size="10G"), dict(volume="a-data.qcow2", size="1G")]))),
    ("networks: names and dictionaries", [dict(name="a", networks=["n1", dict(network="n2", model="e1000")])], {},
     dict(a=dict(_interfaces=[dict(network="n1"), dict(network="n2", model="e1000")]))),
    ("empty networks: no interface", [dict(name="a", networks=[])], {}, dict(a=dict(_interfaces=[]))),
    ("interfaces win over networks, even empty", [dict(name="a", interfaces=[])], {}, dict(a=dict(_interfaces=[]))),
    ("interfaces given", [dict(name="a", interfaces=[dict(bridge="br0")])], {}, dict(a=dict(_interfaces=[dict(bridge="br0")]))),
    ("anti_affinity as a string", [dict(name="a", anti_affinity="web")], {},
     dict(a=dict(anti_affinity=["web"], _metadata=dict(cluster="c1", anti_affinity="web")))),
    ("anti_affinity as a list, metadata kept", [dict(name="a", anti_affinity=["web", "eu"], metadata=dict(owner="x"))], {},
     dict(a=dict(anti_affinity=["web", "eu"], _metadata=dict(owner="x", cluster="c1", anti_affinity="web,eu")))),
    ("the item's cluster key loses to the cluster", [dict(name="a", metadata=dict(cluster="other"))], {},
     dict(a=dict(_metadata=dict(cluster="c1")))),
    ("cloud_init with content: hostname and pool filled in", [dict(name="a", cloud_init=dict(runcmd=[["true"]]))], {},
     dict(a=dict(_cloud_init=dict(pool="vms", hostname="a", runcmd=[["true"]]), _seed=True))),
    ("cloud_init's own hostname and pool win", [dict(name="a", cloud_init=dict(hostname="h", pool="p", users=[]))], {},
     dict(a=dict(_cloud_init=dict(pool="p", hostname="h", users=[]), _seed=True))),
    ("cloud_init without content: pool only, no seed", [dict(name="a", cloud_init=dict(volume="s.iso", bus="sata"))], {},
     dict(a=dict(_cloud_init=dict(pool="vms", volume="s.iso", bus="sata"), _seed=False))),
    ("empty cloud_init is none", [dict(name="a", cloud_init={})], {}, dict(a=dict(_cloud_init=None, _seed=False))),
    ("cloud_init_hostname false", [dict(name="a", cloud_init=dict(packages=["x"]))], dict(cloud_init_hostname=False),
     dict(a=dict(_cloud_init=dict(pool="vms", packages=["x"]), _seed=True))),
    ("no defaults at all", [dict(name="a")], dict(defaults={}), dict(a=dict(
        state="running", _disks=[], _interfaces=[], _metadata=dict(cluster="c1")))),
    ("order and every item kept, absent too", [dict(name="b"), dict(name="a", state="absent"), dict(name="b")], {},
     dict(a=dict(state="absent"), b=dict(state="running"))),
]


@pytest.mark.parametrize("vms, changes, expected", [c[1:] for c in NORMALIZE_CASES], ids=[c[0] for c in NORMALIZE_CASES])
def test_normalize(vms, changes, expected):
    out = normalize(vms, **dict(SETTINGS, **changes))
    assert [g["name"] for g in out] == [vm["name"] for vm in vms]
    for g in out:
        for key, value in expected[g["name"]].items():
            assert g[key] == value, key


def test_normalize_leaves_its_input_alone():
    vms = [dict(name="a", metadata=dict(owner="x"), cloud_init=dict(users=[]))]
    defaults = dict(ROLE_DEFAULTS)
    normalize(vms, defaults=defaults, pool="vms", images=IMAGES, cluster="c1")
    assert vms == [dict(name="a", metadata=dict(owner="x"), cloud_init=dict(users=[]))]
    assert defaults == ROLE_DEFAULTS


def test_normalize_refuses_what_is_not_a_list_of_dicts():
    with pytest.raises(AnsibleFilterError, match="list of dictionaries"):
        normalize(["a"])


# The Jinja program roles/guests/vars/main.yml had as _guests_normalized before this filter.
OLD_NORMALIZED = r"""
  {%- set ns = namespace(out=[]) -%}
  {%- for raw in guests_vms -%}
  {%-   set g = guests_defaults | combine(raw) -%}
  {%-   set pool = g.pool | default(guests_pool, true) -%}
  {%-   set groups = g.anti_affinity | default([], true) -%}
  {%-   set groups = [groups] if groups is string else groups -%}
  {%-   set known = guests_images | selectattr('name', 'equalto', g.image | default('', true)) | list -%}
  {%-   set image_pool = (known[0].pool | default(none, true) if known else none) or g.image_pool | default(none, true) or pool -%}
  {%-   set disks = [] -%}
  {%-   if g.image | default(none, true) -%}
  {%-     set root = {'pool': pool, 'backing_volume': g.image, 'backing_pool': image_pool} -%}
  {%-     set disks = [root | combine({'size': g.disk_size} if g.disk_size | default(none) is not none else {})] -%}
  {%-   elif g.disk_size | default(none) is not none -%}
  {%-     set disks = [{'pool': pool, 'size': g.disk_size}] -%}
  {%-   endif -%}
  {%-   set ifs = namespace(out=[]) -%}
  {%-   for n in g.networks | default([], true) -%}
  {%-     set ifs.out = ifs.out + [n if n is mapping else {'network': n}] -%}
  {%-   endfor -%}
  {%-   set meta = (g.metadata | default({}, true)) | combine({'cluster': guests_cluster})
                   | combine({'anti_affinity': groups | join(',')} if groups else {}) -%}
  {%-   set ci = g.cloud_init | default(none, true) -%}
  {%-   set content = (ci or {}).keys() | difference(['pool', 'volume', 'bus']) -%}
  {%-   if ci -%}
  {%-     set ci = {'pool': pool} | combine({'hostname': g.name} if content and guests_cloud_init_hostname | bool else {}) | combine(ci) -%}
  {%-   endif -%}
  {%-   set ns.out = ns.out + [g | combine({
          'state': g.state | default('running', true),
          'hypervisor': g.hypervisor | default(none, true),
          'pool': pool,
          'anti_affinity': groups,
          '_image_pool': image_pool,
          '_disks': disks + g.disks | default([], true),
          '_interfaces': g.interfaces if g.interfaces | default(none) is not none else ifs.out,
          '_metadata': meta,
          '_cloud_init': ci,
          '_seed': content | length > 0})] -%}
  {%- endfor -%}
  {{ ns.out }}
"""


@pytest.mark.parametrize("vms, changes", [c[1:3] for c in NORMALIZE_CASES], ids=[c[0] for c in NORMALIZE_CASES])
def test_normalize_gives_what_the_old_jinja_program_gave(vms, changes):
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    try:
        from ansible.template import trust_as_template
    except ImportError:  # ansible-core < 2.19 templates every string
        def trust_as_template(value):
            return value
    settings = dict(SETTINGS, **changes)
    variables = dict(guests_vms=vms, guests_defaults=settings["defaults"], guests_pool=settings["pool"],
                     guests_images=settings["images"], guests_cluster=settings["cluster"],
                     guests_cloud_init_hostname=settings["cloud_init_hostname"])
    old = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(OLD_NORMALIZED.strip()))
    assert normalize(vms, **settings) == old


# --- guests_vm_args -----------------------------------------------------------------------------

def _normalized(**item):
    return normalize([dict(name="a", **item)], **SETTINGS)[0]


VM_ARGS_CASES = [
    ("the VM's options, the worked-out disks, interfaces and metadata", _normalized(vcpus=2, title="T"), dict(
        name="a", state="running", vcpus=2, memory=1024, title="T", disks=[dict(pool="vms", size="10G")],
        interfaces=[dict(network="default")], metadata=dict(cluster="c1"))),
    ("role keys are no options: left out", _normalized(image="deb.qcow2", anti_affinity="web", hypervisor="kvm1"), dict(
        name="a", state="running", vcpus=1, memory=1024,
        disks=[dict(pool="vms", backing_volume="deb.qcow2", backing_pool="images", size="10G")],
        interfaces=[dict(network="default")], metadata=dict(cluster="c1", anti_affinity="web"))),
    ("cloud_init: the worked-out seed", _normalized(cloud_init=dict(users=[dict(name="ops")])), dict(
        name="a", state="running", vcpus=1, memory=1024, disks=[dict(pool="vms", size="10G")],
        interfaces=[dict(network="default")], metadata=dict(cluster="c1"),
        cloud_init=dict(pool="vms", hostname="a", users=[dict(name="ops")]))),
    ("null is passed as null", _normalized(description=None, disk_size=None, networks=None), dict(
        name="a", state="running", vcpus=1, memory=1024, description=None, disks=[], interfaces=[],
        metadata=dict(cluster="c1"))),
    ("unknown keys are not passed", dict(name="a", state="running", colour="blue", _private=1), dict(name="a", state="running")),
    ("a bare dictionary: only the options it has", dict(name="a", arch="aarch64", cloud_init=dict(users=[])),
     dict(name="a", arch="aarch64")),
]


@pytest.mark.parametrize("guest, expected", [c[1:] for c in VM_ARGS_CASES], ids=[c[0] for c in VM_ARGS_CASES])
def test_vm_args(guest, expected):
    assert vm_args(guest) == expected


def test_vm_args_are_options_of_the_vm_module():
    everything = dict((key, key) for key in ARGUMENT_SPEC)
    everything.update(("_" + key, key) for key in ("disks", "interfaces", "metadata", "cloud_init"))
    everything.update(colour="x", hypervisor="x", image="x", pool="x", anti_affinity="x")
    assert set(vm_args(everything)) == set(ARGUMENT_SPEC)


def test_vm_args_follow_the_module_spec(monkeypatch):
    """A new option of the vm module is passed with no change to the filter."""
    monkeypatch.setitem(ARGUMENT_SPEC, "new_option", dict(type="str"))
    assert vm_args(dict(name="a", new_option="x")) == dict(name="a", new_option="x")


def test_vm_args_refuse_what_is_not_a_dict():
    with pytest.raises(AnsibleFilterError, match="dictionary"):
        vm_args(["a"])


# --- guests_problems ----------------------------------------------------------------------------

PROBLEM_CASES = [
    ("none", [dict(name="a"), dict(name="b", hypervisor="h1")], ["h1", "h2"], ["h1", "h2"], []),
    ("a name declared three times, another twice", [dict(name=n) for n in "abaab"], ["h1"], ["h1"],
     ["VM a is declared 3 times", "VM b is declared 2 times"]),
    ("a pin outside the cluster", [dict(name="a", hypervisor="h9")], ["h1", "h2"], ["h1", "h2"],
     ["VM a is pinned to h9, which is not a hypervisor of the cluster (h1, h2)"]),
    ("hosts missing from the play, in the cluster's order", [dict(name="a", hypervisor=None)], ["h3", "h1", "h2"], ["h1"],
     ["hypervisors of the cluster missing from the play (failed, unreachable or left out by --limit): h3, h2; "
      "placing VMs without them could make a VM twice"]),
]


@pytest.mark.parametrize("guests, cluster, play, expected", [c[1:] for c in PROBLEM_CASES], ids=[c[0] for c in PROBLEM_CASES])
def test_problems(guests, cluster, play, expected):
    assert problems(guests, cluster, play) == expected


# --- guests_capacity and guests_placement_input -------------------------------------------------

def _host(*pools):
    return dict(cpu=dict(count=2), pools=[dict(name=name, active=active) for name, active in pools])


HOSTVARS = dict(
    h1=dict(hi=dict(changed=False, host=_host(("vms", True), ("old", False))), vi=dict(vms=[dict(name="x")])),
    h2=dict(hi=dict(changed=False, host=_host(("fast", True))), vi=dict(vms=[])),
)
CAPACITY = dict(h1=dict(host=HOSTVARS["h1"]["hi"]["host"], vms=[dict(name="x")]), h2=dict(host=HOSTVARS["h2"]["hi"]["host"], vms=[]))


def test_capacity():
    assert capacity(["h1", "h2"], HOSTVARS, host_info_var="hi", vm_info_var="vi") == CAPACITY


def test_capacity_with_devices_where_registered():
    gpu = dict(name="pci_0000_01_00_0", class_name="display", free=True)
    hostvars = dict(HOSTVARS, h1=dict(HOSTVARS["h1"], di=dict(changed=False, pci_devices=[gpu])),
                    h2=dict(HOSTVARS["h2"], di=dict(changed=False, skipped=True)))
    got = capacity(["h1", "h2"], hostvars, host_info_var="hi", vm_info_var="vi", device_info_var="di")
    assert got["h1"] == dict(CAPACITY["h1"], devices=[gpu])
    assert got["h2"] == CAPACITY["h2"]


def test_capacity_of_a_host_that_registered_nothing():
    with pytest.raises(AnsibleFilterError, match="no registered hi or vi result"):
        capacity(["h1", "h3"], HOSTVARS, host_info_var="hi", vm_info_var="vi")


PLACEMENT_CASES = [
    ("plain VM with a disk", dict(name="a"), False, dict(name="a", vcpus=1, memory=1024, anti_affinity=[], pool="vms", disk_size="10G")),
    ("pin and arch", dict(name="a", hypervisor="h2", arch="aarch64", anti_affinity="web"), False,
     dict(name="a", vcpus=1, memory=1024, anti_affinity=["web"], hypervisor="h2", arch="aarch64", pool="vms", disk_size="10G")),
    ("no disks: no pool", dict(name="a", disk_size=None), False, dict(name="a", vcpus=1, memory=1024, anti_affinity=[])),
    ("requires devices", dict(name="a", disk_size=None, requires=dict(pci_class="gpu", count=2)), False,
     dict(name="a", vcpus=1, memory=1024, anti_affinity=[], requires=dict(pci_class="gpu", count=2))),
    ("image without disk_size: pool only", dict(name="a", image="deb.qcow2", disk_size=None), False,
     dict(name="a", vcpus=1, memory=1024, anti_affinity=[], pool="vms")),
    ("check mode, pool nowhere yet: left out", dict(name="a", pool="new"), True, dict(name="a", vcpus=1, memory=1024, anti_affinity=[])),
    ("check mode, pool inactive everywhere: left out", dict(name="a", pool="old"), True,
     dict(name="a", vcpus=1, memory=1024, anti_affinity=[])),
    ("check mode, pool active on one hypervisor: kept", dict(name="a", pool="fast"), True,
     dict(name="a", vcpus=1, memory=1024, anti_affinity=[], pool="fast", disk_size="10G")),
]


@pytest.mark.parametrize("item, check_mode, expected", [c[1:] for c in PLACEMENT_CASES], ids=[c[0] for c in PLACEMENT_CASES])
def test_placement_input(item, check_mode, expected):
    guests = normalize([item], **SETTINGS)
    assert placement_input(guests, CAPACITY, check_mode=check_mode) == [expected]


# --- guests_resources -------------------------------------------------------------------------

def _guests(*items):
    return normalize(list(items), **SETTINGS)


WEB = dict(name="web1", image="deb.qcow2", cloud_init=dict(users=[dict(name="ops")]), shutdown_timeout=30)
DB = dict(name="db1", disk_size="20G", cloud_init=dict(volume="db1-ci.iso", runcmd=[["true"]], bus="virtio", detach=True))
WEB_VM = dict(kind="vm", name="web1", state="running", vcpus=1, memory=1024, shutdown_timeout=30,
              disks=[dict(pool="vms", backing_volume="deb.qcow2", backing_pool="images", size="10G")],
              interfaces=[dict(network="default")], metadata=dict(cluster="c1"),
              cloud_init=dict(pool="vms", hostname="web1", users=[dict(name="ops")]))

RESOURCES_CASES = [
    ("nothing", [], {}, []),
    ("a VM: the vm module's arguments and its kind", [WEB], {}, [WEB_VM]),
    ("the role's options win over the VM's own, null ones do not", [WEB],
     dict(shutdown_timeout=5, force=True, apply=None), [dict(WEB_VM, shutdown_timeout=5, force=True)]),
    ("a VM's uri is the task's", [dict(WEB, uri="qemu+ssh://elsewhere/system")], {}, [WEB_VM]),
    ("base images: the volume options of the item, the default pool", [],
     dict(images=[dict(IMAGES[0], checksum="sha256:ab", timeout=None), dict(IMAGES[1], colour="x")], pool="vms"),
     [dict(kind="volume", pool="images", name="deb.qcow2", source="/x.qcow2", checksum="sha256:ab"),
      dict(kind="volume", pool="vms", name="alma.qcow2", source="/y.qcow2")]),
    ("seeds kept for VMs elsewhere: the content of their seed, the name the vm module gives it", [],
     dict(seeds=[WEB, DB, dict(name="plain"), dict(name="noseed", cloud_init=dict(volume="x.iso"))]),
     [dict(kind="cloudinit", pool="vms", name="web1-seed.iso", hostname="web1", users=[dict(name="ops")]),
      dict(kind="cloudinit", pool="vms", name="db1-ci.iso", hostname="db1", runcmd=[["true"]])]),
    ("removals: VMs with their storage, seeds and images in pools the host has", [],
     dict(remove=["old1", "old2"], remove_seeds=[WEB, DB, dict(name="plain")], remove_images=IMAGES, pool="vms", pools=["vms"]),
     [dict(kind="vm", name="old1", state="absent", remove_storage=True), dict(kind="vm", name="old2", state="absent", remove_storage=True),
      dict(kind="cloudinit", pool="vms", name="web1-seed.iso", state="absent"),
      dict(kind="cloudinit", pool="vms", name="db1-ci.iso", state="absent"),
      dict(kind="volume", pool="vms", name="alma.qcow2", state="absent")]),
    ("removals without pools known: every seed and image", [],
     dict(remove_seeds=[WEB], remove_images=IMAGES[:1]),
     [dict(kind="cloudinit", pool="vms", name="web1-seed.iso", state="absent"),
      dict(kind="volume", pool="images", name="deb.qcow2", state="absent")]),
    ("a VM named twice is removed once", [], dict(remove=["old1", "old2", "old1"]),
     [dict(kind="vm", name="old1", state="absent", remove_storage=True), dict(kind="vm", name="old2", state="absent", remove_storage=True)]),
    ("remove_storage false: VMs keep their volumes, no seed is removed", [],
     dict(remove=["old1"], remove_seeds=[WEB], remove_storage=False),
     [dict(kind="vm", name="old1", state="absent", remove_storage=False)]),
]


@pytest.mark.parametrize("guests, options, expected", [c[1:] for c in RESOURCES_CASES], ids=[c[0] for c in RESOURCES_CASES])
def test_resources(guests, options, expected):
    for key in ("seeds", "remove_seeds"):
        if key in options:
            options = dict(options, **{key: _guests(*options[key])})
    assert resources(_guests(*guests), **options) == expected


def test_resources_in_order_images_vms_seeds_then_removals():
    out = resources(_guests(WEB), images=IMAGES[:1], seeds=_guests(DB), remove=["old1"], remove_seeds=_guests(DB),
                    remove_images=IMAGES[:1])
    assert [(r["kind"], r.get("state", "present")) for r in out] == [
        ("volume", "present"), ("vm", "running"), ("cloudinit", "present"), ("vm", "absent"), ("cloudinit", "absent"),
        ("volume", "absent")]


def test_resources_are_valid_items_of_the_apply_module():
    """Every item passes the apply module's own validation (each kind's argument spec) and ordering: a VM
    after its base image, the images removed after the VMs removed."""
    from ansible_collections.virtops.libvirt.plugins.module_utils._apply.items import validate
    from ansible_collections.virtops.libvirt.plugins.module_utils._apply.order import Graph
    images = [dict(name="deb.qcow2", source="/x.qcow2", pool="vms")]
    settings = dict(SETTINGS)
    settings["images"] = images
    here = normalize([WEB, DB], **settings)
    out = resources(here, images=images, seeds=_guests(dict(name="db2", cloud_init=dict(runcmd=[["true"]]))), remove=["old1"],
                    remove_images=[dict(name="old.qcow2", pool="vms")], shutdown_timeout=10, force=False, apply="config")
    graph = Graph(validate(out, "test:///default")[0])
    assert [r["kind"] for r in out] == ["volume", "vm", "vm", "cloudinit", "vm", "volume"]
    assert graph.needs[1] == {0}  # web1 after its base image
    assert 4 in graph.waits_for(5)  # the image removed after the VM removed


def test_resources_refuse_what_is_not_a_list_of_dicts():
    with pytest.raises(AnsibleFilterError, match="seeds must be a list of dictionaries"):
        resources([], seeds=["web1"])
    with pytest.raises(AnsibleFilterError, match="remove must be a list of VM names"):
        resources([], remove=[dict(name="x")])


# --- guests_report and guests_summary -----------------------------------------------------------

def _row(name, state, changed, reboot_required=False, ip=None, hypervisor="h1"):
    return dict(name=name, hypervisor=hypervisor, state=state, changed=changed, reboot_required=reboot_required, ip=ip)


REPORTED = [dict(kind="vm", name="a"), dict(kind="volume", pool="p", name="base"), dict(kind="vm", name="b"),
            dict(kind="vm", name="c"), dict(kind="vm", name="n"), dict(kind="vm", name="f", state="absent"),
            dict(kind="vm", name="g", state="absent"), dict(kind="vm", name="x"), dict(kind="vm", name="y")]
APPLIED = dict(changed=True, results=[
    dict(index=0, kind="vm", changed=True, failed=False, vm=dict(uuid="u-a", state="running"), reboot_required=True),
    dict(index=1, kind="volume", changed=True, failed=False, volume=dict(name="base")),
    dict(index=2, kind="vm", changed=False, failed=False, vm=dict(uuid="u-b", state="stopped")),
    dict(index=3, kind="vm", changed=False, failed=False, vm=None),
    dict(index=4, kind="vm", changed=True, failed=False, vm=dict(uuid=None, state="running")),
    dict(index=5, kind="vm", changed=True, failed=False, vm=None),
    dict(index=6, kind="vm", changed=False, failed=False, vm=None),
    dict(index=7, kind="vm", changed=False, failed=True, msg="broke"),
    dict(index=8, kind="vm", changed=False, failed=False, skipped=True, msg="not attempted"),
])
REPORT_CASES = [
    ("nothing ran", {}, [], {}, []),
    ("a skipped apply task", dict(skipped=True, changed=False), REPORTED, {}, []),
    ("made, kept, predicted and removed VMs with addresses; not the volume, the failed or the skipped",
     APPLIED, REPORTED, dict(vms=[dict(name="a", ip="192.0.2.1")]),
     [_row("a", "running", True, True, "192.0.2.1"), _row("b", "stopped", False), _row("c", "absent", False),
      _row("n", "to be created", True), _row("f", "removed", True), _row("g", "removed", False)]),
    ("a skipped address task", dict(results=APPLIED["results"][:1]), REPORTED, dict(skipped=True),
     [_row("a", "running", True, True)]),
]


@pytest.mark.parametrize("applied, reported, addresses, expected", [c[1:] for c in REPORT_CASES],
                         ids=[c[0] for c in REPORT_CASES])
def test_report(applied, reported, addresses, expected):
    assert report(applied, "h1", resources=reported, addresses=addresses) == expected


def test_report_refuses_resources_that_are_no_list():
    with pytest.raises(AnsibleFilterError, match="resources"):
        report({}, "h1", resources=None)


SUMMARY_CASES = [
    ("header only", [], ["VM                       hypervisor       state          address"]),
    ("sorted by name without regard to case, reboot pending, no address",
     [_row("web2", "running", False, ip="192.0.2.2", hypervisor="h2"), _row("Db1", "stopped", True, True), _row("app", "removed", True)],
     ["VM                       hypervisor       state          address",
      "app                      h1               removed        -",
      "Db1                      h1               stopped (reboot pending) -",
      "web2                     h2               running        192.0.2.2"]),
]


@pytest.mark.parametrize("rows, expected", [c[1:] for c in SUMMARY_CASES], ids=[c[0] for c in SUMMARY_CASES])
def test_summary(rows, expected):
    assert summary(rows) == expected


def test_the_role_spec_of_a_vm_names_vm_options_or_its_own_keys():
    """Each key of guests_vms in the role's argument spec is an option of the vm module (passed on by
    guests_vm_args) or one of the role's own keys: a misspelt option would be dropped on the way."""
    import os
    import yaml
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "guests", "meta", "argument_specs.yml")
    with open(path) as handle:
        spec = yaml.safe_load(handle)["argument_specs"]["main"]["options"]["guests_vms"]["options"]
    own = {"anti_affinity", "disk_size", "hypervisor", "image", "image_pool", "networks", "pool", "requires"}
    assert sorted(set(spec) - set(ARGUMENT_SPEC) - own) == []
    assert "pcie_spare_ports" in spec and spec["pcie_spare_ports"]["type"] == ARGUMENT_SPEC["pcie_spare_ports"]["type"]
