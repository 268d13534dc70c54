"""Bring a cluster of an older launcher (trust authentication, everything owned by the
superuser the services used to connect as) under the password rules, without ever opening
it to the network: PostgreSQL's single-user mode, run as the server's user, sets the
superuser's password (a SCRAM verifier), creates the service role and hands it every
non-system database with all its schemas, tables, sequences, views, functions and types.
The launcher's own pg_hba.conf replaces the cluster's from then on.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from huibao_stack.errors import StartupError
from huibao_stack.pg_runtime import Account

_OWNED = """
DO $$
DECLARE
    r record;
    me oid := (SELECT oid FROM pg_roles WHERE rolname = '{superuser}');
BEGIN
    FOR r IN SELECT nspname FROM pg_namespace
             WHERE nspowner = me AND nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
    LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO {role}', r.nspname);
    END LOOP;
    FOR r IN SELECT c.oid::regclass AS name FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relowner = me AND n.nspname NOT LIKE 'pg\\_%'
               AND n.nspname <> 'information_schema' AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                               AND d.objid = c.oid AND d.deptype IN ('a', 'i')
                               AND c.relkind = 'S')
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO {role}', r.name);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS name FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE p.proowner = me AND n.nspname NOT LIKE 'pg\\_%'
               AND n.nspname <> 'information_schema'
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO {role}', r.name);
    END LOOP;
    FOR r IN SELECT t.oid::regtype AS name FROM pg_type t
             JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE t.typowner = me AND n.nspname NOT LIKE 'pg\\_%'
               AND n.nspname <> 'information_schema' AND t.typtype IN ('e', 'd', 'r', 'm')
    LOOP
        EXECUTE format('ALTER TYPE %s OWNER TO {role}', r.name);
    END LOOP;
END $$;

"""


def _single(
    bindir: Path, data_dir: Path, database: str, sql: str, account: Account | None, hba: Path
) -> str:
    """Run `sql` (statements ending in `;` and a blank line) in single-user mode; answer
    its output, or raise when PostgreSQL reported any error."""
    argv = [
        str(bindir / "postgres"), "--single", "-j", "-D", str(data_dir),
        "-c", f"hba_file={hba}", "-c", "log_statement=none", "-c", "log_line_prefix=",
        database,
    ]  # fmt: skip
    done = subprocess.run(  # noqa: S603 (fixed binary from the wheel)
        argv,
        input=sql,
        capture_output=True,
        text=True,
        user=account.uid if account else None,
        group=account.gid if account else None,
        extra_groups=[] if account else None,
        check=False,
        timeout=300,
    )
    output = done.stdout + done.stderr
    if done.returncode != 0 or re.search(r"^(ERROR|FATAL|PANIC):", output, re.MULTILINE):
        raise StartupError(
            f"bringing the old cluster {data_dir} under password authentication failed "
            f"(exit {done.returncode}); it is unchanged where the error came first:\n"
            f"{output[-3000:]}"
        )
    return output


def adopt_trust_cluster(
    bindir: Path,
    data_dir: Path,
    *,
    superuser: str,
    superuser_verifier: str,
    role: str,
    account: Account | None,
    hba: Path,
) -> list[str]:
    """Set the superuser's password, create `role` and give it every database but
    `postgres` and the templates, with their objects; answer those databases' names."""
    for name in (superuser, role):
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"{name!r} is not a plain role name")
    setup = (
        f"ALTER ROLE {superuser} PASSWORD '{superuser_verifier}';\n\n"
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
        f"CREATE ROLE {role} LOGIN; END IF; END $$;\n\n"
        "SELECT datname FROM pg_database WHERE datname NOT IN "
        "('postgres', 'template0', 'template1');\n\n"
    )
    listed = _single(bindir, data_dir, "postgres", setup, account, hba)
    databases = re.findall(r'datname = "([^"]*)"', listed)
    for database in databases:
        quoted = '"' + database.replace('"', '""') + '"'
        sql = f"ALTER DATABASE {quoted} OWNER TO {role};\n\n"
        _single(bindir, data_dir, "postgres", sql, account, hba)
        owned = _OWNED.format(superuser=superuser, role=role)
        _single(bindir, data_dir, database, owned, account, hba)
    return databases


def move_cluster(old: Path, new: Path) -> None:
    """Move an old in-checkout cluster to where the server's user can reach it (a rename:
    owner, modes and contents stay as they are)."""
    st = os.lstat(old)
    if not os.path.isdir(old) or os.path.islink(old):
        raise StartupError(f"{old} is not a directory (a symlink?); refusing it")
    try:
        os.rename(old, new)
    except OSError as e:
        raise StartupError(
            f"{old} holds the PostgreSQL cluster of an older launcher; as root the cluster "
            f"now lives in {new}, and moving it failed ({e}). Move it yourself "
            f"(`mv {old} {new}`, keeping owner uid {st.st_uid}) or remove it to start afresh"
        ) from e
