"""Child processes the launcher owns: none of them may outlive it.

Three layers make sure of that:

- every child is started with `PR_SET_PDEATHSIG = SIGKILL` on Linux, so the kernel kills it
  when the launcher dies, even by SIGKILL. The signal fires when the *thread* that started the
  child exits, so children are always started from the long-lived thread that runs the
  launcher (the event loop's thread), never from a worker thread;
- every child gets its own session, so a Ctrl-C in the terminal reaches only the launcher,
  which then stops the children in order (services, broker, PostgreSQL);
- an `atexit` hook kills whatever is still registered when the interpreter exits.
"""

from __future__ import annotations

import abc
import asyncio
import atexit
import contextlib
import ctypes
import ctypes.util
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from huibao_platform.logs import ecs_line

_PR_SET_PDEATHSIG = 1
_live: dict[int, subprocess.Popen[bytes]] = {}
_live_lock = threading.Lock()


def _pdeathsig_setter() -> Callable[[], None] | None:
    """A function for `preexec_fn` that asks the kernel to SIGKILL the child with its parent."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        prctl = ctypes.CDLL(libc_name, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    sigkill = int(signal.SIGKILL)

    def set_pdeathsig() -> None:  # runs in the child between fork and exec
        prctl(_PR_SET_PDEATHSIG, sigkill, 0, 0, 0)

    return set_pdeathsig


_SET_PDEATHSIG = _pdeathsig_setter()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a listener could bind `host:port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file, or a note that it is empty or missing."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    chosen = text.splitlines()[-lines:]
    return "\n".join(chosen) if chosen else f"(empty log at {path})"


class Child:
    """One child process: started with its output in a log file, stopped or killed on demand."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | int | None = None,
        group: str | int | None = None,
        extra_groups: Sequence[str | int] | None = None,
        echo: IO[str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self.group = group  # with `user`: run in this group, and only in `extra_groups`
        self.extra_groups = list(extra_groups) if extra_groups is not None else None
        self.echo = echo
        self.proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None
        self._reaped = True  # nothing to stop, wait for or kill
        self._stopping = False  # stop() or kill() asked: an exit now is no death

    @property
    def pid(self) -> int | None:
        """The process id while it runs (or until it is reaped)."""
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        """The exit status once it has exited."""
        return None if self.proc is None else self.proc.poll()

    def died(self) -> str | None:
        """How the process ended (`exit code 3`, `signal SIGKILL`) when it exited without
        `stop` or `kill` asking it to; None while it runs or after a stop. Reaps it."""
        if self.proc is None or self._stopping:
            return None
        code = self.proc.poll()
        return None if code is None else describe_exit(code)

    def start(self) -> None:
        """Start the process; its stdout and stderr go to the log file (and `echo`)."""
        if self.running():
            raise RuntimeError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # the launcher's own line: JSON with the field names of the services' lines
            line = ecs_line("child_starting", logger=__name__, service="launcher", child=self.name)
            log.write(f"{line}\n".encode())
            log.flush()
            out: int | IO[bytes] = subprocess.PIPE if self.echo else log
            proc = subprocess.Popen(  # noqa: S603 (argv is built by the launcher)
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                user=self.user,
                group=self.group,
                extra_groups=self.extra_groups,
                start_new_session=True,
                preexec_fn=_SET_PDEATHSIG,  # noqa: PLW1509 (only ctypes prctl, no locks)
            )
        self.proc = proc
        self._reaped = False
        self._stopping = False
        with _live_lock:
            _live[proc.pid] = proc
        if self.echo and proc.stdout is not None:
            self._pump = threading.Thread(
                target=_pump, args=(proc.stdout, self.log_path, self.name, self.echo), daemon=True
            )
            self._pump.start()

    def send(self, sig: int) -> None:
        """Send `sig` to the process (nothing when it has exited)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the exit; True when it has exited."""
        if self.proc is None or self._reaped:
            return True
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        self._forget()
        return True

    def stop(self, sig: int = signal.SIGTERM, grace: float = 15.0) -> None:
        """Ask the process to exit with `sig`; SIGKILL its whole group after `grace` seconds."""
        if self.proc is None or self._reaped:
            return
        self._stopping = True
        self.send(sig)
        if not self.wait(grace):
            self.kill()
        else:
            self._kill_group()  # strays of a process that exited cleanly

    def kill(self) -> None:
        """SIGKILL the process and everything in its process group, and reap it."""
        if self.proc is None or self._reaped:
            return
        self._stopping = True
        self._kill_group()
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        self._forget()

    def _kill_group(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def _forget(self) -> None:
        self._reaped = True
        if self.proc is not None:
            with _live_lock:
                _live.pop(self.proc.pid, None)
        if self._pump is not None:
            self._pump.join(timeout=2)
            self._pump = None


def describe_exit(code: int) -> str:
    """`exit code 3`, or `signal SIGKILL` for a process a signal ended."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _pump(stream: IO[bytes], log_path: Path, name: str, echo: IO[str]) -> None:
    """Copy a child's output to its log file and, prefixed with its name, to `echo`."""
    with log_path.open("ab") as log:
        for line in iter(stream.readline, b""):
            log.write(line)
            log.flush()
            with contextlib.suppress(ValueError, OSError):
                echo.write(f"[{name}] {line.decode('utf-8', errors='replace')}")
                echo.flush()
    stream.close()


def live_pids() -> list[int]:
    """Pids of children started here that have not been reaped yet."""
    with _live_lock:
        return [pid for pid, proc in _live.items() if proc.poll() is None]


@atexit.register
def kill_all() -> None:
    """SIGKILL every child still registered (and its process group); also run at exit."""
    with _live_lock:
        procs = list(_live.values())
        _live.clear()
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)


class OwnedServer(abc.ABC):
    """What the embedded broker and PostgreSQL share: one owned child, its pid and liveness,
    stop with a server-specific signal, kill, and restart on the same port.

    Subclasses set `_child` in `start()` and say how they stop (`STOP_SIGNAL`, `STOP_GRACE`).
    """

    STOP_SIGNAL: signal.Signals = signal.SIGTERM
    STOP_GRACE: float = 10.0

    _child: Child | None = None
    _starting: int = 0
    log_path: Path

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Mark every `start()` of a subclass as in progress, so that a supervisor does not
        take a server that exits while starting (its `start` raises) for a death."""
        super().__init_subclass__(**kwargs)
        start = cls.__dict__.get("start")
        if start is None or getattr(start, "_tracked", False):
            return

        @functools.wraps(start)
        async def tracked_start(self: OwnedServer) -> None:
            self._starting += 1
            try:
                await start(self)
            finally:
                self._starting -= 1

        tracked_start._tracked = True  # type: ignore[attr-defined]
        cls.start = tracked_start  # type: ignore[method-assign]

    def died(self) -> str | None:
        """How the server ended when it exited on its own (see `Child.died`); None while it
        runs, starts, or after a stop or kill."""
        if self._starting or self._child is None:
            return None
        return self._child.died()

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._child.pid if self._child else None

    def running(self) -> bool:
        """True while the server runs."""
        return self._child is not None and self._child.running()

    @abc.abstractmethod
    async def start(self) -> None:
        """Start the server and wait until it is ready."""

    async def stop(self, grace: float | None = None) -> None:
        """`STOP_SIGNAL`, then SIGKILL after `grace` seconds (default `STOP_GRACE`)."""
        child = self._child
        if child is not None:
            await asyncio.to_thread(
                child.stop, self.STOP_SIGNAL, self.STOP_GRACE if grace is None else grace
            )

    async def kill(self) -> None:
        """SIGKILL the server."""
        child = self._child
        if child is not None:
            await asyncio.to_thread(child.kill)

    async def restart(self, *, crash: bool = False) -> None:
        """Stop (or kill, with `crash`) and start again on the same port."""
        await (self.kill() if crash else self.stop())
        await self.start()
