"""The scheduler's own exceptions; driver errors are translated at the adapter edge."""

from huibao_platform.errors import HuibaoError


class SchedulerError(HuibaoError):
    """Base of the scheduler's errors."""


class RollupUnavailableError(SchedulerError):
    """The rollup query API cannot be reached or answered with an error."""


class CycleClosedError(SchedulerError):
    """A step was asked of a cycle that has already closed."""


class StepConflictError(SchedulerError):
    """Another replica ran the step first; nothing was written."""
