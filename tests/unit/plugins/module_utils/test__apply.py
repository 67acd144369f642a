# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The apply module's parts: validation per kind, the order of items, the parallel runner, stop and failure.

The runner tests use a resource of their own (``Probe``) with real steps and undos, so that timing, failures
and a stop can be placed exactly; its items still get their libvirt connection from the test driver.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal
import threading
import time

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._apply.items import KINDS, Item, validate
from ansible_collections.virtops.libvirt.plugins.module_utils._apply.order import Graph
from ansible_collections.virtops.libvirt.plugins.module_utils._apply.run import Runner
from ansible_collections.virtops.libvirt.plugins.module_utils._apply.task import Stopper, failure, plan_items, warnings
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.kind import Kind
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Resource

URI = "test:///default"


def items_of(*resources):
    return validate(list(resources), URI)[0]


def vm(name, **kw):
    return dict(kind="vm", name=name, **kw)


# --- validation -------------------------------------------------------------------------------------


def test_every_kind_of_the_issue_is_there():
    assert sorted(KINDS) == ["cloudinit", "network", "nwfilter", "pool", "secret", "snapshot", "vm", "volume"]


def test_an_item_is_validated_with_its_modules_own_spec():
    (item,) = items_of(dict(kind="virtops.libvirt.volume", pool="p", name="v", capacity="1G"))
    assert item.kind.name == "volume"
    assert item.params["state"] == "present" and item.params["uri"] == URI  # the module's default, the task's uri
    assert item.label == "resources[0] (volume 'v' in pool 'p')"


@pytest.mark.parametrize("entry,words", [
    (dict(kind="volume", pool="p", name="v", colour="red"), ["resources[1] (volume 'v' in pool 'p')", "unsupported option colour"]),
    (dict(kind="vm", name="a", memroy="1G"), ["resources[1] (VM 'a')", "memroy"]),
    (dict(kind="volume", pool="p", name="v", source="/x", backing_volume="b"), ["resources[1]", "mutually exclusive"]),
    (dict(kind="pool", name="p", state="gone"), ["resources[1] (pool 'p')", "state", "gone"]),
    (dict(kind="kettle", name="x"), ["resources[1]", "kind must be one of", "kettle"]),
    (dict(name="x"), ["resources[1]", "kind must be one of"]),
    ("vm1", ["resources[1]", "must be a dictionary", "str"]),
    (dict(kind="network", name="n", mtu="big"), ["resources[1] (network 'n')", "mtu"]),
])
def test_a_bad_item_is_named_with_the_option(entry, words):
    with pytest.raises(InvalidInputError) as err:
        validate([dict(kind="pool", name="ok"), entry], URI)
    for word in words:
        assert word in err.value.msg
    assert "resources[0]" not in err.value.msg  # the good one is not blamed


def test_every_bad_item_is_named_at_once():
    with pytest.raises(InvalidInputError) as err:
        validate([dict(kind="pool", name="a", x=1), dict(kind="pool", name="b"), dict(kind="pool", name="c", y=2)], URI)
    assert "resources[0]" in err.value.msg and "resources[2]" in err.value.msg and "resources[1]" not in err.value.msg


def test_no_log_options_and_free_form_secrets_are_collected():
    secrets = validate([vm("a", graphics=dict(type="vnc", password="vncpass1")),
                        dict(kind="volume", pool="p", name="v", source="https://u:urlpass1@h/x.img")], URI)[1]
    assert {"vncpass1", "urlpass1"} <= secrets


def test_parallel_is_bounded():
    for bad in (0, 33, None):
        with pytest.raises(InvalidInputError, match="parallel"):
            plan_items(dict(resources=[], parallel=bad, uri=URI))


# --- order ------------------------------------------------------------------------------------------


