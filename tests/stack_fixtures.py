"""Fixtures around the real local stack (PostgreSQL + SeaweedFS), started once per test session."""

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.config import DatabaseSettings, Settings
from chalicelib.db import Database
from chalicelib.deps import Dependencies
from devstack.pgbouncer import PgBouncer
from devstack.processes import free_port, stop_process
from devstack.serve import start_api, start_worker
from devstack.stack import LocalStack
from tests.helpers import ApiClient, require_system_tool

PROJECT_DIR = Path(__file__).resolve().parent.parent
SECOND_ORIGIN = "https://preview.3d-ultra.example"
SQS_CLIENT_ENV = ("AWS_ENDPOINT_URL_SQS", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@pytest.fixture(scope="session")
def live_port():
    """The port `chalice local` will serve on: its origin is the one the bucket's CORS rule allows."""
    return free_port()


@pytest.fixture(scope="session")
def jobs_live_port():
    """The port of `jobs_server`'s `chalice local`: the bucket's CORS rule allows its origin too."""
    return free_port()


@pytest.fixture(scope="session")
def local_stack(live_port, jobs_live_port):
    """Start the same local stack as `make dev` (never the developer's own DATABASE_URL or R2 settings)."""
    # Its own origin plus one more, as `ALLOWED_ORIGINS=https://preview.3d-ultra.example make dev` would run (and
    # jobs_server's origin). The session's digest secret, so that tests can compute what a key is stored as
    # (tests.helpers.stored_key).
    stack = LocalStack(allowed_origins=[f"http://127.0.0.1:{live_port}", SECOND_ORIGIN,
                                        f"http://127.0.0.1:{jobs_live_port}"],
                       environ={"DIGEST_SECRET": os.environ["DIGEST_SECRET"]})
    stack.start()
    # The in-process app is a function of this stack: boto3 finds its queue server, region and credentials in the
    # process's environment, as a Lambda function finds them in its own.
    saved = {name: os.environ.get(name) for name in SQS_CLIENT_ENV}
    os.environ.update({name: stack.env[name] for name in SQS_CLIENT_ENV})
    yield stack
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    stack.stop()


@pytest.fixture(scope="session")
def stack_env(local_stack):
    return local_stack.env


@pytest.fixture(scope="session")
def live_deps(stack_env):
    deps = Dependencies(Settings.from_env(stack_env))
    yield deps
    deps.database.close()


@pytest.fixture
def api(live_deps, monkeypatch):
    """The Chalice app in-process, wired to the real local stack."""
    monkeypatch.setattr(app_module, "deps", live_deps)
    with Client(app_module.app) as client:
        yield ApiClient(client.http)


@pytest.fixture(scope="session")
def db(stack_env):
    """A separate connection pool to the test database, for setting up and checking what was stored."""
    # No statement_timeout: tests also run CREATE DATABASE, which cannot run in a transaction block.
    database = Database(DatabaseSettings.from_url(stack_env["DATABASE_URL"]), application_name="tests",
                        statement_timeout=None)
    yield database
    database.close()


@pytest.fixture(scope="session")
def live_server(stack_env, live_port, output_dir):
    """`chalice local` serving the app over real HTTP (threaded, as `make dev` runs it)."""
    log = open(os.path.join(output_dir, "chalice-local.log"), "ab")
    process = start_api({**stack_env, "PYTHONUNBUFFERED": "1"}, live_port, log_file=log)
    yield f"http://127.0.0.1:{live_port}"
    stop_process(process)
    log.close()


def start_prod_local(log_file, env=None, timeout=180):
    """Run `make prod-local`'s own command; return (process, {"frontend", "api", "storage"}) once it is ready."""
    import re
    import selectors
    import subprocess
    import sys
    import time

    process = subprocess.Popen([sys.executable, "-m", "devstack.prod_local"], cwd=PROJECT_DIR,
                               env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                               stdout=subprocess.PIPE, stderr=log_file, text=True, start_new_session=True)
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not selector.select(timeout=1):
            if process.poll() is not None:
                break
            continue
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        ready = re.fullmatch(r"prod-local ready: frontend=(\S+) api=(\S+) storage=(\S+)\n", line)
        if ready:
            return process, dict(zip(("frontend", "api", "storage"), ready.groups())), lines
    stop_process(process)
    raise RuntimeError(f"prod-local did not become ready; stdout so far: {lines!r}")


JOBS_SERVER_QUEUE = "three-d-ultra-jobs-followed"


@pytest.fixture(scope="session")
def jobs_server(local_stack, stack_env, jobs_live_port, output_dir):
    """`chalice local` plus a worker on a jobs queue of their own, so that confirmed jobs are processed to the
    end by the reference processing service, as under `make dev`. Other tests' confirmed jobs (on live_server)
    go to the stack's own queue, which no worker reads, and stay pending. The worker's dispatcher (which sends
    confirmed jobs of the whole database to the queue) is kept from running during the session.

    Yields {"url", "control"}: control is the processing service's (set(mode="fail"), reset())."""
    queues = local_stack.sqs.create_job_queues(JOBS_SERVER_QUEUE, visibility_timeout=60)
    env = {**stack_env, "PYTHONUNBUFFERED": "1", "JOBS_QUEUE_URL": queues[JOBS_SERVER_QUEUE],
           "JOBS_QUEUE_NAME": JOBS_SERVER_QUEUE}
    api_log = open(os.path.join(output_dir, "jobs-server-api.log"), "ab")
    worker_log = open(os.path.join(output_dir, "jobs-server-worker.log"), "ab")
    api = start_api(env, jobs_live_port, log_file=api_log)
    worker = start_worker(env, log_file=worker_log, dispatch_seconds=24 * 3600)
    control = local_stack.processing.control
    control.reset()
    yield {"url": f"http://127.0.0.1:{jobs_live_port}", "control": control}
    control.reset()
    stop_process(worker)
    stop_process(api)
    api_log.close()
    worker_log.close()


@pytest.fixture(scope="session")
def prod_local(output_dir):
    """The production-shaped stack, started exactly as `make prod-local` starts it."""
    log = open(os.path.join(output_dir, "prod-local.log"), "ab")
    process, urls, _ = start_prod_local(log)
    yield urls
    stop_process(process, grace=30)
    log.close()


@contextmanager
def pooler_for(local_stack, *, pool_size: int):
    """PgBouncer in transaction mode (as Neon's -pooler endpoints) in front of the test cluster, stopped and its
    files removed whatever happens."""
    require_system_tool(bool(shutil.which("pgbouncer")) or os.path.exists("/usr/sbin/pgbouncer"), "PgBouncer",
                        "pgbouncer")
    base = Path(tempfile.mkdtemp(prefix="3d-ultra-test-"))  # reachable by the unprivileged pgbouncer user
    bouncer = PgBouncer(base / "pgbouncer", server_port=local_stack.postgres.port, database="uploads",
                        pool_size=pool_size)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()
        shutil.rmtree(base, ignore_errors=True)
