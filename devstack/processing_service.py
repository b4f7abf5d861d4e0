"""The reference processing service: the subset of Replicate's predictions API that the production adapter speaks,
doing a real, small photo-to-3D transformation (devstack/relief.py), and told per test to be slow, fail or lie.

    python -m devstack.processing_service --port 8100 --token local-token

The API (https://replicate.com/docs/reference/http), every /v1 route behind `Authorization: Bearer <token>`:
    POST /v1/predictions                 {"version", "input": {"image": url}, "webhook"?, "webhook_events_filter"?}
    GET  /v1/predictions/{id}
    POST /v1/predictions/{id}/cancel
    GET  /v1/webhooks/default/secret     {"key": "whsec_..."}, the key webhooks are signed with
Outputs, without auth as replicate.delivery serves them: GET /files/{id}/preview.jpg and /files/{id}/model.glb.
Behaviours, without auth, for tests: POST /_control, POST /_control/reset, GET /_control/stats (ProcessingControl).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

from .processes import free_port, stop_process, wait_for_port

PROJECT_DIR = Path(__file__).resolve().parent.parent
OUTCOME_MODES = ("ok", "fail", "cancel", "garbage_model", "huge_model", "garbage_preview")
FAULT_MODES = ("http_500", "http_429", "hang")
# About 1.5 s a prediction: ten steps.
DEFAULT_DELAY = 0.15
STEPS = 10
PHOTO_CEILING = 50 * 1024 * 1024
HUGE_CLAIM = 2 * 1024 ** 3
WEBHOOK_EVENTS = ("start", "output", "logs", "completed")
FINAL = ("succeeded", "failed", "canceled")
GARBAGE = b"<html><body>Service temporarily unavailable</body></html>\n"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def progress_line(step: int, started: float) -> str:
    """A tqdm-like line, `  40%|####      | 4/10 [00:01<00:01]`: the adapter reads the last `NN%` in the logs."""
    elapsed = time.monotonic() - started
    remaining = elapsed / step * (STEPS - step) if step else 0.0
    bar = "#" * step + " " * (STEPS - step)
    return f"{100 * step // STEPS:3d}%|{bar}| {step}/{STEPS} [{minutes(elapsed)}<{minutes(remaining)}]\n"


def minutes(seconds: float) -> str:
    return f"{int(seconds) // 60:02d}:{int(seconds) % 60:02d}"


class Behaviour:
    """What tests asked for: the outcome of the predictions created from now on, the delay per step, and faults
    armed for the next N /v1 requests."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.delay = DEFAULT_DELAY
        self.mode = "ok"
        self.fault: str | None = None
        self.fault_count = 0
        self.retry_after = 1
        self.hang_seconds = 0.0
        self.created = 0
        self.created_by_path: dict[str, int] = {}

    def update(self, body: dict) -> dict:
        """Apply a control body; raise ValueError on anything it does not understand."""
        unknown = set(body) - {"delay", "mode", "count", "seconds", "retry_after"}
        if unknown:
            raise ValueError(f"unknown control fields: {sorted(unknown)}")
        mode = body.get("mode")
        if mode is not None and mode not in OUTCOME_MODES + FAULT_MODES:
            raise ValueError(f"mode must be one of {OUTCOME_MODES + FAULT_MODES}")
        with self.lock:
            if "delay" in body:
                self.delay = max(0.0, float(body["delay"]))
            if mode in OUTCOME_MODES:
                self.mode = mode
            elif mode in FAULT_MODES:
                self.fault, self.fault_count = mode, int(body.get("count", 1))
                self.retry_after = int(body.get("retry_after", 1))
                self.hang_seconds = float(body.get("seconds", 5.0))
            return self.describe()

    def describe(self) -> dict:
        return {"delay": self.delay, "mode": self.mode, "fault": self.fault, "fault_count": self.fault_count,
                "retry_after": self.retry_after, "seconds": self.hang_seconds}

    def take_fault(self) -> tuple[str, float] | None:
        """The fault this /v1 request meets, if one is still armed: ("http_500" | "http_429" | "hang", seconds)."""
        with self.lock:
            if not self.fault or self.fault_count <= 0:
                return None
            self.fault_count -= 1
            seconds = self.retry_after if self.fault == "http_429" else self.hang_seconds
            return self.fault, seconds

    def count_creation(self, image_url: str) -> None:
        with self.lock:
            self.created += 1
            path = urlparse(image_url).path
            self.created_by_path[path] = self.created_by_path.get(path, 0) + 1

    def stats(self) -> dict:
        with self.lock:
            return {"predictions_created": self.created, "by_image_path": dict(self.created_by_path)}


