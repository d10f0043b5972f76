"""Single sign-on against a real OpenID Connect provider (django-oauth-toolkit with OIDC, in its
own process and database): RP redirect → provider login and consent → callback → signed in
as the account mapped by ID number or mobile; refusals with a Chinese message, all audited."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import pytest
import requests
from django.contrib.auth import get_user_model
from django.urls import reverse

from yiwang.core.models import AuditEntry
from yiwang.org import oidc

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "Province@2026"
ALICE_ID = "330206198503121237"
CLAIMS = {
    "p_alice": {"id_number": ALICE_ID, "phone_number": "13800138002"},  # bob's phone: the ID number wins
    "p_bob": {"phone_number": "+86 138-0013-8002"},  # bob's mobile, spelt the provincial way
    "p_carol": {"phone_number": "13800138003"},
    "p_nobody": {"id_number": "330206199001011234", "phone_number": "13700000000"},
}


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    """The provider's base URL; one process for the module (its start is most of the time)."""
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        OIDC_PROVIDER_DB=str(tmp_path_factory.mktemp("oidc") / "provider.sqlite3"),
        OIDC_PROVIDER_CLAIMS=json.dumps(CLAIMS),
        OIDC_PROVIDER_CLIENT=json.dumps({
            "client_id": "yiwang", "client_secret": "s3cret-of-the-district", "password": PASSWORD,
            "redirect_uri": "http://testserver" + reverse("org:oidc_callback"),
        }),
    )  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "yiwang.org.tests.oidc_provider.serve"], cwd=ROOT, env=env, stdout=subprocess.PIPE
    )
    try:
        line = process.stdout.readline().decode()
        assert line.startswith("PORT "), f"the test provider did not start: {line!r}"
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def sso(settings, provider):
    settings.OIDC_RP_CLIENT_ID = "yiwang"
    settings.OIDC_RP_CLIENT_SECRET = "s3cret-of-the-district"
    settings.OIDC_OP_DISCOVERY_URL = f"{provider}/o/.well-known/openid-configuration"
    for name in ("AUTHORIZATION", "TOKEN", "USER", "JWKS"):
        setattr(settings, f"OIDC_OP_{name}_ENDPOINT", "")  # all from the discovery document
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, oidc.BACKEND]
    oidc._discovery.cache_clear()
    return provider


def sign_in(client, username: str, *, password: str = PASSWORD):
    """The whole authorization-code flow; returns yiwang's answer to the callback."""
    start = client.get(reverse("org:oidc_login"))
    assert start.status_code == 302 and "code_challenge=" in start["Location"]
    browser = requests.Session()
    page = browser.get(start["Location"])  # not signed in at the provider: its login page
    assert "/accounts/login/" in page.url
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    nxt = dict(parse_qsl(urlparse(page.url).query))["next"]
    page = browser.post(page.url, data={"csrfmiddlewaretoken": token, "username": username, "password": password,
                                        "next": nxt})  # fmt: skip
    assert 'name="allow"' in page.text, page.text[:500]  # the consent page
    fields = {
        k: html.unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)
    }
    answer = browser.post(page.url, data={**fields, "allow": "Authorize"}, allow_redirects=False)
    callback = urlparse(answer.headers["Location"])
    assert callback.path == reverse("org:oidc_callback")
    return client.get(callback.path, dict(parse_qsl(callback.query)), follow=True)


def signed_in_as(client):
    from django.contrib.auth import get_user

    return get_user(client)


class TestSignIn:
    def test_mapped_by_id_number(self, client, sso, alice, bob):
        alice.id_number = ALICE_ID
        alice.save(update_fields=["id_number"])
        response = sign_in(client, "p_alice")
        assert signed_in_as(client) == alice
        assert response.redirect_chain[-1][0] == reverse("core:workbench")
        entry = AuditEntry.objects.filter(action="org.login").latest("id")
        assert entry.actor_id == alice.pk and entry.changes["method"] == "oidc"
        assert entry.changes["matched"] == "id_number" and entry.changes["subject"]

    def test_mapped_by_normalised_mobile(self, client, sso, bob):
        sign_in(client, "p_bob")
        assert signed_in_as(client) == bob
        assert AuditEntry.objects.filter(action="org.login").latest("id").changes["matched"] == "mobile"

    def test_unknown_identity_is_refused_and_no_account_is_created(self, client, sso, alice):
        users = get_user_model().objects.count()
        response = sign_in(client, "p_nobody")
        assert not signed_in_as(client).is_authenticated
        assert "没有与您的身份证号或手机号对应的账号" in response.content.decode()
        assert get_user_model().objects.count() == users
        entry = AuditEntry.objects.get(action="org.login.refused")
        assert entry.changes["reason"] == "no_account" and entry.actor_id is None

    def test_inactive_account_is_refused(self, client, sso, carol):
        carol.mobile = "13800138003"
        carol.is_active = False
        carol.save(update_fields=["mobile", "is_active"])
        response = sign_in(client, "p_carol")
        assert not signed_in_as(client).is_authenticated and "已停用" in response.content.decode()
        assert AuditEntry.objects.get(action="org.login.refused").changes["reason"] == "inactive"

    def test_a_locked_account_stays_locked(self, client, sso, alice, settings):
        alice.id_number = ALICE_ID
        alice.save(update_fields=["id_number"])
        for _ in range(settings.AXES_FAILURE_LIMIT):
            client.post(reverse("org:login"), {"username": "alice", "password": "wrong-password"})
        response = sign_in(client, "p_alice")
        assert not signed_in_as(client).is_authenticated and "锁定" in response.content.decode()
        assert AuditEntry.objects.get(action="org.login.refused").changes["reason"] == "locked"


class TestConfiguration:
    def test_button_only_when_configured(self, client, settings):
        settings.OIDC_RP_CLIENT_ID = ""
        assert "省统一身份认证登录" not in client.get(reverse("org:login")).content.decode()
        assert client.get(reverse("org:oidc_login")).status_code == 404
        settings.OIDC_RP_CLIENT_ID = "yiwang"
        settings.OIDC_OP_AUTHORIZATION_ENDPOINT = "https://sso.example.gov.cn/authorize"
        page = client.get(reverse("org:login")).content.decode()
        assert "省统一身份认证登录" in page and reverse("org:oidc_login") in page
