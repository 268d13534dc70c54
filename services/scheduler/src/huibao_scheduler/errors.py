"""The scheduler's own exceptions; driver errors are translated at the adapter edge."""

from huibao_platform.errors import HuibaoError, StorageUnavailableError


class SchedulerError(HuibaoError):
    """Base of the scheduler's errors."""


class StoreUnavailableError(SchedulerError, StorageUnavailableError):
    """The scheduler's PostgreSQL cannot be reached or refused the operation (transient):
    the pass that needed it fails whole and runs again at the next tick (HTTP 503)."""


class PlanError(SchedulerError, ValueError):
    """A cycle's plan was asked for the wrong period kind, or a step it does not have."""


class RollupUnavailableError(SchedulerError):
    """The rollup query API cannot be reached or answered with an error."""


class CycleClosedError(SchedulerError):
    """A step was asked of a cycle that has already closed."""


class StepConflictError(SchedulerError):
    """Another replica ran the step first; nothing was written."""
