"""A private PostgreSQL cluster on loopback, run as an unprivileged user when we are root."""

from __future__ import annotations

import glob
import os
import pwd
import subprocess
from pathlib import Path

UNPRIVILEGED_USER = "postgres"


def find_bin_dir() -> Path:
    """PostgreSQL server binaries: $PG_BIN, else the system's newest, else those shipped by the `pgserver` wheel."""
    candidates = [os.environ.get("PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    try:
        import pgserver  # noqa: F401  (fallback for machines without system PostgreSQL)

        candidates.append(str(Path(pgserver.__file__).parent / "pginstall" / "bin"))
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise RuntimeError("No PostgreSQL server binaries found: install Debian's postgresql or `pip install pgserver`")


class PostgresCluster:
    """initdb + pg_ctl on a data directory of our own, listening only on 127.0.0.1."""

    def __init__(self, base_dir: Path, port: int, *, extra_conf: str = "", password: str | None = None,
                 hba: str | None = None):
        self.password = password
        self.hba = hba
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.socket_dir = base_dir / "sock"
        self.log_file = base_dir / "postgres.log"
        self.port = port
        self.extra_conf = extra_conf
        self.bin_dir = find_bin_dir()

    def url(self, database: str = "postgres", user: str = "postgres", *, host: str = "127.0.0.1",
            query: str = "sslmode=disable") -> str:
        secret = f":{self.password}" if self.password else ""
        return f"postgresql://{user}{secret}@{host}:{self.port}/{database}?{query}"

    def init(self) -> None:
        """Create the cluster (once): initdb, then our settings and, if given, our pg_hba.conf."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self._hand_over(self.base_dir, self.socket_dir)
        if (self.data_dir / "PG_VERSION").exists():
            return
        args = ["-D", str(self.data_dir), "-U", "postgres", "-E", "UTF8", "--no-sync"]
        if self.password:
            pwfile = self.base_dir / "pwfile"
            pwfile.write_text(self.password + "\n")
            _give_to_server_user(pwfile)
            args += ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        else:
            args += ["--auth=trust"]
        self._run("initdb", *args)
        if self.extra_conf:
            self.write_file("postgresql.conf", (self.data_dir / "postgresql.conf").read_text() + "\n" + self.extra_conf + "\n")
        if self.hba:
            self.write_file("pg_hba.conf", self.hba)

    def write_file(self, name: str, content: str | bytes, mode: int = 0o600) -> None:
        """Write a file into the data directory, owned by the server's user."""
        path = self.data_dir / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        os.chmod(path, mode)
        _give_to_server_user(path)

    def start(self) -> None:
        """Create the cluster if needed and start it; returns when it accepts connections."""
        self.init()
        options = f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir} -F"
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "30", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (no-op if it is not running)."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30", "stop", check=False)

    def create_database(self, name: str) -> None:
        """Create a database owned by the superuser."""
        from chalicelib.config import DatabaseSettings
        from chalicelib.db import Database

        admin = Database(DatabaseSettings.from_url(self.url("postgres")), application_name="devstack",
                         statement_timeout=None)  # CREATE DATABASE cannot run in a transaction block
        try:
            admin.run(f"CREATE DATABASE {name}")
        finally:
            admin.close()

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:
            # initdb refuses to run as root, and the server should not have root's powers anyway.
            command = ["runuser", "-u", UNPRIVILEGED_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, start_new_session=True)
        if check and result.returncode != 0:
            log_tail = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr.strip()}\n{log_tail}")

    @staticmethod
    def _hand_over(*paths: Path) -> None:
        if os.geteuid() != 0:
            return
        _ensure_unprivileged_user()
        user = pwd.getpwnam(UNPRIVILEGED_USER)
        for path in paths:
            os.chown(path, user.pw_uid, user.pw_gid)
            # Every parent must be traversable by that user; ours are fresh temp dirs.
            if path.is_dir():
                os.chmod(path, 0o700)
        # The server's user must be able to reach its directory: let it traverse (not list) every ancestor.
        for ancestor in paths[0].parents:
            mode = os.stat(ancestor).st_mode
            if not mode & 0o001:
                os.chmod(ancestor, mode | 0o011)


def _give_to_server_user(path: Path) -> None:
    """Make a file the server's own when we run as root (it refuses key files it does not own)."""
    if os.geteuid() == 0:
        user = pwd.getpwnam(UNPRIVILEGED_USER)
        os.chown(path, user.pw_uid, user.pw_gid)


def _ensure_unprivileged_user() -> None:
    try:
        pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", UNPRIVILEGED_USER], check=True)
