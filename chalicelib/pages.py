"""The reference browser client: two pages and their ES modules, served from the Lambda package."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from chalice import Response

WEB_DIR = Path(__file__).with_name("web")
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
ASSETS = frozenset(p.name for p in WEB_DIR.iterdir() if p.suffix in CONTENT_TYPES)


@lru_cache(maxsize=None)
def _read(name: str) -> str:
    return (WEB_DIR / name).read_text()


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
    `base` prefixes its scripts, styles and links and is the client's API base (same origin)."""
    storage = urlsplit(storage_endpoint)
    html = (_read(name).replace("{{MAX_UPLOAD_BYTES}}", str(max_upload_bytes))
            .replace("{{PAGE_BASE}}", base).replace("{{API_BASE}}", base))
    return Response(body=html, status_code=200, headers={
        "Content-Type": "text/html; charset=utf-8",
        # Back and reload must fetch the page again rather than show a stale copy of a finished upload.
        "Cache-Control": "no-store",
        "Content-Security-Policy": (
            f"default-src 'self'; connect-src 'self' {storage.scheme}://{storage.netloc}; img-src 'self' data:; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    })


def openapi() -> Response:
    """The API's OpenAPI 3.1 document."""
    return Response(body=_read("../openapi.json"), status_code=200, headers={"Content-Type": "application/json"})


def asset(name: str) -> Response:
    """A script or stylesheet; 404 for any other name (no path ever reaches the file system)."""
    if name not in ASSETS:
        return Response(body="Not found", status_code=404, headers={"Content-Type": "text/plain"})
    return Response(body=_read(name), status_code=200, headers={
        "Content-Type": CONTENT_TYPES[Path(name).suffix],
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
    })
