"""Replicate's predictions API (https://replicate.com/docs/reference/http) behind the processing port.

`POST /v1/predictions` with a model version and `{"image": url}`, `GET /v1/predictions/{id}`,
`POST /v1/predictions/{id}/cancel`; states starting, processing, succeeded, failed, canceled. Replicate reports
no progress field: a model's progress is what it prints, as tqdm's `NN%|...` lines in `logs`, so the last percentage
there is the progress. Outputs are URLs on Replicate's delivery host that expire after an hour, so the worker copies
them into our bucket.
"""

from __future__ import annotations

import json
import logging
import re
import time
from urllib.parse import urlsplit

from ..errors import BadProcessingOutput, ProcessingUnavailable
from . import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Output, Task

log = logging.getLogger(__name__)
STATES = {"starting": QUEUED, "processing": RUNNING, "succeeded": SUCCEEDED, "failed": FAILED,
          "canceled": CANCELLED}
_PERCENT = re.compile(r"(\d{1,3})%")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_CHUNK = 64 * 1024


class Replicate:
    """One model version on Replicate (or anything that speaks its HTTP API)."""

    def __init__(self, *, base_url: str, token: str, model_version: str, timeout: float, http=None,
                 image_input: str = "image", extra_input: dict | None = None, retries: int = 3,
                 backoff: float = 0.5, download_seconds: float = 40.0):
        import urllib3

        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                         "User-Agent": "3d-ultra-worker"}
        self._version = model_version
        self._image_input = image_input
        self._extra_input = dict(extra_input or {})
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._download_seconds = download_seconds
        self._http = http or urllib3.PoolManager(retries=False)
        # 5xx, 429 and timeouts are retried with exponential backoff (a few seconds in all: what still fails is
        # asked again later through a delayed message, never slept through). A POST that may have reached the
        # service is retried only where it certainly created nothing: a refused connection, or 429.
        self._retry = urllib3.Retry(total=retries, connect=retries, read=retries, status=retries,
                                    backoff_factor=backoff, backoff_max=4,
                                    status_forcelist=(429, 500, 502, 503, 504),
                                    allowed_methods=frozenset({"GET"}), respect_retry_after_header=False,
                                    raise_on_status=False)
        self._post_retry = urllib3.Retry(total=retries, connect=retries, read=0, status=retries, other=0,
                                         backoff_factor=backoff, backoff_max=4, status_forcelist=(429,),
                                         allowed_methods=frozenset({"POST"}), respect_retry_after_header=False,
                                         raise_on_status=False)

    def submit(self, input_url: str) -> str:
        photo = [input_url] if self._image_input == "images" else input_url
        body = self._call("POST", "/v1/predictions", {"version": self._version,
                                                       "input": {**self._extra_input, self._image_input: photo}})
        return _text(body, "id")

    def get(self, task_id: str) -> Task:
        body = self._call("GET", f"/v1/predictions/{_path_segment(task_id)}")
        state = STATES.get(body.get("status"))
        if state is None:
            log.error("processing service reported an unknown state", extra={"providerStatus": body.get("status")})
            raise ProcessingUnavailable()
        preview, model = _outputs(body.get("output"))
        return Task(id=_text(body, "id"), state=state, progress=_progress(body.get("logs")), preview_url=preview,
                    model_url=model, error=str(body["error"])[:2000] if body.get("error") else None)

    def cancel(self, task_id: str) -> None:
        self._call("POST", f"/v1/predictions/{_path_segment(task_id)}/cancel", {})

    def download(self, url: str, max_bytes: int) -> Output:
        if urlsplit(url).scheme not in ("http", "https"):
            raise BadProcessingOutput()
        import urllib3

        deadline = time.monotonic() + self._download_seconds
        try:
            response = self._http.request("GET", url, preload_content=False, timeout=self._timeout,
                                          retries=self._retry.new(read=0), redirect=False)
        except urllib3.exceptions.HTTPError as exc:
            log.error("processing output download failed: %s", type(exc).__name__)
            raise ProcessingUnavailable() from exc
        try:
            if response.status != 200:
                log.error("processing output download answered %s", response.status)
                raise ProcessingUnavailable()
            declared = response.headers.get("Content-Length")
            if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
                log.warning("processing output refused: declared size", extra={"declaredBytes": declared})
                raise BadProcessingOutput()
            data = bytearray()
            for chunk in response.stream(_CHUNK):
                data += chunk
                if len(data) > max_bytes:
                    log.warning("processing output refused: larger than the ceiling", extra={"maxBytes": max_bytes})
                    raise BadProcessingOutput()
                if time.monotonic() > deadline:
                    log.error("processing output download took too long")
                    raise ProcessingUnavailable()
            return Output(data=bytes(data), content_type=response.headers.get("Content-Type", ""))
        except urllib3.exceptions.HTTPError as exc:
            log.error("processing output download failed: %s", type(exc).__name__)
            raise ProcessingUnavailable() from exc
        finally:
            response.release_conn()

    def _call(self, method: str, path: str, payload: dict | None = None) -> dict:
        import urllib3

        retries = self._retry if method == "GET" else self._post_retry
        try:
            response = self._http.request(method, self._base + path, headers=self._headers, timeout=self._timeout,
                                          body=None if payload is None else json.dumps(payload).encode(),
                                          retries=retries, redirect=False)
        except urllib3.exceptions.HTTPError as exc:
            log.error("processing service %s %s failed: %s", method, path.split("/")[2], type(exc).__name__)
            raise ProcessingUnavailable() from exc
        if response.status >= 300:
            # The provider's own words go to the log only (never to the person), cut short.
            log.error("processing service answered %s", response.status,
                      extra={"httpStatus": response.status, "providerDetail": response.data[:500].decode(
                          "utf-8", "replace")})
            raise ProcessingUnavailable()
        try:
            body = json.loads(response.data)
        except ValueError as exc:
            log.error("processing service answered something that is not JSON")
            raise ProcessingUnavailable() from exc
        if not isinstance(body, dict):
            raise ProcessingUnavailable()
        return body


def _text(body: dict, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        log.error("processing service answered without %s", name)
        raise ProcessingUnavailable()
    return value


def _path_segment(task_id: str) -> str:
    from urllib.parse import quote

    return quote(task_id, safe="")


def _progress(logs) -> int | None:
    """The last percentage the model printed (tqdm's `NN%|`), 0-100, or None if it printed none."""
    if not isinstance(logs, str):
        return None
    found = [int(value) for value in _PERCENT.findall(logs[-4000:]) if int(value) <= 100]
    return found[-1] if found else None


def _outputs(output) -> tuple[str | None, str | None]:
    """(preview URL, model URL) of a prediction's output: a `{"preview", "model_file"}` object as image-to-3D
    models name them, or a list of URLs told apart by their extensions."""
    if isinstance(output, dict):
        preview, model = output.get("preview"), output.get("model_file") or output.get("model")
        urls = [value for value in output.values() if isinstance(value, str)]
    elif isinstance(output, list):
        preview = model = None
        urls = [value for value in output if isinstance(value, str)]
    elif isinstance(output, str):
        preview = model = None
        urls = [output]
    else:
        return None, None
    model = model if isinstance(model, str) else next(
        (url for url in urls if urlsplit(url).path.lower().endswith(".glb")), None)
    preview = preview if isinstance(preview, str) else next(
        (url for url in urls if urlsplit(url).path.lower().endswith(_IMAGE_SUFFIXES)), None)
    return preview, model
