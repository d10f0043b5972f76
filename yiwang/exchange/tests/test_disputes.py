"""Disputes (疑义校核): raising with a grant, the working-day deadline, the provider's answer and
correction of the registry, daily reminders, the pages and the API."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client

from conftest import make_person
from yiwang.core.models import AuditEntry, Notice
from yiwang.exchange import disputes
from yiwang.exchange.models import Change, Dispute, Resident

from .conftest import resident_id, resident_save

pytestmark = pytest.mark.django_db

API = "/api/exchange/disputes/"
NEW_ADDRESS = "北仑区大碶街道灵山路 8 号"


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def key_client(raw: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Api-Key {raw}")


def post_json(client: Client, url: str, data: dict):
    return client.post(url, json.dumps(data), content_type="application/json")


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def raise_one(actor, entry, resident, **extra) -> Dispute:
    values = {
        "record_key": resident.id_number,
        "item": "address",
        "description": "户籍地址已迁至大碶街道，见户口簿。",
        "reported_value": resident.address,
        "proposed_value": NEW_ADDRESS,
    }
    return disputes.dispute_raise(actor=actor, entry=entry, **{**values, **extra})


@pytest.fixture
def dispute(edu_grant, resident_entry, resident, alice):
    return raise_one(alice, resident_entry, resident)


class TestRaise:
    def test_deadline_counts_working_days_across_national_day_and_the_makeup_saturday(
        self, edu_grant, resident_entry, resident, alice, psb_head, settings
    ):
        settings.YIWANG_EXCHANGE_DISPUTE_DAYS = 5
        # Wed 30 Sep 2026; 1–7 Oct off; Thu 8, Fri 9, Sat 10 (调休 working day), Mon 12, Tue 13
        with time_machine.travel(dt.datetime(2026, 9, 30, 10, 0, tzinfo=dt.UTC), tick=False):
            dispute = raise_one(alice, resident_entry, resident)
        assert dispute.due_date == dt.date(2026, 10, 13)
        assert dispute.status == Dispute.Status.OPEN
        assert dispute.unit_id == alice.acting_unit_id and dispute.provider_id == resident_entry.provider_id
        assert dispute.system == edu_grant.system  # the unit's granted system
        notice = Notice.objects.get(recipient_id=psb_head.pk, module="exchange")  # workflow told them of tasks
        assert "疑义校核" in notice.title and "2026-10-13" in notice.title
        assert notice.url.endswith(f"/exchange/disputes/{dispute.pk}/")
        audit = AuditEntry.objects.get(action="exchange.dispute.raise")
        assert audit.object_id == str(dispute.pk) and audit.changes["item"] == "address"

    def test_a_day_before_the_holidays_the_deadline_jumps_them(self, edu_grant, resident_entry, resident, alice):
        with time_machine.travel(dt.datetime(2026, 9, 29, 3, 0, tzinfo=dt.UTC), tick=False):  # Tue 29 Sep
            dispute = raise_one(alice, resident_entry, resident)
        assert dispute.due_date == dt.date(2026, 10, 12)  # 30 Sep, 8, 9, 10 (Sat), 12 Oct

    def test_a_unit_without_a_grant_cannot_raise(self, edu_grant, resident_entry, resident, bob, fin_system):
        with pytest.raises(PermissionDenied, match="未获得该资源的共享授权"):
            raise_one(bob, resident_entry, resident)
        with pytest.raises(PermissionDenied):
            raise_one(fin_system.account, resident_entry, resident)  # a system raises on its own grant only

    def test_the_e_gov_office_may_raise_without_a_grant(self, resident_entry, resident, egov):
        dispute = raise_one(egov, resident_entry, resident)
        assert dispute.system is None and dispute.unit_id == egov.acting_unit_id

    def test_a_person_cannot_raise_for_another_units_system(self, edu_grant, resident_entry, resident, bob):
        with pytest.raises(PermissionDenied, match="本单位的业务系统"):
            raise_one(bob, resident_entry, resident, system=edu_grant.system)

    def test_item_key_and_description_are_checked(self, edu_grant, resident_entry, resident, alice):
        with pytest.raises(ValidationError) as info:
            raise_one(alice, resident_entry, resident, item="salary", record_key="12345", description="错")
        errors = info.value.message_dict
        assert set(errors) == {"item", "record_key", "description"}
        assert "公民身份号码格式不正确" in errors["record_key"][0]
        with pytest.raises(ValidationError) as info:
            raise_one(alice, resident_entry, resident, record_key=resident_id(seq="777"))
        assert "没有该记录" in info.value.message_dict["record_key"][0]

    def test_a_lower_case_x_in_the_key_is_stored_upper_case(self, edu_grant, resident_entry, alice):
        key = next(resident_id(seq=f"{n:03d}") for n in range(1, 999) if resident_id(seq=f"{n:03d}").endswith("X"))
        person = resident_save(key)
        dispute = raise_one(alice, resident_entry, person, record_key=key.lower())
        assert dispute.record_key == key

    def test_only_published_entries(self, edu_grant, resident_entry, resident, alice, psb_staff):
        resident_entry.status = "revoked"
        with pytest.raises(ValidationError, match="已发布"):
            raise_one(alice, resident_entry, resident)

    def test_the_same_open_dispute_is_not_raised_twice(self, dispute, resident_entry, resident, alice):
        with pytest.raises(ValidationError, match="请勿重复"):
            raise_one(alice, resident_entry, resident)
        raise_one(alice, resident_entry, resident, item="phone")  # another item is another dispute


class TestAnswer:
    def test_a_correction_reaches_the_registry_and_the_change_log(self, dispute, resident, psb_staff, alice):
        changes_before = Change.objects.count()
        answered = disputes.dispute_answer(
            actor=psb_staff, dispute=dispute, corrected=True, answer="经核实户籍已迁移，已更正。"
        )
        assert answered.status == Dispute.Status.CORRECTED and answered.answered_by == psb_staff
        assert Resident.objects.get(pk=resident.pk).address == NEW_ADDRESS  # the proposed value by default
        change = Change.objects.order_by("-id").first()
        assert Change.objects.count() == changes_before + 1
        assert (change.registry, change.record_key, change.op, change.items) == (
            "resident",
            resident.id_number,
            "updated",
            ["address"],
        )
        update = AuditEntry.objects.get(action="exchange.registry.update", object_id=resident.id_number)
        assert update.changes["address"] == [resident.address, NEW_ADDRESS]
        assert f"疑义校核 {dispute.pk}" in update.changes["reason"]
        assert AuditEntry.objects.filter(action="exchange.dispute.answer", object_id=str(dispute.pk)).exists()
        assert Notice.objects.filter(recipient_id=alice.pk, title__startswith="疑义已更正").exists()

    def test_a_given_value_wins_over_the_proposal_and_is_validated(self, dispute, resident, psb_staff):
        with pytest.raises(ValidationError) as info:
            disputes.dispute_answer(actor=psb_staff, dispute=dispute, corrected=True, answer="更正", new_value="")
        assert "new_value" in info.value.message_dict
        disputes.dispute_answer(
            actor=psb_staff, dispute=dispute, corrected=True, answer="更正", new_value="灵山路 9 号"
        )
        assert Resident.objects.get(pk=resident.pk).address == "灵山路 9 号"

    def test_a_wrong_value_for_the_column_is_refused_and_nothing_changes(self, edu_grant, resident_entry, resident,
                                                                           alice, psb_staff):  # fmt: skip
        dispute = raise_one(alice, resident_entry, resident, item="birth_date", proposed_value="2015-02-30")
        with pytest.raises(ValidationError) as info:
            disputes.dispute_answer(actor=psb_staff, dispute=dispute, corrected=True, answer="更正出生日期")
        assert "new_value" in info.value.message_dict
        dispute.refresh_from_db()
        assert dispute.status == Dispute.Status.OPEN
        assert str(Resident.objects.get(pk=resident.pk).birth_date) == "2015-03-12"

    def test_the_key_itself_is_not_corrected_here(self, edu_grant, resident_entry, resident, alice, psb_staff):
        dispute = raise_one(alice, resident_entry, resident, item="id_number", proposed_value=resident_id(seq="555"))
        with pytest.raises(ValidationError, match="记录标识本身"):
            disputes.dispute_answer(actor=psb_staff, dispute=dispute, corrected=True, answer="更正")

    def test_the_same_value_is_no_correction(self, dispute, resident, psb_staff):
        with pytest.raises(ValidationError, match="与现有值相同"):
            disputes.dispute_answer(
                actor=psb_staff, dispute=dispute, corrected=True, answer="更正", new_value=resident.address
            )

    def test_data_right_leaves_the_registry_alone(self, dispute, resident, psb_head, alice):
        before = Change.objects.count()
        disputes.dispute_answer(actor=psb_head, dispute=dispute, corrected=False, answer="经核实数据无误。")
        dispute.refresh_from_db()
        assert dispute.status == Dispute.Status.ANSWERED
        assert Change.objects.count() == before
        assert Resident.objects.get(pk=resident.pk).address == resident.address
        assert Notice.objects.filter(recipient_id=alice.pk, title__contains="数据无误").exists()

    def test_only_the_provider_answers_and_only_once(self, dispute, alice, bob, carol, edu_system, psb_staff, egov):
        for outsider in (alice, bob, carol, edu_system.account):
            with pytest.raises(PermissionDenied):
                disputes.dispute_answer(actor=outsider, dispute=dispute, corrected=False, answer="数据无误")
        disputes.dispute_answer(actor=egov, dispute=dispute, corrected=False, answer="电子政务办核实：无误")
        with pytest.raises(ValidationError, match="不能再次答复"):
            disputes.dispute_answer(actor=psb_staff, dispute=dispute, corrected=False, answer="数据无误")

    def test_an_answer_is_required(self, dispute, psb_staff):
        with pytest.raises(ValidationError) as info:
            disputes.dispute_answer(actor=psb_staff, dispute=dispute, corrected=False, answer=" ")
        assert "answer" in info.value.message_dict


class TestRemind:
    def test_providers_are_reminded_once_a_day_when_due_soon_or_overdue(
        self, edu_grant, resident_entry, resident, alice, psb_head
    ):
        with time_machine.travel(dt.datetime(2026, 9, 30, 2, 0, tzinfo=dt.UTC), tick=False):
            dispute = raise_one(alice, resident_entry, resident)  # due Tue 13 Oct
        Notice.objects.all().delete()
        assert disputes.disputes_remind(today=dt.date(2026, 10, 9)) == 0  # next working day is Sat 10
        assert disputes.disputes_remind(today=dt.date(2026, 10, 12)) == 1  # one working day left
        assert disputes.disputes_remind(today=dt.date(2026, 10, 12)) == 0  # once a day
        (notice,) = Notice.objects.filter(recipient_id=psb_head.pk)
        assert notice.title.startswith("【即将到期】")
        assert disputes.disputes_remind(today=dt.date(2026, 10, 14)) == 1
        assert Notice.objects.filter(recipient_id=psb_head.pk, title__startswith="【超期】").count() == 1
        dispute.refresh_from_db()
        assert dispute.reminded_on == dt.date(2026, 10, 14)

    def test_answered_disputes_are_not_reminded(self, dispute, psb_staff):
        disputes.dispute_answer(actor=psb_staff, dispute=dispute, corrected=False, answer="数据无误")
        assert disputes.disputes_remind(today=dispute.due_date + dt.timedelta(days=3)) == 0

    def test_the_hourly_task_runs_it(self, dispute, monkeypatch):
        from yiwang.exchange import services, tasks

        monkeypatch.setattr(services, "requests_escalate", lambda **kw: 0)
        with time_machine.travel(dt.datetime.combine(dispute.due_date, dt.time(12), tzinfo=dt.UTC), tick=False):
            assert tasks.daily() == {"escalated": 0, "reminded": 1}


class TestLists:
    def test_tabs_show_my_units_side(self, dispute, alice, psb_head, bob, egov):
        mine = disputes.dispute_list(user=alice, tab=disputes.MINE)
        todo = disputes.dispute_list(user=psb_head, tab=disputes.TODO)
        assert list(mine) == [dispute] and list(todo) == [dispute]
        assert not disputes.dispute_list(user=alice, tab=disputes.TODO).exists()
        assert not disputes.dispute_list(user=bob, tab=disputes.ALL).exists()  # "all" is the e-gov office's
        assert list(disputes.dispute_list(user=egov, tab=disputes.ALL)) == [dispute]
        assert disputes.tab_counts(user=psb_head) == {"todo": 1, "mine": 0}

    def test_filters(self, dispute, psb_head):
        def count(**kw):
            return disputes.dispute_list(user=psb_head, **kw).count()

        assert count(status="open") == 1 and count(status="answered") == 0 and count(status="bogus") == 1
        assert count(q=dispute.record_key[-6:]) == 1 and count(q="人口") == 1 and count(q="不存在的") == 0
        assert count(resource=dispute.entry.code) == 1 and count(resource="301001001/000009") == 0
        assert count(overdue=True) == 0
        assert count(overdue=True, today=dispute.due_date + dt.timedelta(days=1)) == 1


class TestPages:
    def test_list_tabs_filters_and_masked_keys(self, dispute, psb_head, alice, egov, bob):
        response = login(psb_head).get("/exchange/disputes/")
        assert response.status_code == 200
        text = response.content.decode()
        assert "待我核实" in text and "人口基础信息" in text and "户籍地址" in text
        assert dispute.record_key not in text  # masked in lists
        assert dispute.record_key[:6] + "********" + dispute.record_key[-4:] in text
        assert 'href="?tab=all"' not in login(alice).get("/exchange/disputes/?tab=all").content.decode()
        for query in ("?tab=mine&status=open&overdue=on&q=x", "?page=abc", "?tab=nope", "?resource=zzz"):
            assert login(alice).get(f"/exchange/disputes/{query}").status_code == 200
        egov_page = login(egov).get("/exchange/disputes/?tab=all").content.decode()
        assert 'href="?tab=all"' in egov_page and "人口基础信息" in egov_page
        empty = login(bob).get("/exchange/disputes/").content.decode()
        assert "没有需要本单位核实的疑义" in empty

    def test_detail_and_answer_form_for_the_provider_only(self, dispute, psb_staff, alice, bob, resident):
        provider_page = login(psb_staff).get(f"/exchange/disputes/{dispute.pk}/").content.decode()
        assert "核实并答复" in provider_page and "基础库当前值" in provider_page and resident.address in provider_page
        raiser_page = login(alice).get(f"/exchange/disputes/{dispute.pk}/").content.decode()
        assert "核实并答复" not in raiser_page and "基础库当前值" not in raiser_page
        assert login(bob).get(f"/exchange/disputes/{dispute.pk}/").status_code == 404
        assert login(alice).get("/exchange/disputes/999999/").status_code == 404
        assert login(alice).get("/exchange/disputes/abc/").status_code == 404

    def test_answer_by_page(self, dispute, psb_staff, alice, resident):
        url = f"/exchange/disputes/{dispute.pk}/answer/"
        denied = login(alice).post(url, {"corrected": "0", "answer": "数据无误"})
        assert denied.status_code == 403 and "只有提供方单位" in denied.content.decode()
        bad = login(psb_staff).post(url, {"corrected": "1", "answer": "", "new_value": ""})
        assert bad.status_code == 400 and "该字段是必填项" in bad.content.decode()
        done = login(psb_staff).post(url, {"corrected": "1", "answer": "已更正。", "new_value": NEW_ADDRESS})
        assert done.status_code == 302 and done["Location"] == f"/exchange/disputes/{dispute.pk}/"
        assert Resident.objects.get(pk=resident.pk).address == NEW_ADDRESS
        again = login(psb_staff).post(url, {"corrected": "0", "answer": "再次答复"})
        assert again.status_code == 400
        assert login(psb_staff).get(url).status_code == 405

    def test_raise_from_a_resource_page(self, edu_grant, resident_entry, resident, alice, bob):
        url = f"/exchange/disputes/new/?entry={resident_entry.pk}"
        form = login(alice).get(url)
        assert form.status_code == 200 and "公民身份号码" in form.content.decode()
        assert login(alice).get("/exchange/disputes/new/?entry=abc").status_code == 404
        assert login(alice).get("/exchange/disputes/new/").status_code == 404
        assert login(alice).get("/exchange/disputes/new/?entry=99999999").status_code == 404
        assert login(bob).get(url).status_code == 403
        invalid = login(alice).post(url, {"entry": resident_entry.pk, "item": "address", "record_key": "123",
                                          "description": "地址有误，请核实"})  # fmt: skip
        assert invalid.status_code == 400 and "格式不正确" in invalid.content.decode()
        created = login(alice).post(url, {
            "entry": resident_entry.pk, "item": "address", "record_key": resident.id_number,
            "description": "地址有误，请核实", "proposed_value": NEW_ADDRESS, "system": edu_grant.system_id,
        })  # fmt: skip
        dispute = Dispute.objects.get()
        assert created.status_code == 302 and created["Location"] == f"/exchange/disputes/{dispute.pk}/"

    def test_public_accounts_are_refused(self, dispute, units, roles):
        citizen = make_person("citizen", "市民", units["district"], roles["citizen"])
        assert login(citizen).get("/exchange/disputes/").status_code == 403


class TestApi:
    BODY = {"item": "address", "description": "户籍地址已迁移", "proposed_value": NEW_ADDRESS}

    def body(self, entry, resident, **extra):
        return {"resource": entry.code, "record_key": resident.id_number, **self.BODY, **extra}

    def test_a_system_raises_with_its_key(self, edu_grant, edu_key, resident_entry, resident, edu_system):
        response = post_json(key_client(edu_key[1]), API, self.body(resident_entry, resident))
        assert response.status_code == 201, response.content
        data = response.json()
        assert data["system"] == edu_system.name and data["status"] == "open" and data["overdue"] is False
        dispute = Dispute.objects.get(pk=data["id"])
        assert dispute.system == edu_system and dispute.raised_by == edu_system.account
        listed = key_client(edu_key[1]).get(API).json()
        assert [d["id"] for d in listed["results"]] == [dispute.pk]
        assert key_client(edu_key[1]).get(f"{API}{dispute.pk}/").json()["record_key"] == resident.id_number

    def test_refusals_in_the_json_error_format(self, edu_grant, edu_key, fin_key, fin_system, resident_entry,
                                               resident):  # fmt: skip
        from yiwang.org import services as org

        client = key_client(edu_key[1])
        bad = post_json(client, API, {"resource": "x", "item": "address"})
        assert bad.status_code == 400 and set(error_of(bad)["details"]) >= {"resource", "record_key", "description"}
        unknown = post_json(client, API, self.body(resident_entry, resident, resource="301001001/000099"))
        assert unknown.status_code == 400 and "resource" in error_of(unknown)["details"]
        wrong_item = post_json(client, API, self.body(resident_entry, resident, item="salary"))
        assert wrong_item.status_code == 400 and "item" in error_of(wrong_item)["details"]
        read_only = post_json(key_client(fin_key[1]), API, self.body(resident_entry, resident))
        assert read_only.status_code == 403 and error_of(read_only)["code"] == "permission_denied"
        _key, raw = org.api_key_issue(actor=None, system=fin_system, name="写", scopes=["exchange:write"])
        no_grant = post_json(key_client(raw), API, self.body(resident_entry, resident))
        assert no_grant.status_code == 403 and "未获得该资源的共享授权" in error_of(no_grant)["message"]
        assert Client().get(API).status_code == 401
        assert client.get(f"{API}abc/").status_code == 400
        assert client.get(f"{API}99999/").status_code == 404

    def test_scoping_and_answering(self, dispute, edu_key, fin_key, psb_staff, alice, resident):
        assert key_client(fin_key[1]).get(f"{API}{dispute.pk}/").status_code == 404
        assert key_client(fin_key[1]).get(API).json()["results"] == []
        answer = {"corrected": True, "answer": "已更正", "new_value": NEW_ADDRESS}
        by_key = post_json(key_client(edu_key[1]), f"{API}{dispute.pk}/answer/", answer)
        assert by_key.status_code == 403 and error_of(by_key)["code"] == "permission_denied"
        by_raiser = post_json(login(alice), f"{API}{dispute.pk}/answer/", answer)
        assert by_raiser.status_code == 403 and "只有提供方" in error_of(by_raiser)["message"]
        missing = post_json(login(psb_staff), f"{API}{dispute.pk}/answer/", {"answer": "x"})
        assert missing.status_code == 400 and "corrected" in error_of(missing)["details"]
        done = post_json(login(psb_staff), f"{API}{dispute.pk}/answer/", answer)
        assert done.status_code == 200 and done.json()["status"] == "corrected"
        assert Resident.objects.get(pk=resident.pk).address == NEW_ADDRESS
        again = post_json(login(psb_staff), f"{API}{dispute.pk}/answer/", answer)
        assert again.status_code == 409 and error_of(again)["code"] == "conflict"
        listed = login(psb_staff).get(API, {"status": "corrected"}).json()
        assert [d["id"] for d in listed["results"]] == [dispute.pk]
        assert login(psb_staff).get(API, {"status": "zzz"}).status_code == 400
