# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read current -> build desired -> diff -> plan -> apply.

A resource type subclasses :class:`Resource` and implements the contract, with state passed as
arguments and nothing of one run kept on the resource:

* ``read()`` -> ``current`` (a plain dict, or None when the object does not exist);
* ``desired(current)`` -> ``desired`` (what the user asked for; None for "absent");
* ``plan(current, desired, diff, plan)`` adds steps to ``plan`` and returns an :class:`Outcome`
  (or None for an empty one): what the run found out beyond its steps (``reboot_required``,
  ``pending_changes``, ``removed_volumes``, and return values of its own in ``values``);
* ``result(state, outcome)`` -> the module's return values.

A parent resource puts a child resource (a seed, a volume) into its own plan with
:meth:`Plan.include`, which runs the child's read/desired/compare/plan and returns an
:class:`Included`.  :func:`reconcile` does the rest the same way for every module:

* ``changed`` is "the plan has steps" (the plan is built from the differences, in check mode too);
* check mode builds the same plan and skips only the side effects;
* ``diff`` (when ``--diff`` is on) shows before/after of what the user specified;
* if a step fails, the undo actions of the steps already done run in reverse order, so a failed
  run leaves nothing half-made, and the original error is raised.  A step added with
  ``partial=True`` may leave part of its work when it fails (a volume created, then the copy into it
  broke off): its own undo runs too, and must do nothing when there is nothing to undo.
* an undo that fails because the libvirt connection was lost (libvirtd restarted while the step ran)
  is retried once on a new connection (``Plan(reconnect=...)``, which ``reconcile`` takes from
  ``Context.reconnect_if_lost``).  Undo actions therefore look their objects up again, by name,
  through ``ctx.conn`` instead of keeping libvirt objects of the old connection.