def test_dependencies_are_found_in_every_kind():
    items = items_of(
        vm("web", disks=[dict(pool="p", volume="web.qcow2")], interfaces=[dict(network="n")], cloud_init=dict(pool="p")),
        dict(kind="volume", pool="p", name="web.qcow2", backing_volume="base.qcow2"),
        dict(kind="volume", pool="p", name="base.qcow2", capacity="1G"),
        dict(kind="pool", name="p", path="/p", type="dir"),
        dict(kind="network", name="n"),
        dict(kind="cloudinit", pool="p", name="seed.iso", hostname="x"),
        dict(kind="volume", pool="other", name="web.qcow2", capacity="1G"),  # same name, other pool: unrelated
    )
    graph = Graph(items)
    assert graph.needs[0] == {1, 3, 4}
    assert graph.needs[1] == {2, 3}
    assert graph.needs[2] == {3}
    assert graph.needs[5] == {3}
    assert graph.needs[6] == set() and graph.needs[3] == set()
    assert graph.first() == [3, 4, 6]
    assert graph.dependants(3) == [0, 1, 2, 5]


def test_removal_runs_users_first():
    items = items_of(dict(kind="pool", name="p", state="absent"), dict(kind="volume", pool="p", name="v", state="absent"),
                     vm("a", state="absent", disks=[dict(pool="p", volume="v")]), dict(kind="network", name="n", state="absent"),
                     vm("b", state="absent", interfaces=[dict(network="n")]))
    graph = Graph(items)
    assert graph.needs[0] == {1, 2} and graph.needs[1] == {2} and graph.needs[3] == {4}
    # and every pool, volume and network taken away waits for every VM taken away, named or not
    assert graph.waits_for(0) == {1, 2, 4} and graph.waits_for(1) == {2, 4} and graph.waits_for(3) == {2, 4}
    assert graph.first() == [2, 4]


def test_a_vm_taken_away_goes_before_what_it_may_use_though_its_item_names_nothing():
    items = items_of(dict(kind="pool", name="p", state="absent"), dict(kind="network", name="n", state="absent"),
                     dict(kind="volume", pool="p", name="base", state="absent"),
                     dict(kind="cloudinit", pool="p", name="s.iso", state="absent"),
                     vm("a", state="absent", remove_storage=True), vm("b", state="absent"),
                     vm("c", state="absent", uri="test:///other"), dict(kind="network", name="n2"))
    graph = Graph(items)
    assert graph.needs[0] == {2, 3} and graph.waits_for(0) == {2, 3, 4, 5}  # its volume and seed, and the VMs
    assert graph.waits_for(1) == graph.waits_for(2) == graph.waits_for(3) == {4, 5}  # not c: another hypervisor
    assert graph.waits_for(7) == set()  # a network that stays waits for nobody
    assert graph.first() == [4, 5, 6, 7]


def test_removing_a_user_does_not_wait_for_a_provider_that_stays():
    graph = Graph(items_of(dict(kind="pool", name="p"), vm("a", state="absent", disks=[dict(pool="p", volume="v")])))
    assert graph.first() == [0, 1]


def test_a_vm_and_its_snapshots_run_in_input_order_without_needing_each_other():
    graph = Graph(items_of(vm("a"), dict(kind="snapshot", vm="a", name="s1"), dict(kind="snapshot", vm="a", name="s2"),
                           dict(kind="snapshot", vm="b", name="s1")))
    assert graph.after[1] == {0} and graph.after[2] == {1} and graph.after[3] == set()
    assert graph.dependants(0) == []  # a failed snapshot does not hold the next one back


def test_two_items_for_one_object_are_refused():
    with pytest.raises(InvalidInputError, match=r"resources\[0\] \(volume 'v' in pool 'p'\) and resources\[1\] "):
        Graph(items_of(dict(kind="volume", pool="p", name="v", capacity="1G"),
                       dict(kind="cloudinit", pool="p", name="v", hostname="h")))
    # the same name on another hypervisor is another object
    Graph(items_of(dict(kind="pool", name="p"), dict(kind="pool", name="p", uri="test:///other")))


def test_a_circle_is_refused_naming_its_items():
    with pytest.raises(InvalidInputError, match=r"circle.*resources\[0\].*resources\[1\]"):
        Graph(items_of(dict(kind="volume", pool="p", name="a", backing_volume="b"),
                       dict(kind="volume", pool="p", name="b", backing_volume="a"), dict(kind="pool", name="p")))