@dataclass
class Prediction:
    id: str
    version: str
    input: dict
    mode: str
    delay: float
    webhook: str | None = None
    webhook_events: tuple[str, ...] = WEBHOOK_EVENTS
    status: str = "starting"
    output: dict | None = None
    error: str | None = None
    logs: str = ""
    created_at: str = field(default_factory=now_iso)
    started_at: str | None = None
    completed_at: str | None = None
    metrics: dict = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    def as_json(self, base_url: str) -> dict:
        own = f"{base_url}/v1/predictions/{self.id}"
        return {"id": self.id, "version": self.version, "status": self.status, "input": self.input,
                "output": self.output, "error": self.error, "logs": self.logs, "created_at": self.created_at,
                "started_at": self.started_at, "completed_at": self.completed_at,
                "urls": {"get": own, "cancel": f"{own}/cancel"}, "metrics": self.metrics}


class Predictions:
    """Every prediction of this process, in memory, each moved on by its own thread."""

    def __init__(self, base_url: str, behaviour: Behaviour, webhook_secret: str):
        self.base_url = base_url
        self.behaviour = behaviour
        self.webhook_secret = webhook_secret
        self.lock = threading.Lock()
        self.items: dict[str, Prediction] = {}

    def create(self, version: str, inputs: dict, webhook: str | None, events: tuple[str, ...]) -> dict:
        with self.behaviour.lock:
            mode, delay = self.behaviour.mode, self.behaviour.delay
        prediction = Prediction(id=uuid.uuid4().hex[:26], version=version, input=inputs, mode=mode, delay=delay,
                                webhook=webhook, webhook_events=events)
        with self.lock:
            self.items[prediction.id] = prediction
        self.behaviour.count_creation(inputs["image"])
        threading.Thread(target=Run(self, prediction).run, name=f"prediction-{prediction.id}", daemon=True).start()
        return self.snapshot(prediction.id)

    def snapshot(self, prediction_id: str) -> dict | None:
        with self.lock:
            prediction = self.items.get(prediction_id)
            return prediction.as_json(self.base_url) if prediction else None

    def cancel(self, prediction_id: str) -> dict | None:
        with self.lock:
            prediction = self.items.get(prediction_id)
            if prediction is None:
                return None
            changed = prediction.status not in FINAL
            if changed:
                self._finish(prediction, "canceled")
        if changed:
            self.notify(prediction, "completed")
        return self.snapshot(prediction_id)

    def file(self, prediction_id: str, name: str) -> tuple[Prediction, bytes] | None:
        with self.lock:
            prediction = self.items.get(prediction_id)
            if prediction is None or name not in prediction.files:
                return None
            return prediction, prediction.files[name]

    def change(self, prediction: Prediction, event: str, **fields) -> bool:
        """Apply fields unless the prediction is already final (a cancel won the race); tell the webhook."""
        with self.lock:
            if prediction.status in FINAL:
                return False
            for name, value in fields.items():
                setattr(prediction, name, value)
            if fields.get("status") in FINAL:
                self._finish(prediction, fields["status"])
        self.notify(prediction, event)
        return True

    @staticmethod
    def _finish(prediction: Prediction, status: str) -> None:
        prediction.status = status
        prediction.completed_at = now_iso()
        if prediction.started_at:
            started = datetime.fromisoformat(prediction.started_at)
            prediction.metrics = {"predict_time": (datetime.now(timezone.utc) - started).total_seconds()}

    def notify(self, prediction: Prediction, event: str) -> None:
        """POST the prediction to its webhook, signed as Replicate signs (Standard Webhooks); one attempt."""
        if not prediction.webhook or event not in prediction.webhook_events:
            return
        body = json.dumps(self.snapshot(prediction.id)).encode()
        message_id, timestamp = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
        key = base64.b64decode(self.webhook_secret.removeprefix("whsec_"))
        signed = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        request = urllib.request.Request(prediction.webhook, data=body, method="POST", headers={
            "content-type": "application/json", "webhook-id": message_id, "webhook-timestamp": timestamp,
            "webhook-signature": "v1," + base64.b64encode(signed).decode()})
        try:
            urllib.request.urlopen(request, timeout=5).close()
        except (OSError, urllib.error.URLError) as error:
            print(f"webhook {event} for {prediction.id} to {prediction.webhook} failed: {error}", flush=True)


