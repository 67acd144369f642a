# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The reconcile cycle, driven against libvirt's test driver (real libvirt, no daemon)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, ConflictError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Outcome, Plan, Resource, reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context


class NetworkAutostart(Resource):
    """A deliberately small resource: an isolated network with an autostart flag."""

    kind = "network"

    def _lookup(self):
        try:
            return self.ctx.conn.networkLookupByName(self.name)
        except libvirt.libvirtError:
            return None

    def read(self):
        net = self._lookup()
        if net is None:
            return None
        return dict(name=self.name, autostart=bool(net.autostart()))

    def desired(self, current):
        if self.params["state"] == "absent":
            return None
        return dict(name=self.name, autostart=self.params.get("autostart"))

    def _xml(self):
        root = _xml.element("network")
        _xml.sub(root, "name", self.name)
        return _xml.to_string(root)

    def plan(self, current, desired, diff, plan):
        conn = self.ctx.conn
        if desired is None:
            if current is not None:
                plan.add("undefine network %s" % self.name, lambda: self._lookup().undefine())
            return
        if current is None:
            with libvirt_errors("checking"):
                plan.add(
                    "define network %s" % self.name,
                    lambda: conn.networkDefineXML(self._xml()),
                    undo=lambda: self._lookup().undefine(),
                )
        if diff.touches("autostart") or (current is None and desired["autostart"]):
            plan.add("set autostart", lambda: self._lookup().setAutostart(bool(desired["autostart"])))

    def result(self, state, outcome):
        return dict(network=state)


def run(conn, check=False, diff=True, **params):
    params.setdefault("state", "present")
    ctx = Context(conn=conn, params=params, check_mode=check, diff=diff)
    return reconcile(NetworkAutostart(ctx), check_mode=ctx.check_mode, want_diff=ctx.diff)


def test_check_apply_check_apply(test_conn):
    first = run(test_conn, check=True, name="n1", autostart=True)
    assert first["changed"] is True
    assert first["actions"] == ["define network n1", "set autostart"]
    assert test_conn.listAllNetworks(0) and "n1" not in [n.name() for n in test_conn.listAllNetworks(0)]
    assert first["network"] == {"name": "n1", "autostart": True}  # predicted
    assert first["diff"]["before"] == {"state": "absent"}
    assert first["diff"]["after"] == {"name": "n1", "autostart": True}

    second = run(test_conn, name="n1", autostart=True)
    assert second["changed"] is True
    assert second["network"] == {"name": "n1", "autostart": True}  # read back from libvirt

    third = run(test_conn, check=True, name="n1", autostart=True)
    fourth = run(test_conn, name="n1", autostart=True)
    assert (third["changed"], fourth["changed"]) == (False, False)
    assert third["actions"] == [] and fourth["diff"]["before"] == fourth["diff"]["after"]


def test_unspecified_option_is_left_alone(test_conn):
    run(test_conn, name="n2", autostart=True)
    result = run(test_conn, name="n2", autostart=None)
    assert result["changed"] is False
    assert result["network"]["autostart"] is True


def test_change_shows_readable_diff(test_conn):
    run(test_conn, name="n3", autostart=False)
    result = run(test_conn, name="n3", autostart=True)
    assert result["diff"]["before"] == {"name": "n3", "autostart": False}
    assert result["diff"]["after"] == {"name": "n3", "autostart": True}
    assert result["diff"]["before_header"] == "network n3"


def test_absent(test_conn):
    run(test_conn, name="n4", autostart=False)
    assert run(test_conn, check=True, name="n4", state="absent")["changed"] is True
    assert run(test_conn, name="n4", state="absent")["changed"] is True
    assert run(test_conn, name="n4", state="absent")["changed"] is False
    assert "n4" not in [n.name() for n in test_conn.listAllNetworks(0)]


def test_no_diff_key_without_diff_mode(test_conn):
    assert "diff" not in run(test_conn, diff=False, name="n5", autostart=False)


