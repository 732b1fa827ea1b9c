"""What the local Kafka broker and the local Elasticsearch node share: one JVM server process.

Both run detached, with their pid file, lock and log under ``<state dir>/<name>/``; both are
found again by pid (checked against the process's command line, since pids are reused), locked
while started or stopped so that concurrent starts (two test sessions, a developer's shell)
serialise, and stopped with SIGTERM, then SIGKILL when a shutdown hangs. :class:`JavaServer`
holds that lifecycle; :mod:`gridalarm.localkafka` and :mod:`gridalarm.locales` add how each
server is fetched, configured, launched and recognised as ready.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path


class JavaServer:
    """The lifecycle part of a local JVM server. Subclasses set the attributes below."""

    # The error an operator sees (one line), and how messages name the server.
    error: type[Exception] = RuntimeError
    what: str = "the local server"
    root: Path  # the server's own folder under the state dir
    pid_path: Path
    stop_timeout: float

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None

    def _marker(self) -> Path:
        """A path in the server's command line that tells it from any other process."""
        raise NotImplementedError

    def _forget(self) -> None:
        """Remove what says the server runs (the pid file, and subclasses' own)."""
        self.pid_path.unlink(missing_ok=True)
        self._proc = None

    def stop(self) -> bool:
        """Stop the server (SIGTERM, SIGKILL after ``stop_timeout``); True if one was running."""
        return self._end(self._terminate)

    def _end(self, how: Callable[[int], None]) -> bool:
        """Under the lock, end our running server with ``how(pid)``; True if one was running.
        A pid file naming no live server of ours is removed."""
        if not self.root.is_dir():
            return False
        with self._locked():
            pid = self._live_pid()
            if pid is None:
                self._forget()
                return False
            how(pid)
            return True

    def _terminate(self, pid: int) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``: a shutdown that hangs (a broker waiting
        on a dead controller, a node flushing) must not leave a server behind, whose ports and
        data folder the next start would find taken."""
        self._signal(pid, signal.SIGTERM)
        if self._wait_exit(pid, self.stop_timeout):
            self._forget()
        else:
            self._kill(pid)

    def _kill(self, pid: int) -> None:
        """SIGKILL, and wait until the process is gone."""
        self._signal(pid, signal.SIGKILL)
        if not self._wait_exit(pid, 10.0):
            raise self.error(f"{self.what} (pid {pid}) survived SIGKILL")
        self._forget()

    def _live_pid(self) -> int | None:
        """The pid from the pid file if that process is alive and is this server, else None."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        if not alive(pid):
            return None
        # The pid may have been reused by an unrelated process since the server died.
        cmdline = Path(f"/proc/{pid}/cmdline")
        with contextlib.suppress(OSError):
            if str(self._marker()).encode() not in cmdline.read_bytes():
                return None
        return pid

    def _signal(self, pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        """True once ``pid`` has exited (and is reaped, if it is our child)."""
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        """An exclusive lock on this state dir's server."""
        return flocked(self.root / ".lock")


@contextlib.contextmanager
def flocked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``; the kernel releases it even if we are killed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; reaps it first if it is our own exited child (a zombie)."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but not been reaped: a server started by a process that is
    gone belongs to init, and where init does not reap (a container) it stays a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_port_free(host: str, port: int, error: type[Exception], hint: str) -> None:
    """Raise ``error`` with a line naming the port (and ``hint``) if another process holds it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        # As the JVM does: sockets of a just-stopped server in TIME_WAIT do not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise error(
                    f"port {port} on {host} is already in use by another process; {hint}"
                ) from None
            raise error(f"cannot listen on {host}:{port}: {err.strerror}") from None


def find_java(error: type[Exception], needed_by: str, hint: str) -> str:
    """``$JAVA_HOME/bin/java`` if set, else ``java`` on PATH; ``error`` when there is none."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise error(f"`java` not found: {needed_by} needs it; {hint}")
    return java


def shorten(text: str) -> str:
    """One log line, at most 200 characters."""
    text = text.strip()
    return text if len(text) <= 200 else text[:197] + "..."


__all__ = [
    "JavaServer",
    "alive",
    "check_port_free",
    "find_java",
    "flocked",
    "port_open",
    "shorten",
]
