#!/usr/bin/env python
"""HTTP throughput and latency of yiwang under gunicorn on PostgreSQL with 10,000 people.

Builds a throwaway database (drop + create + migrate + demo units + bulk people), starts
``gunicorn yiwang.wsgi -w 4 -b 127.0.0.1:8765`` with production settings (DEBUG=0), logs in
as the demo user ``leader`` and measures, over --duration seconds with --concurrency
connections:

  (a) GET /                   workbench page, session cookie
  (b) GET /api/org/people/    people API, session cookie (leader sees all 10,000)
  (c) GET /api/org/people/    people API, ``Authorization: Api-Key ...`` (org:read key of a
                              consumer system on the district unit)

Load comes from wrk (with bench/wrk_report.lua) when installed, else from a Python thread
load generator using keep-alive http.client connections. Only 127.0.0.1 is contacted.

Run from the project directory:  .venv/bin/python bench/http_bench.py [--duration 20] ...
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    BENCH_DIR,
    PROJECT_DIR,
    CpuSampler,
    base_env,
    check_local_url,
    children_of,
    log,
    machine_info,
    manage,
    percentile,
    postgres_backends_of,
    recreate_database,
    server_version,
    table,
    write_results,
)

HOST = "127.0.0.1"
DEMO_USER, DEMO_PASSWORD = "leader", "Yiwang@2026"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国文斌海波宁晨欣怡浩宇子轩梓涵思雨佳琪俊杰志"


# --- setup: database and data ---------------------------------------------------------------


def seed(target_people: int) -> dict:
    """Demo units + people until ``target_people`` non-system people exist; an API key."""
    from django.contrib.auth.hashers import make_password
    from django.db import connection, transaction

    from yiwang.core.search import index_text
    from yiwang.org import demo, services
    from yiwang.org.models import Post, Role, Unit, User

    started = time.monotonic()
    demo.load()
    units = list(Unit.objects.order_by("path"))
    staff = Role.objects.get(code=Role.STAFF)
    have = User.objects.filter(is_system=False).count()
    missing = max(0, target_people - have)
    rng = random.Random(2026)
    next_n = User.objects.filter(username__startswith="bench").count() + 1
    batch = 1000
    created = 0
    while created < missing:  # bounded: at most ceil(missing / batch) rounds
        size = min(batch, missing - created)
        users = []
        for n in range(next_n, next_n + size):
            user = User(
                username=f"bench{n:05d}",
                full_name=rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2)))),
                mobile=f"139{n:08d}",
                password=make_password(None),  # unusable, like person_create without a password
            )
            # bulk_create sends no pre_save signal: fill search_text as core.search would.
            user.search_text = index_text(*(getattr(user, name, "") for name in User.SEARCH_FIELDS))
            users.append(user)
        with transaction.atomic():
            User.objects.bulk_create(users, batch_size=batch)
            Post.objects.bulk_create(
                [
                    Post(user=u, unit=units[(u.pk or 0) % len(units)], role=staff, title="科员", is_primary=True)
                    for u in users
                ],
                batch_size=batch,
            )
        next_n += size
        created += size
    with connection.cursor() as cursor:  # fresh planner statistics, as autovacuum would give
        cursor.execute("ANALYZE")
    district = Unit.objects.get(code="BL")
    system = services.system_create(actor=None, name="压测接入系统", unit=district, description="bench/http_bench.py")
    _key, raw_key = services.api_key_issue(actor=None, system=system, name="bench", scopes=["org:read"])
    return {
        "people": User.objects.filter(is_system=False).count(),
        "people_created_by_bench": created,
        "units": len(units),
        "active_posts": Post.objects.filter(active=True).count(),
        "seed_seconds": round(time.monotonic() - started, 1),
        "api_key": raw_key,
    }


def query_diagnostics(raw_key: str) -> dict:
    """In-process (Django test client): SQL queries and SQL time per request, to spot N+1s."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from yiwang.org.models import User

    session = Client()
    session.force_login(User.objects.get(username=DEMO_USER), backend="yiwang.org.backends.UsernameOrMobileBackend")
    keyed = Client(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    cases = [
        ("GET / (session)", session, "/"),
        ("GET /api/org/people/ (session)", session, "/api/org/people/"),
        ("GET /api/org/people/?page_size=100 (session)", session, "/api/org/people/?page_size=100"),
        ("GET /api/org/people/ (api key)", keyed, "/api/org/people/"),
        ("GET /api/org/people/?page_size=100 (api key)", keyed, "/api/org/people/?page_size=100"),
    ]
    out = {}
    for label, client, path in cases:
        client.get(path)  # warm caches (templates, jieba, url resolver)
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.get(path)
            elapsed = time.perf_counter() - started
        times = [float(q["time"]) for q in ctx.captured_queries]
        slowest = max(ctx.captured_queries, key=lambda q: float(q["time"])) if times else None
        out[label] = {
            "status": response.status_code,
            "queries": len(times),
            "sql_ms": round(sum(times) * 1000, 1),
            "request_ms": round(elapsed * 1000, 1),
            "slowest_ms": round(float(slowest["time"]) * 1000, 1) if slowest else None,
            "slowest_sql": slowest["sql"][:400] if slowest else None,
            "all_sql": [[round(float(q["time"]) * 1000, 1), q["sql"][:300]] for q in ctx.captured_queries],
        }
    connection.close()
    return out


# --- the server ----------------------------------------------------------------------------


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


def request(port: int, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    conn = http.client.HTTPConnection(HOST, port, timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def cookies_from(headers) -> dict[str, str]:
    jar: dict[str, str] = {}
    for raw in headers.get_all("Set-Cookie") or []:
        cookie = SimpleCookie()
        cookie.load(raw)
        jar.update({name: morsel.value for name, morsel in cookie.items()})
    return jar


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:  # bounded by the deadline
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode} before /healthz answered")
        try:
            status, _headers, body = request(port, "GET", "/healthz")
            last = f"{status} {body[:200]!r}"
            if status == 200:
                return json.loads(body)
            checks = json.loads(body).get("checks", {})
            if status == 503 and checks.get("database") == "ok":
                log(f"/healthz 503 but the database is ok ({checks}); going on")
                return json.loads(body)
        except (OSError, http.client.HTTPException, ValueError) as error:
            last = repr(error)
        time.sleep(0.5)
    raise RuntimeError(f"/healthz not healthy after {timeout:.0f}s: {last}")


def login(port: int) -> str:
    """POST the login form like a browser; returns the session cookie value."""
    status, headers, body = request(port, "GET", "/org/login/")
    if status != 200:
        raise RuntimeError(f"GET /org/login/ -> {status}")
    jar = cookies_from(headers)
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    if "csrftoken" not in jar or not match:
        raise RuntimeError("login page gave no csrftoken cookie / form token")
    form = urlencode(
        {"csrfmiddlewaretoken": match.group(1).decode(), "username": DEMO_USER, "password": DEMO_PASSWORD, "next": "/"}
    ).encode()
    status, headers, body = request(
        port,
        "POST",
        "/org/login/",
        headers={
            "Cookie": f"csrftoken={jar['csrftoken']}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": f"http://{HOST}:{port}/org/login/",
        },
        body=form,
    )
    jar.update(cookies_from(headers))
    if status != 302 or "sessionid" not in jar:
        raise RuntimeError(f"login as {DEMO_USER} failed: {status} {body[:300]!r}")
    return jar["sessionid"]


def stop(proc: subprocess.Popen | None) -> None:
    """Stop the gunicorn we started (by its pid; its process group only if it will not stop)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # our own session, started with start_new_session
        proc.wait(timeout=10)
    log(f"gunicorn stopped (exit {proc.returncode})")


# --- load generators -----------------------------------------------------------------------


def run_wrk(
    port: int, path: str, headers: dict, concurrency: int, duration: int, paths_file: Path | None = None
) -> dict:
    """wrk against ``path`` (or, with ``paths_file``, the paths listed in it, one per line)."""
    threads = max(1, min(concurrency, os.cpu_count() or 2))
    cmd = ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{duration}s", "--timeout", "10s", "--latency"]
    cmd += ["-s", str(BENCH_DIR / "wrk_report.lua")]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(f"http://{HOST}:{port}{path}")
    if paths_file is not None:
        cmd += ["--", str(paths_file)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-1000:]} {proc.stderr[-1000:]}")
    raw = json.loads(line[len("WRKJSON ") :])
    seconds = raw["duration_us"] / 1e6
    socket_errors = raw["err_connect"] + raw["err_read"] + raw["err_write"] + raw["err_timeout"]
    return {
        "tool": f"wrk -t{threads}",
        "requests": raw["requests"],
        "seconds": round(seconds, 2),
        "rps": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "p50_ms": round(raw["p50_us"] / 1000, 1),
        "p90_ms": round(raw["p90_us"] / 1000, 1),
        "p99_ms": round(raw["p99_us"] / 1000, 1),
        "max_ms": round(raw["lat_max_us"] / 1000, 1),
        "errors": raw["non200"] + socket_errors,
        "non200": raw["non200"],
        "socket_errors": socket_errors,
        "bytes": raw["bytes"],
        "wrk_output": proc.stdout.replace(line, "").strip(),
    }


def run_python(port: int, path: str, headers: dict, concurrency: int, duration: float) -> dict:
    """One thread per connection; keep-alive http.client (reconnects when the server closes)."""
    max_per_thread = 5_000_000
    results: list[dict] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(concurrency + 1, timeout=30)
    deadline_box: list[float] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        latencies: list[float] = []
        errors = socket_errors = received = 0
        start_gate.wait()
        deadline = deadline_box[0]
        for _ in range(max_per_thread):  # bounded in count and by the deadline
            began = time.perf_counter()
            if began >= deadline:
                break
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                body = response.read()
                received += len(body)
                latencies.append(time.perf_counter() - began)
                if response.status != 200:
                    errors += 1
                if response.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                socket_errors += 1
                conn.close()
                time.sleep(0.01)
        conn.close()
        with lock:
            results.append({"lat": latencies, "non200": errors, "socket_errors": socket_errors, "bytes": received})

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in workers:
        thread.start()
    started = time.perf_counter()
    deadline_box.append(started + duration)
    start_gate.wait()
    for thread in workers:
        thread.join(timeout=duration + 30)
    elapsed = time.perf_counter() - started
    lat = sorted(x for r in results for x in r["lat"])
    non200 = sum(r["non200"] for r in results)
    socket_errors = sum(r["socket_errors"] for r in results)
    return {
        "tool": f"python threads x{concurrency}",
        "requests": len(lat),
        "seconds": round(elapsed, 2),
        "rps": round(len(lat) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(percentile(lat, 50) * 1000, 1) if lat else None,
        "p90_ms": round(percentile(lat, 90) * 1000, 1) if lat else None,
        "p99_ms": round(percentile(lat, 99) * 1000, 1) if lat else None,
        "max_ms": round(lat[-1] * 1000, 1) if lat else None,
        "errors": non200 + socket_errors,
        "non200": non200,
        "socket_errors": socket_errors,
        "bytes": sum(r["bytes"] for r in results),
    }


# --- main ----------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark yiwang's workbench page and people API under gunicorn on PostgreSQL "
        "(drops and re-creates the --database-url database).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/yiwang_bench")
    parser.add_argument("--duration", type=int, default=20, help="seconds measured per endpoint")
    parser.add_argument("--concurrency", type=int, default=16, help="open connections")
    parser.add_argument("--people", type=int, default=10_000, help="people in the database")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--warmup", type=float, default=3, help="seconds of unmeasured load per endpoint")
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto", help="load generator")
    parser.add_argument("--reuse-db", action="store_true", help="keep an already seeded database (no drop)")
    args = parser.parse_args(argv)
    if not (1 <= args.duration <= 3600 and 1 <= args.concurrency <= 1024 and 1 <= args.people <= 1_000_000):
        parser.error("--duration 1..3600, --concurrency 1..1024, --people 1..1000000")
    check_local_url(args.database_url)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    elif tool == "wrk" and not shutil.which("wrk"):
        raise SystemExit("--tool wrk but wrk is not installed (apt-get install -y wrk)")
    if port_in_use(args.port):
        raise SystemExit(f"127.0.0.1:{args.port} is already in use; pick another --port")

    tmp = Path(tempfile.mkdtemp(prefix="yiwang-http-bench-"))
    var_dir, static_root = tmp / "var", tmp / "static"
    var_dir.mkdir()
    env = base_env(args.database_url, var_dir)
    proc = None
    try:
        if not args.reuse_db:
            log(f"re-creating database {check_local_url(args.database_url)['dbname']}")
            recreate_database(args.database_url)
            manage(["migrate", "--noinput"], env)

        os.environ.update({k: env[k] for k in ("DATABASE_URL", "YIWANG_VAR_DIR", "DJANGO_SETTINGS_MODULE")})
        import django

        django.setup()
        log(f"seeding demo units and people up to {args.people:,}")
        dataset = seed(args.people)
        raw_key = dataset.pop("api_key")
        log(f"dataset: {dataset}")
        log("query diagnostics (in-process test client)")
        diagnostics = query_diagnostics(raw_key)

        prod = dict(env)
        prod.update(
            {
                "DEBUG": "0",
                "SECRET_KEY": "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(60)),
                "ALLOWED_HOSTS": HOST,
                "SECURE_SSL_REDIRECT": "0",
                "YIWANG_ADMIN_2FA": "0",
                "STATIC_ROOT": str(static_root),
                "LOG_LEVEL": "WARNING",
            }
        )
        manage(["collectstatic", "--noinput"], prod)

        gunicorn_log = tmp / "gunicorn.log"
        cmd = [
            str(PROJECT_DIR / ".venv" / "bin" / "gunicorn"),
            "yiwang.wsgi",
            "-w",
            str(args.workers),
            "-b",
            f"{HOST}:{args.port}",
            "--error-logfile",
            str(gunicorn_log),
        ]
        log("starting " + " ".join(cmd[1:]))
        with open(tmp / "gunicorn.out", "wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=PROJECT_DIR, env=prod, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        health = wait_healthy(args.port, proc)
        session_id = login(args.port)
        log(f"logged in as {DEMO_USER}")

        targets = [
            ("(a) workbench", "session", "/", {"Cookie": f"sessionid={session_id}"}),
            ("(b) people API", "session", "/api/org/people/", {"Cookie": f"sessionid={session_id}"}),
            ("(c) people API", "api key", "/api/org/people/", {"Authorization": f"Api-Key {raw_key}"}),
        ]
        results = []
        for label, auth, path, headers in targets:
            status, _h, body = request(args.port, "GET", path, headers=headers)
            row = {"endpoint": label, "auth": auth, "path": path, "verify_status": status, "body_bytes": len(body)}
            if path.startswith("/api/") and status == 200:
                row["visible_count"] = json.loads(body).get("count")
            if status != 200:
                log(f"{label}: verification got {status}, not measured: {body[:200]!r}")
                row["error"] = f"verification returned {status}"
                results.append(row)
                continue
            if args.warmup > 0:
                run_python(args.port, path, headers, min(args.concurrency, args.workers), args.warmup)
            log(f"measuring {label} [{auth}] {path}: {args.duration}s, {args.concurrency} connections, {tool}")
            # CPU actually spent by the gunicorn workers and by their PostgreSQL backends:
            # per-request costs that hold even when other jobs share the machine.
            load_before = os.getloadavg()[0]
            with (
                CpuSampler(children_of(proc.pid)) as app_cpu,
                CpuSampler(postgres_backends_of(args.database_url)) as pg_cpu,
            ):
                if tool == "wrk":
                    row.update(run_wrk(args.port, path, headers, args.concurrency, args.duration))
                else:
                    row.update(run_python(args.port, path, headers, args.concurrency, args.duration))
            done = max(1, row["requests"])
            row["gunicorn_cpu_ms_per_req"] = round(app_cpu.seconds * 1000 / done, 2)
            row["postgres_cpu_ms_per_req"] = round(pg_cpu.seconds * 1000 / done, 2)
            row["postgres_backends_seen"] = pg_cpu.processes
            row["loadavg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            results.append(row)
        if proc.poll() is not None:
            log(f"warning: gunicorn exited during the run ({proc.returncode})")
    finally:
        stop(proc)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up yet
            pass
        for name in ("gunicorn.log", "gunicorn.out"):
            path = tmp / name
            if path.exists() and path.stat().st_size:
                tail = path.read_text(errors="replace")[-3000:]
                if "Traceback" in tail or "ERROR" in tail or "CRITICAL" in tail:
                    sys.stderr.write(f"--- {name} (tail) ---\n{tail}\n")
        shutil.rmtree(tmp, ignore_errors=True)

    payload = {
        "benchmark": "http_bench",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": {k: v for k, v in vars(args).items()},
        "load_tool": tool,
        "machine": machine_info(),
        "postgres": server_version(args.database_url),
        "gunicorn": f"-w {args.workers} sync workers",
        "dataset": dataset,
        "healthz": health,
        "query_diagnostics": diagnostics,
        "results": results,
    }
    out = write_results("http_bench", payload)

    print()
    print(
        f"yiwang HTTP bench: {dataset['people']:,} people, {dataset['units']} units; gunicorn -w {args.workers}; "
        f"{args.concurrency} connections x {args.duration}s; load: {tool}; {os.cpu_count()} CPUs"
    )
    rows = [
        [
            r["endpoint"],
            r["auth"],
            r.get("visible_count", ""),
            r.get("rps"),
            r.get("p50_ms"),
            r.get("p99_ms"),
            r.get("requests"),
            r.get("errors", r.get("error")),
            r.get("gunicorn_cpu_ms_per_req"),
            r.get("postgres_cpu_ms_per_req"),
        ]
        for r in results
    ]
    print(
        table(
            [
                "endpoint",
                "auth",
                "visible",
                "req/s",
                "p50 ms",
                "p99 ms",
                "requests",
                "errors",
                "app CPU ms/req",
                "PG CPU ms/req",
            ],
            rows,
        )
    )
    print("\nSQL per request (in-process, DEBUG test client):")
    print(
        table(
            ["request", "status", "queries", "SQL ms", "request ms", "slowest query ms"],
            [
                [k, v["status"], v["queries"], v["sql_ms"], v["request_ms"], v["slowest_ms"]]
                for k, v in diagnostics.items()
            ],
        )
    )
    print(f"\nJSON: {out.relative_to(PROJECT_DIR)}")
    return 0 if all("error" not in r and r.get("errors") == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