class Run:
    """One prediction's life: download the photo, make the preview, the progress steps, then the model."""

    def __init__(self, predictions: Predictions, prediction: Prediction):
        self.predictions = predictions
        self.prediction = prediction
        self.started = time.monotonic()

    def run(self) -> None:
        from .relief import preview_jpeg, relief_glb

        prediction = self.prediction
        time.sleep(prediction.delay)
        if not self.predictions.change(prediction, "start", status="processing", started_at=now_iso(),
                                       logs=f"Downloading {urlparse(prediction.input['image']).path}\n"):
            return
        try:
            preview, image = preview_jpeg(self.download(prediction.input["image"]))
        except Exception as error:  # whatever the photo or its server did: the prediction fails as Replicate's do
            self.predictions.change(prediction, "completed", status="failed", error=f"{type(error).__name__}: {error}",
                                    logs=prediction.logs + f"Traceback (most recent call last):\n{error!r}\n")
            return
        files = {"preview.jpg": GARBAGE if prediction.mode == "garbage_preview" else preview}
        if not self.predictions.change(prediction, "output", files=files, output={"preview": self.url("preview.jpg")},
                                       logs=prediction.logs + progress_line(0, self.started)):
            return
        for step in range(1, STEPS + 1):
            time.sleep(prediction.delay)
            if step == STEPS // 2 and prediction.mode in ("fail", "cancel"):
                self.end_early()
                return
            if step < STEPS and not self.predictions.change(
                    prediction, "logs", logs=prediction.logs + progress_line(step, self.started)):
                return
        model = GARBAGE if prediction.mode == "garbage_model" else relief_glb(preview, image)
        self.predictions.change(prediction, "completed", status="succeeded",
                                files={**prediction.files, "model.glb": model},
                                output={"preview": self.url("preview.jpg"), "model_file": self.url("model.glb")},
                                logs=prediction.logs + progress_line(STEPS, self.started))

    def end_early(self) -> None:
        if self.prediction.mode == "fail":
            self.predictions.change(self.prediction, "completed", status="failed",
                                    error="CUDA error: out of memory (the reference service was told to fail)",
                                    logs=self.prediction.logs + "RuntimeError: CUDA error: out of memory\n")
        else:
            self.predictions.change(self.prediction, "completed", status="canceled")

    def url(self, name: str) -> str:
        return f"{self.predictions.base_url}/files/{self.prediction.id}/{name}"

    @staticmethod
    def download(url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=15) as response:
            photo = response.read(PHOTO_CEILING + 1)
        if len(photo) > PHOTO_CEILING:
            raise ValueError(f"input image is larger than {PHOTO_CEILING} bytes")
        return photo


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "ProcessingServer"

    ROUTES = (
        ("POST", re.compile(r"/v1/predictions"), "create"),
        ("GET", re.compile(r"/v1/predictions/(?P<id>[\w-]+)"), "read"),
        ("POST", re.compile(r"/v1/predictions/(?P<id>[\w-]+)/cancel"), "cancel"),
        ("GET", re.compile(r"/v1/webhooks/default/secret"), "webhook_secret"),
        ("GET", re.compile(r"/files/(?P<id>[\w-]+)/(?P<name>preview\.jpg|model\.glb)"), "serve_file"),
        ("POST", re.compile(r"/_control"), "control"),
        ("POST", re.compile(r"/_control/reset"), "control_reset"),
        ("GET", re.compile(r"/_control/stats"), "control_stats"),
    )

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_HEAD(self):
        # Downloaders may ask for the size first; every answer below then leaves its body out.
        self.route("GET")

    def route(self, method: str) -> None:
        path = urlparse(self.path).path.rstrip("/") or "/"
        # Read even when no route matches: an unread body would be taken for the next request on this connection.
        body = self.read_body()
        for route_method, pattern, name in self.ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                break
        else:
            self.reply(404, {"detail": "Not found."})
            return
        if path.startswith("/v1/"):
            self.api(name, match.groupdict(), body)
        else:
            getattr(self, name)(body=body, **match.groupdict())

    def api(self, name: str, params: dict, body: bytes) -> None:
        fault = self.server.behaviour.take_fault()
        if fault and fault[0] == "http_500":
            self.reply(500, {"detail": "Internal server error (armed by the test)"})
            return
        if fault and fault[0] == "http_429":
            self.reply(429, {"detail": "Request was throttled.", "status": 429},
                       headers={"Retry-After": str(int(fault[1]))})
            return
        if not self.authorised():
            self.reply(401, {"detail": "Invalid token."})
            return
        status, payload = getattr(self, name)(body=body, **params)
        if fault:
            # A slow answer, not a slow decision: the request has taken effect, as a timed-out one may have.
            time.sleep(fault[1])
        self.reply(status, payload)

    def authorised(self) -> bool:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        return scheme == "Bearer" and hmac.compare_digest(token.strip().encode(), self.server.token.encode())

    def create(self, body: bytes) -> tuple[int, dict]:
        try:
            request = json.loads(body or b"null")
        except ValueError:
            return 400, {"detail": "The request body is not valid JSON."}
        inputs = request.get("input") if isinstance(request, dict) else None
        if isinstance(inputs, dict) and "image" not in inputs and isinstance(inputs.get("images"), list) \
                and inputs["images"]:
            inputs["image"] = inputs["images"][0]  # image-to-3D models that take several views name them `images`
        problem = creation_problem(request)
        if problem:
            return 422, {"detail": problem}
        events = tuple(request.get("webhook_events_filter") or WEBHOOK_EVENTS)
        return 201, self.server.predictions.create(request["version"], request["input"], request.get("webhook"),
                                                   events)

    def read(self, body: bytes, id: str) -> tuple[int, dict]:
        found = self.server.predictions.snapshot(id)
        return (200, found) if found else (404, {"detail": "Not found."})

    def cancel(self, body: bytes, id: str) -> tuple[int, dict]:
        found = self.server.predictions.cancel(id)
        return (200, found) if found else (404, {"detail": "Not found."})

    def webhook_secret(self, body: bytes) -> tuple[int, dict]:
        return 200, {"key": self.server.predictions.webhook_secret}

    def serve_file(self, body: bytes, id: str, name: str) -> None:
        found = self.server.predictions.file(id, name)
        if found is None:
            self.reply(404, {"detail": "Not found."})
            return
        prediction, data = found
        if name == "model.glb" and prediction.mode == "huge_model":
            self.stream_forever()
            return
        content_type = "image/jpeg" if name.endswith(".jpg") else "model/gltf-binary"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.write_body(data)

    def stream_forever(self) -> None:
        """Claim 2 GiB and trickle zeros until the client gives up: only the downloader's ceiling ends it."""
        self.send_response(200)
        self.send_header("Content-Type", "model/gltf-binary")
        self.send_header("Content-Length", str(HUGE_CLAIM))
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        # About 50 MB/s: fast enough that a downloader's size ceiling, not its timeout, is what stops it.
        block = bytes(256 * 1024)
        try:
            for _ in range(HUGE_CLAIM // len(block)):
                self.wfile.write(block)
                time.sleep(0.005)
        except OSError:
            pass

    def control(self, body: bytes) -> None:
        try:
            self.reply(200, self.server.behaviour.update(json.loads(body or b"{}")))
        except (ValueError, TypeError, AttributeError) as error:
            self.reply(400, {"detail": str(error)})

    def control_reset(self, body: bytes) -> None:
        with self.server.behaviour.lock:
            self.server.behaviour.reset()
            self.reply(200, self.server.behaviour.describe())

    def control_stats(self, body: bytes) -> None:
        self.reply(200, self.server.behaviour.stats())

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.write_body(data)

    def write_body(self, data: bytes) -> None:
        if self.command != "HEAD":
            self.wfile.write(data)


def creation_problem(request) -> str | None:
    """Why a `POST /v1/predictions` body cannot start a prediction, or None."""
    if not isinstance(request, dict):
        return "The request body must be a JSON object."
    if not isinstance(request.get("version"), str) or not request["version"].strip():
        return "version is required: the model version's id."
    inputs = request.get("input")
    if not isinstance(inputs, dict) or not is_web_url(inputs.get("image")):
        return "input.image is required: an http or https URL of the photo."
    if request.get("webhook") is not None and not is_web_url(request["webhook"]):
        return "webhook must be an http or https URL."
    events = request.get("webhook_events_filter")
    if events is not None and (not isinstance(events, list) or not set(events) <= set(WEBHOOK_EVENTS)):
        return f"webhook_events_filter must be a list of {list(WEBHOOK_EVENTS)}."
    return None


def is_web_url(value) -> bool:
    if not isinstance(value, str):
        return False
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


class ProcessingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, token: str, webhook_secret: str):
        super().__init__(("127.0.0.1", port), Handler)
        self.token = token
        self.behaviour = Behaviour()
        self.predictions = Predictions(f"http://127.0.0.1:{self.server_address[1]}", self.behaviour, webhook_secret)


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class ProcessingControl:
    """The tests' side of `/_control`: set behaviours, reset them, read how many predictions were created."""

    def __init__(self, endpoint_url: str):
        self.endpoint_url = endpoint_url

    def set(self, **behaviour) -> dict:
        """E.g. `set(mode="fail")`, `set(delay=0)`, `set(mode="http_429", count=2, retry_after=1)`,
        `set(mode="hang", count=1, seconds=3)`."""
        return self._post("/_control", behaviour)

    def reset(self) -> dict:
        return self._post("/_control/reset", {})

    def stats(self) -> dict:
        """`{"predictions_created": n, "by_image_path": {"/bucket/originals/...": n}}`"""
        with urllib.request.urlopen(f"{self.endpoint_url}/_control/stats", timeout=10) as response:
            return json.loads(response.read())

    def _post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(f"{self.endpoint_url}{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


class ProcessingService:
    """The reference processing service as a subprocess on 127.0.0.1, started and stopped like the other servers."""

    def __init__(self, *, token: str, port: int | None = None, log_file: Path | None = None,
                 webhook_secret: str | None = None):
        self.token = token
        self.port = port or free_port()
        self.log_file = log_file
        self.webhook_secret = webhook_secret or new_webhook_secret()
        self.process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def control(self) -> ProcessingControl:
        return ProcessingControl(self.endpoint_url)

    def start(self) -> None:
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        command = [sys.executable, "-u", "-m", "devstack.processing_service", "--port", str(self.port),
                   "--token", self.token, "--webhook-secret", self.webhook_secret]
        self.process = subprocess.Popen(command, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        if self.log_file:
            log.close()
        wait_for_port(self.port, timeout=30, process=self.process, what="the reference processing service")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace=3.0)
            self.process = None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True, help="the Bearer token /v1 requests must carry")
    parser.add_argument("--webhook-secret", default=None, help="whsec_<base64>; a new one if not given")
    args = parser.parse_args(argv)
    server = ProcessingServer(args.port, args.token, args.webhook_secret or new_webhook_secret())
    print(f"reference processing service on {server.predictions.base_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
