"""The embedded PostgreSQL's passwords: made once per data directory, kept in a file only the
launcher's user can read, handed to PostgreSQL only as SCRAM verifiers, never printed whole.

The file (JSON, mode 0600) holds two passwords: the superuser's (`postgres`, used by the
launcher alone to create roles and databases) and the service role's (`huibao`, which owns
the Huibao databases and is what DATABASE_URL names).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from huibao_platform import db
from huibao_stack.errors import StartupError

SUPERUSER = "postgres"
"""The bootstrap superuser of the embedded cluster; only the launcher connects as it."""

SERVICE_ROLE = "huibao"
"""The role the services connect as: it owns the Huibao databases, nothing more."""

SCRAM_ITERATIONS = 4096
"""PostgreSQL's default `scram_iterations`."""


@dataclass(frozen=True, slots=True)
class Passwords:
    """The superuser's and the service role's passwords of one cluster."""

    superuser: str
    service: str


def scram_verifier(password: str, *, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677), so that
    the server is only ever told the verifier, never the password itself."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`, fit for logs and banners (the services'
    own helper, so the launcher and their start-up errors mask alike)."""
    return db.redact_url(url)


def create_exclusive(path: Path, data: bytes, mode: int = 0o600) -> int:
    """Create `path` (never an existing file, never through a symlink) holding `data`;
    answer the still-open descriptor, so the caller may `fchown` it before closing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away; never adds any here
        os.write(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def new_passwords() -> Passwords:
    """Two fresh random passwords (256 bits each)."""
    return Passwords(superuser=secrets.token_urlsafe(32), service=secrets.token_urlsafe(32))


def save(path: Path, passwords: Passwords) -> None:
    """Write `passwords` to a new file `path` (mode 0600; never over an existing one)."""
    body = json.dumps({SUPERUSER: passwords.superuser, SERVICE_ROLE: passwords.service})
    os.close(create_exclusive(path, body.encode() + b"\n"))


def load_or_create(path: Path) -> tuple[Passwords, bool]:
    """The passwords kept in `path`, made (random, 256 bits each) when the file is missing.

    Answers the passwords and whether they were just made. Refuses a symlink, a file that
    is not a regular file, one owned by another user, or one that others may read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        fresh = new_passwords()
        try:
            save(path, fresh)
        except FileExistsError:  # someone else made it meanwhile: read theirs (checked)
            return load_or_create(path)
        return fresh, True
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StartupError(f"{path} is a symlink; the launcher refuses to follow it") from e
        raise
    with contextlib.closing(os.fdopen(fd, "rb")) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise StartupError(f"{path} is not a regular file")
        if st.st_uid != os.geteuid():
            raise StartupError(f"{path} belongs to uid {st.st_uid}, not to the launcher's user")
        if st.st_mode & 0o077:
            raise StartupError(
                f"{path} may be read by others (mode {stat.S_IMODE(st.st_mode):o}); "
                "the launcher only uses a password file of mode 600"
            )
        try:
            raw = json.loads(f.read())
            return Passwords(superuser=str(raw[SUPERUSER]), service=str(raw[SERVICE_ROLE])), False
        except (ValueError, KeyError, TypeError) as e:
            raise StartupError(f"{path} is not a password file of the launcher") from e
