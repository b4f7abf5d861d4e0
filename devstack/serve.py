"""`make dev`: start the local stack and serve the API with `chalice local` until Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from chalicelib.config import allowed_origins_from_env

from .mail import describe
from .processes import StopSignals, stop_process, wait_for_port
from .stack import LocalStack

PROJECT_DIR = Path(__file__).resolve().parent.parent


def start_api(env: dict[str, str], port: int, *, log_file=None) -> subprocess.Popen:
    """Run `chalice local` on 127.0.0.1:port with `env`; return once it accepts connections."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.chalice_local", "local", "--host", "127.0.0.1", "--port", str(port),
         "--stage", "dev", "--no-autoreload"],
        cwd=PROJECT_DIR,
        # The stack's origin list is the whole list: an inherited ALLOWED_ORIGIN must not contradict it.
        env={**{k: v for k, v in os.environ.items() if k not in ("ALLOWED_ORIGIN", "ALLOWED_ORIGINS")}, **env},
        stdout=log_file,
        stderr=subprocess.STDOUT if log_file is not None else None,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=30, process=process, what="chalice local")
    except BaseException:
        stop_process(process)
        raise
    return process


def start_worker(env: dict[str, str], *, log_file=None, dispatch_seconds: float = 60.0,
                 inherit: bool = True) -> subprocess.Popen:
    """Run the worker functions as Lambda would around them (devstack/worker.py) with `env` (added to this
    process's environment, or the whole of it with `inherit=False`)."""
    base = {k: v for k, v in os.environ.items() if k not in ("ALLOWED_ORIGIN", "ALLOWED_ORIGINS")} if inherit else {}
    return subprocess.Popen(
        [sys.executable, "-u", "-m", "devstack.worker", "--dispatch-seconds", str(dispatch_seconds)],
        cwd=PROJECT_DIR,
        env={**base, **env},
        stdout=log_file,
        stderr=subprocess.STDOUT if log_file is not None else None,
        start_new_session=True,
    )


def dev_origins(port: int, env) -> tuple[str, ...]:
    """`make dev`'s own origin, plus whatever ALLOWED_ORIGINS (or ALLOWED_ORIGIN) adds: a front end under
    development on another port, say."""
    return tuple(dict.fromkeys((f"http://127.0.0.1:{port}", *added_origins(env))))


def added_origins(env) -> tuple[str, ...]:
    """The origins ALLOWED_ORIGINS (or ALLOWED_ORIGIN) adds to a local stack's own, if any."""
    return allowed_origins_from_env(env) if (env.get("ALLOWED_ORIGINS") or env.get("ALLOWED_ORIGIN")) else ()


def main() -> int:
    """Serve until told to stop; stop everything that was started, whatever happens."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    port = int(os.environ.get("PORT", "8000"))
    # Every email the worker sends lands in the stack's own mail server and is printed here, in full.
    stack = LocalStack(allowed_origins=dev_origins(port, os.environ), frontend_url=f"http://127.0.0.1:{port}",
                       on_mail=lambda message: print(describe(message), flush=True))
    api = worker = None
    try:
        with StopSignals() as stop:
            env = stack.start()
            worker = start_worker(env)
            api = start_api(env, port)
            print(f"3D Ultra upload API ready at http://127.0.0.1:{port} (Ctrl-C to stop)", flush=True)
            api.wait()
        return 0 if stop.requested else api.returncode
    except KeyboardInterrupt:
        return 0
    finally:
        for process in (api, worker):
            if process is not None:
                stop_process(process)
        stack.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
