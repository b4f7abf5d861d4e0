"""Start and stop the whole local stack: one way, used by `make dev` and by the test fixtures."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .mail import MailServer
from .postgres import PostgresCluster
from .processing_service import ProcessingService
from .processes import free_port
from .seaweed import SeaweedS3
from .sqs import MotoSqs

log = logging.getLogger(__name__)
DATABASE = "uploads"
BUCKET = "uploads"
R2_VARIABLES = ("R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "R2_BUCKET")
JOBS_QUEUE = "three-d-ultra-jobs"
# Locally a change at the processing service shows in the job within a second or two.
POLL_SECONDS = 1
# The reference service answers for any model version; this one names what it does.
MODEL_VERSION = "reference-relief-1"
EMAIL_FROM = "3D Ultra <no-reply@3d-ultra.example>"
# A mail-server outage locally is over within seconds; its email goes out soon after.
EMAIL_RETRY_SECONDS = 5


class LocalStack:
    """PostgreSQL + SeaweedFS in a temp directory outside the project, or the servers the environment names."""

    def __init__(self, *, allowed_origins: tuple[str, ...] | list[str], environ: dict | None = None,
                 base_dir: Path | None = None, frontend_url: str | None = None, on_mail=None):
        """Besides the database and storage, the hand-off: SQS (moto's server) with the jobs queue and its
        dead-letter queue, and the reference processing service (devstack/processing_service.py); and a mail
        server of its own (devstack/mail.py), which hands each message it receives to `on_mail`. The emailed
        links open at `frontend_url`, by default the first origin (the stack's own pages)."""
        self.allowed_origins = tuple(allowed_origins)
        self.frontend_url = frontend_url or self.allowed_origins[0]
        self.on_mail = on_mail
        self.mail: MailServer | None = None
        environ = dict(os.environ if environ is None else environ)
        self.given_database_url = environ.get("DATABASE_URL")
        # A fresh secret per run unless one is given (a given database's digests were made with that one).
        self.digest_secret = environ.get("DIGEST_SECRET") or secrets.token_urlsafe(32)
        self.given_storage = (
            {name: environ[name] for name in (*R2_VARIABLES, "R2_ENDPOINT_URL", "R2_ACCOUNT_ID") if environ.get(name)}
            if all(environ.get(name) for name in R2_VARIABLES)
            and (environ.get("R2_ENDPOINT_URL") or environ.get("R2_ACCOUNT_ID"))
            else None
        )
        self._own_dir = base_dir is None
        self.base_dir = base_dir or Path(tempfile.mkdtemp(prefix="3d-ultra-stack-"))
        self.postgres: PostgresCluster | None = None
        self.s3: SeaweedS3 | None = None
        self.sqs: MotoSqs | None = None
        self.processing: ProcessingService | None = None
        self.env: dict[str, str] = {}

    def start(self) -> dict[str, str]:
        """Start what is needed, prepare database and bucket; return the environment the API needs."""
        started = time.monotonic()
        try:
            with ThreadPoolExecutor(max_workers=3) as pool:
                db_url = pool.submit(self._start_database)
                storage = pool.submit(self._start_storage)
                processing = pool.submit(self._start_processing)
                self.env = {**db_url.result(), **storage.result(), **processing.result(), **self._start_mail(),
                            "ALLOWED_ORIGINS": ",".join(self.allowed_origins), "DIGEST_SECRET": self.digest_secret}
        except BaseException:
            self.stop()
            raise
        log.info("local stack ready in %.1f s", time.monotonic() - started)
        return self.env

    def stop(self) -> None:
        """Stop every process this stack started and remove its files."""
        for name in ("mail", "processing", "sqs"):
            server = getattr(self, name)
            if server is not None:
                server.stop()
                setattr(self, name, None)
        if self.s3 is not None:
            self.s3.stop()
            self.s3 = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> "LocalStack":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start_database(self) -> dict[str, str]:
        from chalicelib.config import DatabaseSettings
        from chalicelib.db import Database
        from chalicelib.migrate import apply_migrations

        url = self.given_database_url
        if not url:
            self.postgres = PostgresCluster(self.base_dir / "postgres", free_port())
            self.postgres.start()
            self.postgres.create_database(DATABASE)
            url = self.postgres.url(DATABASE)
        db = Database(DatabaseSettings.from_url(url))
        try:
            apply_migrations(db)
        finally:
            db.close()
        return {"DATABASE_URL": url}

    def _start_processing(self) -> dict[str, str]:
        self.sqs = MotoSqs(log_file=self.base_dir / "moto.log")
        self.processing = ProcessingService(token=secrets.token_urlsafe(16), log_file=self.base_dir / "processing.log")
        with ThreadPoolExecutor(max_workers=2) as pool:
            for started in [pool.submit(self.sqs.start), pool.submit(self.processing.start)]:
                started.result()
        queues = self.sqs.create_job_queues(JOBS_QUEUE, visibility_timeout=6 * 10)
        return {**self.sqs.client_env(), "JOBS_QUEUE_URL": queues[JOBS_QUEUE], "JOBS_QUEUE_NAME": JOBS_QUEUE,
                "PROCESSING_API_URL": self.processing.endpoint_url, "PROCESSING_API_TOKEN": self.processing.token,
                "PROCESSING_MODEL_VERSION": MODEL_VERSION, "PROCESSING_POLL_SECONDS": str(POLL_SECONDS),
                "PROCESSING_TIMEOUT_SECONDS": "5", "PROCESSING_OUTPUT_HOSTS": "127.0.0.1"}

    def _start_mail(self) -> dict[str, str]:
        self.mail = MailServer(on_message=self.on_mail).start()
        return {**self.mail.client_env(), "EMAIL_FROM": EMAIL_FROM, "FRONTEND_URL": self.frontend_url,
                "EMAIL_RETRY_SECONDS": str(EMAIL_RETRY_SECONDS)}

    def _start_storage(self) -> dict[str, str]:
        from chalicelib.config import r2_endpoint
        from ops.bucket import configure_bucket

        env = self.given_storage
        if env is None:
            self.s3 = SeaweedS3(self.base_dir / "seaweed", access_key="dev-access-key", secret_key="dev-secret-key")
            self.s3.start()
            env = {
                "R2_ENDPOINT_URL": self.s3.endpoint_url,
                "R2_ACCESS_KEY_ID": self.s3.access_key,
                "R2_SECRET_ACCESS_KEY": self.s3.secret_key,
                "R2_BUCKET": BUCKET,
            }
        endpoint = r2_endpoint(env)
        configure_bucket(
            endpoint_url=endpoint,
            access_key_id=env["R2_ACCESS_KEY_ID"],
            secret_access_key=env["R2_SECRET_ACCESS_KEY"],
            bucket=env["R2_BUCKET"],
            allowed_origins=self.allowed_origins,
        )
        if self.s3 is not None:
            _warm_up(endpoint, env)
        return env


def _warm_up(endpoint: str, env: dict) -> None:
    # SeaweedFS allocates its volumes on the first write, which takes a second or more: pay that here,
    # not in the first upload someone tries.
    from chalicelib.storage import s3_client

    client = s3_client(endpoint_url=endpoint, access_key_id=env["R2_ACCESS_KEY_ID"],
                       secret_access_key=env["R2_SECRET_ACCESS_KEY"], timeout=30)
    client.put_object(Bucket=env["R2_BUCKET"], Key="warm-up", Body=b"x")
    client.delete_object(Bucket=env["R2_BUCKET"], Key="warm-up")
