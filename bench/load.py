"""Sustained mixed load against `chalice local` on the local stack (loopback only, bounded in time and count).

    .venv/bin/python -m bench.load --seconds 60 --workers 8

Each worker loops through a user's journey: create, PUT the photo, confirm, poll the status, and a health check.
Prints requests served, errors (anything but the expected status) and p50/p99 latency per route.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict

MAX_REQUESTS = 200_000


def _call(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def run(base_url: str, *, seconds: float, workers: int) -> dict:
    """Drive the journey from `workers` threads for `seconds`; return counts and latencies per route."""
    latencies = defaultdict(list)
    errors = defaultdict(int)
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    served = [0]

    def timed(route, expected, method, url, body=None, headers=None):
        started = time.perf_counter()
        try:
            status, raw = _call(method, url, body, headers)
        except OSError:
            status, raw = 0, b""
        elapsed = time.perf_counter() - started
        with lock:
            latencies[route].append(elapsed)
            served[0] += 1
            if status != expected:
                errors[route] += 1
        return status, raw

    def journey(worker):
        photo = b"\x89PNG\r\n\x1a\n" + bytes(1016)  # the PNG signature the confirm checks, then filler
        n = 0
        while time.monotonic() < deadline and served[0] < MAX_REQUESTS:
            n += 1
            status, raw = timed("POST /api/upload", 201, "POST", f"{base_url}/api/upload",
                                {"email": f"load{worker}.{n}@example.com", "fileType": "image/png",
                                 "fileSize": len(photo)})
            if status != 201:
                continue
            created = json.loads(raw)
            put = urllib.request.Request(created["uploadUrl"], data=photo, method="PUT",
                                         headers={"Content-Type": "image/png"})
            with urllib.request.urlopen(put, timeout=30):
                pass
            token = {"X-Session-Token": created["sessionToken"]}
            job = f"{base_url}/api/upload/{created['uploadId']}"
            timed("POST /confirm", 200, "POST", f"{job}/confirm", headers=token)
            timed("GET /api/upload/{id}", 200, "GET", job, headers=token)
            timed("GET /api/health", 200, "GET", f"{base_url}/api/health")

    threads = [threading.Thread(target=journey, args=(i,)) for i in range(workers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    routes = {}
    for route, values in latencies.items():
        values.sort()
        routes[route] = {
            "requests": len(values),
            "errors": errors[route],
            "p50_ms": round(statistics.median(values) * 1000, 1),
            "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))] * 1000, 1),
        }
    return {"seconds": round(wall, 1), "workers": workers, "requests": served[0],
            "errors": sum(errors.values()), "rps": round(served[0] / wall, 1), "routes": routes}


def print_report(report: dict) -> None:
    print(f"{report['requests']} requests in {report['seconds']} s from {report['workers']} workers "
          f"({report['rps']} req/s), errors: {report['errors']}")
    print(f"{'route':26} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for route, row in report["routes"].items():
        print(f"{route:26} {row['requests']:>9} {row['errors']:>7} {row['p50_ms']:>8} {row['p99_ms']:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--url", help="an API already running (default: start the local stack and chalice local)")
    args = parser.parse_args()
    if args.url:
        print_report(run(args.url, seconds=args.seconds, workers=args.workers))
        return
    from devstack.processes import free_port, stop_process
    from devstack.serve import start_api
    from devstack.stack import LocalStack

    port = free_port()
    with LocalStack(allowed_origins=[f"http://127.0.0.1:{port}"], environ={}) as stack:
        api = start_api(stack.env, port, log_file=open("/dev/null", "wb"))
        try:
            print_report(run(f"http://127.0.0.1:{port}", seconds=args.seconds, workers=args.workers))
        finally:
            stop_process(api)


if __name__ == "__main__":
    main()
