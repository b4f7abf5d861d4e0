"""A TCP proxy between the app and PostgreSQL that breaks things on demand, at a chosen statement."""

from __future__ import annotations

import socket
import threading
import time


class FaultProxy:
    """Forwards 127.0.0.1:port to 127.0.0.1:target_port.

    `arm(marker, fault)` applies a fault to the next client message containing `marker`:
    "hold" forwards it and then withholds the server's answer (as a slow or stalled network would);
    "cut" forwards it, lets the server answer, drops the answer and closes the connection.
    `cut_idle()` closes every connection at once, as a server restart does.
    `sent(marker)` counts the client messages containing `marker` that reached the server.
    """

    def __init__(self, target_port: int):
        self.target_port = target_port
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._armed: tuple[bytes, str] | None = None
        self._pairs: list[dict] = []
        self._messages: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, marker: bytes, fault: str) -> None:
        assert fault in ("hold", "cut")
        with self._lock:
            self._armed = (marker, fault)

    def sent(self, marker: bytes) -> int:
        with self._lock:
            return sum(marker in message for message in self._messages)

    def cut_idle(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            self._close(pair)

    def close(self) -> None:
        self._listener.close()
        self.cut_idle()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            pair = {"client": client, "server": server, "holding": False}
            with self._lock:
                self._pairs.append(pair)
            threading.Thread(target=self._upstream, args=(pair,), daemon=True).start()
            threading.Thread(target=self._downstream, args=(pair,), daemon=True).start()

    def _upstream(self, pair) -> None:
        while True:
            try:
                chunk = pair["client"].recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                self._close(pair)
                return
            fault = None
            with self._lock:
                self._messages.append(chunk)
                if self._armed and self._armed[0] in chunk:
                    fault, self._armed = self._armed[1], None
                    pair["holding"] = True
            try:
                pair["server"].sendall(chunk)
            except OSError:
                self._close(pair)
                return
            if fault == "cut":
                time.sleep(0.3)  # the server runs the statement and answers; the answer is dropped below
                self._close(pair)
                return

    def _downstream(self, pair) -> None:
        while True:
            try:
                chunk = pair["server"].recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                self._close(pair)
                return
            if pair["holding"]:
                continue  # withheld until the client gives up and closes
            try:
                pair["client"].sendall(chunk)
            except OSError:
                self._close(pair)
                return

    def _close(self, pair) -> None:
        for side in ("client", "server"):
            try:
                pair[side].shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            pair[side].close()
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