# --- the runner, with a probe resource --------------------------------------------------------------


class Probe(Resource):
    """Two steps that log; ``fail`` makes step 2 fail; ``sleep`` holds step 1; ``after_step1`` runs after step 1."""

    kind = "probe"
    log = []
    lock = threading.Lock()
    active = [0, 0]  # now, most at once
    hooks = {}

    def read(self):
        hook = self.hooks.get("read " + self.name)
        if hook:
            hook()
        return None

    def desired(self, current):
        return dict(name=self.name)

    def _note(self, text):
        with self.lock:
            self.log.append((self.name, text))

    def plan(self, current, desired, diff, plan):
        assert self.ctx.conn is not None and self.ctx.conn.getURI() == URI

        def one():
            with self.lock:
                self.active[0] += 1
                self.active[1] = max(self.active)
            try:
                time.sleep(self.params.get("sleep") or 0)
                self._note("step1")
            finally:
                with self.lock:
                    self.active[0] -= 1
            hook = self.hooks.get(self.name)
            if hook:
                hook()

        def two():
            if self.params.get("fail"):
                raise ConflictError("%s is in the way" % self.name)
            self._note("step2")

        plan.add("step1 of %s" % self.name, one, lambda: self._note("undo1"))
        plan.add("step2 of %s" % self.name, two)

    def result(self, state, outcome):
        return dict(probe=dict(name=self.name, thread=threading.current_thread().name, conn=id(self.ctx.conn)))


PROBE_SPEC = dict(name=dict(type="str"), pool=dict(type="str"), sleep=dict(type="float"), fail=dict(type="bool"),
                  uri=dict(type="str"), state=dict(type="str", default="present"))


def probes(*specs):
    """Independent items of the probe resource."""
    kind = Kind("probe", PROBE_SPEC, Probe)
    return [Item(i, kind, dict(dict(uri=URI, state="present"), **spec)) for i, spec in enumerate(specs)]


@pytest.fixture(autouse=False)
def probe_log(test_conn):
    del Probe.log[:]
    Probe.active[:] = [0, 0]
    Probe.hooks.clear()
    yield Probe.log


class CountingConnection(Connection):
    opened = []

    def open(self):
        conn = Connection.open(self)
        CountingConnection.opened.append(threading.current_thread().name)
        return conn


def run(items, parallel=4, check_mode=False, **kw):
    base = dict(check_mode=check_mode, diff=False, run_command=None, no_log_values=set())
    CountingConnection.opened = []
    return Runner(items, Graph(items), base, parallel=parallel, connection_class=CountingConnection, **kw).run()


def test_independent_items_run_side_by_side_each_worker_with_its_connection(probe_log):
    items = probes(*[dict(name="p%d" % i, sleep=0.2) for i in range(6)])
    started = time.monotonic()
    results = run(items, parallel=3)
    took = time.monotonic() - started
    assert [r["changed"] for r in results] == [True] * 6 and not any(r["failed"] for r in results)
    assert Probe.active[1] == 3  # never more than parallel at once, and really that many
    assert took < 6 * 0.2  # not one after the other
    threads = dict((r["probe"]["thread"], r["probe"]["conn"]) for r in results)
    assert len(threads) == 3 and len(set(threads.values())) == 3  # one connection per worker
    assert sorted(CountingConnection.opened) == sorted(threads)  # opened once per worker, not per item


def test_results_are_in_input_order_and_shaped_like_a_loops(probe_log):
    results = run(probes(dict(name="slow", sleep=0.3), dict(name="fast")), parallel=2)
    assert [r["probe"]["name"] for r in results] == ["slow", "fast"]
    first = results[0]
    assert set(first) >= {"index", "kind", "label", "changed", "failed", "actions", "probe"}
    assert first["actions"] == ["step1 of slow", "step2 of slow"] and first["index"] == 0


