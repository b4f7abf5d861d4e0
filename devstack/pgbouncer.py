"""PgBouncer in transaction mode in front of a local cluster: what Neon's `-pooler` endpoints are."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .postgres import UNPRIVILEGED_USER, _ensure_unprivileged_user
from .processes import free_port, stop_process, wait_for_port


class PgBouncer:
    """One pgbouncer process, pool_mode=transaction, listening on 127.0.0.1."""

    def __init__(self, base_dir: Path, *, server_port: int, database: str, pool_size: int = 5):
        self.base_dir = base_dir
        self.server_port = server_port
        self.database = database
        self.pool_size = pool_size
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def url(self, database: str | None = None) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database or self.database}?sslmode=disable"

    def start(self) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not os.path.exists(binary):
            raise RuntimeError("pgbouncer not found: apt-get install pgbouncer")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        config = self.base_dir / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.server_port} user=postgres\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            "auth_type = any\npool_mode = transaction\n"
            f"default_pool_size = {self.pool_size}\nmax_client_conn = 500\n"
            f"logfile = {self.base_dir / 'pgbouncer.log'}\n"
        )
        command = [binary, str(config)]
        if os.geteuid() == 0:
            # PgBouncer refuses to run as root.
            _ensure_unprivileged_user()
            shutil.chown(self.base_dir, UNPRIVILEGED_USER)
            shutil.chown(config, UNPRIVILEGED_USER)
            os.chmod(self.base_dir.parent, os.stat(self.base_dir.parent).st_mode | 0o011)
            command = ["runuser", "-u", UNPRIVILEGED_USER, "--", *command]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        wait_for_port(self.port, timeout=15, process=self.process, what="pgbouncer")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
