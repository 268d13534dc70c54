-- The scheduler's schema: idempotent, applied at every start under an advisory lock.
CREATE SCHEMA IF NOT EXISTS scheduler;

-- Facts fixed at the first start, e.g. the first month to schedule.
CREATE TABLE IF NOT EXISTS scheduler.meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- One row per cycle: its state and the last step that ran.
CREATE TABLE IF NOT EXISTS scheduler.cycles (
    kind       text        NOT NULL,
    period     text        NOT NULL,
    state      text        NOT NULL DEFAULT 'pending',
    last_step  text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, period)
);

-- One row per step that ran: the unique key is what makes a step run exactly once.
CREATE TABLE IF NOT EXISTS scheduler.steps (
    kind          text        NOT NULL,
    period        text        NOT NULL,
    step          text        NOT NULL,
    seq           integer     NOT NULL,
    state         text        NOT NULL,
    due_at        timestamptz NOT NULL,
    ran_at        timestamptz NOT NULL,
    skipped       boolean     NOT NULL DEFAULT false,
    notifications integer     NOT NULL DEFAULT 0,
    replica       text        NOT NULL DEFAULT '',
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT steps_once UNIQUE (kind, period, step)
);

-- The quarterly feedback of every unit; `path` (root … unit) scopes who may read it.
CREATE TABLE IF NOT EXISTS scheduler.feedback (
    quarter   text        NOT NULL,
    unit      text        NOT NULL,
    parent    text,
    level     text        NOT NULL,
    path      text[]      NOT NULL,
    report    jsonb       NOT NULL,
    issued_at timestamptz NOT NULL,
    PRIMARY KEY (quarter, unit)
);

-- Who a step has notified so far: the per-unit steps (every branch's reminder) issue their
-- notifications in chunks before the step commits, each chunk in one transaction with its
-- outbox rows, so a step rerun after a crash notifies nobody twice. Rows of a committed
-- step are deleted (its row in `steps` keeps it from ever running again).
CREATE TABLE IF NOT EXISTS scheduler.notified (
    kind   text NOT NULL,
    period text NOT NULL,
    step   text NOT NULL,
    unit   text NOT NULL,
    PRIMARY KEY (kind, period, step, unit)
);