def test_dependent_items_wait_for_what_they_need(probe_log):
    pool_kind, vol_kind = Kind("pool", PROBE_SPEC, Probe), Kind("volume", PROBE_SPEC, Probe)
    items = [Item(0, vol_kind, dict(uri=URI, state="present", name="v1", pool="p1")),
             Item(1, pool_kind, dict(uri=URI, state="present", name="p1", sleep=0.3))]
    results = run(items, parallel=4)
    assert not any(r["failed"] for r in results)
    assert probe_log.index(("p1", "step2")) < probe_log.index(("v1", "step1"))


def test_a_failed_item_is_undone_its_users_not_attempted_the_rest_done(probe_log):
    pool_kind, vol_kind = Kind("pool", PROBE_SPEC, Probe), Kind("volume", PROBE_SPEC, Probe)
    items = [Item(0, pool_kind, dict(uri=URI, state="present", name="bad", fail=True)),
             Item(1, vol_kind, dict(uri=URI, state="present", name="v", pool="bad")),
             Item(2, pool_kind, dict(uri=URI, state="present", name="good"))]
    results = run(items)
    assert results[0]["failed"] and "bad is in the way" in results[0]["msg"] and results[0]["changed"] is False
    assert ("bad", "undo1") in probe_log  # its own rollback
    assert results[1]["skipped"] and not results[1]["failed"] and "needs resources[0]" in results[1]["msg"]
    assert ("v", "step1") not in probe_log
    assert results[2]["changed"] and not results[2]["failed"]
    text = failure(results, None)
    assert "1 of 3 resources failed: resources[0] (pool 'bad'): bad is in the way" in text
    assert "1 not attempted: resources[1] (volume 'v' in pool 'bad')" in text


def test_stop_on_error_starts_nothing_after_a_failure(probe_log):
    items = probes(dict(name="a", fail=True), dict(name="b"), dict(name="c"))
    results = run(items, parallel=1, stop_on_error=True)
    assert results[0]["failed"]
    assert [r.get("skipped") for r in results[1:]] == [True, True]
    assert "stop_on_error" in results[1]["msg"]
    assert [entry[0] for entry in probe_log] == ["a", "a"]  # step1, undo1


def test_a_stop_undoes_the_running_items_and_starts_no_more(probe_log):
    reason = []
    Probe.hooks["a"] = lambda: reason.append("got SIGTERM")  # the signal arrives while a's step 1 runs
    items = probes(dict(name="a"), dict(name="b"))
    results = run(items, parallel=1, stop=lambda: reason[0] if reason else None)
    assert results[0]["failed"] and results[0]["error_kind"] == "interrupted"
    assert "stopped before 'step2 of a' (got SIGTERM)" in results[0]["msg"]
    assert probe_log == [("a", "step1"), ("a", "undo1")]
    assert results[1]["skipped"] and "got SIGTERM" in results[1]["msg"]
    assert "stopped (got SIGTERM)" in failure(results, "got SIGTERM")


def test_a_bug_in_one_item_is_reported_as_that_items_failure(probe_log):
    Probe.hooks["read a"] = lambda: 1 / 0
    results = run(probes(dict(name="a"), dict(name="b")))
    assert results[0]["failed"] and "ZeroDivisionError" in results[0]["msg"] and "exception" in results[0]
    assert results[1]["changed"] and not results[1]["failed"]


def test_a_connection_that_fails_fails_its_item_only(probe_log):
    items = probes(dict(name="a", uri="test:///nonexistent/file.xml"), dict(name="b"))
    results = run(items)
    assert results[0]["failed"] and results[0]["error_kind"] == "connection"
    assert results[1]["changed"]


def test_check_mode_assumptions_are_no_warnings_when_an_item_makes_them():
    items = items_of(dict(kind="pool", name="p"), dict(kind="volume", pool="p", name="v", capacity="1M"),
                     dict(kind="volume", pool="q", name="w", capacity="1M"))
    graph = Graph(items)
    said = "check mode: storage pool %r does not exist; assumed ..."
    results = [dict(index=0, label="resources[0]", changed=True),
               dict(index=1, label="resources[1]", changed=True, assumptions=[said % "p"], warnings=[said % "p"]),
               dict(index=2, label="resources[2]", changed=True, assumptions=[said % "q"], warnings=[said % "q"])]
    assert list(warnings(results, graph, check_mode=True)) == ["resources[2]: " + said % "q"]


