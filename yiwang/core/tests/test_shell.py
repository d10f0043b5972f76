"""Workbench, healthz, schema, CSP and the real Celery worker."""

import os
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

pytestmark = pytest.mark.django_db


class TestWorkbench:
    def test_tiles_and_figures(self, alice_client, alice, bob):
        response = alice_client.get(reverse("core:workbench"))
        assert response.status_code == 200
        html = response.content.decode()
        assert "工作台" in html and "组织机构" in html and "规划中" in html
        org_figures = dict((label, value) for label, value, _url in response.context["tile_figures"]["org"])
        assert org_figures["人员"] == 1  # alice sees only her own unit's people

    def test_english_available(self, alice_client):
        alice_client.post("/i18n/setlang/", {"language": "en", "next": "/"})
        html = alice_client.get("/").content.decode()
        assert '<html lang="en">' in html
        assert "<h1" in html and "Workbench" in html and "工作台" not in html
        # the script's own strings come translated from the template
        assert 'data-i18n-close="Close"' in html

    def test_script_strings_come_from_the_template(self, alice_client):
        html = alice_client.get("/").content.decode()
        assert 'data-i18n-close="关闭"' in html and "data-i18n-offline=" in html

    def test_csp_header_allows_no_inline_script(self, alice_client):
        csp = alice_client.get(reverse("core:workbench"))["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp

    def test_no_external_urls_in_pages(self, alice_client):
        html = alice_client.get(reverse("core:workbench")).content.decode()
        for marker in ("http://", "https://", "//cdn"):
            assert marker not in html.replace("http://www.w3.org", "")


class TestHealthz:
    def test_ok(self, client):
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json()["checks"] == {"database": "ok", "broker": "ok"}

    def test_broker_down_is_503(self, client, monkeypatch):
        from kombu import Connection

        from yiwang.celery import app

        # Patch only the connection healthz opens: changing app.conf would leak into the
        # app's cached producer pool and break later tests in the same process.
        monkeypatch.setattr(app, "connection_for_write", lambda: Connection("redis://127.0.0.1:1/0"))
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["checks"]["broker"].startswith("error")


class TestApiSchema:
    def test_schema_and_docs(self, alice_client):
        schema = alice_client.get("/api/schema/")
        assert schema.status_code == 200 and b"/api/org/units/" in schema.content
        docs = alice_client.get("/api/docs/")
        assert docs.status_code == 200
        assert b"https://" not in docs.content  # Swagger UI from local static files


@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_a_task(tmp_path):
    """The embedded default is a real worker process on the configured broker, not eager mode."""
    assert not getattr(django_settings, "CELERY_TASK_ALWAYS_EAGER", False)
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="yiwang.settings")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "yiwang",
            "worker",
            "-P",
            "solo",
            "-l",
            "warning",
            "-Q",
            "celery",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"test-{os.getpid()}@%h",
        ],
        env=env,
        cwd=django_settings.BASE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from yiwang.core.tasks import ping

        result = ping.delay()
        deadline = time.monotonic() + 60
        while not result.ready() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert result.get(timeout=1) == "pong"
    finally:
        worker.terminate()
        worker.wait(timeout=20)
