"""SSM Parameter Store over real HTTP: moto's server mode, which boto3 reaches through AWS_ENDPOINT_URL_SSM."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .processes import free_port, stop_process, wait_for_port

REGION = "eu-central-1"
# moto accepts any credentials; these only keep boto3 from looking for real ones.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local-stack", "AWS_SECRET_ACCESS_KEY": "local-stack"}


class MotoSsm:
    """One `moto_server` on 127.0.0.1 holding SecureString parameters."""

    def __init__(self, *, port: int | None = None, log_file: Path | None = None):
        self.port = port or free_port()
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        """What a process needs for `boto3.client("ssm")` to reach this server and nothing else."""
        return {"AWS_ENDPOINT_URL_SSM": self.endpoint_url, "AWS_DEFAULT_REGION": REGION, **CREDENTIALS}

    def start(self) -> None:
        beside = Path(sys.executable).parent / "moto_server"
        binary = str(beside) if beside.exists() else shutil.which("moto_server")
        if not binary:
            raise RuntimeError('moto_server not found: pip install "moto[server]" (requirements-dev.txt has it)')
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        if self.log_file:
            log.close()
        wait_for_port(self.port, timeout=30, process=self.process, what="moto_server")

    def put_secrets(self, values: dict[str, str]) -> None:
        """Store each `{parameter name: value}` as a SecureString."""
        import boto3

        client = boto3.client("ssm", endpoint_url=self.endpoint_url, region_name=REGION,
                              aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        for name, value in values.items():
            client.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
