"""`make bench`: round trips, cold start, warm overhead, size and memory, each next to its floor.

Prints a table (ours, floor, ratio per row) and writes it to build/bench.json. Loopback only; every loop is
bounded. Machines are noisy: compare the ratios of one run, not absolute times across runs.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DELAY = 0.010
PNG = b"\x89PNG\r\n\x1a\n" + bytes(56)  # the PNG signature the confirm checks, then filler
ROUTES = ("create", "confirm", "status", "cancel", "health")
DB_FLOOR = {"create": 1, "confirm": 2, "status": 1, "cancel": 1, "health": 1}
STORAGE_FLOOR = {"create": 0, "confirm": 1, "status": 0, "cancel": 1, "health": 1}
# Far above what the bench sends in a second, so every create is admitted.
BENCH_LIMIT = "100000/1"


def event(method: str, resource_path: str, path_params=None, headers=None, body=None) -> dict:
    """A Lambda proxy event as API Gateway sends it."""
    return {
        "resource": resource_path, "path": resource_path, "httpMethod": method,
        "headers": {"content-type": "application/json", **(headers or {})},
        "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": path_params, "stageVariables": None, "isBase64Encoded": False,
        "body": body, "requestContext": {"resourcePath": resource_path, "httpMethod": method, "requestId": "bench",
                                         "identity": {"sourceIp": "198.51.100.10"}},
    }


class Driver:
    """Calls the Chalice app in-process, the way Lambda does, with the given dependencies."""

    def __init__(self, app_module, deps):
        self.app_module, self.deps = app_module, deps

    def call(self, ev):
        self.app_module.deps = self.deps
        response = self.app_module.app(ev, None)
        return response["statusCode"], json.loads(response["body"]) if response["body"] else None

    def create(self):
        body = json.dumps({"email": "bench@example.com", "fileType": "image/png", "fileSize": len(PNG)})
        return self.call(event("POST", "/api/upload", body=body))

    def uploaded(self):
        status, created = self.create()
        assert status == 201, created
        put = subprocess_free_put(created["uploadUrl"])
        assert put == 200
        return created

    def confirm(self, created):
        return self.call(event("POST", "/api/upload/{upload_id}/confirm", {"upload_id": created["uploadId"]},
                               {"x-session-token": created["sessionToken"]}))

    def status(self, created):
        return self.call(event("GET", "/api/upload/{upload_id}", {"upload_id": created["uploadId"]},
                               {"x-session-token": created["sessionToken"]}))

    def cancel(self, created):
        return self.call(event("DELETE", "/api/upload/{upload_id}", {"upload_id": created["uploadId"]},
                               {"x-session-token": created["sessionToken"]}))

    def health(self):
        return self.call(event("GET", "/api/health"))


def subprocess_free_put(url):
    import urllib.request

    request = urllib.request.Request(url, data=PNG, method="PUT", headers={"Content-Type": "image/png"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def timed_route(driver, route, n):
    """Median wall seconds of `n` requests of one route (setup outside the timing)."""
    samples = []
    for _ in range(n):
        created = driver.uploaded() if route in ("confirm", "status", "cancel") else None
        started = time.perf_counter()
        status, body = getattr(driver, route)(*([created] if created else []))
        samples.append(time.perf_counter() - started)
        assert status in (200, 201, 204), (route, status, body)
    return statistics.median(samples)


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.hostname}:{port}" if "@" not in parts.netloc
                          else f"{parts.netloc.split('@')[0]}@{parts.hostname}:{port}").geturl()


class ExtendedProtocolDeps:
    """The obvious code, for comparison: every statement sent with bound parameters by pg8000's extended
    protocol (`conn.run(sql, **params)`), which costs three round trips per statement."""

    @staticmethod
    def build(settings):
        from chalicelib.db import Database
        from chalicelib.deps import Dependencies

        class ExtendedDatabase(Database):
            def run(self, statement, /, **params):
                conn, _ = self._acquire()
                try:
                    return conn.run(statement, **params) if params else conn.run(statement)
                finally:
                    self._release(conn)

        deps = Dependencies(settings)
        deps.__dict__["database"] = ExtendedDatabase(settings.database)
        return deps


def round_trips(app_module, settings, n=15):
    from bench.delay_proxy import DelayProxy
    from chalicelib.deps import Dependencies

    db_port = settings.database.port
    s3_port = urlsplit(settings.r2_endpoint_url).port
    db_proxy, s3_proxy = DelayProxy(db_port, DELAY).start(), DelayProxy(s3_port, DELAY).start()
    variants = {
        "direct": settings,
        "db": replace(settings, database_url=with_port(settings.database_url, db_proxy.port)),
        "s3": replace(settings, r2_endpoint_url=with_port(settings.r2_endpoint_url, s3_proxy.port)),
    }
    medians = {}
    variants["db-extended"] = variants["db"]
    variants["direct-extended"] = settings
    for name, variant in variants.items():
        deps = ExtendedProtocolDeps.build(variant) if name.endswith("extended") else Dependencies(variant)
        driver = Driver(app_module, deps)
        for _ in range(3):
            driver.health()  # warm: connections open, clients built
        medians[name] = {route: timed_route(driver, route, n) for route in ROUTES}
        driver.deps.database.close()
    db_proxy.stop()
    s3_proxy.stop()
    rows = []
    for route in ROUTES:
        db = (medians["db"][route] - medians["direct"][route]) / (2 * DELAY)
        s3 = (medians["s3"][route] - medians["direct"][route]) / (2 * DELAY)
        before = (medians["db-extended"][route] - medians["direct-extended"][route]) / (2 * DELAY)
        rows.append((f"db round trips, extended protocol (before): {route}", round(before, 2), DB_FLOOR[route]))
        rows.append((f"db round trips: {route}", round(db, 2), DB_FLOOR[route]))
        rows.append((f"storage round trips: {route}", round(s3, 2), STORAGE_FLOOR[route]))
    return rows


COLD_OURS = """
import json, time
t0 = time.perf_counter()
import app
t1 = time.perf_counter()
import bench.run as b
d = b.Driver(app, app.deps)
route, created = {route!r}, {created!r}
status, body = getattr(d, route)(*([created] if created else []))
t2 = time.perf_counter()
assert status in (200, 201, 204), body
print(json.dumps({{"import": t1 - t0, "first": t2 - t0}}))
"""

COLD_FLOOR = {
    "status": """
