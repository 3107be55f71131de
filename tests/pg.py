"""A throwaway PostgreSQL server for tests: its own data folder in a temporary directory, listening on 127.0.0.1 and a
free port, with trust authentication for the user `wine`. It can be killed with SIGKILL, stopped and started again on
the same port and data, and it is always removed afterwards.

    with PostgresServer() as server:
        url = server.create_database("wine_nb")  # postgresql://wine@127.0.0.1:<port>/wine_nb

PostgreSQL refuses to run as root: as root the data folder is given to the `postgres` user and every server command
runs as that user (`runuser -u postgres -- ...`); as any other user the commands run directly."""
import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg


def _server_programs() -> Path:
    "Folder of initdb, pg_ctl and postgres: $WINE_NB_PG_BIN, else Debian's and Ubuntu's newest, else next to initdb."
    if given := os.environ.get("WINE_NB_PG_BIN"): return Path(given)
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if versions: return versions[-1].parent
    return Path(shutil.which("initdb") or "/usr/lib/postgresql/15/bin/initdb").parent


PG_BIN = _server_programs()  # initdb, pg_ctl, postgres
SERVER_USER = "postgres"  # the account the server runs as when the tests run as root


class PostgresError(RuntimeError):
    "The test server could not be set up, started or stopped; the message holds the end of its log."


def free_port() -> int:
    "A TCP port free on 127.0.0.1 right now."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    "True while process `pid` runs (a zombie, killed but not yet reaped by its parent, counts as gone)."
    try: state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError): return False
    return state not in ("Z", "X")


class PostgresServer:
    "A PostgreSQL server in a temporary folder on 127.0.0.1 (see the module's docstring); a context manager."
    def __init__(self,
                 bin_dir: Path = PG_BIN, # Folder of initdb, pg_ctl and postgres
                 user: str = "wine", # Superuser created by initdb (trust authentication, no password)
                 start_timeout: float = 30, # Seconds to wait for the server to accept connections
                ):
        self.bin_dir, self.user, self.start_timeout = Path(bin_dir), user, start_timeout
        self.port, self.root, self._owner = free_port(), None, None
        if not (self.bin_dir/"initdb").exists():
            raise PostgresError(f"no initdb in {self.bin_dir}: install PostgreSQL or set $WINE_NB_PG_BIN")
        if os.geteuid() == 0:
            try: self._owner = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PostgresError(f"running as root, and there is no {SERVER_USER!r} user to run PostgreSQL as: "
                                    "create it or run the tests as an ordinary user") from None

    @property
    def data(self) -> Path:
        "The server's data folder."
        assert self.root is not None, "the server is not set up: use `with PostgresServer() as server`"
        return self.root/"data"

    def url(self, database: str = "postgres", # Database to connect to
            password: str|None = None, # Put in the URL (the server does not check it: trust authentication)
           ) -> str:
        "A libpq URL of a database on this server."
        secret = f":{password}" if password else ""
        return f"postgresql://{self.user}{secret}@127.0.0.1:{self.port}/{database}"

    def _command(self, *args) -> list:
        "A server command, run as the server's user when the tests run as root."
        return ["runuser", "-u", SERVER_USER, "--", *map(str, args)] if self._owner else list(map(str, args))

    def _run(self, *args, timeout: float = 60):
        done = subprocess.run(self._command(*args), cwd=self.root, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise PostgresError(f"{Path(str(args[0])).name} failed ({done.returncode}): "
                                f"{done.stderr.strip()[-800:]}\n{self.log_tail()}")
        return done

    def setup(self) -> "PostgresServer":
        "Create the data folder with initdb, configured for loopback on `port`, and start the server."
        self.root = Path(tempfile.mkdtemp(prefix="wine_nb_pg_"))
        atexit.register(self.cleanup)  # a server is a process of its own: never leave one behind
        if self._owner: os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)
        self._run(self.bin_dir/"initdb", "-D", self.data, "-U", self.user, "--auth=trust", "-E", "UTF8", "--locale=C",
                  "--wal-segsize=1")  # 1 MB WAL files instead of 16: less to write and to remove
        settings = {"port": self.port, "listen_addresses": "'127.0.0.1'", "unix_socket_directories": f"'{self.root}'",
                    "fsync": "on", "max_connections": 30, "shared_buffers": "'16MB'"}
        with open(self.data/"postgresql.conf", "a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self.start()
        return self

    def log_tail(self, lines: int = 15) -> str:
        "The end of the server's log."
        log = self.root/"server.log" if self.root else None
        if log is None or not log.exists(): return "(no server log)"
        return "server log:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def postmaster_pid(self) -> int|None:
        "PID of the running postmaster, from postmaster.pid; None if the server is not running."
        try: pid = int((self.data/"postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError): return None
        return pid if _alive(pid) else None

    def start(self):
        """Start the server on the same port and data and wait until it accepts connections. After `kill9` the old
        server's processes may still hold its shared memory for a moment: the start is retried until the timeout."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                self._run(self.bin_dir/"pg_ctl", "start", "-D", self.data, "-l", self.root/"server.log", "-w",
                          "-t", max(1, int(deadline - time.monotonic())))
                break
            except PostgresError:
                if time.monotonic() > deadline: raise
                time.sleep(0.2)
        self._wait_ready(deadline)

    def _wait_ready(self, deadline: float):
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2): return
            except psycopg.OperationalError as e:
                if time.monotonic() > deadline:
                    raise PostgresError(f"the server does not accept connections: {e}\n{self.log_tail()}") from None
                time.sleep(0.1)

    def stop(self, mode: str = "fast", # pg_ctl's shutdown mode: smart, fast or immediate
            ):
        "Stop the server cleanly (waits until it is down)."
        if self.postmaster_pid() is None: return
        self._run(self.bin_dir/"pg_ctl", "stop", "-D", self.data, "-m", mode, "-w", "-t", "30")

    def kill9(self):
        "Kill the postmaster with SIGKILL, as a crash would; returns once it is gone (its backends follow it)."
        pid = self.postmaster_pid()
        if pid is None: raise PostgresError("kill9: the server is not running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline: time.sleep(0.01)

    def create_database(self, name: str, # Name of the new database (letters, digits and underscores)
                       ) -> str: # Its URL
        "Create a database owned by `user`; its URL."
        if not name.replace("_", "").isalnum(): raise ValueError(f"database name {name!r}: use letters, digits, _")
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def cleanup(self):
        "Stop the server (killing it if it does not stop) and remove its folder."
        atexit.unregister(self.cleanup)
        if self.root is None: return
        try: self.stop("immediate")
        except (PostgresError, subprocess.TimeoutExpired):
            if (pid := self.postmaster_pid()) is not None: os.kill(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> "PostgresServer":
        try: return self.setup()
        except BaseException: self.cleanup(); raise

    def __exit__(self, *exc): self.cleanup()