def test_failed_step_undoes_what_this_run_created(test_conn):
    def boom():
        raise ConflictError("the bridge is busy")

    plan = Plan()
    plan.add("define n6", lambda: test_conn.networkDefineXML(_xml.to_string(_xml.element("network", children=[_xml.element("name", "n6")]))),
             undo=lambda: test_conn.networkLookupByName("n6").undefine())
    plan.add("start n6", boom)
    with pytest.raises(ConflictError) as err:
        plan.execute()
    assert err.value.details["failed_step"] == "start n6"
    assert "n6" not in [n.name() for n in test_conn.listAllNetworks(0)]


def test_unexpected_exception_becomes_backend_error_and_undo_errors_are_reported():
    calls = []

    def bad_undo():
        raise RuntimeError("cannot undo")

    plan = Plan()
    plan.add("one", lambda: calls.append("one"), undo=lambda: calls.append("undo one"))
    plan.add("two", lambda: calls.append("two"), undo=bad_undo)
    plan.add("three", lambda: 1 / 0)
    with pytest.raises(BackendError) as err:
        plan.execute()
    assert calls == ["one", "two", "undo one"]  # undo continues past a failing undo
    assert "three failed" in err.value.msg
    assert err.value.details["rollback_errors"] == ["undo of 'two' failed: cannot undo"]


class _NeedsPool(Resource):
    """A resource whose pool an earlier task of the play would create."""

    kind = "thing"

    def read(self):
        return None

    def desired(self, current):
        self.ctx.assume(NotFoundError("storage pool 'later' does not exist"))
        return dict(size=1)

    def plan(self, current, desired, diff, plan):
        plan.add("create thing", lambda: None)


def test_check_mode_assumption_is_a_warning_and_a_real_run_fails():
    warned = []
    ctx = Context(params=dict(name="t"), check_mode=True, warn=warned.append)
    result = reconcile(_NeedsPool(ctx), check_mode=True)
    assert result["changed"] is True
    assert result["assumptions"] == warned and len(warned) == 1
    assert "storage pool 'later' does not exist" in warned[0] and warned[0].startswith("check mode: ")
    with pytest.raises(NotFoundError, match="'later' does not exist"):
        reconcile(_NeedsPool(Context(params=dict(name="t"))), check_mode=False)


# --- partial steps and a rollback after the connection was lost ---------------------------------


def test_partial_step_is_undone_when_it_fails():
    calls = []

    def half_done():
        calls.append("created")
        raise BackendError("the copy broke off")

    plan = Plan()
    plan.add("one", lambda: calls.append("one"), undo=lambda: calls.append("undo one"))
    plan.add("copy", half_done, undo=lambda: calls.append("undo copy"), partial=True)
    plan.add("whole", lambda: 1 / 0, undo=lambda: calls.append("never"))
    with pytest.raises(BackendError, match="broke off"):
        plan.execute()
    assert calls == ["one", "created", "undo copy", "undo one"]


class _Undo:
    """An undo that fails until the connection was renewed ``renew_after`` times (0: never recovers)."""

    def __init__(self, fail_times):
        self.fail_times = fail_times
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.fail_times:
            raise BackendError("deleting volume 'v': internal error: client socket is closed")


@pytest.mark.parametrize("answers, undo_fails, rollback_errors, reconnects", [
    ([True], 1, [], 1),  # the connection was lost: renewed, the undo retried and done
    ([False], 1, ["undo of 'create' failed: deleting volume 'v': internal error: client socket is closed"], 1),  # alive
    ([True], 2, ["undo of 'create' failed: deleting volume 'v': internal error: client socket is closed"], 1),
    ([RuntimeError("daemon not running")],
     1, ["the libvirt connection was lost and could not be opened again: daemon not running",
         "undo of 'create' failed: deleting volume 'v': internal error: client socket is closed"], 1),
])
def test_undo_retried_once_on_a_new_connection(answers, undo_fails, rollback_errors, reconnects):
    asked = []

    def reconnect():
        answer = answers[min(len(asked), len(answers) - 1)]
        asked.append(answer)
        if isinstance(answer, Exception):
            raise answer
        return answer

    undo = _Undo(undo_fails)
    plan = Plan(reconnect=reconnect)
    plan.add("create", lambda: None, undo=undo)
    plan.add("upload", lambda: 1 / 0)
    with pytest.raises(BackendError) as err:
        plan.execute()
    assert err.value.details["rollback_errors"] == rollback_errors
    assert len(asked) == reconnects


