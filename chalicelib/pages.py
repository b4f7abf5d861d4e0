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


def page(name: str, *, max_upload_bytes: int, storage_endpoint: str) -> Response:
    """An HTML page, with a CSP that lets scripts talk only to this API and to the storage endpoint."""
    storage = urlsplit(storage_endpoint)
    html = _read(name).replace("{{MAX_UPLOAD_BYTES}}", str(max_upload_bytes))
    return Response(body=html, headers={
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": (
            f"default-src 'self'; connect-src 'self' {storage.scheme}://{storage.netloc}; img-src 'self' data:; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    })


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
