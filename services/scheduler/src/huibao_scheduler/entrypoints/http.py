"""The scheduler's HTTP API (port 8003); every route needs a bearer token with the `read`
scope, the admin ones the admin token (which holds every scope).

- `GET /v1/cycles`: every cycle scheduled so far, its state and its next step.
- `POST /v1/cycles/{kind}/{period}/run` (admin): run the cycle's next step now, due or not.
- `GET /v1/clock`, `PUT /v1/clock` (admin, manual clock only): move time and run due steps.
- `GET /v1/feedback/{id}?quarter=2026-Q3`: a unit's quarterly feedback, JSON or CSV.
"""

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, Security
from pydantic import BaseModel, ConfigDict, Field

from huibao_contracts.cycles import CycleKind, CycleTransition
from huibao_contracts.feedback import FeedbackReport
from huibao_contracts.orgunits import ORG_UNIT_ID_PATTERN
from huibao_contracts.periods import InvalidPeriodError, Period, PeriodKind
from huibao_contracts.storable import StorableInstant
from huibao_platform.auth import Principal
from huibao_platform.clock import ManualClock
from huibao_platform.http import error_body
from huibao_platform.openapi_doc import PeriodPath, PeriodQuery, answers
from huibao_platform.spreadsheet import CSV_MEDIA_TYPE, wants_csv
from huibao_scheduler.entrypoints.answers_schema import ClockState, CyclesAnswer, RunAnswer
from huibao_scheduler.entrypoints.csv_export import feedback_csv
from huibao_scheduler.errors import CycleClosedError, StepConflictError
from huibao_scheduler.service_layer.cycle_runner import CycleRunner
from huibao_scheduler.service_layer.ports import Cycles


class ClockMove(BaseModel):
    """Body of `PUT /v1/clock`."""

    model_config = ConfigDict(extra="forbid")

    now: StorableInstant = Field(
        description="The new instant, with offset; never earlier.",
        examples=["2026-07-24T09:00:00+08:00"],
    )


class ClockAnswer(BaseModel):
    """The clock after a move and the transitions the move caused, in order."""

    now: dt.datetime
    transitions: list[CycleTransition]
    pending: int = Field(description="Steps still due (a rollup failure stopped the run).")
    error: str | None = None


def _period(text: str, field: str, kind: PeriodKind) -> Period:
    try:
        period = Period.parse(text)
    except InvalidPeriodError as e:
        raise HTTPException(422, error_body(field, "invalid_period", str(e))) from e
    if period.kind is not kind:
        raise HTTPException(422, error_body(field, "invalid_period", f"{text!r} is not a {kind}"))
    return period


def _require_admin(principal: Principal) -> None:
    # cycle and clock operations act on the whole tree: a stored token, even with the
    # `admin` scope, is bound to one unit's subtree and may not run them
    if not principal.is_admin:
        raise HTTPException(
            403,
            error_body(
                "token",
                "forbidden",
                "the admin token is required: cycle and clock operations act on the whole tree",
            ),
        )


def build_router(
    get_runner: Callable[[], CycleRunner],
    get_store: Callable[[], Cycles],
    principal: Callable[..., Awaitable[Principal]],
) -> APIRouter:
    """The `/v1` routes; the runner and store exist once the app's lifespan has started."""
    router = APIRouter(prefix="/v1", tags=["scheduler"])
    Caller = Annotated[Principal, Security(principal, scopes=["read"])]  # noqa: N806
    Admin = Annotated[Principal, Security(principal, scopes=["admin"])]  # noqa: N806
    Runner = Annotated[CycleRunner, Depends(get_runner)]  # noqa: N806
    Store = Annotated[Cycles, Depends(get_store)]  # noqa: N806

    @router.get(
        "/cycles",
        summary="Every cycle, its state and its next step",
        responses=answers(model=CyclesAnswer),
    )
    async def list_cycles(_: Caller, runner: Runner) -> dict[str, Any]:
        items = []
        for row, nxt, period, kind in await runner.cycles():
            items.append(
                {
                    "kind": kind.value,
                    "period": str(period),
                    "state": row.state.value if row else "pending",
                    "last_step": row.last_step.value if row and row.last_step else None,
                    "updated_at": row.updated_at.isoformat() if row else None,
                    "next_step": nxt.step.value if nxt else None,
                    "next_due_at": nxt.due_at.isoformat() if nxt else None,
                }
            )
        return {"now": runner.clock.now().isoformat(), "items": items}

    @router.post(
        "/cycles/{kind}/{period}/run",
        summary="Run the cycle's next step now (admin)",
        responses=answers(409, model=RunAnswer),
    )
    async def run_step(
        kind: CycleKind, period: PeriodPath, caller: Admin, runner: Runner
    ) -> dict[str, Any]:
        """Run the next step of the cycle at the clock's now, whether it is due or not.

        Answers the transition (`skipped` when the step is past its usefulness). 409 when the
        cycle is closed or another replica ran the step at the same moment.
        """
        _require_admin(caller)
        want = PeriodKind.MONTH if kind is CycleKind.PARTY_DAY else PeriodKind.QUARTER
        p = _period(period, "period", want)
        try:
            done = await runner.run_next(kind, p)
        except (CycleClosedError, StepConflictError) as e:
            raise HTTPException(409, error_body("period", "conflict", str(e))) from e
        return {"transition": done.model_dump(mode="json")}

    @router.get("/clock", summary="The scheduler's clock", responses=answers(model=ClockState))
    async def get_clock(_: Caller, runner: Runner) -> dict[str, Any]:
        mode = "manual" if isinstance(runner.clock, ManualClock) else "system"
        return {"now": runner.clock.now().isoformat(), "mode": mode}

    @router.put(
        "/clock",
        summary="Move the manual clock and run every due step (admin)",
        responses=answers(409),
    )
    async def move_clock(body: ClockMove, caller: Admin, runner: Runner) -> ClockAnswer:
        _require_admin(caller)
        clock = runner.clock
        if not isinstance(clock, ManualClock):
            raise HTTPException(409, error_body("clock", "conflict", "HUIBAO_CLOCK is not manual"))
        async with runner.lock:
            try:
                clock.set(body.now)
            except ValueError as e:
                raise HTTPException(422, error_body("now", "invalid_field", str(e))) from e
            result = await runner.run_due_locked()
        return ClockAnswer(
            now=result.now,
            transitions=result.transitions,
            pending=result.pending,
            error=result.error,
        )

    @router.get(
        "/feedback/{unit}",
        summary="A unit's quarterly feedback (JSON or CSV)",
        responses=answers(404, model=FeedbackReport, csv=True),
    )
    async def get_feedback(
        unit: Annotated[str, Path(pattern=ORG_UNIT_ID_PATTERN)],
        request: Request,
        caller: Caller,
        store: Store,
        *,
        quarter: PeriodQuery,
        format: Annotated[str | None, Query(pattern="^(json|csv)$")] = None,
    ) -> Response:
        q = _period(quarter, "quarter", PeriodKind.QUARTER)
        stored = await store.feedback(unit, str(q))
        if stored is None:
            raise HTTPException(
                404,
                error_body("id", "not_found", f"no feedback for {unit} in {q} (not issued yet?)"),
            )
        if caller.unit is not None and caller.unit not in stored.path:
            raise HTTPException(
                403, error_body("id", "out_of_scope", f"{unit} is outside the token's subtree")
            )
        if wants_csv(format, request.headers.get("accept")):
            return Response(feedback_csv(stored.report), media_type=CSV_MEDIA_TYPE)
        return Response(orjson.dumps(stored.report), media_type="application/json")

    return router
