"""A front end on an origin of its own: the client's pages and modules, calling the API cross-origin.

It hosts the files of chalicelib/web the way the real front end would: pages at `/` and `/processing/{jobId}`,
modules under `/static/`, and `<meta name="3d-ultra-api-base">` set to the API's origin and stage.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

WEB_DIR = Path(__file__).resolve().parent.parent / "chalicelib" / "web"
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".html": "text/html; charset=utf-8"}


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class FrontendServer:
    """A threaded static server on 127.0.0.1 for the client, pointed at `api_base` (origin + stage)."""

    def __init__(self, *, api_base: str, storage_url: str, max_upload_bytes: int, port: int = 0):
        self.api_base = api_base.rstrip("/")
        # The front end's own policy: scripts may talk to the API and to storage, nowhere else.
        self.csp = (f"default-src 'self'; connect-src {origin_of(api_base)} {origin_of(storage_url)}; "
                    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
        self.max_upload_bytes = max_upload_bytes
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                status, content_type, body = server.render(urlsplit(self.path).path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-cache")
                if content_type.startswith("text/html"):
                    self.send_header("Content-Security-Policy", server.csp)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def render(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of `path`."""
        if path in ("/", "/index.html"):
            return self._page("index.html")
        if path.startswith("/processing/") and path.count("/") == 2 and len(path) > len("/processing/"):
            return self._page("processing.html")
        name = path[len("/static/"):] if path.startswith("/static/") else ""
        asset = WEB_DIR / name
        if name and "/" not in name and asset.suffix in (".js", ".css") and asset.is_file():
            return 200, CONTENT_TYPES[asset.suffix], asset.read_bytes()
        return 404, "text/plain; charset=utf-8", b"Not found"

    def _page(self, name: str) -> tuple[int, str, bytes]:
        html = ((WEB_DIR / name).read_text().replace("{{MAX_UPLOAD_BYTES}}", str(self.max_upload_bytes))
                .replace("{{PAGE_BASE}}", "").replace("{{API_BASE}}", self.api_base))
        return 200, CONTENT_TYPES[".html"], html.encode()

    def start(self) -> "FrontendServer":
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread = None
        self._server.server_close()
