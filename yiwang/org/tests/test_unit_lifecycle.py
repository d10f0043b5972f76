"""Unit merge and abolish (机构合并、撤销) and delegation, in the browser and through the API."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from yiwang.core.models import AuditEntry
from yiwang.org import services
from yiwang.org.models import Delegation, Post, Unit

pytestmark = pytest.mark.django_db


class TestAbolish:
    def test_empty_unit_abolished_and_audited(self, units):
        empty = services.unit_create(actor=None, name="临时专班", code="TMP", kind="office", parent=units["edu"])
        services.unit_abolish(actor=None, unit=empty, reason="区委编办〔2026〕3号")
        empty.refresh_from_db()
        assert empty.status == Unit.Status.ABOLISHED
        entry = AuditEntry.objects.get(action="org.unit.abolish", object_id=str(empty.pk))
        assert entry.changes["reason"] == [None, "区委编办〔2026〕3号"]

    def test_unit_with_people_or_children_is_refused(self, units, alice, roles):
        with pytest.raises(ValidationError, match="下级单位"):
            services.unit_abolish(actor=None, unit=units["edu"], reason="x")
        Post.objects.create(user=alice, unit=units["edu_office"], role=roles["staff"])
        with pytest.raises(ValidationError, match="在岗人员"):
            services.unit_abolish(actor=None, unit=units["edu_office"], reason="x")
        assert Unit.objects.get(pk=units["edu_office"].pk).is_active

    def test_reason_required_and_twice_refused(self, units):
        empty = services.unit_create(actor=None, name="临时专班", code="TMP", kind="office", parent=units["edu"])
        with pytest.raises(ValidationError):
            services.unit_abolish(actor=None, unit=empty, reason="  ")
        services.unit_abolish(actor=None, unit=empty, reason="文件")
        with pytest.raises(ValidationError, match="已合并或撤销"):
            services.unit_abolish(actor=None, unit=empty, reason="文件")
        with pytest.raises(ValidationError, match="已合并或撤销"):
            services.unit_merge(actor=None, unit=empty, into=units["edu"])


class TestPages:
    def test_staff_refused_on_get_and_post(self, alice_client, units):
        for name in ("org:unit_merge", "org:unit_abolish"):
            url = reverse(name, args=[units["edu"].pk])
            assert alice_client.get(url).status_code == 403
            assert alice_client.post(url, {"merged_into": units["fin"].pk, "reason": "x"}).status_code == 403
        assert Unit.objects.get(pk=units["edu"].pk).is_active

    def test_admin_merges_through_the_page(self, admin_client, units, alice):
        url = reverse("org:unit_merge", args=[units["edu_office"].pk])
        page = admin_client.get(url).content.decode()
        assert "并入单位" in page and "区财政局" in page
        response = admin_client.post(url, {"merged_into": units["edu"].pk})
        assert response.status_code == 302 and response["Location"] == reverse(
            "org:unit_detail", args=[units["edu"].pk]
        )
        office = Unit.objects.get(pk=units["edu_office"].pk)
        assert office.status == Unit.Status.MERGED and office.merged_into_id == units["edu"].pk

    def test_merge_into_own_subtree_not_offered(self, admin_client, units):
        response = admin_client.post(
            reverse("org:unit_merge", args=[units["edu"].pk]), {"merged_into": units["edu_office"].pk}
        )
        assert response.status_code == 200  # a form error, not a merge
        assert Unit.objects.get(pk=units["edu"].pk).is_active

    def test_abolish_page_shows_service_error(self, admin_client, units, alice):
        response = admin_client.post(reverse("org:unit_abolish", args=[units["edu"].pk]), {"reason": "文件"})
        assert response.status_code == 200 and "在岗人员" in response.content.decode()

    def test_detail_offers_the_actions_to_managers(self, admin_client, units):
        page = admin_client.get(reverse("org:unit_detail", args=[units["edu"].pk])).content.decode()
        assert reverse("org:unit_merge", args=[units["edu"].pk]) in page
        assert reverse("org:unit_abolish", args=[units["edu"].pk]) in page

    def test_detail_offers_no_actions_to_staff(self, alice_client, units):
        page = alice_client.get(reverse("org:unit_detail", args=[units["edu"].pk])).content.decode()
        assert reverse("org:unit_merge", args=[units["edu"].pk]) not in page


class TestApi:
    def test_merge(self, admin_client, units):
        response = admin_client.post(
            f"/api/org/units/{units['edu_office'].pk}/merge/",
            {"into": units["edu"].pk},
            content_type="application/json",
        )
        assert response.status_code == 200 and response.json()["status"] == "merged"

    def test_merge_into_unknown_unit_is_400(self, admin_client, units):
        response = admin_client.post(
            f"/api/org/units/{units['edu_office'].pk}/merge/", {"into": 999999}, content_type="application/json"
        )
        assert response.status_code == 400 and "into" in response.json()["error"]["details"]

    def test_abolish_refused_with_people_then_done(self, admin_client, units, alice):
        url = f"/api/org/units/{units['edu_office'].pk}/abolish/"
        Post.objects.create(user=alice, unit=units["edu_office"], role=alice.own_posts[0].role)
        response = admin_client.post(url, {"reason": "文件"}, content_type="application/json")
        assert response.status_code == 400 and "在岗人员" in response.json()["error"]["message"] + str(
            response.json()["error"]["details"]
        )
        Post.objects.filter(unit=units["edu_office"]).update(active=False)
        response = admin_client.post(url, {"reason": "文件"}, content_type="application/json")
        assert response.status_code == 200 and response.json()["status"] == "abolished"

    def test_staff_cannot_merge(self, alice_client, units):
        response = alice_client.post(
            f"/api/org/units/{units['edu'].pk}/merge/", {"into": units["edu"].pk}, content_type="application/json"
        )
        assert response.status_code == 403
        assert Unit.objects.get(pk=units["edu"].pk).is_active


class TestDelegationApi:
    def _body(self, delegate="138 0013 8002"):
        now = timezone.now()
        return {
            "delegate": delegate,
            "starts_at": now.isoformat(),
            "ends_at": (now + dt.timedelta(days=3)).isoformat(),
            "reason": "出差",
        }

    def test_create_list_revoke(self, alice_client, alice, bob):
        response = alice_client.post("/api/org/delegations/", self._body(), content_type="application/json")
        assert response.status_code == 201, response.json()
        data = response.json()
        assert data["principal"] == "alice" and data["delegate"] == "bob" and data["is_current"]
        assert [d["id"] for d in alice_client.get("/api/org/delegations/").json()["results"]] == [data["id"]]
        revoked = alice_client.post(f"/api/org/delegations/{data['id']}/revoke/")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] and not revoked.json()["is_current"]

    def test_unknown_delegate_and_self_are_400(self, alice_client, alice):
        assert alice_client.post("/api/org/delegations/", self._body("nobody"), content_type="application/json").json()[
            "error"
        ]["details"]["delegate"]
        assert (
            alice_client.post("/api/org/delegations/", self._body("alice"), content_type="application/json").status_code
            == 400
        )

    def test_others_delegations_are_invisible(self, client, alice, bob, carol):
        now = timezone.now()
        d = Delegation.objects.create(
            principal=carol, delegate=bob, starts_at=now, ends_at=now + dt.timedelta(days=1), reason="x"
        )
        client.force_login(alice)
        assert client.get("/api/org/delegations/").json()["results"] == []
        assert client.post(f"/api/org/delegations/{d.pk}/revoke/").status_code == 404
