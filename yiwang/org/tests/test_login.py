"""Login by username or mobile, lock-out after failures, TOTP for platform admins."""

import pytest
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from conftest import PASSWORD

pytestmark = pytest.mark.django_db


def login(client, username, password=PASSWORD):
    return client.post(reverse("org:login"), {"username": username, "password": password})


class TestLogin:
    def test_username(self, client, alice):
        response = login(client, "alice")
        assert response.status_code == 302
        assert response["Location"] == reverse("core:workbench")

    def test_mobile_with_spaces(self, client, alice):
        assert login(client, "138 0013 8001").status_code == 302

    def test_wrong_password_chinese_message(self, client, alice):
        response = login(client, "alice", "wrong-password")
        assert response.status_code == 200
        assert "用户名（手机号）或密码错误" in response.content.decode()

    def test_lockout_after_repeated_failures(self, client, alice, settings):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            login(client, "alice", "wrong-password")
        response = login(client, "alice")  # even the right password is refused now
        assert response.status_code == 429
        assert "锁定" in response.content.decode()

    def test_inactive_user_refused(self, client, alice):
        alice.is_active = False
        alice.save()
        assert login(client, "alice").status_code == 200

    def test_system_accounts_cannot_log_in(self, client, units):
        from yiwang.org import services

        system = services.system_create(actor=None, name="S", unit=units["edu"])
        system.account.set_password(PASSWORD)
        system.account.save()
        assert login(client, system.account.username).status_code == 200

    def test_workbench_requires_login(self, client):
        response = client.get(reverse("core:workbench"))
        assert response.status_code == 302
        assert reverse("org:login") in response["Location"]


class TestAdminTotp:
    def test_admin_is_sent_to_setup_then_verified(self, client, admin, settings):
        settings.OTP_TOTP_THROTTLE_FACTOR = 0  # no back-off between the two attempts below
        assert login(client, "admin").status_code == 302
        response = client.get(reverse("core:workbench"))
        assert response.status_code == 302 and reverse("org:otp_setup") in response["Location"]
        # the API is closed too until TOTP is passed
        assert client.get("/api/org/units/").status_code == 403
        page = client.get(reverse("org:otp_setup"))
        assert page.status_code == 200 and "<svg" in page.content.decode()
        device = TOTPDevice.objects.get(user=admin)
        bad = client.post(reverse("org:otp_setup"), {"token": "000000" if totp(device.bin_key) else "111111"})
        assert bad.status_code == 200
        code = f"{totp(device.bin_key):06d}"
        response = client.post(reverse("org:otp_setup"), {"token": code})
        assert response.status_code == 302
        assert client.get(reverse("core:workbench")).status_code == 200

    def test_admin_with_device_must_verify(self, client, admin, settings):
        settings.OTP_TOTP_THROTTLE_FACTOR = 0
        device = TOTPDevice.objects.create(user=admin, name="x", confirmed=True)
        login(client, "admin")
        response = client.get(reverse("org:unit_list"))
        assert reverse("org:otp_verify") in response["Location"]
        assert client.post(reverse("org:otp_verify"), {"token": "abc"}).status_code == 200
        response = client.post(
            reverse("org:otp_verify") + "?next=/org/units/", {"token": f"{totp(device.bin_key):06d}"}
        )
        assert response.status_code == 302 and response["Location"] == "/org/units/"

    def test_staff_needs_no_totp(self, client, alice):
        login(client, "alice")
        assert client.get(reverse("core:workbench")).status_code == 200


class TestPasswordChange:
    def test_change_and_audit(self, alice_client, alice):
        from yiwang.core.models import AuditEntry

        response = alice_client.post(
            reverse("org:password_change"),
            {"old_password": PASSWORD, "new_password1": "Another-pass-2026", "new_password2": "Another-pass-2026"},
        )
        assert response.status_code == 302
        alice.refresh_from_db()
        assert alice.check_password("Another-pass-2026")
        assert AuditEntry.objects.filter(action="org.person.password_change", actor_id=alice.pk).exists()

    def test_mismatch_keeps_old_password(self, alice_client, alice):
        response = alice_client.post(
            reverse("org:password_change"),
            {"old_password": PASSWORD, "new_password1": "Another-pass-2026", "new_password2": "different-2026"},
        )
        assert response.status_code == 200
        alice.refresh_from_db()
        assert alice.check_password(PASSWORD)


class TestLockoutKey:
    """Every spelling of an account counts toward one lock (issue 10 item 1)."""

    SPELLINGS = ["1-3800138001", "138 0013 8001", "+8613800138001", "008613800138001", "13800138001"]

    def test_each_spelling_counts_toward_one_lock(self, client, alice, settings):
        settings.AXES_FAILURE_LIMIT = 5
        for spelling in self.SPELLINGS:
            assert login(client, spelling, "wrong-password").status_code in (200, 429)
        # locked for every spelling and for the username itself, even with the right password
        for spelling in [*self.SPELLINGS, "alice"]:
            response = login(client, spelling)
            assert response.status_code == 429, spelling
            assert "锁定" in response.content.decode()

    def test_attempts_recorded_under_the_account(self, client, alice):
        from axes.models import AccessAttempt

        login(client, "+86 138-0013-8001", "wrong-password")
        login(client, "alice", "wrong-password")
        assert list(AccessAttempt.objects.values_list("username", "failures_since_start")) == [("alice", 2)]

    def test_success_in_one_spelling_does_not_reset_another_address(self, client, alice, settings):
        settings.AXES_FAILURE_LIMIT = 5
        for _ in range(4):
            client.post(
                reverse("org:login"),
                {"username": "0086 13800138001", "password": "wrong"},
                REMOTE_ADDR="10.9.9.9",
            )
        # alice herself logs in from her desk with another spelling
        assert login(client, "138 0013 8001").status_code == 302
        client.logout()
        # the attacker's failures still count: one more guess locks the account
        client.post(reverse("org:login"), {"username": "+8613800138001", "password": "x"}, REMOTE_ADDR="10.9.9.9")
        assert login(client, "alice").status_code == 429

    def test_unknown_number_spellings_share_one_key(self, client, units):
        from axes.models import AccessAttempt

        login(client, "139 0574 0030", "x")
        login(client, "+8613905740030", "x")
        assert list(AccessAttempt.objects.values_list("username", "failures_since_start")) == [("13905740030", 2)]

    def test_address_locked_after_failures_on_many_accounts(self, client, alice, bob, settings):
        settings.YIWANG_LOGIN_IP_FAILURE_LIMIT = 6
        for i in range(6):
            login(client, f"nobody{i}", "x")  # six accounts, one failure each
        response = login(client, "bob")  # a right password from the same address
        assert response.status_code == 429
        other = client.post(reverse("org:login"), {"username": "bob", "password": PASSWORD}, REMOTE_ADDR="10.1.1.1")
        assert other.status_code == 302  # bob's account itself is not locked

    def test_own_success_does_not_clear_address_count(self, client, alice, bob, settings):
        settings.AXES_FAILURE_LIMIT = 5
        for _ in range(4):
            login(client, "bob", "x")
        assert login(client, "alice").status_code == 302  # the guesser's own account
        client.logout()
        login(client, "13800138002", "x")
        assert login(client, "bob").status_code == 429
