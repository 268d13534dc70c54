"""How and where the embedded PostgreSQL runs, above all as root, without opening anything up.

PostgreSQL refuses to run as root, so it runs as the system user `pgserver` in its own
group, with no supplementary groups. That user can reach neither the wheel's binaries in a
virtualenv under a private (0700) checkout nor a data directory there, and the launcher
must not loosen any directory it did not create. So, as root:

- the binaries (`bin/postgres`, `bin/initdb`, `lib/postgresql`, `share/postgresql` and the
  wheel's bundled libraries) are hard-linked (copied across file systems) into a fresh
  `pgrun-*` directory next to the cluster, per start, removed when the server stops;
- a throwaway cluster lives in its own fresh temporary directory (mode 0711);
- a persistent cluster lives under `/var/lib/huibao/postgres/<hash of the launcher's data
  directory>/data` (root-owned 0711 directories, the cluster itself `pgserver` 0700).

Every directory made here is created with its final mode and owner; existing ones are
checked (a real directory, the right owner, not writable by others) and never changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from huibao_stack.errors import EmbeddedUnavailableError, StartupError

SYSTEM_USER = "pgserver"
"""The unprivileged system user PostgreSQL runs as when the launcher runs as root."""

PERSISTENT_BASE = Path("/var/lib/huibao/postgres")
"""Where persistent clusters live when the launcher runs as root."""


@dataclass(frozen=True, slots=True)
class Account:
    """The user and group PostgreSQL runs as."""

    name: str
    uid: int
    gid: int


def running_as_root() -> bool:
    """True when the launcher runs as root (PostgreSQL must then run as another user)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def server_account(name: str = SYSTEM_USER) -> Account:
    """The system user PostgreSQL runs as, created (with a group of its own) if missing."""
    import grp
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        argv = [
            "useradd", "--system", "--user-group", "--no-create-home",
            "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name,
        ]  # fmt: skip
        try:
            subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30)  # noqa: S603
        except (OSError, subprocess.SubprocessError) as e:
            raise EmbeddedUnavailableError(
                "PostgreSQL (pgserver)",
                f"running as root needs the system user {name!r} and useradd failed: {e}",
            ) from e
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        group = grp.getgrgid(entry.pw_gid).gr_name
        raise StartupError(
            f"the system user {name!r} has uid {entry.pw_uid} and primary group {group!r}; "
            "PostgreSQL must run as an unprivileged user in a group of its own"
        )
    return Account(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def reachable_by_others(path: Path) -> bool:
    """True when every directory from `/` down to `path` may be traversed by any user."""
    current = Path(path).resolve()
    for part in [current, *current.parents]:
        try:
            st = os.stat(part)
        except OSError:
            return False
        if not stat.S_ISDIR(st.st_mode) or not st.st_mode & stat.S_IXOTH:
            return False
    return True


def scratch_base() -> Path:
    """A temporary directory every user can traverse (the server user must reach into it)."""
    for candidate in (Path(tempfile.gettempdir()), Path("/tmp")):  # noqa: S108
        if reachable_by_others(candidate):
            return candidate
    raise StartupError(
        "neither TMPDIR nor /tmp can be traversed by other users, so PostgreSQL's user "
        f"{SYSTEM_USER!r} could not reach its files; point TMPDIR at such a directory"
    )


def private_temp_dir(prefix: str, mode: int) -> Path:
    """A fresh directory in `scratch_base()` with `mode` (made here, so its mode is ours)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=scratch_base()))
    os.chmod(path, mode)
    return path


def ensure_dir(path: Path, mode: int, owner: Account | None = None) -> None:
    """Create directory `path` with `mode` (and `owner`), or check the existing one.

    An existing directory must be a real directory (not a symlink), owned by the expected
    user (root when `owner` is None), and not writable by group or others; it is left as it
    is. Its parent must exist already.
    """
    uid, gid = (owner.uid, owner.gid) if owner else (0, 0)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise StartupError(f"{path} is not a directory (a symlink?); refusing it") from None
        if st.st_uid != uid or st.st_mode & 0o022:
            raise StartupError(
                f"{path} belongs to uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):o};"
                f" expected uid {uid} and no write access for others"
            ) from None
        return
    if owner is not None:
        os.chown(path, uid, gid, follow_symlinks=False)
    os.chmod(path, mode, follow_symlinks=False)


def persistent_cluster_dir(launcher_dir: Path) -> Path:
    """Where the persistent cluster of the launcher directory `launcher_dir` lives as root."""
    digest = hashlib.sha256(str(Path(launcher_dir).resolve()).encode()).hexdigest()[:16]
    return PERSISTENT_BASE / digest / "data"


def prepare_persistent_parent(cluster: Path, launcher_dir: Path) -> None:
    """Create (or check) the root-owned 0711 directories above a persistent cluster."""
    if not PERSISTENT_BASE.parent.parent.is_dir():
        raise StartupError(f"{PERSISTENT_BASE.parent.parent} does not exist")
    for ours in (PERSISTENT_BASE.parent, PERSISTENT_BASE, cluster.parent):
        ensure_dir(ours, 0o711)  # /var/lib itself is not ours: never touched
    if not reachable_by_others(cluster.parent):
        raise StartupError(
            f"{cluster.parent} cannot be reached by other users (a directory above it is "
            f"not traversable), so PostgreSQL's user {SYSTEM_USER!r} could not use it"
        )
    origin = cluster.parent / "origin"
    if not origin.exists():
        with contextlib.suppress(FileExistsError):
            fd = os.open(origin, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "w") as f:
                f.write(f"{Path(launcher_dir).resolve()}\n")


def mirror_binaries(install: Path, bundled_libs: Path | None, dest: Path) -> Path:
    """Hard-link (or copy) what PostgreSQL needs at run time from the wheel into `dest`,
    keeping the wheel's layout (`pgserver/pginstall/...`, `pgserver.libs`), so that the
    relative paths the binaries use (`../share/postgresql`, `../lib/postgresql`, the RPATH
    `$ORIGIN/../../../pgserver.libs`) resolve inside `dest`. Answers the new `bin`."""
    target = dest / "pgserver" / "pginstall"
    pairs: list[tuple[Path, Path]] = [
        (install / "bin" / "postgres", target / "bin" / "postgres"),
        (install / "bin" / "initdb", target / "bin" / "initdb"),
    ]
    trees = [(install / "lib" / "postgresql", target / "lib" / "postgresql")]
    trees.append((install / "share" / "postgresql", target / "share" / "postgresql"))
    if bundled_libs is not None and bundled_libs.is_dir():
        trees.append((bundled_libs, dest / "pgserver.libs"))
    for src_root, dst_root in trees:
        for dirpath, _dirs, files in os.walk(src_root):
            rel = Path(dirpath).relative_to(src_root)
            pairs += [(Path(dirpath) / f, dst_root / rel / f) for f in files]
    for src, dst in pairs:
        if not dst.parent.exists():
            dst.parent.mkdir(mode=0o755, parents=True)
            _fix_modes(dest, dst.parent)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)  # relative links within the wheel (lib*.so)
            continue
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError:
            shutil.copy2(src, dst, follow_symlinks=False)
    return target / "bin"


def _fix_modes(root: Path, leaf: Path) -> None:
    """Set 0755 on the directories from `root` (exclusive) to `leaf`, all made by us."""
    for part in [leaf, *leaf.parents]:
        if part == root or root not in part.parents:
            break
        os.chmod(part, 0o755, follow_symlinks=False)  # noqa: S103 (binaries: world-readable)


def new_runtime_dir(base: Path, *, shared: bool) -> Path:
    """A fresh `pgrun-*` directory in `base` (the launcher's own directory next to the
    cluster) for one start's files: the binaries as root, pg_hba.conf, initdb's pwfile.
    Those a killed launcher left behind go first. `shared`: the server's user reads it."""
    for stale in base.glob("pgrun-*"):
        st = os.lstat(stale)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
            shutil.rmtree(stale, ignore_errors=True)
    runtime = Path(tempfile.mkdtemp(prefix="pgrun-", dir=base))
    if shared:
        os.chmod(runtime, 0o755)  # noqa: S103 (binaries and pg_hba.conf: no secret)
    return runtime


def initdb(
    bindir: Path,
    data_dir: Path,
    *,
    runtime: Path,
    superuser: str,
    verifier: str,
    account: Account | None,
    fsync: bool,
) -> None:
    """Initialise `data_dir` for SCRAM password logins only, as `account` (or this user).

    initdb reads the superuser's password from a file: it gets the SCRAM `verifier` (the
    server stores it as it is), in a file only the server's user can read, removed at once.
    """
    pwfile = runtime / "pwfile"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        if account is not None:
            os.fchown(fd, account.uid, account.gid)
        os.write(fd, verifier.encode() + b"\n")
    finally:
        os.close(fd)
    argv = [
        str(bindir / "initdb"), "-D", str(data_dir),
        "-U", superuser, "--auth=scram-sha-256", f"--pwfile={pwfile}",
        "-E", "UTF8", "--locale=C",
    ]  # fmt: skip
    if not fsync:
        argv.append("--no-sync")
    try:
        result = subprocess.run(  # noqa: S603 (fixed binary from the wheel)
            argv,
            capture_output=True,
            text=True,
            user=account.uid if account else None,
            group=account.gid if account else None,
            extra_groups=[] if account else None,
            check=False,
            timeout=120,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise StartupError(
            f"initdb failed for {data_dir} (exit {result.returncode}):\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