def test_reconnect_is_not_asked_again_once_it_failed():
    asked = []

    def reconnect():
        asked.append(1)
        raise RuntimeError("daemon not running")

    plan = Plan(reconnect=reconnect)
    plan.add("a", lambda: None, undo=_Undo(1))
    plan.add("b", lambda: None, undo=_Undo(1))
    plan.add("c", lambda: 1 / 0)
    with pytest.raises(BackendError) as err:
        plan.execute()
    assert len(asked) == 1 and len(err.value.details["rollback_errors"]) == 3


def test_reconcile_gives_the_plan_the_contexts_reconnect():
    seen = []

    class _Broken(Resource):
        kind = "thing"

        def read(self):
            return None

        def desired(self, current):
            return dict(size=1)

        def plan(self, current, desired, diff, plan):
            seen.append(plan.reconnect)
            plan.add("make", lambda: None, undo=lambda: None)

    ctx = Context(params=dict(name="t"))
    reconcile(_Broken(ctx), check_mode=True)
    assert seen[0] == ctx.reconnect_if_lost


class _Ctx:
    params = dict(name="c")


class _Child(Resource):
    """A child resource for Plan.include: present or absent in a dict ``store``."""

    kind = "child"

    def __init__(self, store, want):
        super(_Child, self).__init__(_Ctx())
        self.store = store
        self.want = want

    def read(self):
        return self.store.get("c")

    def desired(self, current):
        return self.want

    def plan(self, current, desired, diff, plan):
        if diff:
            plan.add("set child", lambda: self.store.__setitem__("c", desired), undo=lambda: self.store.pop("c", None))
            return Outcome(removed_volumes=["/v/old"], reboot_required=True, pending_changes=["memory"], seed="made")
        return None

    def result(self, state, outcome):
        return dict(child=state, seed=outcome.values.get("seed"))


def test_include_puts_a_childs_steps_into_the_parent_plan_and_returns_its_outcome():
    store = {}
    plan = Plan()
    included = plan.include(_Child(store, {"size": 1}))
    assert included.changed and plan.descriptions == ["set child"]
    assert included.current is None and included.state == {"size": 1}  # predicted
    assert included.outcome.removed_volumes == ["/v/old"] and included.outcome.values == {"seed": "made"}
    assert included.result() == dict(child={"size": 1}, seed="made", changed=True)
    assert store == {}  # nothing ran yet
    plan.execute()
    assert store == {"c": {"size": 1}}


def test_include_of_a_child_in_its_state_adds_nothing():
    store = {"c": {"size": 1}}
    plan = Plan()
    included = plan.include(_Child(store, {"size": 1}))
    assert not included.changed and not plan
    assert included.state == {"size": 1} and included.result()["changed"] is False
    assert included.outcome.reboot_required is False


def test_an_included_childs_steps_are_undone_when_a_later_step_fails():
    store = {}
    plan = Plan()
    plan.include(_Child(store, {"size": 1}))

    def boom():
        raise RuntimeError("later step broke")

    plan.add("later", boom)
    with pytest.raises(BackendError):
        plan.execute()
    assert store == {}


def test_outcome_absorbs_a_childs_reboot_and_removed_volumes_once():
    parent = Outcome(removed_volumes=["/v/a"])
    parent.require_reboot("vcpus")
    child = Outcome(removed_volumes=["/v/a", "/v/b"])
    child.require_reboot("memory", "vcpus")
    parent.absorb(child).absorb(None)
    assert parent.reboot_required
    assert parent.pending_changes == ["vcpus", "memory"]
    assert parent.removed_volumes == ["/v/a", "/v/b"]
