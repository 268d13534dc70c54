"""The cycle state machine: which steps are due at an instant, in order, and how they run.

Steps of a cycle run strictly one after another. Across cycles, due steps run in the order
of their due instant (ties: Party Day before feedback, then the step's position), so after
downtime a catch-up replays the missed calendar in order. Catch-up rule: a step run at or
after its `useful_until` is recorded as skipped (no notifications) but the state advances.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from huibao_contracts.cycles import CycleKind, CycleTransition
from huibao_scheduler.domain.plan import CyclePlan, PlannedStep, Step

_KIND_ORDER = {CycleKind.PARTY_DAY: 0, CycleKind.FEEDBACK: 1}


def next_step(plan: CyclePlan, last: Step | None) -> PlannedStep | None:
    """The step that runs after `last`, due or not; None when the cycle is closed."""
    rest = plan.after(last)
    return rest[0] if rest else None


def due_steps(plan: CyclePlan, last: Step | None, now: dt.datetime) -> tuple[PlannedStep, ...]:
    """The steps of one cycle due at `now`, in order (stops at the first one not yet due)."""
    out: list[PlannedStep] = []
    for step in plan.after(last):
        if step.due_at > now:
            break
        out.append(step)
    return tuple(out)


def order_key(step: PlannedStep) -> tuple[dt.datetime, int, int, str]:
    """Sort key of steps across cycles: due instant, kind, position, period."""
    return (step.due_at, _KIND_ORDER[step.kind], step.seq, str(step.period))


def due_across(
    cycles: Iterable[tuple[CyclePlan, Step | None]], now: dt.datetime
) -> list[PlannedStep]:
    """Every step due at `now` over many cycles (each with its last step run), in run order."""
    steps = [s for plan, last in cycles for s in due_steps(plan, last, now)]
    return sorted(steps, key=order_key)


def is_skipped(step: PlannedStep, ran_at: dt.datetime) -> bool:
    """True when a step running at `ran_at` is too late for its notifications to help."""
    return step.useful_until is not None and ran_at >= step.useful_until


def transition(step: PlannedStep, ran_at: dt.datetime) -> CycleTransition:
    """The transition published when `step` runs at `ran_at`."""
    return CycleTransition(
        kind=step.kind,
        period=str(step.period),
        step=step.step.value,
        state=step.state_after,
        due_at=step.due_at,
        ran_at=ran_at,
        skipped=is_skipped(step, ran_at),
    )


def catch_up(
    cycles: Iterable[tuple[CyclePlan, Step | None]], now: dt.datetime
) -> list[CycleTransition]:
    """The transitions a scheduler coming back at `now` publishes, in order (pure replay)."""
    return [transition(step, now) for step in due_across(cycles, now)]
