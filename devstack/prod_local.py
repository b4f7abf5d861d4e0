"""`make prod-local`: the production topology on this machine, until Ctrl-C or SIGTERM.

Three origins, as deployed:
- the front end: the client's pages and modules on a static server of their own, calling the API cross-origin;
- the API: the Chalice app under the stage prefix (`{api}/api/upload`), behind an API Gateway REST stand-in;
- storage: SeaweedFS checking signatures, its bucket's CORS rule set by ops.bucket from the API's origin list.
Secrets reach the function as `<NAME>_SSM_PARAMETER` names resolved over HTTP (moto's SSM server, through
boto3's standard AWS_ENDPOINT_URL_SSM). PostgreSQL speaks only TLS with SCRAM-SHA-256; the function connects with
`sslmode=verify-full` against the stack's own CA, through PgBouncer in transaction mode.

Environment: FRONTEND_PORT and API_PORT (free ports if unset); ALLOWED_ORIGINS adds origins to the two local ones.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .frontend import FrontendServer
from .pgbouncer import PgBouncer
from .postgres import PostgresCluster
from .processes import StopSignals, free_port, stop_process, wait_for_port
from .processing_service import ProcessingService
from .seaweed import SeaweedS3
from .serve import start_worker
from .sqs import MotoSqs
from .ssm import MotoSsm
from .stack import BUCKET, DATABASE, _warm_up
from .tls import make_server_tls

log = logging.getLogger(__name__)
PROJECT_DIR = Path(__file__).resolve().parent.parent
STAGE = "api"
JOBS_QUEUE = "three-d-ultra-prod-local-jobs"
MODEL_VERSION = "reference-relief-1"
SSM_PREFIX = "/3d-ultra/prod-local/"
# Variables of the developer's shell that would bypass SSM or point the function somewhere else.
NOT_INHERITED = ("DATABASE_URL", "R2_ENDPOINT_URL", "R2_ACCOUNT_ID", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY",
                 "R2_BUCKET", "ALLOWED_ORIGIN", "ALLOWED_ORIGINS", "POSTHOG_API_KEY", "POSTHOG_HOST", "DIGEST_SECRET")


class ProdLocal:
    """Every process of the production-shaped stack; `start()` returns when a health check passes end to end."""

    def __init__(self, *, frontend_port: int | None = None, api_port: int | None = None,
                 extra_origins: tuple[str, ...] = (), api_log=None):
        self.frontend_port = frontend_port or free_port()
        self.api_port = api_port or free_port()
        self.frontend_url = f"http://127.0.0.1:{self.frontend_port}"
        self.api_origin = f"http://127.0.0.1:{self.api_port}"
        self.api_url = f"{self.api_origin}/{STAGE}"
        # The API's own pages PUT to storage from the API's origin, so the bucket must allow it too.
        self.allowed_origins = tuple(dict.fromkeys((self.frontend_url, self.api_origin, *extra_origins)))
        self.api_log = api_log
        self.base_dir = Path(tempfile.mkdtemp(prefix="3d-ultra-prod-local-"))
        log.info("prod-local: working directory %s", self.base_dir)
        self.password = secrets.token_urlsafe(18)
        self.tls = None
        self.postgres: PostgresCluster | None = None
        self.pooler: PgBouncer | None = None
        self.s3: SeaweedS3 | None = None
        self.ssm: MotoSsm | None = None
        self.processing: ProcessingService | None = None
        self.api: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.frontend: FrontendServer | None = None
        self.storage_url = ""

    @property
    def ready_line(self) -> str:
        return f"prod-local ready: frontend={self.frontend_url} api={self.api_url} storage={self.storage_url}"

    def start(self) -> "ProdLocal":
        started = time.monotonic()
        try:
            self.tls = make_server_tls(self.base_dir / "tls")
            with ThreadPoolExecutor(max_workers=3) as pool:
                database = pool.submit(self._start_database)
                storage = pool.submit(self._start_storage)
                ssm = pool.submit(self._start_ssm)
                processing = pool.submit(self._start_processing)
                secrets_by_name = {**database.result(), **storage.result(),
                                   "DIGEST_SECRET": secrets.token_urlsafe(32)}
                ssm.result()
                processing.result()
            self.ssm.put_secrets({SSM_PREFIX + name.lower().replace("_", "-"): value
                                  for name, value in {**secrets_by_name,
                                                      "PROCESSING_API_TOKEN": self.processing.token}.items()})
            self.queues = self.ssm.create_job_queues(JOBS_QUEUE, visibility_timeout=60)
            self._start_api(secrets_by_name)
            self.frontend = FrontendServer(api_base=self.api_url, storage_url=self.storage_url,
                                           max_upload_bytes=20 * 1024 * 1024, port=self.frontend_port).start()
        except BaseException:
            self.stop()
            raise
        log.info("prod-local stack ready in %.1f s", time.monotonic() - started)
        return self

    def stop(self) -> None:
        """Stop every process this stack started and remove its files."""
        if self.frontend is not None:
            self.frontend.stop()
            self.frontend = None
        for name in ("api", "worker"):
            if getattr(self, name) is not None:
                stop_process(getattr(self, name))
                setattr(self, name, None)
        for name in ("processing", "pooler", "postgres", "s3", "ssm"):
            part = getattr(self, name)
            if part is not None:
                part.stop()
                setattr(self, name, None)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> "ProdLocal":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start_database(self) -> dict[str, str]:
        from chalicelib.config import DatabaseSettings
        from chalicelib.db import Database
        from chalicelib.migrate import apply_migrations

        cluster = PostgresCluster(
            self.base_dir / "postgres", free_port(), password=self.password,
            extra_conf="ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                       "password_encryption = 'scram-sha-256'",
            # TLS and SCRAM or nothing, as Neon.
            hba="local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
                "hostnossl all all 0.0.0.0/0 reject\n",
        )
        self.postgres = cluster
        cluster.init()
        cluster.write_file("server.crt", self.tls.cert_file.read_bytes())
        cluster.write_file("server.key", self.tls.key_file.read_bytes())
        cluster.start()
        verified = f"sslmode=verify-full&sslrootcert={self.tls.ca_file}"
        admin = Database(DatabaseSettings.from_url(cluster.url("postgres", host="localhost", query=verified)),
                         application_name="prod-local",
                         statement_timeout=None)  # CREATE DATABASE cannot run in a transaction block
        try:
            admin.run(f"CREATE DATABASE {DATABASE}")
        finally:
            admin.close()
        direct = Database(DatabaseSettings.from_url(cluster.url(DATABASE, host="localhost", query=verified)))
        try:
            apply_migrations(direct)
        finally:
            direct.close()
        self.pooler = PgBouncer(self.base_dir / "pgbouncer", server_port=cluster.port, database=DATABASE,
                                password=self.password, tls=self.tls)
        self.pooler.start()
        return {"DATABASE_URL": self.pooler.url()}

    def _start_storage(self) -> dict[str, str]:
        from ops.bucket import configure_bucket

        self.s3 = SeaweedS3(self.base_dir / "seaweed", access_key="prod-local-" + secrets.token_hex(4),
                            secret_key=secrets.token_urlsafe(24))
        self.s3.start()
        self.storage_url = self.s3.endpoint_url
        env = {"R2_ENDPOINT_URL": self.s3.endpoint_url, "R2_ACCESS_KEY_ID": self.s3.access_key,
               "R2_SECRET_ACCESS_KEY": self.s3.secret_key}
        configure_bucket(endpoint_url=self.s3.endpoint_url, access_key_id=self.s3.access_key,
                         secret_access_key=self.s3.secret_key, bucket=BUCKET, allowed_origins=self.allowed_origins)
        _warm_up(self.s3.endpoint_url, {**env, "R2_BUCKET": BUCKET})
        return env

    def _start_ssm(self) -> None:
        # One moto server for SSM and SQS, as one AWS region serves both.
        self.ssm = MotoSqs(log_file=self.base_dir / "moto.log")
        self.ssm.start()

    def _start_processing(self) -> None:
        self.processing = ProcessingService(token=secrets.token_urlsafe(16), log_file=self.base_dir / "processing.log")
        self.processing.start()

    def _start_api(self, secrets_by_name: dict[str, str]) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in NOT_INHERITED and not k.endswith("_SSM_PARAMETER") and not k.startswith("AWS_")}
        env.update(self.ssm.client_env())
        env.update({f"{name}_SSM_PARAMETER": SSM_PREFIX + name.lower().replace("_", "-") for name in secrets_by_name})
        env.update({"R2_BUCKET": BUCKET, "ALLOWED_ORIGINS": ",".join(self.allowed_origins), "PYTHONUNBUFFERED": "1",
                    "JOBS_QUEUE_URL": self.queues[JOBS_QUEUE], "JOBS_QUEUE_NAME": JOBS_QUEUE})
        # The worker's own settings, as its function's environment holds them (the token from SSM).
        self.worker = start_worker({**env, "PROCESSING_API_URL": self.processing.endpoint_url,
                                    "PROCESSING_MODEL_VERSION": MODEL_VERSION, "PROCESSING_POLL_SECONDS": "1",
                                    "PROCESSING_OUTPUT_HOSTS": "127.0.0.1",
                                    "PROCESSING_API_TOKEN_SSM_PARAMETER": SSM_PREFIX + "processing-api-token"},
                                   log_file=self.api_log or sys.stderr, inherit=False)
        self.api = subprocess.Popen(
            [sys.executable, "-m", "devstack.apigw", "--port", str(self.api_port), "--stage", STAGE],
            cwd=PROJECT_DIR, env=env, stdout=self.api_log or sys.stderr, stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_for_port(self.api_port, timeout=30, process=self.api, what="the API")
        # The first request resolves the SSM parameters and reaches the database and the bucket: all or nothing.
        with urllib.request.urlopen(f"{self.api_url}/api/health", timeout=30) as response:
            health = json.load(response)
        if health.get("status") != "ok":
            raise RuntimeError(f"the API is not healthy: {health}")


def main() -> int:
    """Serve until told to stop; stop everything that was started, whatever happens."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from .serve import added_origins

    stack = ProdLocal(frontend_port=int(os.environ.get("FRONTEND_PORT") or 0) or None,
                      api_port=int(os.environ.get("API_PORT") or 0) or None, extra_origins=added_origins(os.environ))
    try:
        with StopSignals() as stop:
            stack.start()
            print(stack.ready_line, flush=True)
            stack.api.wait()
        return 0 if stop.requested else 1
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()
        print("prod-local stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
