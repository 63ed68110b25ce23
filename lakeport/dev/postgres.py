"""A private PostgreSQL 15 cluster for the local stack: the CDC source database.

``initdb`` into its own directory, ``wal_level=logical``, listening on 127.0.0.1 only on its own
port, password authentication over TCP. Never the machine's system cluster. PostgreSQL refuses to
run as root, so as root the cluster runs as the unprivileged ``postgres`` (or ``nobody``) user and
its data directory lives where that user can reach it (recorded in the stack state).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from lakeport.dev.processes import Service, StackError, spawn, stop, wait_port

BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"), Path("/usr/lib/postgresql/17/bin")]
SUPERUSER = "postgres"
DEV_USER = "lakeport"
DEV_PASSWORD = "lakeport-dev-secret"  # local stack only
DEV_DATABASE = "shop"


def bin_dir() -> Path:
    found = shutil.which("initdb")
    candidates = BIN_DIRS + ([Path(found).parent] if found else [])
    for path in candidates:
        if (path / "initdb").exists() and (path / "postgres").exists():
            return path
    raise StackError("PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and PATH)")


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged account the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise StackError("running as root and no 'postgres' or 'nobody' account to run PostgreSQL as")


def data_dir(home: Path) -> Path:
    """Where the cluster lives: under ``home``, or (as root) in a temp dir the server user owns."""
    if _run_as() is None:
        return home / "postgres"
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"lakeport-pg-{digest}"


def _demote(user: pwd.struct_passwd | None) -> dict[str, object]:
    return {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _initdb(directory: Path, user: pwd.struct_passwd | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if user is not None:
        os.chown(directory, user.pw_uid, user.pw_gid)
    directory.chmod(0o700)
    with tempfile.NamedTemporaryFile("w", delete=False, dir=directory, prefix="pw") as pw:
        pw.write(DEV_PASSWORD)
    if user is not None:
        os.chown(pw.name, user.pw_uid, user.pw_gid)
    try:
        cmd = [str(bin_dir() / "initdb"), "-D", str(directory / "data"), "-U", SUPERUSER, "--pwfile", pw.name]
        cmd += ["--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **_demote(user))  # type: ignore[call-overload]
        if done.returncode != 0:
            raise StackError(f"initdb failed: {done.stderr.strip()[-500:]}")
    finally:
        Path(pw.name).unlink(missing_ok=True)


def start(home: Path, port: int, deadline: float) -> Service:
    """Start (initialising on first use) the cluster on 127.0.0.1:``port``; wait until it answers."""
    user = _run_as()
    directory = data_dir(home)
    if not (directory / "data" / "PG_VERSION").exists():
        _initdb(directory, user)
    (directory / "data" / "postmaster.pid").unlink(missing_ok=True)  # left by a kill -9
    binary = bin_dir() / "postgres"
    log = home / "logs" / "postgres.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    if user is not None:
        os.chown(log, user.pw_uid, user.pw_gid)
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(directory),
        "wal_level": "logical",
        "max_replication_slots": "16",
        "max_wal_senders": "16",
        "fsync": "off",  # a throw-away dev cluster
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "TimeZone": "UTC",
    }
    cmd = [str(binary), "-D", str(directory / "data")] + [a for k, v in settings.items() for a in ("-c", f"{k}={v}")]
    if user is None:
        proc = spawn(cmd, log, home)
    else:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=directory,
                start_new_session=True, **_demote(user),  # type: ignore[call-overload]
            )  # fmt: skip
    service = Service("postgres", proc.pid, port, str(binary), str(log), stop_signal=int(signal.SIGINT))
    if not wait_port(port, deadline) or proc.poll() is not None:
        stop(service)
        raise StackError(f"PostgreSQL did not come up on 127.0.0.1:{port}; see {log}")
    _provision(port, deadline)
    return service


def dsn(port: int, *, user: str = DEV_USER, password: str = DEV_PASSWORD, database: str = DEV_DATABASE) -> str:
    return f"host=127.0.0.1 port={port} user={user} password={password} dbname={database} connect_timeout=5"


def _provision(port: int, deadline: float) -> None:
    """The dev role (may replicate) and the ``shop`` database; idempotent."""
    import psycopg2

    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            conn = psycopg2.connect(dsn(port, user=SUPERUSER, database="postgres"))
            break
        except psycopg2.OperationalError as exc:  # still starting up
            last = exc
            time.sleep(0.2)
    else:
        raise StackError(f"PostgreSQL on port {port} refused connections: {type(last).__name__}")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DEV_USER,))
        if cur.fetchone() is None:
            cur.execute(f"CREATE ROLE {DEV_USER} LOGIN SUPERUSER REPLICATION PASSWORD %s", (DEV_PASSWORD,))
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DEV_DATABASE,))
        if cur.fetchone() is None:
            cur.execute(f"CREATE DATABASE {DEV_DATABASE} OWNER {DEV_USER}")
    conn.close()


def create_database(port: int, name: str) -> None:
    """A further source database (tests of several sources); idempotent."""
    import psycopg2

    conn = psycopg2.connect(dsn(port, user=SUPERUSER, database="postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{name}" OWNER {DEV_USER}')
    conn.close()
