"""bin/demo stops everything it started within 10 s of a TERM (issue 10 item 16).

The Celery worker with embedded beat used to hang after "beat: Shutting down" and needed KILL.
The script runs here on an empty database in a temporary var directory (DEMO_DATA=0) on free
ports, with none of the test run's servers (its own SQLite database and SQLite broker).
"""

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SERVER_SETTINGS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "YIWANG_")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _running(groups: set[int]) -> list[str]:
    """Processes of these process groups that are not zombies (init reaps those)."""
    out = subprocess.run(["ps", "-e", "-o", "pgid=,pid=,stat=,args="], capture_output=True, text=True).stdout
    rows = [line.split(None, 3) for line in out.splitlines()]
    return [" ".join(r) for r in rows if len(r) == 4 and int(r[0]) in groups and not r[2].startswith("Z")]


def _restore_signals():
    # A shell started from a non-interactive shell's background job inherits SIGINT ignored,
    # and a signal ignored on entry cannot be trapped: start bin/demo as a terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


@pytest.mark.skipif(not (ROOT / ".venv/bin/celery").exists(), reason="bin/demo needs the project's .venv")
def test_demo_stops_everything_within_10_s_of_term(tmp_path):
    port, sms_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(SERVER_SETTINGS)}
    env.update(PORT=str(port), SMS_PORT=str(sms_port), DEMO_DATA="0", YIWANG_VAR_DIR=str(tmp_path))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = (tmp_path / "demo.out").open("w")
    demo = subprocess.Popen(
        [str(ROOT / "bin/demo")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_restore_signals,
    )
    groups: set[int] = set()
    try:
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                assert demo.poll() is None, (tmp_path / "demo.out").read_text()
                time.sleep(0.3)
        else:
            pytest.fail("bin/demo did not answer /healthz within 25 s")
        children = subprocess.run(
            ["ps", "-o", "pgid=", "--ppid", str(demo.pid)], capture_output=True, text=True
        ).stdout.split()
        groups = {int(g) for g in children}
        assert len(groups) == 3  # the fake SMS gateway, Celery (worker + beat), runserver
        assert groups.isdisjoint({os.getpgid(demo.pid)})  # Ctrl+C reaches only the script
        worker = [row for row in _running(groups) if "celery" in row]
        assert len(worker) >= 3  # its main process, pool and beat: the ones that used to hang

        started = time.monotonic()
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=15)
        took = time.monotonic() - started
        assert took < 10, f"bin/demo took {took:.1f} s to stop"
        assert demo.returncode == 143
        assert _running(groups) == []
        assert "已停止" in (tmp_path / "demo.out").read_text()
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
