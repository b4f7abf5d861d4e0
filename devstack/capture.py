"""A local stand-in for PostHog's capture endpoint: records `POST /batch/` bodies; can fail or hang on demand.

Run it for `make dev` with `python -m devstack.capture --port 8010`, then start the API with
`POSTHOG_API_KEY=phc_dev POSTHOG_HOST=http://127.0.0.1:8010`.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class CaptureServer:
    """Threaded HTTP server on 127.0.0.1; `mode` is "ok", "error" (500) or "hang" (never answers)."""

    def __init__(self, port: int = 0):
        self.batches: list[dict] = []
        self.mode = "ok"
        self._release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if server.mode == "hang":
                    server._release.wait(timeout=60)
                    return
                if server.mode == "error":
                    self.send_error(500)
                    return
                if self.path.rstrip("/").endswith("/batch"):
                    server.batches.append(json.loads(raw))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status": 1}')

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self) -> list[dict]:
        """Every event received so far, in order."""
        return [event for batch in self.batches for event in batch.get("batch", [])]

    def start(self) -> "CaptureServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    """Serve until Ctrl-C, printing each event received."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8010)
    port = parser.parse_args().port
    server = CaptureServer(port).start()
    print(f"capture server on {server.url}/batch/ (Ctrl-C to stop)", flush=True)
    seen = 0
    try:
        while True:
            threading.Event().wait(0.5)
            for event in server.events()[seen:]:
                print(json.dumps(event), flush=True)
                seen += 1
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
