"""Small helpers for starting and stopping server processes on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time


class StopSignals:
    """SIGTERM and SIGINT raise KeyboardInterrupt in the main thread while this is in effect, and `requested`
    says whether one came; inside `with` the stack serves, and on leaving both are ignored so the clean-up that
    follows cannot itself be interrupted."""

    def __init__(self):
        self.requested = False

    def _stop(self, signum, frame):
        self.requested = True
        raise KeyboardInterrupt

    def __enter__(self) -> "StopSignals":
        # Set both explicitly: a shell starts background jobs with SIGINT ignored, and Python would keep that.
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, timeout: float, process: subprocess.Popen | None = None, what: str = "server") -> None:
    """Wait until something accepts connections on 127.0.0.1:port (fail early if the process dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before it was ready")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s")


def stop_process(process: subprocess.Popen, *, grace: float = 10.0) -> None:
    """SIGTERM the process's group, then SIGKILL it if it has not exited within `grace` seconds."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
