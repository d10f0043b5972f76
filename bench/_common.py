"""Helpers shared by the bench scripts: throwaway PostgreSQL databases, env, result files.

Not a benchmark itself. Everything here talks only to 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
PYTHON = PROJECT_DIR / ".venv" / "bin" / "python"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def check_local_url(database_url: str) -> dict:
    """Parse a postgres:// URL and refuse anything that is not on this machine."""
    url = urlparse(database_url)
    if url.scheme not in ("postgres", "postgresql"):
        raise SystemExit(f"--database-url must be postgres://..., got {url.scheme!r}")
    host = url.hostname or "127.0.0.1"
    if host not in LOCAL_HOSTS:
        raise SystemExit(f"refusing non-local database host {host!r} (bench only talks to 127.0.0.1)")
    name = unquote(url.path.lstrip("/"))
    if not name or name in ("postgres", "template0", "template1"):
        raise SystemExit(f"refusing to drop database {name!r}: give a throwaway name")
    return {
        "host": host,
        "port": url.port or 5432,
        "user": unquote(url.username or "postgres"),
        "password": unquote(url.password) if url.password else None,
        "dbname": name,
    }


def recreate_database(database_url: str) -> None:
    """DROP (forcing other sessions off) and CREATE the database named in the URL."""
    import psycopg
    from psycopg import sql

    p = check_local_url(database_url)
    kwargs = {"host": p["host"], "port": p["port"], "user": p["user"], "dbname": "postgres", "connect_timeout": 10}
    if p["password"]:
        kwargs["password"] = p["password"]
    with psycopg.connect(autocommit=True, **kwargs) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(p["dbname"])))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(p["dbname"])))


def server_version(database_url: str) -> str:
    import psycopg

    p = check_local_url(database_url)
    kwargs = {k: p[k] for k in ("host", "port", "user", "dbname")}
    if p["password"]:
        kwargs["password"] = p["password"]
    with psycopg.connect(connect_timeout=10, **kwargs) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def base_env(database_url: str, var_dir: Path) -> dict[str, str]:
    """Environment for manage.py / gunicorn: our database, a private var dir (no writes to var/)."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "YIWANG_VAR_DIR": str(var_dir),
            "DJANGO_SETTINGS_MODULE": "yiwang.settings",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def manage(args: list[str], env: dict[str, str], *, timeout: float = 600) -> None:
    """Run ``manage.py ARGS``; raise with its output if it fails."""
    started = time.monotonic()
    proc = subprocess.run(
        [str(PYTHON), "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"manage.py {' '.join(args)} failed (exit {proc.returncode})")
    log(f"manage.py {' '.join(args)}: ok ({time.monotonic() - started:.1f}s)")


_T0 = time.monotonic()


def log(message: str) -> None:
    # elapsed time, not the wall clock: django.setup() switches the process to TIME_ZONE
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", flush=True)


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 onward), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


class CpuSampler:
    """CPU seconds (user + system) used by a changing set of processes during a run.

    ``match(pid, ppid, cmdline)`` picks the processes. /proc is scanned every ``interval``
    seconds so that processes which start during the run (a database backend opened by a
    reconnect) are counted too; one that exits loses at most its last interval.
    """

    def __init__(self, match, *, interval: float = 0.5, max_seconds: float = 7200) -> None:
        import threading

        self.match, self.interval, self.max_seconds = match, interval, max_seconds
        self.tick = os.sysconf("SC_CLK_TCK")
        self.baseline: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _scan(self, first: bool) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            fields = _proc_stat(pid)
            if fields is None:
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if not self.match(pid, int(fields[1]), cmdline):
                continue
            cpu = int(fields[11]) + int(fields[12])
            self.baseline.setdefault(pid, cpu if first else 0)
            self.last[pid] = cpu

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.wait(self.interval) and time.monotonic() < deadline:  # bounded
            self._scan(first=False)

    def __enter__(self) -> CpuSampler:
        self._scan(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._scan(first=False)

    @property
    def seconds(self) -> float:
        return sum(self.last[pid] - self.baseline[pid] for pid in self.last) / self.tick

    @property
    def processes(self) -> int:
        return len(self.last)


def children_of(parent: int):
    return lambda pid, ppid, cmdline: ppid == parent


def postgres_backends_of(database_url: str):
    """Server processes serving the bench database ("postgres: USER DB HOST(PORT) ...")."""
    p = check_local_url(database_url)
    needle = f" {p['user']} {p['dbname']} "
    return lambda pid, ppid, cmdline: cmdline.startswith("postgres:") and needle in cmdline + " "


def machine_info() -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_results(name: str, payload: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}-{dt.date.today():%Y-%m-%d}.json"
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return path


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(pct / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line, "| " + " | ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True)) + " |", line]
    for row in cells[1:]:
        out.append(
            "| "
            + " | ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(row, widths, strict=True))
            + " |"
        )
    out.append(line)
    return "\n".join(out)


def _numeric(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True