* a run told to stop (``Plan(stop=...)``, which ``reconcile`` takes from ``Context.stop``: the ``apply``
  module's SIGTERM/SIGINT) stops before its next step, undoes the steps done and raises
  :class:`StoppedError`; a step that is running is not cut off.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import (
    ABSENT,
    DifferenceTracker,
    compare_specified,
    merge,
    project,
    specified,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, StoppedError, VirtopsError


class Step:
    __slots__ = ("description", "action", "undo", "partial")

    def __init__(self, description, action=None, undo=None, partial=False):
        self.description = description
        self.action = action
        self.undo = undo
        self.partial = partial


class Outcome:
    """What ``Resource.plan`` found out besides its steps, for ``Resource.result``.

    ``reboot_required``: a change was saved that takes effect at the next (re)start;
    ``pending_changes``: the names of those changes; ``removed_volumes``: paths the plan deletes;
    ``values``: further return values of the resource (a seed's result, a restart flag...).
    """

    __slots__ = ("reboot_required", "pending_changes", "removed_volumes", "values")

    def __init__(self, reboot_required=False, pending_changes=None, removed_volumes=None, **values):
        self.reboot_required = reboot_required
        self.pending_changes = list(pending_changes or [])
        self.removed_volumes = list(removed_volumes or [])
        self.values = values

    def require_reboot(self, *changes):
        """Record changes that wait for the next (re)start."""
        self.reboot_required = True
        for change in changes:
            if change not in self.pending_changes:
                self.pending_changes.append(change)

    def absorb(self, other):
        """Take over what a child's outcome found (reboot, pending changes, removed volumes)."""
        if other is None:
            return self
        if other.reboot_required:
            self.require_reboot(*other.pending_changes)
        self.removed_volumes.extend(v for v in other.removed_volumes if v not in self.removed_volumes)
        return self

    def __repr__(self):
        return "Outcome(reboot_required=%r, pending_changes=%r, removed_volumes=%r, values=%r)" % (
            self.reboot_required, self.pending_changes, self.removed_volumes, self.values)


class Included:
    """What :meth:`Plan.include` learnt of a child resource: its states, steps and outcome."""

    __slots__ = ("resource", "current", "desired", "outcome", "changed", "state")

    def __init__(self, resource, current, desired, outcome, changed):
        self.resource = resource
        self.current = current
        self.desired = desired
        self.outcome = outcome
        self.changed = changed
        #: the state after the plan ran: predicted when it has steps, else the current one
        self.state = resource.predict(current, desired) if changed else current

    def result(self):
        """The child's own return values for ``state``, plus ``changed``."""
        out = self.resource.result(self.state, self.outcome)
        out["changed"] = self.changed
        return out


class Plan:
    """An ordered list of described side effects, each with an optional undo.

    ``reconnect()``, when given, is called after an undo failed: it returns True when the libvirt
    connection had been lost and a new one is now open (the undo is then retried once), False when the
    connection was fine (the failure stands), and raises when no new connection could be opened.  Once
    it has opened a connection or failed to, it is not asked again in that rollback.
    """

    def __init__(self, reconnect=None, stop=None):
        self.steps = []
        self.warnings = []
        self.undo_errors = []
        self.reconnect = reconnect
        #: ``stop()`` -> None, or why the run must stop before its next step
        self.stop = stop

    def add(self, description, action=None, undo=None, partial=False):
        """Add a step; ``partial``: ``undo`` also runs when ``action`` itself fails (see the module doc)."""
        self.steps.append(Step(description, action, undo, partial))
        return self

    def warn(self, text):
        self.warnings.append(text)

    def include(self, child):
        """Add the steps of the child resource ``child`` (read, desired, compared, planned) to this plan.

        The child's steps run in this plan, so a later failing step undoes them too.  Returns an
        :class:`Included` with the child's current, desired and predicted state and its outcome.
        """
        current = child.read()
        desired = child.desired(current)
        before = len(self.steps)
        outcome = child.plan(current, desired, child.compare(current, desired), self) or Outcome()
        return Included(child, current, desired, outcome, len(self.steps) > before)

    def __bool__(self):
        return bool(self.steps)

    __nonzero__ = __bool__

    def __len__(self):
        return len(self.steps)

    @property
    def descriptions(self):
        return [s.description for s in self.steps]

    def execute(self):
        """Run every step; on failure undo the finished steps (newest first) and re-raise."""
        done = []
        for step in self.steps:
            reason = self.stop() if self.stop is not None else None
            if reason:
                self._rollback(done)
                raise StoppedError("stopped before '%s' (%s); the steps done before were undone" % (step.description, reason),
                                   failed_step=step.description, rollback_errors=list(self.undo_errors))
            try:
                if step.action is not None:
                    step.action()
            except Exception as exc:
                self._rollback(done + [step] if step.partial else done)
                if isinstance(exc, VirtopsError):
                    if self.undo_errors:
                        exc.details.setdefault("rollback_errors", list(self.undo_errors))
                    exc.details.setdefault("failed_step", step.description)
                    raise
                raise BackendError(
                    "%s failed: %s" % (step.description, exc),
                    failed_step=step.description,
                    rollback_errors=list(self.undo_errors),
                )
            done.append(step)

    def _rollback(self, done):
        asked = []  # the answer of a reconnect that happened (or failed) in this rollback
        for step in reversed(done):
            if step.undo is None:
                continue
            try:
                step.undo()
            except Exception as exc:  # keep undoing the rest; report what could not be undone
                error = exc
                if self._reconnected(asked):
                    try:
                        step.undo()
                        continue
                    except Exception as again:
                        error = again
                self.undo_errors.append("undo of '%s' failed: %s" % (step.description, error))

    def _reconnected(self, asked):
        """Whether the connection had been lost and a new one is open now."""
        if self.reconnect is None or asked:
            return False
        try:
            renewed = bool(self.reconnect())
        except Exception as exc:  # the daemon did not come back: say so next to the undo's own error
            asked.append(False)
            self.undo_errors.append("the libvirt connection was lost and could not be opened again: %s" % exc)
            return False
        if renewed:
            asked.append(True)
        return renewed


class Resource:
    """Base class for one resource type (a pool, a network, a domain...).

    ``ctx`` is a :class:`~._runner.Context` (connection, params, check mode, command runner).
    """

    #: word used in messages and diff headers ("pool", "network"...)
    kind = "resource"

    def __init__(self, ctx):
        self.ctx = ctx
        self.params = ctx.params

    @property
    def name(self):
        return self.params.get("name")

    # --- to implement -------------------------------------------------------------------------

    def read(self):
        """The current state as a plain dict in the same shape as ``desired()``, or None if absent."""
        raise NotImplementedError

    def desired(self, current):
        """The state the user asked for (None values = unspecified), or None for "must be absent".

        ``current`` is what ``read()`` returned; no I/O here beyond what deciding needs.
        """
        raise NotImplementedError

    def plan(self, current, desired, diff, plan):
        """Add to ``plan`` the steps that turn ``current`` into ``desired``; ``diff`` is a tracker.

        Returns an :class:`Outcome` (None: nothing beyond the steps).
        """
        raise NotImplementedError

    def result(self, state, outcome):
        """Return values for the module result, from the state after the run (or the prediction)
        and the plan's :class:`Outcome`."""
        return {}

    # --- overridable defaults -------------------------------------------------------------------

    def compare(self, current, desired):
        """The differences that matter; default: every specified key of ``desired``."""
        tracker = DifferenceTracker()
        if current is None and desired is None:
            return tracker
        if current is None:
            tracker.add(("state",), ABSENT, "present")
            return tracker
        if desired is None:
            tracker.add(("state",), "present", ABSENT)
            return tracker
        return compare_specified(desired, current, tracker)

    def predict(self, current, desired):
        """The state expected after the plan ran (used for check mode results)."""
        if desired is None:
            return None
        return merge(current or {}, desired)

    def diff_views(self, current, desired):
        """Before/after structures shown with ``--diff``: only what the user specified."""
        if desired is None:
            return (project(current, current) if current is not None else {"state": ABSENT}), {"state": ABSENT}
        if current is None:
            return {"state": ABSENT}, specified(desired)
        return project(current, desired), specified(merge(project(current, desired), desired))

    def refresh(self):
        """Read the state again after the plan ran (default: ``read()``)."""
        return self.read()


def reconcile(resource, check_mode=False, want_diff=False):
    """Run the read/desired/diff/plan/apply cycle for ``resource``; return the module result dict."""
    current = resource.read()
    desired = resource.desired(current)
    differences = resource.compare(current, desired)
    plan = Plan(reconnect=getattr(resource.ctx, "reconnect_if_lost", None), stop=getattr(resource.ctx, "stop", None))
    outcome = resource.plan(current, desired, differences, plan) or Outcome()

    if plan and not check_mode:
        plan.execute()
        final = resource.refresh()
    elif plan:
        final = resource.predict(current, desired)
    else:
        final = current

    result = dict(changed=bool(plan), actions=plan.descriptions)
    result.update(resource.result(final, outcome))
    if plan.warnings:
        result["warnings"] = list(plan.warnings)
    assumptions = getattr(resource.ctx, "assumptions", None)
    if assumptions:
        result["assumptions"] = list(assumptions)
    if want_diff:
        before, after = resource.diff_views(current, desired)
        if not plan:
            after = before
        label = "%s %s" % (resource.kind, resource.name) if resource.name else resource.kind
        result["diff"] = dict(before=before, after=after, before_header=label, after_header=label)
    return result
