"""The reference browser client: two pages and their ES modules, served from the Lambda package."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from chalice import Response

from . import errors
from .http import error_response

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).with_name("web")
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
ASSETS = frozenset(p.name for p in WEB_DIR.iterdir() if p.suffix in CONTENT_TYPES)


@lru_cache(maxsize=None)
def _read(name: str) -> str:
    return (WEB_DIR / name).read_text()


@lru_cache(maxsize=None)
def viewer_style_hashes() -> tuple[str, ...]:
    """CSP sources for the <style> elements the 3D viewer (model-viewer.js, @google/model-viewer's bundle) puts in
    its shadow root: each allowed by its SHA-256, so that no other inline style is."""
    bundle = _read("model-viewer.js") if "model-viewer.js" in ASSETS else ""
    return tuple(f"'sha256-{base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()}'"
                 for style in dict.fromkeys(re.findall(r"<style>(.*?)</style>", bundle, re.S)))


def base_path(request) -> str:
    """The path prefix in front of the app's routes: `/api` on API Gateway's own URL (the stage), `` at the root
    of a custom domain or locally. API Gateway's event path omits the stage; requestContext.path keeps it."""
    event = request.to_original_event()
    route_path = event.get("path") or ""
    full_path = (request.context or {}).get("path") or ""
    if not route_path or not full_path.startswith("/"):
        return ""
    if full_path.endswith(route_path):
        return full_path[: len(full_path) - len(route_path)].rstrip("/")
    if route_path == "/":
        return full_path.rstrip("/")
    return ""


def page(name: str, *, max_upload_bytes: int, storage_endpoint: str, base: str = "") -> Response:
    """An HTML page, with a CSP that lets scripts talk only to this API and to the storage endpoint.
    `base` prefixes its scripts, styles and links and is the client's API base (same origin).

    Without a known storage origin the page is refused (503) rather than served with a policy that either
    blocks every upload or lets scripts connect anywhere."""
    storage = storage_origin(storage_endpoint)
    if storage is None:
        log.error("page %s refused: the storage origin is unknown (the resolved R2 endpoint is empty or not an "
                  "http(s) URL)", name)
        return error_response(errors.SettingsUnavailable())
    html = (_read(name).replace("{{MAX_UPLOAD_BYTES}}", str(max_upload_bytes))
            .replace("{{PAGE_BASE}}", base).replace("{{API_BASE}}", base))
    return Response(body=html, headers={
        "Content-Type": "text/html; charset=utf-8",
        # Back and reload must fetch the page again rather than show a stale copy of a finished upload.
        "Cache-Control": "no-store",
        "Content-Security-Policy": (
            # The preview and the model come from storage. The 3D viewer (model-viewer, among the pages' modules)
            # decodes the model's textures through blob: URLs, compiles its mesh decoder's WebAssembly (which
            # 'wasm-unsafe-eval' allows; JavaScript eval stays refused) and styles its shadow root with one
            # <style> allowed by its hash. No inline script, no 'unsafe-eval', no other inline style.
            f"default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
            f"style-src 'self' {' '.join(viewer_style_hashes())}; "
            f"connect-src 'self' {storage} blob:; img-src 'self' data: blob: {storage}; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    })


def storage_origin(endpoint: str) -> str | None:
    """`scheme://host[:port]` of the storage endpoint, or None if it is not an http(s) URL with a host."""
    parts = urlsplit(endpoint or "")
    try:
        parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def openapi() -> Response:
    """The API's OpenAPI 3.1 document."""
    return Response(body=_read("../openapi.json"), headers={"Content-Type": "application/json"})


def asset(name: str) -> Response:
    """A script or stylesheet; 404 for any other name (no path ever reaches the file system)."""
    if name not in ASSETS:
        return Response(body="Not found", status_code=404, headers={"Content-Type": "text/plain"})
    return Response(body=_read(name), headers={
        "Content-Type": CONTENT_TYPES[Path(name).suffix],
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
    })