import json, time
t0 = time.perf_counter()
import chalice.app, pg8000.native
c = pg8000.native.Connection(user="postgres", host="127.0.0.1", port={db_port}, database="uploads", ssl_context=False)
c.run("SELECT id, session_token_hash, status FROM uploads WHERE id = " + pg8000.native.literal({upload_id!r}))
print(json.dumps({{"first": time.perf_counter() - t0}}))
""",
    "health": """
import json, time
t0 = time.perf_counter()
import chalice.app, pg8000.native, boto3
from botocore.config import Config
c = pg8000.native.Connection(user="postgres", host="127.0.0.1", port={db_port}, database="uploads", ssl_context=False)
c.run("SELECT 1")
s3 = boto3.client("s3", endpoint_url={endpoint!r}, region_name="auto", aws_access_key_id={key!r},
                  aws_secret_access_key={secret!r}, config=Config(signature_version="s3v4"))
s3.head_bucket(Bucket={bucket!r})
print(json.dumps({{"first": time.perf_counter() - t0}}))
""",
    "create": """
import json, time, uuid, hashlib
t0 = time.perf_counter()
import chalice.app, pg8000.native, boto3, cuid2, email_validator
from botocore.config import Config
email = email_validator.validate_email("bench@example.com", check_deliverability=False).normalized
i, t = cuid2.create_id(24), str(uuid.uuid4())
L = pg8000.native.literal
c = pg8000.native.Connection(user="postgres", host="127.0.0.1", port={db_port}, database="uploads", ssl_context=False)
c.run("INSERT INTO uploads (id, email, session_token_hash, original_url, file_type, file_size, request_fingerprint)"
      " VALUES (" + ", ".join(map(L, [i, email, hashlib.sha256(t.encode()).hexdigest(), "uploads/" + i + "/original.png",
      "image/png", 64, "x"])) + ") RETURNING id")
s3 = boto3.client("s3", endpoint_url={endpoint!r}, region_name="auto", aws_access_key_id={key!r},
                  aws_secret_access_key={secret!r}, config=Config(signature_version="s3v4"))
s3.generate_presigned_url("put_object", Params={{"Bucket": {bucket!r}, "Key": "uploads/" + i + "/original.png",
                          "ContentType": "image/png", "ContentLength": 64}}, ExpiresIn=900)
print(json.dumps({{"first": time.perf_counter() - t0}}))
""",
    "cancel": """
import json, time
t0 = time.perf_counter()
import chalice.app, pg8000.native, boto3
from botocore.config import Config
L = pg8000.native.literal
c = pg8000.native.Connection(user="postgres", host="127.0.0.1", port={db_port}, database="uploads", ssl_context=False)
c.run("UPDATE uploads SET updated_at = now() WHERE id = " + L({upload_id!r}) + " RETURNING id")
s3 = boto3.client("s3", endpoint_url={endpoint!r}, region_name="auto", aws_access_key_id={key!r},
                  aws_secret_access_key={secret!r}, config=Config(signature_version="s3v4"))
