"""The SMS platform's screens: who sees what, send one, templates, jobs, policies, opt-outs,
message lookup and the gateways' receipt endpoint."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import unquote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from conftest import make_person
from yiwang.notify import services
from yiwang.notify.gateways.fake_server import SIGNATURE_HEADER, sign
from yiwang.notify.models import Job, Message, OptOut, Policy, Template, UsageDay
from yiwang.org.models import User

from .conftest import SECRET

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def html(response) -> str:
    return response.content.decode()


def as_user(client, user):
    client.force_login(user)
    return client


def csv_file(rows: list[str], name="名单.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, "\n".join(rows).encode(), content_type="text/csv")


ROWS = [
    "手机号,姓名,日期",
    "13800138000,王小明,周一",
    "13800138001,李华,周二",
    "1380013800,张三,周三",
    "13800138003,,周四",
]


def upload_job(client, notice, rows=ROWS, name="名单.csv"):
    return client.post(reverse("notify:job_create"), {"template": notice.pk, "file": csv_file(rows, name)})


def validated_job(alice, notice, rows=ROWS) -> Job:
    job = services.job_create(actor=alice, unit=notice.unit, template=notice, upload=csv_file(rows))
    return services.job_validate(job=job)


@pytest.fixture
def unit_admin(units, roles):
    return make_person("uadmin", "赵管理", units["edu"], roles["unit_admin"], title="单位管理员")


# --- who may see what --------------------------------------------------------------------------


class TestAccess:
    @pytest.mark.parametrize(
        ("name", "title"),
        [
            ("notify:dashboard", "短信平台"),
            ("notify:send", "发送短信"),
            ("notify:templates", "短信模板"),
            ("notify:template_create", "新建短信模板"),
            ("notify:jobs", "群发任务"),
            ("notify:job_create", "新建群发"),
            ("notify:messages", "短信查询"),
        ],
    )
    def test_staff_pages(self, alice_client, notice, name, title):
        response = alice_client.get(reverse(name))
        assert response.status_code == 200
        assert f'<h1 class="yw-page-title">{title}' in html(response)
        assert "配额与策略" not in html(response)  # the admin tab is not shown to staff

    def test_login_required(self, client, units):
        for name in ("notify:dashboard", "notify:send", "notify:jobs", "notify:policies", "notify:optouts"):
            response = client.get(reverse(name))
            assert response.status_code == 302 and "/login/" in response["Location"]

    def test_people_without_a_post_are_refused(self, client, units):
        nobody = User.objects.create_user("nobody", password="x")
        response = as_user(client, nobody).get(reverse("notify:send"))
        assert response.status_code == 403 and "仅供机关工作人员" in html(response)

    def test_policies_are_for_platform_admins(self, client, alice, carol, admin, settings):
        settings.YIWANG_ADMIN_2FA = False
        for user in (alice, carol):
            response = as_user(client, user).get(reverse("notify:policies"))
            assert response.status_code == 403 and "只有平台管理员" in html(response)
            assert as_user(client, user).get(reverse("notify:policy_default")).status_code == 403
        response = as_user(client, admin).get(reverse("notify:policies"))
        assert response.status_code == 200 and "全区默认策略" in html(response)

    def test_optouts_for_admins_and_unit_admins(self, client, alice, unit_admin, admin, settings):
        settings.YIWANG_ADMIN_2FA = False
        assert as_user(client, alice).get(reverse("notify:optouts")).status_code == 403
        page = as_user(client, unit_admin).get(reverse("notify:optouts"))
        assert page.status_code == 200 and "加入退订名单" not in html(page)  # view only
        response = client.post(reverse("notify:optout_add"), {"mobile": "13900000000"})
        assert response.status_code == 403 and not OptOut.objects.exists()
        page = as_user(client, admin).get(reverse("notify:optouts"))
        assert page.status_code == 200 and "加入退订名单" in html(page)

    def test_other_units_records_are_not_found(self, client, alice, bob, notice):
        job = validated_job(alice, notice)
        as_user(client, bob)
        for url in (
            reverse("notify:template_detail", args=[notice.pk]),
            reverse("notify:template_edit", args=[notice.pk]),
            reverse("notify:job_sample", args=[notice.pk]),
            reverse("notify:job_detail", args=[job.pk]),
            reverse("notify:job_progress", args=[job.pk]),
            reverse("notify:job_error_report", args=[job.pk]),
            reverse("notify:job_failures", args=[job.pk]),
        ):
            assert client.get(url).status_code == 404, url
        assert client.post(reverse("notify:job_confirm", args=[job.pk])).status_code == 404
        assert client.post(reverse("notify:job_cancel", args=[job.pk])).status_code == 404
        job.refresh_from_db()
        assert job.status == Job.Status.VALIDATED
        assert "考试通知" not in html(client.get(reverse("notify:templates")))
        assert "名单.csv" not in html(client.get(reverse("notify:jobs")))

    def test_leader_sees_the_units_jobs(self, client, alice, carol, notice):
        job = validated_job(alice, notice)
        assert as_user(client, carol).get(reverse("notify:job_detail", args=[job.pk])).status_code == 200

    def test_workbench_tile_links_here_with_todays_figures(self, alice_client, alice, units):
        UsageDay.objects.create(unit=units["edu"], day=timezone.localdate(), sent=7, delivered=5)
        response = alice_client.get(reverse("core:workbench"))
        figures = {label: value for label, value, _url in response.context["tile_figures"]["notify"]}
        assert figures == {"今日发送": 7, "今日送达": 5}
        assert reverse("notify:dashboard") in html(response)


# --- dashboard ------------------------------------------------------------------------------------


class TestDashboard:
    def test_usage_of_the_own_unit(self, alice_client, alice, bob, units, notice):
        today = timezone.localdate()
        UsageDay.objects.create(unit=units["edu"], day=today, reserved=250, sent=200, delivered=180, failed=3)
        UsageDay.objects.create(unit=units["edu"], day=today - dt.timedelta(days=2), sent=40, delivered=40)
        UsageDay.objects.create(unit=units["fin"], day=today, reserved=999, sent=999)
        validated_job(alice, notice)
        response = alice_client.get(reverse("notify:dashboard"))
        assert response.status_code == 200
        ctx = response.context
        assert ctx["today"] == {"reserved": 250, "sent": 200, "delivered": 180, "failed": 3}
        assert ctx["month"]["sent"] == 240 and ctx["month"]["rate"] == 91
        series = {s["name"]: s["data"] for s in ctx["usage_chart"]["series"]}
        assert len(series["发送"]) == 30 and series["发送"][-1] == 200 and series["发送"][-3] == 40
        assert ctx["quota"]["quota"] == 1000  # the district default of the fixtures
        assert ctx["quota_chart"]["series"][0]["data"][0]["value"] == 25
        page = html(response)
        assert 'data-chart="ntf-usage-data"' in page and 'id="ntf-quota-data"' in page
        assert "名单.csv" in page and "单位" not in response.context["filter_form"].fields
        # a job waiting for the sender's confirmation is not 进行中
        assert (ctx["open_jobs"], ctx["unconfirmed_jobs"]) == (0, 1)
        assert "1 个待确认" in page and "个进行中" not in page

    def test_a_tiny_share_of_the_quota_is_visible_and_labelled(self, admin_client, units, policy):
        Policy.objects.filter(pk=policy.pk).update(daily_quota=50000)
        UsageDay.objects.create(unit=units["edu"], day=timezone.localdate(), reserved=8)
        bars = admin_client.get(reverse("notify:dashboard")).context["quota_chart"]["series"][0]
        assert bars["barMinHeight"] > 0
        assert bars["data"] == [{"value": 0.02, "label": {"formatter": "0.02%（8/50,000）"}}]
        gauge = admin_client.get(reverse("notify:dashboard"), {"unit": units["edu"].pk}).context["quota_chart"]
        assert gauge["series"][0]["data"][0]["value"] == 0.02

    def test_admin_sees_every_unit_and_filters(self, admin_client, units, notice):
        today = timezone.localdate()
        UsageDay.objects.create(unit=units["edu"], day=today, reserved=100, sent=100)
        UsageDay.objects.create(unit=units["fin"], day=today, reserved=30, sent=30)
        response = admin_client.get(reverse("notify:dashboard"))
        assert response.context["today"]["sent"] == 130
        bars = response.context["quota_chart"]
        assert bars["yAxis"]["data"] == ["区教育局", "区财政局"]
        assert [d["value"] for d in bars["series"][0]["data"]] == [10.0, 3.0]
        assert 'name="unit"' in html(response)
        response = admin_client.get(reverse("notify:dashboard"), {"unit": units["fin"].pk})
        assert response.context["today"]["sent"] == 30 and response.context["selected_unit"] == units["fin"]

    def test_empty(self, alice_client, units):
        response = alice_client.get(reverse("notify:dashboard"))
        assert response.status_code == 200 and "还没有群发任务" in html(response)


# --- send one ---------------------------------------------------------------------------------------


class TestSend:
    def test_template_fields_and_preview(self, alice_client, notice):
        response = alice_client.get(reverse("notify:send"), {"template": notice.pk})
        page = html(response)
        assert 'name="ph_姓名"' in page and 'name="ph_日期"' in page
        assert 'hx-post="/notify/send/preview/"' in page
        assert "【北仑区政府】((姓名))同学" in page  # the preview before anything is typed

    def test_send_with_a_template(self, alice_client, alice, notice):
        response = alice_client.post(
            reverse("notify:send"),
            {"template": notice.pk, "shown_template": notice.pk, "ph_姓名": "王小明", "ph_日期": "周一",
             "mobile": "138 0013 8000"},
        )  # fmt: skip
        assert response.status_code == 302
        assert response["Location"] == reverse("notify:send") + f"?template={notice.pk}"
        message = Message.objects.get()
        assert message.body == "【北仑区政府】王小明同学：请于周一参加考试。"
        assert message.mobile == "13800138000" and message.created_by == alice and message.unit == notice.unit
        assert "短信已提交发送给 138****8000" in html(alice_client.get(response["Location"]))

    def test_send_free_text_scheduled(self, alice_client, units, policy):
        when = timezone.localtime() + dt.timedelta(days=1)
        response = alice_client.post(
            reverse("notify:send"),
            {"template": "", "shown_template": "", "body": "明天上午九点开会。", "mobile": "13800138000",
             "send_at": when.strftime("%Y-%m-%dT%H:%M")},
        )  # fmt: skip
        assert response.status_code == 302
        message = Message.objects.get()
        assert message.body == "【北仑区政府】明天上午九点开会。" and message.not_before is not None
        assert "将于" in html(alice_client.get(response["Location"]))

    @pytest.mark.parametrize(
        ("data", "error"),
        [
            ({"mobile": "1234"}, "手机号 1234 格式不正确。"),
            ({"ph_姓名": ""}, "该字段是必填项。"),
            ({"send_at": "2020-01-01T08:00"}, "定时发送的时间已经过去"),
            ({"send_at": (timezone.localtime() + dt.timedelta(days=9)).strftime("%Y-%m-%dT%H:%M")}, "未来 7 天内"),
        ],
    )
    def test_bad_input_shows_the_error_and_sends_nothing(self, alice_client, notice, data, error):
        post = {"template": notice.pk, "shown_template": notice.pk, "ph_姓名": "王小明", "ph_日期": "周一",
                "mobile": "13800138000", **data}  # fmt: skip
        response = alice_client.post(reverse("notify:send"), post)
        assert response.status_code == 400
        assert error in html(response)
        assert not Message.objects.exists() and not UsageDay.objects.filter(reserved__gt=0).exists()

    def test_free_text_needs_a_body(self, alice_client, policy):
        response = alice_client.post(reverse("notify:send"), {"shown_template": "", "mobile": "13800138000"})
        assert response.status_code == 400 and "请填写短信内容或选择模板。" in html(response)
        assert not Message.objects.exists()

    def test_free_text_may_not_forge_a_signature(self, alice_client, policy):
        post = {"shown_template": "", "body": "【区政府】请速回电。", "mobile": "13800138000"}
        response = alice_client.post(reverse("notify:send"), post)
        assert response.status_code == 400 and "不能含有【】" in html(response)
        assert not Message.objects.exists()
        assert "不能含有【】" in html(alice_client.post(reverse("notify:send_preview"), post))

    def test_opted_out_and_over_quota_are_refused(self, alice_client, units, notice):
        services.optout_add(actor=None, mobile="13800138000")
        post = {"template": notice.pk, "shown_template": notice.pk, "ph_姓名": "王", "ph_日期": "周一",
                "mobile": "13800138000"}  # fmt: skip
        response = alice_client.post(reverse("notify:send"), post)
        assert response.status_code == 400 and "已退订" in html(response)
        services.policy_save(actor=None, unit=units["edu"], signature="北仑区教育局", daily_quota=0)
        response = alice_client.post(reverse("notify:send"), {**post, "mobile": "13800138009"})
        assert response.status_code == 400 and "超出本单位" in html(response) and "配额" in html(response)
        assert not Message.objects.exists()

    def test_another_units_template_is_not_offered(self, client, bob, notice):
        response = as_user(client, bob).post(
            reverse("notify:send"),
            {"template": notice.pk, "shown_template": notice.pk, "ph_姓名": "王", "ph_日期": "一", "mobile": "13800138000"},
        )  # fmt: skip
        assert response.status_code == 400 and not Message.objects.exists()

    def test_stale_boxes_after_a_template_change_are_not_sent(self, alice_client, notice, code_template):
        response = alice_client.post(
            reverse("notify:send"),
            {"template": code_template.pk, "shown_template": notice.pk, "ph_姓名": "王", "ph_日期": "一",
             "mobile": "13800138000"},
        )  # fmt: skip
        assert response.status_code == 200 and not Message.objects.exists()
        page = html(response)
        assert "已切换模板" in page and 'name="ph_验证码"' in page and 'name="ph_姓名"' not in page
        assert 'value="13800138000"' in page  # what was typed is kept

    def test_preview_fragment(self, alice_client, notice, code_template):
        url = reverse("notify:send_preview")
        response = alice_client.post(
            url, {"template": notice.pk, "shown_template": notice.pk, "ph_姓名": "王小明", "mobile": "13800138000"},
            headers={"HX-Request": "true"},
        )  # fmt: skip
        page = html(response)
        assert response.status_code == 200 and 'id="sms-preview"' in page
        assert "【北仑区政府】王小明同学：请于((日期))参加考试。" in page
        assert "尚未填写：日期" in page and "发送至 13800138000" in page
        assert "hx-swap-oob" not in page  # same template: the boxes stay
        assert response.context["preview"]["length"] == len("【北仑区政府】王小明同学：请于((日期))参加考试。")
        # another template: new boxes come along out of band
        response = alice_client.post(url, {"template": code_template.pk, "shown_template": notice.pk, "mobile": "1"})
        page = html(response)
        assert 'id="sms-fields" hx-swap-oob="true"' in page and 'name="ph_验证码"' in page
        assert "手机号 1 格式不正确" in page and "紧急" in page

    def test_preview_counts_parts(self, alice_client, policy):
        long_text = "测" * 80
        response = alice_client.post(reverse("notify:send_preview"), {"shown_template": "", "body": long_text})
        preview = response.context["preview"]
        assert preview["length"] == 87 and preview["parts"] == 2
        assert "87 字 · 2 条" in html(response)
        response = alice_client.post(reverse("notify:send_preview"), {"shown_template": "", "body": "测" * 600})
        assert "内容超长" in html(response)


# --- templates --------------------------------------------------------------------------------------


class TestTemplates:
    def test_list_search_and_pagination(self, alice_client, alice, units, policy):
        for i in range(23):
            services.template_save(actor=alice, unit=units["edu"], code=f"t{i:02}", name=f"模板{i:02}", body=f"内容{i}")
        response = alice_client.get(reverse("notify:templates"))
        assert len(response.context["page_obj"]) == 20 and "共 23 条" in html(response)
        assert len(alice_client.get(reverse("notify:templates"), {"page": 2}).context["page_obj"]) == 3
        found = alice_client.get(reverse("notify:templates"), {"q": "模板07"}).context["page_obj"]
        assert [t.code for t in found] == ["t07"]
        empty = alice_client.get(reverse("notify:templates"), {"q": "不存在"})
        assert "没有符合条件的模板" in html(empty)

    def test_empty_state(self, alice_client, units):
        assert "还没有短信模板" in html(alice_client.get(reverse("notify:templates")))

    def test_create_then_edit_makes_versions(self, alice_client, alice, units, policy):
        response = alice_client.post(
            reverse("notify:template_create"),
            {"code": "meeting", "name": "会议通知", "kind": "notice", "body": "请（（姓名））于((时间))参会。"},
        )
        template = Template.objects.get(code="meeting")
        assert response.status_code == 302 and response["Location"] == reverse(
            "notify:template_detail", args=[template.pk]
        )
        assert template.unit == units["edu"] and template.version == 1 and template.body == "请((姓名))于((时间))参会。"
        edit = alice_client.get(reverse("notify:template_edit", args=[template.pk]))
        assert edit.status_code == 200 and "保存后成为第 2 版" in html(edit)
        response = alice_client.post(
            reverse("notify:template_edit", args=[template.pk]),
            {"code": "ignored", "name": "会议通知", "kind": "notice", "body": "请((姓名))于((时间))到三楼参会。"},
        )
        new = Template.objects.get(code="meeting", active=True)
        assert new.version == 2 and response["Location"] == reverse("notify:template_detail", args=[new.pk])
        page = html(alice_client.get(response["Location"]))
        assert "v1" in page and "v2" in page and "当前版本" in page and "已保存为第 2 版" in page
        assert not Template.objects.filter(code="ignored").exists()

    @pytest.mark.parametrize(
        ("body", "error"),
        [("【教育局】通知", "不能含有【】"), ("请((姓名)参会", "占位符格式不正确"), ("字" * 600, "不超过 500 字符")],
    )
    def test_bad_bodies(self, alice_client, policy, body, error):
        response = alice_client.post(
            reverse("notify:template_create"), {"code": "bad", "name": "坏模板", "kind": "notice", "body": body}
        )
        assert response.status_code == 400 and error in html(response)
        assert not Template.objects.exists()

    def test_bad_code(self, alice_client, policy):
        response = alice_client.post(
            reverse("notify:template_create"), {"code": "会议", "name": "会议", "kind": "notice", "body": "开会"}
        )
        assert response.status_code == 400 and "模板代码只能用英文字母" in html(response)

    def test_detail_preview_with_sample_values(self, alice_client, notice):
        url = reverse("notify:template_detail", args=[notice.pk])
        page = html(alice_client.get(url))
        assert "版本历史" in page and 'name="ph_姓名"' in page and "【北仑区政府】((姓名))同学" in page
        response = alice_client.get(url, {"ph_姓名": "李华", "ph_日期": "6月1日"}, headers={"HX-Request": "true"})
        assert response.status_code == 200 and "<h1" not in html(response)
        assert "【北仑区政府】李华同学：请于6月1日参加考试。" in html(response)

    def test_live_preview_while_editing(self, alice_client, policy):
        response = alice_client.post(reverse("notify:template_preview"), {"body": "请((姓名))参会。【】"})
        page = html(response)
        assert response.status_code == 200 and "不能含有【】" in page and "占位符：姓名" in page


# --- jobs ---------------------------------------------------------------------------------------------


class TestJobs:
    def test_preview_says_duplicates_are_sent_once(self, alice_client, alice, notice):
        rows = ["手机号,姓名,日期", "13800138010,王小明,周一", "+86 138-0013-8010,王小明,周一"]
        page = html(alice_client.get(reverse("notify:job_create")))
        assert 'name="allow_duplicates"' in page and "默认只发一条" in page
        job = validated_job(alice, notice, rows)
        page = html(alice_client.get(reverse("notify:job_detail", args=[job.pk])))
        assert "有 1 行的号码与前面的行相同" in page and "号码重复" in page

    def test_upload_validate_preview_confirm(self, alice_client, alice, notice):
        response = upload_job(alice_client, notice)
        job = Job.objects.get()
        assert response.status_code == 302 and response["Location"] == reverse("notify:job_detail", args=[job.pk])
        page = html(alice_client.get(response["Location"]))
        assert "正在校验号码文件" in page and 'hx-trigger="every 1s"' in page and "已校验 0 行" in page
        assert "约 4 行" in page  # estimated from the file while checking
        fragment = alice_client.get(reverse("notify:job_progress", args=[job.pk]), headers={"HX-Request": "true"})
        assert 'id="job-body"' in html(fragment) and "<h1" not in html(fragment)

        services.job_validate(job=job)  # what the Celery task does
        fragment = html(alice_client.get(reverse("notify:job_progress", args=[job.pk])))
        assert "hx-trigger" not in fragment  # checked: the polling stops
        page = html(alice_client.get(reverse("notify:job_detail", args=[job.pk])))
        assert "待确认" in page and "确认发送" in page
        assert "【北仑区政府】王小明同学：请于周一参加考试。" in page  # the first rows' final text
        assert "手机号格式不正确：1380013800" in page and "缺少占位符的值：姓名" in page
        assert reverse("notify:job_error_report", args=[job.pk]) in page
        report = alice_client.get(reverse("notify:job_error_report", args=[job.pk]))
        body = b"".join(report.streaming_content).decode("utf-8-sig")
        assert report.status_code == 200 and "1380013800" in body
        assert "名单-错误报告.csv" in unquote(report["Content-Disposition"])

        response = alice_client.post(reverse("notify:job_confirm", args=[job.pk]), {"send_at": ""})
        assert response.status_code == 302
        job.refresh_from_db()
        assert job.status in (Job.Status.SCHEDULED, Job.Status.SENDING) and job.confirmed_at is not None
        assert UsageDay.objects.get(unit=notice.unit).reserved == 2
        services.job_start_due()
        job.refresh_from_db()
        assert job.status == Job.Status.SENDING
        page = html(alice_client.get(reverse("notify:job_detail", args=[job.pk])))
        assert "正在发送" in page and 'data-progress="0"' in page and 'hx-trigger="every 1s"' in page

        Message.objects.filter(job=job, row=2).update(status=Message.Status.DELIVERED)
        Message.objects.filter(job=job, row=3).update(
            status=Message.Status.PERMANENT_FAILURE, error_code="MOBILE_BLACK", error="运营商拒收"
        )
        fragment = alice_client.get(reverse("notify:job_progress", args=[job.pk]))
        assert fragment.context["progress"]["done"] == 2 and 'data-progress="100"' in html(fragment)
        services.jobs_finish()
        page = html(alice_client.get(reverse("notify:job_detail", args=[job.pk])))
        assert "发送报告" in page and "已完成" in page and "hx-trigger" not in page
        assert "下载发送失败的 1 行" in page
        failures = alice_client.get(reverse("notify:job_failures", args=[job.pk]))
        lines = b"".join(failures.streaming_content).decode("utf-8-sig").splitlines()
        assert lines[0] == "手机号,行号,状态,错误码,错误说明"
        assert lines[1:] == ["13800138001,3,发送失败,MOBILE_BLACK,运营商拒收"]

    def test_cancel(self, alice_client, alice, notice):
        job = validated_job(alice, notice)
        when = (timezone.localtime() + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
        response = alice_client.post(reverse("notify:job_confirm", args=[job.pk]), {"send_at": when})
        assert response.status_code == 302
        assert "将于" in html(alice_client.get(response["Location"]))
        job.refresh_from_db()
        assert job.status == Job.Status.SCHEDULED
        page = html(alice_client.get(reverse("notify:job_detail", args=[job.pk])))
        assert "已排期" in page and "取消任务" in page and 'hx-trigger="every 5s"' in page
        response = alice_client.post(reverse("notify:job_cancel", args=[job.pk]))
        assert response.status_code == 302
        job.refresh_from_db()
        assert job.status == Job.Status.CANCELLED
        assert not Message.objects.filter(job=job, status=Message.Status.CREATED).exists()
        assert UsageDay.objects.get(unit=notice.unit).reserved == 0
        # a second cancel says why, without a 500
        response = alice_client.post(reverse("notify:job_cancel", args=[job.pk]), follow=True)
        assert "已结束" in html(response)

    def test_confirm_refusals(self, alice_client, alice, units, notice):
        job = validated_job(alice, notice)
        late = (timezone.localtime() + dt.timedelta(days=8)).strftime("%Y-%m-%dT%H:%M")
        response = alice_client.post(reverse("notify:job_confirm", args=[job.pk]), {"send_at": late})
        assert response.status_code == 400 and "未来 7 天内" in html(response)
        services.policy_save(actor=None, unit=units["edu"], signature="北仑区教育局", daily_quota=1)
        response = alice_client.post(reverse("notify:job_confirm", args=[job.pk]), {"send_at": ""})
        assert response.status_code == 400 and "超出本单位" in html(response)
        job.refresh_from_db()
        assert job.status == Job.Status.VALIDATED

    def test_large_job_goes_to_the_leader(self, alice_client, alice, carol, units, notice):
        services.policy_save(actor=None, unit=units["edu"], signature="北仑区教育局", approval_threshold=2)
        job = validated_job(alice, notice)
        assert "须经本单位主要领导审批" in html(alice_client.get(reverse("notify:job_detail", args=[job.pk])))
        alice_client.post(reverse("notify:job_confirm", args=[job.pk]), {"send_at": ""})
        job.refresh_from_db()
        assert job.status == Job.Status.PENDING_APPROVAL
        page = html(alice_client.get(reverse("notify:job_detail", args=[job.pk])))
        assert "待审批" in page and reverse("workflow:case_detail", args=[job.approval_case_id]) in page

    @pytest.mark.parametrize(
        ("rows", "name", "content", "error"),
        [
            (None, "名单.csv", b"", "文件是空的。"),
            (None, "名单.pdf", b"%PDF-1.4 ...", "只支持 .csv 或 .xlsx"),
            (None, "名单.xlsx", b"not really excel", "无法读取该 Excel 文件"),
        ],
    )
    def test_upload_errors(self, alice_client, notice, rows, name, content, error):
        upload = SimpleUploadedFile(name, content)
        response = alice_client.post(reverse("notify:job_create"), {"template": notice.pk, "file": upload})
        assert response.status_code == 400 and error in html(response)
        assert not Job.objects.exists()

    def test_too_big(self, alice_client, notice, monkeypatch):
        monkeypatch.setattr(services, "MAX_UPLOAD_BYTES", 10)
        response = upload_job(alice_client, notice)
        assert response.status_code == 400 and "文件过大" in html(response)
        assert not Job.objects.exists()

    def test_no_file_or_template(self, alice_client, notice):
        response = alice_client.post(reverse("notify:job_create"), {})
        assert response.status_code == 400 and html(response).count("该字段是必填项。") == 2

    def test_whole_file_refused(self, alice_client, alice, notice):
        upload_job(alice_client, notice, rows=["手机号,姓名", "13800138000,王"])
        job = services.job_validate(job=Job.objects.get())
        page = html(alice_client.get(reverse("notify:job_detail", args=[job.pk])))
        assert "文件有误" in page and "表头缺少模板占位符对应的列：日期" in page and "重新上传" in page

    def test_columns_hint_and_sample(self, alice_client, notice):
        page = html(alice_client.get(reverse("notify:job_create"), {"template": notice.pk}))
        assert '<code class="me-2">姓名</code>' in page and 'hx-get="/notify/jobs/columns/"' in page
        fragment = html(alice_client.get(reverse("notify:job_columns"), {"template": notice.pk}))
        assert "手机号" in fragment and "日期" in fragment
        sample = alice_client.get(reverse("notify:job_sample", args=[notice.pk]))
        assert sample.content.decode("utf-8-sig").strip() == "手机号,姓名,日期"

    def test_no_templates_yet(self, alice_client, units):
        assert "请先新建模板" in html(alice_client.get(reverse("notify:job_create")))

    def test_list_filters_by_status(self, alice_client, alice, notice):
        validated_job(alice, notice)
        upload_job(alice_client, notice)
        response = alice_client.get(reverse("notify:jobs"))
        assert len(response.context["page_obj"]) == 2
        response = alice_client.get(reverse("notify:jobs"), {"status": "validating"})
        assert [j.status for j in response.context["page_obj"]] == ["validating"]
        assert "没有符合条件的群发任务" in html(alice_client.get(reverse("notify:jobs"), {"status": "finished"}))


# --- message lookup ------------------------------------------------------------------------------------


class TestMessages:
    def test_search_within_scope(self, client, alice, bob, units, notice, policy):
        services.message_send(unit=units["edu"], mobile="13800138000", template=notice,
                              values={"姓名": "王", "日期": "周一"}, actor=alice)  # fmt: skip
        other = services.message_send(unit=units["edu"], mobile="13900139000", body="会议改期", actor=alice)
        services.message_send(unit=units["fin"], mobile="13700137000", body="财政通知", actor=bob)
        Message.objects.filter(pk=other.pk).update(
            status=Message.Status.DELIVERED, sent_at=timezone.now(), delivered_at=timezone.now(), gateway="fake"
        )
        as_user(client, alice)
        response = client.get(reverse("notify:messages"))
        assert {m.mobile for m in response.context["page_obj"]} == {"13800138000", "13900139000"}
        page = html(response)
        assert "财政通知" not in page and "已送达" in page and "送达 " in page and "创建 " in page
        by_mobile = client.get(reverse("notify:messages"), {"mobile": "139 0013 9000"}).context["page_obj"]
        assert [m.mobile for m in by_mobile] == ["13900139000"]
        by_status = client.get(reverse("notify:messages"), {"status": "created"}).context["page_obj"]
        assert [m.mobile for m in by_status] == ["13800138000"]
        today = timezone.localdate()
        assert len(client.get(reverse("notify:messages"), {"date_from": today}).context["page_obj"]) == 2
        tomorrow = today + dt.timedelta(days=1)
        empty = client.get(reverse("notify:messages"), {"date_from": tomorrow})
        assert "没有符合条件的短信" in html(empty)
        bad = client.get(reverse("notify:messages"), {"date_from": tomorrow, "date_to": today})
        assert "截止日期不能早于起始日期" in html(bad)

    def test_a_jobs_messages(self, alice_client, alice, notice):
        job = validated_job(alice, notice)
        response = alice_client.get(reverse("notify:messages"), {"job": job.pk})
        assert {m.row for m in response.context["page_obj"]} == {2, 3} and "群发第 2 行" in html(response)


# --- policies ---------------------------------------------------------------------------------------------


class TestPolicies:
    def test_list_shows_own_and_inherited(self, admin_client, units, policy):
        services.policy_save(actor=None, unit=units["edu"], signature="北仑区教育局", daily_quota=300)
        page = html(admin_client.get(reverse("notify:policies")))
        assert "【北仑区政府】" in page and "【北仑区教育局】" in page and "单独设置" in page
        assert "继承：区教育局" in page  # 教育局办公室 uses its parent's policy
        found = admin_client.get(reverse("notify:policies"), {"q": "财政"}).context["rows"]
        assert [row["unit"].name for row in found] == ["区财政局"] and not found[0]["own"]

    def test_edit_a_units_policy(self, admin_client, admin, units, policy):
        url = reverse("notify:policy_edit", args=[units["fin"].pk])
        page = html(admin_client.get(url))
        assert "使用全区默认策略" in page and 'value="北仑区政府"' in page
        response = admin_client.post(
            url,
            {"signature": "【北仑区财政局】", "daily_quota": 800, "per_minute": 60, "approval_threshold": 500,
             "quiet_start": "22:00", "quiet_end": "08:00", "enabled": "on"},
        )  # fmt: skip
        assert response.status_code == 302
        saved = Policy.objects.get(unit=units["fin"])
        assert saved.signature == "北仑区财政局" and saved.daily_quota == 800 and saved.quiet_start == dt.time(22)
        assert saved.enabled

    def test_edit_the_default_and_bad_input(self, admin_client, policy):
        url = reverse("notify:policy_default")
        response = admin_client.post(url, {"signature": "北 仑", "daily_quota": -1, "per_minute": 10,
                                           "approval_threshold": 10, "quiet_start": "22:00"})  # fmt: skip
        page = html(response)
        assert response.status_code == 400
        assert "不能含有空格" in page and "免打扰时段须同时填写" in page and "确保该值大于或等于0" in page
        response = admin_client.post(url, {"signature": "北仑区人民政府", "daily_quota": 100, "per_minute": 10,
                                           "approval_threshold": 10})  # fmt: skip
        assert response.status_code == 302
        default = Policy.objects.get(unit__isnull=True)
        assert default.signature == "北仑区人民政府" and not default.enabled  # the box was left unticked


# --- opt-outs -------------------------------------------------------------------------------------------


class TestOptOuts:
    def test_add_search_remove(self, admin_client, units):
        response = admin_client.post(
            reverse("notify:optout_add"), {"mobile": "+86 139 0000 0000", "reason": "本人来电"}
        )
        assert response.status_code == 302 and OptOut.objects.get().mobile == "13900000000"
        services.optout_add(actor=None, mobile="13700000000")
        page = admin_client.get(reverse("notify:optouts"), {"q": "1390"})
        assert [o.mobile for o in page.context["page_obj"]] == ["13900000000"] and "本人来电" in html(page)
        response = admin_client.post(reverse("notify:optout_remove"), {"mobile": "13900000000"}, follow=True)
        assert "已移出退订名单" in html(response)
        assert list(OptOut.objects.values_list("mobile", flat=True)) == ["13700000000"]

    def test_bad_number(self, admin_client, units):
        response = admin_client.post(reverse("notify:optout_add"), {"mobile": "12345"})
        assert response.status_code == 400 and "手机号格式不正确" in html(response)
        assert not OptOut.objects.exists()

    def test_only_platform_admins_change_it(self, client, unit_admin):
        services.optout_add(actor=None, mobile="13700000000")
        as_user(client, unit_admin)
        assert client.post(reverse("notify:optout_remove"), {"mobile": "13700000000"}).status_code == 403
        assert OptOut.objects.exists()


# --- receipts ---------------------------------------------------------------------------------------------


def receipt_body(*items) -> bytes:
    return json.dumps({"receipts": list(items)}, ensure_ascii=False).encode()


def push(client, body: bytes, *, code="fake", signature=None):
    headers = {SIGNATURE_HEADER: sign(SECRET, body) if signature is None else signature}
    return client.post(
        reverse("notify:receipts", args=[code]), data=body, content_type="application/json", headers=headers
    )


@pytest.fixture
def sent(units, policy, sms_server):
    def make(provider_id, mobile):
        message = services.message_send(unit=units["edu"], mobile=mobile, body="会议通知")
        Message.objects.filter(pk=message.pk).update(
            status=Message.Status.SENT, gateway="fake", provider_id=provider_id, sent_at=timezone.now()
        )
        return message

    return [make("p-1", "13800138000"), make("p-2", "13800138001")]


class TestReceipts:
    def test_signed_receipts_update_messages(self, client, sent):
        body = receipt_body(
            {"provider_id": "p-1", "status": "delivered", "time": "2026-01-05T08:00:00+08:00"},
            {"provider_id": "p-2", "status": "permanent_failure", "error_code": "UNDELIV"},
            {"provider_id": "unknown", "status": "delivered"},
        )
        response = push(client, body)
        assert response.status_code == 200 and response.json() == {"ok": True}
        one, two = (Message.objects.get(pk=m.pk) for m in sent)
        assert one.status == Message.Status.DELIVERED and one.delivered_at is not None
        assert two.status == Message.Status.PERMANENT_FAILURE and two.error_code == "UNDELIV"
        usage = UsageDay.objects.get(unit=one.unit)
        assert usage.delivered == 1 and usage.failed == 1
        assert push(client, body).status_code == 200  # a repeated push changes nothing
        assert UsageDay.objects.get(unit=one.unit).delivered == 1

    def test_bad_signature(self, client, sent):
        body = receipt_body({"provider_id": "p-1", "status": "delivered"})
        assert push(client, body, signature="0" * 64).status_code == 403
        assert push(client, body, signature="").status_code == 403
        assert Message.objects.get(pk=sent[0].pk).status == Message.Status.SENT

    def test_unknown_gateway(self, client, sent):
        assert push(client, receipt_body(), code="nope").status_code == 404

    def test_garbage(self, client, sent):
        assert push(client, b"not json at all").status_code == 400
        assert push(client, receipt_body({"provider_id": "p-1", "status": "lost"})).status_code == 400
        assert Message.objects.get(pk=sent[0].pk).status == Message.Status.SENT

    def test_too_big_and_wrong_method(self, client, sent, monkeypatch):
        from yiwang.notify import views

        monkeypatch.setattr(views, "MAX_RECEIPT_BYTES", 10)
        assert push(client, receipt_body({"provider_id": "p-1", "status": "delivered"})).status_code == 413
        assert client.get(reverse("notify:receipts", args=["fake"])).status_code == 405


# --- replies (上行短信) ---------------------------------------------------------------------------------


def push_replies(client, *items, code="fake", signature=None):
    body = json.dumps({"replies": list(items)}, ensure_ascii=False).encode()
    headers = {SIGNATURE_HEADER: sign(SECRET, body) if signature is None else signature}
    return client.post(
        reverse("notify:replies_push", args=[code]), data=body, content_type="application/json", headers=headers
    )


class TestReplies:
    @pytest.mark.parametrize("text", ["TD", "td", "T", "退订", " 退订。", "ＴＤ", "t d"])
    def test_an_opt_out_reply_opts_the_number_out(self, client, sms_server, policy, text):
        response = push_replies(client, {"id": "r-1", "mobile": "+86 138-0013-8010", "text": text})
        assert response.status_code == 200
        optout = OptOut.objects.get(mobile="13800138010")
        assert optout.source == "reply"
        assert services.is_opted_out("13800138010")

    def test_replies_are_stored_once_listed_and_other_text_does_not_opt_out(self, client, admin_client, sms_server,
                                                                              policy):  # fmt: skip
        items = [{"id": "r-1", "mobile": "13800138010", "text": "收到，谢谢", "time": "2026-01-05T08:00:00+08:00"},
                 {"id": "r-2", "mobile": "13800138011", "text": "TD"}]  # fmt: skip
        assert push_replies(client, *items).status_code == 200
        assert push_replies(client, *items).status_code == 200  # re-pushed: stored once
        assert list(OptOut.objects.values_list("mobile", flat=True)) == ["13800138011"]
        page = html(admin_client.get(reverse("notify:replies")))
        assert "收到，谢谢" in page and "13800138011" in page and "已退订" in page
        from yiwang.notify.models import InboundSms

        assert InboundSms.objects.count() == 2

    def test_unsigned_replies_are_refused(self, client, sms_server, policy):
        response = push_replies(client, {"id": "r-1", "mobile": "13800138010", "text": "TD"}, signature="0" * 64)
        assert response.status_code == 403 and not OptOut.objects.exists()
        assert (
            push_replies(client, {"id": "r-1", "mobile": "13800138010", "text": "TD"}, code="nope").status_code == 404
        )

    def test_a_sent_notice_is_refused_after_td(self, client, sms_server, units, policy):
        push_replies(client, {"mobile": "13800138010", "text": "退订"})
        from django.core.exceptions import ValidationError

        with pytest.raises(ValidationError, match="已退订"):
            services.message_send(unit=units["edu"], mobile="13800138010", body="会议通知")


def test_the_fake_gateways_reply_push_is_accepted(client, sms_server, policy):
    body, headers = sms_server.replies_body([{"mobile": "13800138012", "text": "退订"}, {"mobile": "1", "text": "TD"}])
    response = client.post(reverse("notify:replies_push", args=["fake"]), data=body, content_type="application/json",
                           headers={k: v for k, v in headers.items() if k != "Content-Type"})  # fmt: skip
    assert response.status_code == 200
    assert list(OptOut.objects.values_list("mobile", flat=True)) == [
        "13800138012"
    ]  # "1" is no number: kept, no opt-out
