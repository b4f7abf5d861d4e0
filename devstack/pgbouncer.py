"""PgBouncer in transaction mode in front of a local cluster: what Neon's `-pooler` endpoints are."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

from .postgres import UNPRIVILEGED_USER, _ensure_unprivileged_user
from .processes import free_port, stop_process, wait_for_port
from .tls import ServerTls


class PgBouncer:
    """One pgbouncer process, pool_mode=transaction, listening on 127.0.0.1."""

    def __init__(self, base_dir: Path, *, server_port: int, database: str, pool_size: int = 5,
                 password: str | None = None, tls: ServerTls | None = None):
        """With `password` and `tls`, as Neon's pooler: clients must use TLS and SCRAM-SHA-256, and PgBouncer
        reaches the server over TLS it verifies against the same CA (the server's certificate names localhost)."""
        self.base_dir = base_dir
        self.server_port = server_port
        self.database = database
        self.pool_size = pool_size
        self.password = password
        self.tls = tls
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def url(self, database: str | None = None) -> str:
        if self.tls is None:
            return f"postgresql://postgres@127.0.0.1:{self.port}/{database or self.database}?sslmode=disable"
        secret = f":{quote(self.password, safe='')}" if self.password else ""
        return (f"postgresql://postgres{secret}@localhost:{self.port}/{database or self.database}"
                f"?sslmode=verify-full&sslrootcert={self.tls.ca_file}")

    def start(self) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not os.path.exists(binary):
            raise RuntimeError("pgbouncer not found: apt-get install pgbouncer")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        config = self.base_dir / "pgbouncer.ini"
        owned = [config]
        if self.tls is None:
            server, auth = f"host=127.0.0.1 port={self.server_port} user=postgres", "auth_type = any\n"
        else:
            # PgBouncer runs as the server's user, which must be able to read copies of the files it needs.
            files = {}
            for name, source in (("ca.crt", self.tls.ca_file), ("server.crt", self.tls.cert_file),
                                 ("server.key", self.tls.key_file)):
                files[name] = self.base_dir / name
                shutil.copyfile(source, files[name])
                os.chmod(files[name], 0o600)
                owned.append(files[name])
            userlist = self.base_dir / "userlist.txt"
            userlist.write_text(f'"postgres" "{self.password}"\n')
            os.chmod(userlist, 0o600)
            owned.append(userlist)
            server = f"host=localhost port={self.server_port} user=postgres password={self.password}"
            auth = (f"auth_type = scram-sha-256\nauth_file = {userlist}\n"
                    f"client_tls_sslmode = require\nclient_tls_cert_file = {files['server.crt']}\n"
                    f"client_tls_key_file = {files['server.key']}\nclient_tls_ca_file = {files['ca.crt']}\n"
                    f"server_tls_sslmode = verify-full\nserver_tls_ca_file = {files['ca.crt']}\n")
        config.write_text(
            "[databases]\n"
            f"* = {server}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"{auth}pool_mode = transaction\n"
            f"default_pool_size = {self.pool_size}\nmax_client_conn = 500\n"
            f"logfile = {self.base_dir / 'pgbouncer.log'}\n"
        )
        os.chmod(config, 0o600)
        command = [binary, str(config)]
        if os.geteuid() == 0:
            # PgBouncer refuses to run as root.
            _ensure_unprivileged_user()
            shutil.chown(self.base_dir, UNPRIVILEGED_USER)
            for path in owned:
                shutil.chown(path, UNPRIVILEGED_USER)
            os.chmod(self.base_dir.parent, os.stat(self.base_dir.parent).st_mode | 0o011)
            command = ["runuser", "-u", UNPRIVILEGED_USER, "--", *command]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        wait_for_port(self.port, timeout=15, process=self.process, what="pgbouncer")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