s3.delete_object(Bucket={bucket!r}, Key={key_name!r})
print(json.dumps({{"first": time.perf_counter() - t0}}))
""",
    "confirm": """
import json, time
t0 = time.perf_counter()
import chalice.app, pg8000.native, boto3
from botocore.config import Config
L = pg8000.native.literal
c = pg8000.native.Connection(user="postgres", host="127.0.0.1", port={db_port}, database="uploads", ssl_context=False)
c.run("SELECT session_token_hash, original_url FROM uploads WHERE id = " + L({upload_id!r}))
s3 = boto3.client("s3", endpoint_url={endpoint!r}, region_name="auto", aws_access_key_id={key!r},
                  aws_secret_access_key={secret!r}, config=Config(signature_version="s3v4"))
s3.get_object(Bucket={bucket!r}, Key={key_name!r}, Range="bytes=0-63")["Body"].read()
c.run("UPDATE uploads SET updated_at = now() WHERE id = " + L({upload_id!r}) + " RETURNING id")
print(json.dumps({{"first": time.perf_counter() - t0}}))
""",
}


def cold_start(env, driver, runs=10):
    settings_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    db_port = urlsplit(env["DATABASE_URL"]).port
    rows = []
    imports = []
    for route in ROUTES:
        ours, floor = [], []
        for _ in range(runs):
            created = driver.uploaded() if route in ("confirm", "status", "cancel") else None
            out = subprocess.run([sys.executable, "-c", COLD_OURS.format(route=route, created=created)],
                                 env=settings_env, cwd=ROOT, capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            ours.append(result["first"])
            imports.append(result["import"])
            created = driver.uploaded() if route in ("confirm", "status", "cancel") else None
            script = COLD_FLOOR[route].format(
                db_port=db_port, endpoint=env["R2_ENDPOINT_URL"], key=env["R2_ACCESS_KEY_ID"],
                secret=env["R2_SECRET_ACCESS_KEY"], bucket=env["R2_BUCKET"],
                upload_id=created["uploadId"] if created else "", key_name=created["key"] if created else "")
            out = subprocess.run([sys.executable, "-c", script], env=settings_env, cwd=ROOT, capture_output=True,
                                 text=True, check=True)
            floor.append(json.loads(out.stdout.strip().splitlines()[-1])["first"])
        rows.append((f"cold start ms: import app + first {route}", round(statistics.median(ours) * 1000, 1),
                     round(statistics.median(floor) * 1000, 1)))
    rows.insert(0, ("cold start ms: import app (median)", round(statistics.median(imports) * 1000, 1), None))
    return rows


def warm_overhead(driver, settings, n=200):
    import hashlib
    import uuid

    import pg8000.native
    from cuid2 import create_id

    from chalicelib.storage import s3_client

    db = settings.database
    conn = pg8000.native.Connection(user=db.user, host=db.host, port=db.port, database=db.database, ssl_context=False)
    s3 = s3_client(endpoint_url=settings.r2_endpoint_url, access_key_id=settings.r2_access_key_id,
                   secret_access_key=settings.r2_secret_access_key, timeout=5)
    L = pg8000.native.literal

    from chalicelib.repository import _UPLOAD_COLUMNS as COLS

    def bare_create(_):
        # The same statement the repository sends, values escaped the same way.
        i, t = create_id(24), str(uuid.uuid4())
        conn.run("INSERT INTO uploads (id, email, session_token_hash, original_url, file_type, file_size,"
                 " idempotency_key, request_fingerprint) VALUES (" + ", ".join(map(L, [
                     i, "bench@example.com", hashlib.sha256(t.encode()).hexdigest(), f"uploads/{i}/original.png",
                     "image/png", len(PNG), None, "x"])) + ") ON CONFLICT (idempotency_key) DO UPDATE"
                 " SET session_token_hash = EXCLUDED.session_token_hash, updated_at = now()"
                 " WHERE uploads.request_fingerprint = EXCLUDED.request_fingerprint"
                 " AND uploads.confirmed_at IS NULL AND uploads.status = 'pending'"
                 f" RETURNING {COLS}, (xmax = 0) AS inserted")
        s3.generate_presigned_url("put_object", Params={"Bucket": settings.r2_bucket, "Key": f"uploads/{i}/original.png",
                                  "ContentType": "image/png", "ContentLength": len(PNG)}, ExpiresIn=900)

    from chalicelib.queue import sqs_client

    sqs = sqs_client(timeout=5)

    def bare_confirm(created):
        conn.run(f"SELECT {COLS} FROM uploads WHERE id = " + L(created["uploadId"]))
        s3.get_object(Bucket=settings.r2_bucket, Key=created["key"], Range="bytes=0-63")["Body"].read()
        conn.run("UPDATE uploads SET confirmed_at = now(), updated_at = now() WHERE id = " + L(created["uploadId"])
                 + " AND confirmed_at IS NULL AND status = 'pending' RETURNING " + COLS)
        sqs.send_message(QueueUrl=settings.jobs_queue_url, MessageBody=json.dumps(
            {"uploadId": created["uploadId"], "attempt": 1}))

    def bare_status(created):
        conn.run(f"SELECT {COLS} FROM uploads WHERE id = " + L(created["uploadId"]))

    def bare_cancel(created):
        conn.run("UPDATE uploads SET status = 'cancelled', updated_at = now() WHERE id = " + L(created["uploadId"])
                 + " AND confirmed_at IS NULL AND status = 'pending' RETURNING " + COLS)
        s3.delete_object(Bucket=settings.r2_bucket, Key=created["key"])

    def bare_health(_):
        conn.run("SELECT 1")
        s3.head_bucket(Bucket=settings.r2_bucket)

    bare = {"create": bare_create, "confirm": bare_confirm, "status": bare_status, "cancel": bare_cancel,
            "health": bare_health}
    rows = []
    for route in ROUTES:
        inputs = [driver.uploaded() if route in ("confirm", "status", "cancel") else None for _ in range(n)]
        ours_wall = ours_cpu = bare_wall = bare_cpu = 0.0
        for item in inputs:
            w, c = time.perf_counter(), time.process_time()
            getattr(driver, route)(*([item] if item else []))
            ours_wall += time.perf_counter() - w
            ours_cpu += time.process_time() - c
        # A confirm or a cancel changes its job once: the bare statements get jobs of their own.
        for item in ([driver.uploaded() for _ in range(n)] if route in ("confirm", "cancel") else inputs):
            w, c = time.perf_counter(), time.process_time()
            bare[route](item)
            bare_wall += time.perf_counter() - w
            bare_cpu += time.process_time() - c
        rows.append((f"warm ms/request: {route}", round(ours_wall / n * 1000, 3), round(bare_wall / n * 1000, 3)))
        rows.append((f"warm CPU ms/request: {route}", round(ours_cpu / n * 1000, 3), round(bare_cpu / n * 1000, 3)))
    conn.close()
    return rows


def size_and_memory(driver):
    rows = []
    package = ROOT / "build" / "prod" / "deployment.zip"
    if not package.exists():
        subprocess.run([sys.executable, "-m", "ops.package", "--stage", "prod", "--allow-placeholder-origins"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    rows.append(("deployment.zip MB (chalice package)", round(package.stat().st_size / 1e6, 2), None))
    created = driver.uploaded()
    marks = {}
    for i in range(1, 10_001):
        driver.status(created)
        if i in (2_000, 6_000, 10_000):
            marks[i] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("peak RSS MB after 2,000 / 10,000 warm requests", round(marks[10_000], 1), round(marks[2_000], 1)))
    return rows


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from devstack.stack import LocalStack

    with LocalStack(allowed_origins=["http://127.0.0.1:8000"], environ={}) as stack:
        # Limits on, so that the create measured is the statement that decides them; never reached here.
        stack.env.update(RATE_LIMIT_PER_IP=BENCH_LIMIT, RATE_LIMIT_PER_EMAIL=BENCH_LIMIT)
        os.environ.update(stack.env)
        import app as app_module
        from chalicelib.config import Settings
        from chalicelib.deps import Dependencies

        settings = Settings.from_env(stack.env)
        driver = Driver(app_module, Dependencies(settings))
        rows = []
        from bench import processing

        def fresh_driver():
            return Driver(app_module, Dependencies(settings))

        for name, step in (("round trips", lambda: round_trips(app_module, settings)),
                           ("queue round trips", lambda: processing.queue_round_trips(fresh_driver, stack, DELAY)),
                           ("hand-off journey", lambda: processing.journey(fresh_driver(), stack, app_module, settings)),
                           ("cold start", lambda: cold_start(stack.env, driver)),
                           ("warm overhead", lambda: warm_overhead(driver, settings)),
                           ("size and memory", lambda: size_and_memory(driver))):
            print(f"measuring {name}…", file=sys.stderr, flush=True)
            rows += step()
        driver.deps.database.close()
    print(f"\n{'measure':52} {'ours':>10} {'floor':>10} {'ratio':>7}")
    table = []
    for name, ours, floor in rows:
        ratio = round(ours / floor, 2) if floor else None
        table.append({"measure": name, "ours": ours, "floor": floor, "ratio": ratio})
        print(f"{name:52} {ours:>10} {'' if floor is None else floor:>10} {'' if ratio is None else ratio:>7}")
    out = ROOT / "build" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(table, indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