def test_sigterm_stops_the_task_and_undoes_the_running_item(probe_log):
    """A real SIGTERM to this process, while an item's first step runs: the module's handler asks the
    items to stop, the item undoes its step, the next item does not start."""
    stopper = Stopper()

    def signal_and_wait():
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while stopper() is None and time.monotonic() < deadline:  # the handler runs in the main thread
            time.sleep(0.01)

    Probe.hooks["a"] = signal_and_wait
    previous = signal.getsignal(signal.SIGTERM)
    with stopper.installed():
        results = run(probes(dict(name="a"), dict(name="b")), parallel=1, stop=stopper)
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is taken away again
    assert stopper() == "got SIGTERM"
    assert results[0]["failed"] and results[0]["error_kind"] == "interrupted"
    assert probe_log == [("a", "step1"), ("a", "undo1")]
    assert results[1]["skipped"]


def test_removed_storage_and_networks_wait_for_the_removed_vms_that_list_nothing():
    """The module's own example: VMs taken away without their disks, then the base volume, the pool and the
    network. The VMs may use all of those, so they go first (on their hypervisor only)."""
    items = items_of(vm("web1", state="absent", remove_storage=True), vm("web2", state="absent", remove_storage=True),
                     dict(kind="volume", pool="lab", name="base.qcow2", state="absent"),
                     dict(kind="pool", name="lab", state="absent"), dict(kind="network", name="labnet", state="absent"),
                     dict(kind="cloudinit", pool="lab", name="web1-seed.iso", state="absent"),
                     dict(kind="volume", pool="lab", name="other.qcow2", state="absent", uri="test:///other"),
                     dict(kind="volume", pool="keep", name="kept.qcow2", capacity="1M"))
    graph = Graph(items)
    assert graph.first() == [0, 1, 6, 7]
    for index in (2, 3, 4, 5):
        assert {0, 1} <= graph.waits_for(index)
    assert graph.needs[3] == {2, 5}  # the pool still needs its volumes gone first
    assert graph.dependants(0) == []  # they only wait: a failed VM removal does not hold them back


def test_a_failed_vm_removal_does_not_hold_back_the_removals_that_wait_for_it(probe_log):
    vm_kind, vol_kind = Kind("vm", PROBE_SPEC, Probe), Kind("volume", PROBE_SPEC, Probe)
    items = [Item(0, vm_kind, dict(uri=URI, state="absent", name="a", fail=True, sleep=0.2)),
             Item(1, vol_kind, dict(uri=URI, state="absent", name="v", pool="p"))]
    results = run(items)
    assert results[0]["failed"] and not results[1]["failed"] and not results[1].get("skipped")
    assert probe_log.index(("a", "undo1")) < probe_log.index(("v", "step1"))


def test_filters_and_secrets_come_before_their_users_and_go_after_them():
    usage = "/var/lib/libvirt/images/enc.qcow2"
    items = items_of(vm("a", interfaces=[dict(network="n", filter=dict(name="web"))],
                        disks=[dict(target="vdb", pool="p", volume="enc.qcow2", encryption=dict(secret=usage))]),
                     dict(kind="nwfilter", name="web", filterrefs=[dict(filter="base")]),
                     dict(kind="nwfilter", name="base", rules=[dict(protocol="tcp", destination_ports="22")]),
                     dict(kind="secret", usage_type="volume", usage_id=usage, value="x"),
                     dict(kind="volume", pool="p", name="enc.qcow2", capacity="1G", encryption=dict(secret=usage)))
    graph = Graph(items)
    assert graph.needs[0] == {1, 3, 4} and graph.needs[1] == {2} and graph.needs[4] == {3}
    assert graph.first() == [2, 3]
    assert items[3].label == "resources[3] (secret volume '%s')" % usage
    removal = items_of(dict(kind="secret", usage_type="volume", usage_id=usage, state="absent"),
                       dict(kind="nwfilter", name="web", state="absent"), vm("a", state="absent"))
    assert Graph(removal).first() == [2]
