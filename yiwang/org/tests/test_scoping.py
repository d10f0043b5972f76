"""Staff of unit A never see unit B's records — in the browser and through the API."""

import pytest
from django.urls import reverse

from yiwang.core.permissions import scope
from yiwang.org import selectors
from yiwang.org.models import Post, Unit

pytestmark = pytest.mark.django_db


class TestScopeHelper:
    def test_staff_sees_own_unit_only(self, alice, bob, units):
        visible = set(scope(Unit.objects.all(), alice, unit_field="pk").values_list("code", flat=True))
        assert visible == {"EDU"}

    def test_leader_sees_subtree(self, carol, units):
        visible = set(scope(Unit.objects.all(), carol, unit_field="pk").values_list("code", flat=True))
        assert visible == {"EDU", "EDU-OFFICE"}

    def test_platform_admin_sees_everything(self, admin, units):
        assert scope(Unit.objects.all(), admin, unit_field="pk").count() == Unit.objects.count()

    def test_anonymous_sees_nothing(self, units):
        from django.contrib.auth.models import AnonymousUser

        assert scope(Unit.objects.all(), AnonymousUser(), unit_field="pk").count() == 0

    def test_acting_post_decides(self, alice, units, roles):
        from yiwang.org import services

        services.post_add(actor=None, person=alice, spec=services.PostSpec(unit=units["fin"], role=roles["staff"]))
        alice.refresh_from_db()
        fin_post = Post.objects.get(user=alice, unit=units["fin"])
        alice.set_acting_post(fin_post.id)
        assert set(scope(Unit.objects.all(), alice, unit_field="pk").values_list("code", flat=True)) == {"FIN"}

    def test_related_field_lookup(self, alice, bob):
        posts = scope(Post.objects.all(), alice)
        assert {p.user.username for p in posts} == {"alice"}


class TestScopingInBrowser:
    def test_person_list_shows_only_own_unit(self, client, alice, bob):
        client.force_login(alice)
        response = client.get(reverse("org:person_list"))
        assert response.status_code == 200
        assert "王丽" in response.content.decode()
        assert "李波" not in response.content.decode()

    def test_other_units_person_is_404(self, client, alice, bob):
        client.force_login(alice)
        assert client.get(reverse("org:person_detail", args=[bob.pk])).status_code == 404

    def test_other_unit_is_404(self, client, alice, units):
        client.force_login(alice)
        assert client.get(reverse("org:unit_detail", args=[units["fin"].pk])).status_code == 404
        assert client.get(reverse("org:unit_detail", args=[units["edu"].pk])).status_code == 200

    def test_staff_cannot_edit_units(self, client, alice, units):
        client.force_login(alice)
        response = client.post(reverse("org:unit_edit", args=[units["edu"].pk]), {"name": "改名"})
        assert response.status_code == 403
        units["edu"].refresh_from_db()
        assert units["edu"].name == "区教育局"

    def test_switching_to_a_post_one_does_not_hold_is_refused(self, client, alice, bob):
        client.force_login(alice)
        bob_post = bob.own_posts[0]
        client.post(reverse("org:switch_post"), {"post": bob_post.id})
        response = client.get(reverse("org:person_list"))
        assert "李波" not in response.content.decode()


class TestScopingInApi:
    def test_units_api_scoped(self, client, alice, units):
        client.force_login(alice)
        data = client.get("/api/org/units/").json()
        assert [u["code"] for u in data["results"]] == ["EDU"]
        assert data["count"] == 1

    def test_people_api_scoped(self, client, alice, bob):
        client.force_login(alice)
        names = [p["username"] for p in client.get("/api/org/people/").json()["results"]]
        assert names == ["alice"]
        response = client.get(f"/api/org/people/{bob.pk}/")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"

    def test_unauthenticated_is_401_json(self, client, units):
        response = client.get("/api/org/units/")
        assert response.status_code == 401
        assert response.json()["error"]["message"]

    def test_staff_cannot_create_unit_via_api(self, client, alice, units):
        client.force_login(alice)
        response = client.post(
            "/api/org/units/",
            {"name": "新单位", "code": "NEW", "kind": "office", "parent": units["edu"].pk},
            content_type="application/json",
        )
        assert response.status_code == 403
        assert not Unit.objects.filter(code="NEW").exists()

    def test_admin_creates_unit_via_api(self, admin_client, units):
        response = admin_client.post(
            "/api/org/units/",
            {"name": "新单位", "code": "NEW", "kind": "office", "parent": units["edu"].pk},
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
        unit = Unit.objects.get(code="NEW")
        assert unit.path == f"{units['edu'].path}{unit.pk}/"

    def test_bad_input_gives_field_errors(self, admin_client, units):
        response = admin_client.post(
            "/api/org/units/", {"name": "", "code": "EDU", "kind": "nonsense"}, content_type="application/json"
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid"
        assert {"name", "code", "kind"} <= set(error["details"])

    def test_leader_list_selector_matches_api(self, client, carol, units):
        client.force_login(carol)
        api_codes = {u["code"] for u in client.get("/api/org/units/").json()["results"]}
        assert api_codes == set(selectors.unit_list(user=carol).values_list("code", flat=True))


class TestStaffFormsRefusedOnGetAsOnPost:
    """A form page a staff member cannot submit is refused when opened too (issue 10 item 17)."""

    @pytest.fixture
    def pages(self, alice, units):
        colleague = Post.objects.filter(unit=units["edu"]).exclude(user=alice).first()
        return {
            "unit_create": reverse("org:unit_create"),
            "unit_edit": reverse("org:unit_edit", args=[units["edu"].pk]),
            "person_create": reverse("org:person_create"),
            "person_edit (self)": reverse("org:person_edit", args=[alice.pk]),
            "person_set_password (self)": reverse("org:person_set_password", args=[alice.pk]),
            "system_list": reverse("org:system_list"),
            "unit_import": reverse("org:unit_import"),
            "person_import": reverse("org:person_import"),
            **({"person_edit (colleague)": reverse("org:person_edit", args=[colleague.user_id])} if colleague else {}),
        }

    def test_get_and_post_both_403(self, alice_client, alice, pages):
        for name, url in pages.items():
            get = alice_client.get(url)
            post = alice_client.post(url, {"full_name": "改名", "name": "改名"})
            assert (name, get.status_code, post.status_code) == (name, 403, 403)
            assert "无权" in get.content.decode(), name
        alice.refresh_from_db()
        assert alice.full_name == "王丽"

    def test_person_page_offers_no_edit_link_to_staff(self, alice_client, alice):
        page = alice_client.get(reverse("org:person_detail", args=[alice.pk])).content.decode()
        assert reverse("org:person_edit", args=[alice.pk]) not in page

    def test_unit_admin_still_opens_the_form(self, client, alice, units, roles):
        from conftest import make_person

        client.force_login(make_person("eduadmin", "何雪", units["edu"], roles["unit_admin"]))
        page = client.get(reverse("org:person_edit", args=[alice.pk]))
        assert page.status_code == 200 and "王丽" in page.content.decode()
