"""org.services: tree moves, merges, posts, delegation — each audited."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from yiwang.core.models import AuditEntry
from yiwang.org import services
from yiwang.org.models import Post, Unit

pytestmark = pytest.mark.django_db


class TestUnitUpdate:
    def test_move_subtree_rewrites_paths(self, units):
        services.unit_update(actor=None, unit=units["edu"], parent=units["fin"])
        office = Unit.objects.get(code="EDU-OFFICE")
        edu = Unit.objects.get(code="EDU")
        assert edu.path == f"{units['fin'].path}{edu.pk}/" and edu.depth == 2
        assert office.path == f"{edu.path}{office.pk}/" and office.depth == 3

    def test_cannot_move_under_own_child(self, units):
        with pytest.raises(ValidationError):
            services.unit_update(actor=None, unit=units["edu"], parent=units["edu_office"])

    def test_change_is_audited_with_old_and_new(self, units, admin):
        services.unit_update(actor=admin, unit=units["edu"], name="区教育局（新）")
        entry = AuditEntry.objects.filter(action="org.unit.update").latest("id")
        assert entry.changes["name"] == ["区教育局", "区教育局（新）"]
        assert entry.actor_id == admin.pk

    def test_unit_admin_limited_to_subtree(self, units, roles):
        from conftest import make_person

        edu_admin = make_person("eduadmin", "何雪", units["edu"], roles["unit_admin"])
        services.unit_update(actor=edu_admin, unit=units["edu_office"], phone="0574-1234")
        with pytest.raises(PermissionDenied):
            services.unit_update(actor=edu_admin, unit=units["fin"], phone="0574-1234")

    def test_duplicate_code_refused(self, units):
        with pytest.raises(ValidationError):
            services.unit_create(actor=None, name="重复", code="EDU", kind="office", parent=units["district"])


class TestUnitMerge:
    def test_merge_moves_children_and_posts(self, units, alice):
        services.unit_merge(actor=None, unit=units["edu"], into=units["fin"])
        edu = Unit.objects.get(code="EDU")
        assert edu.status == "merged" and edu.merged_into_id == units["fin"].pk
        assert Unit.objects.get(code="EDU-OFFICE").parent_id == units["fin"].pk
        assert Post.objects.filter(user=alice, unit=units["fin"], active=True).exists()
        assert not Post.objects.filter(user=alice, unit=edu, active=True).exists()


class TestPeople:
    def test_bad_mobile_refused(self, units, roles):
        with pytest.raises(ValidationError):
            services.person_create(
                actor=None,
                username="x",
                full_name="X",
                mobile="12345",
                posts=[services.PostSpec(unit=units["edu"], role=roles["staff"])],
            )

    def test_second_post_and_primary(self, alice, units, roles):
        services.post_add(
            actor=None, person=alice, spec=services.PostSpec(unit=units["fin"], role=roles["staff"], is_primary=True)
        )
        assert Post.objects.get(user=alice, is_primary=True).unit == units["fin"]

    def test_duplicate_post_refused(self, alice, units, roles):
        with pytest.raises(ValidationError):
            services.post_add(actor=None, person=alice, spec=services.PostSpec(unit=units["edu"], role=roles["staff"]))


class TestDelegation:
    def test_delegate_gets_principals_posts_while_current(self, carol, alice):
        now = timezone.now()
        services.delegation_create(
            actor=carol,
            principal=carol,
            delegate=alice,
            starts_at=now - dt.timedelta(hours=1),
            ends_at=now + dt.timedelta(days=1),
            reason="出差",
        )
        alice = type(alice).objects.get(pk=alice.pk)
        assert any(p.user_id == carol.pk for p in alice.available_posts())

    def test_expired_delegation_gives_nothing(self, carol, alice):
        now = timezone.now()
        services.delegation_create(
            actor=carol,
            principal=carol,
            delegate=alice,
            starts_at=now - dt.timedelta(days=3),
            ends_at=now - dt.timedelta(days=1),
            reason="出差",
        )
        alice = type(alice).objects.get(pk=alice.pk)
        assert all(p.user_id == alice.pk for p in alice.available_posts())

    def test_cannot_delegate_for_someone_else(self, carol, alice, bob):
        now = timezone.now()
        with pytest.raises(PermissionDenied):
            services.delegation_create(
                actor=bob,
                principal=carol,
                delegate=alice,
                starts_at=now,
                ends_at=now + dt.timedelta(days=1),
                reason="x",
            )

    def test_switch_to_delegated_post_widens_scope(self, client, carol, alice, units):
        now = timezone.now()
        services.delegation_create(
            actor=carol,
            principal=carol,
            delegate=alice,
            starts_at=now - dt.timedelta(hours=1),
            ends_at=now + dt.timedelta(days=1),
            reason="出差",
        )
        client.force_login(alice)
        post = carol.own_posts[0]
        client.post("/org/switch/", {"post": post.id})
        codes = {u["code"] for u in client.get("/api/org/units/").json()["results"]}
        assert codes == {"EDU", "EDU-OFFICE"}


class TestGrantAndPassword:
    @pytest.fixture
    def edu_admin(self, units, roles):
        from conftest import make_person

        return make_person("eduadmin", "何雪", units["edu"], roles["unit_admin"])

    def test_unit_admin_cannot_grant_district_wide_role(self, edu_admin, alice, units, roles):
        with pytest.raises(PermissionDenied):
            services.post_add(
                actor=edu_admin,
                person=alice,
                spec=services.PostSpec(unit=units["edu_office"], role=roles["platform_admin"]),
            )
        with pytest.raises(PermissionDenied):
            services.person_create(
                actor=edu_admin,
                username="x1",
                full_name="X",
                posts=[services.PostSpec(unit=units["edu"], role=roles["discipline"])],
            )
        services.post_add(
            actor=edu_admin, person=alice, spec=services.PostSpec(unit=units["edu_office"], role=roles["staff"])
        )

    def test_unit_admin_sees_unit_created_in_same_request(self, edu_admin, units):
        new = services.unit_create(actor=edu_admin, name="新科室", code="EDU-NEW", kind="office", parent=units["edu"])
        services.unit_create(actor=edu_admin, name="新科室下级", code="EDU-NEW-1", kind="office", parent=new)

    def test_manager_sets_password_staff_cannot(self, client, edu_admin, alice, bob):
        client.force_login(edu_admin)
        url = f"/org/people/{alice.pk}/password/"
        assert client.post(url, {"password": "123"}).status_code == 200  # too short: form error
        assert client.post(url, {"password": "Fresh-start-2026"}).status_code == 302
        alice.refresh_from_db()
        assert alice.check_password("Fresh-start-2026")
        assert AuditEntry.objects.filter(action="org.person.password_reset", object_id=str(alice.pk)).exists()
        client.force_login(alice)
        assert client.get(f"/org/people/{alice.pk}/password/").status_code == 403
