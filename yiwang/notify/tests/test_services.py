"""notify services: templates, one message, quotas, opt-out, quiet hours, spreadsheet jobs."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from yiwang.notify import services, tasks
from yiwang.notify.models import Job, Message, Template, UsageDay
from yiwang.notify.tasks import kick as real_kick  # imported before the autouse fixture replaces it

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def csv_file(rows: list[str], name="名单.csv", encoding="utf-8") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, "\n".join(rows).encode(encoding), content_type="text/csv")


def job_from(alice, notice, rows, **kw) -> Job:
    job = services.job_create(actor=alice, unit=notice.unit, template=notice, upload=csv_file(rows, **kw))
    return services.job_validate(job=job)


class TestTemplates:
    def test_versions_and_signature_length(self, alice, units, notice):
        again = services.template_save(actor=alice, unit=units["edu"], code="exam", name="考试通知",
                                       body="((姓名))：考试改期至((日期))。")  # fmt: skip
        assert again.version == 2
        notice.refresh_from_db()
        assert not notice.active and again.active

    @pytest.mark.parametrize(
        ("body", "fragment"),
        [("", "短信内容"), ("请于((日期)参加", "占位符格式"), ("【别的单位】通知", "【】"), ("字" * 600, "")],
    )
    def test_bad_bodies(self, alice, units, policy, body, fragment):
        with pytest.raises(ValidationError) as exc:
            services.template_save(actor=alice, unit=units["edu"], code="x", name="x", body=body)
        assert fragment in str(exc.value)
        assert not Template.objects.exists()

    def test_other_units_template_refused(self, bob, units, policy):
        with pytest.raises(PermissionDenied):
            services.template_save(actor=bob, unit=units["edu"], code="x", name="x", body="hi")


class TestSendOne:
    def test_renders_signs_counts_parts_and_reserves_quota(self, alice, notice):
        message = services.message_send(unit=notice.unit, mobile="+86 138-0013-8000", template=notice,
                                        values={"姓名": "王小明", "日期": "12月1日"}, actor=alice)  # fmt: skip
        assert message.mobile == "13800138000"
        assert message.body == "【北仑区政府】王小明同学：请于12月1日参加考试。"
        assert message.parts == 1 and message.status == Message.Status.CREATED
        assert UsageDay.objects.get(unit=notice.unit).reserved == 1

    def test_test_messages_are_not_counted_against_the_quota(self, alice, units, notice):
        services.policy_save(actor=None, unit=units["edu"], daily_quota=1, signature="北仑区教育局")
        for n in range(3):
            services.message_send(unit=notice.unit, mobile=f"1380013800{n}", body="测试", test=True)
        services.message_send_many(unit=notice.unit, items=[services.Outgoing(mobile="13800138009", body="测试")],
                                   test=True)  # fmt: skip
        assert not UsageDay.objects.filter(reserved__gt=0).exists()
        services.message_send(unit=notice.unit, mobile="13800138000", body="正式")
        assert UsageDay.objects.get(unit=notice.unit).reserved == 1

    def test_a_broker_outage_after_the_save_does_not_raise(self, monkeypatch, notice,
                                                            django_capture_on_commit_callbacks):  # fmt: skip
        from kombu.exceptions import OperationalError

        def broker_down(*args, **kwargs):
            raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

        monkeypatch.setattr(tasks, "kick", real_kick)
        monkeypatch.setattr(tasks.run_dispatch, "apply_async", broker_down)
        with django_capture_on_commit_callbacks(execute=True):
            message = services.message_send(unit=notice.unit, mobile="13800138000", body="你好", urgent=True)
        assert Message.objects.get(pk=message.pk).status == Message.Status.CREATED  # saved; the beat sends it

    def test_missing_placeholder(self, alice, notice):
        with pytest.raises(ValidationError) as exc:
            services.message_send(unit=notice.unit, mobile="13800138000", template=notice, values={"姓名": "王"})
        assert "日期" in str(exc.value)
        assert not Message.objects.exists()

    @pytest.mark.parametrize("mobile", ["12345", "23800138000", "1380013800", ""])
    def test_bad_numbers(self, alice, notice, mobile):
        with pytest.raises(ValidationError, match="手机号"):
            services.message_send(unit=notice.unit, mobile=mobile, body="你好")

    def test_opt_out_blocks_notices_but_not_codes(self, alice, notice, code_template):
        services.optout_add(actor=None, mobile="13800138000", reason="回复TD")
        with pytest.raises(ValidationError, match="已退订"):
            services.message_send(unit=notice.unit, mobile="13800138000", template=notice,
                                  values={"姓名": "王", "日期": "明天"})  # fmt: skip
        sent = services.message_send(unit=notice.unit, mobile="13800138000", template=code_template,
                                     values={"验证码": "123456"})  # fmt: skip
        assert sent.priority == Message.Priority.URGENT

    def test_quota_refuses_all_or_nothing(self, alice, units, notice):
        services.policy_save(actor=None, unit=units["edu"], daily_quota=2, signature="北仑区教育局")
        for _ in range(2):
            services.message_send(unit=notice.unit, mobile="13800138000", body="通知")
        with pytest.raises(ValidationError, match="配额"):
            services.message_send(unit=notice.unit, mobile="13800138000", body="通知")
        assert Message.objects.count() == 2

    def test_policy_is_inherited_down_the_tree(self, units, policy):
        services.policy_save(actor=None, unit=units["edu"], daily_quota=7, signature="北仑区教育局")
        assert services.policy_for(units["edu_office"]).daily_quota == 7
        assert services.policy_for(units["fin"]).daily_quota == 1000

    def test_only_platform_admin_sets_policies(self, alice, units):
        with pytest.raises(PermissionDenied):
            services.policy_save(actor=alice, unit=units["edu"], daily_quota=10**6)

    def test_quiet_hours_hold_notices_until_morning(self, units, policy, notice, code_template):
        import time_machine

        services.policy_save(actor=None, unit=None, quiet_start=dt.time(22), quiet_end=dt.time(8))
        late = timezone.make_aware(dt.datetime(2026, 11, 26, 23, 30))
        with time_machine.travel(late, tick=False):
            held = services.message_send(unit=notice.unit, mobile="13800138000", body="明早开会")
            urgent = services.message_send(unit=notice.unit, mobile="13800138000", template=code_template,
                                           values={"验证码": "1234"})  # fmt: skip
        assert held.not_before == timezone.make_aware(dt.datetime(2026, 11, 27, 8, 0))
        assert urgent.not_before is None

    def test_schedule_only_within_seven_days(self, notice):
        with pytest.raises(ValidationError, match="7 天"):
            services.message_send(unit=notice.unit, mobile="13800138000", body="x",
                                  send_at=timezone.now() + dt.timedelta(days=8))  # fmt: skip


class TestSendMany:
    def test_checks_all_then_inserts_once_with_one_audit_entry(self, alice, notice, django_assert_max_num_queries):
        from yiwang.core.models import AuditEntry

        items = [services.Outgoing(mobile=f"+86 138-0013-{8000 + n}", template=notice,
                                   values={"姓名": f"学生{n}", "日期": "周一"}, reference=f"r{n}") for n in range(300)]  # fmt: skip
        audits = AuditEntry.objects.count()
        with django_assert_max_num_queries(20):  # not one query per message
            sent = services.message_send_many(unit=notice.unit, items=items, actor=alice, module="api")
        assert [m.reference for m in sent] == [f"r{n}" for n in range(300)] and all(m.pk for m in sent)
        assert sent[0].mobile == "13800138000" and sent[0].body == "【北仑区政府】学生0同学：请于周一参加考试。"
        assert Message.objects.count() == 300 and UsageDay.objects.get(unit=notice.unit).reserved == 300
        assert AuditEntry.objects.count() == audits + 1

    def test_every_wrong_message_is_listed_and_nothing_is_sent(self, alice, notice):
        services.optout_add(actor=None, mobile="13800138001")
        items = [services.Outgoing(mobile="13800138000", body="好"), services.Outgoing(mobile="13800138001", body="好"),
                 services.Outgoing(mobile="123", body="好"), services.Outgoing(mobile="13800138003", body="")]  # fmt: skip
        with pytest.raises(services.BatchRefused) as refused:
            services.message_send_many(unit=notice.unit, items=items, actor=alice)
        assert sorted(refused.value.errors) == [1, 2, 3]
        assert "已退订" in str(refused.value.errors[1]) and "手机号" in str(refused.value.errors[2])
        assert not Message.objects.exists() and not UsageDay.objects.filter(reserved__gt=0).exists()


class TestJobs:
    def test_validation_counts_rows_and_reports_errors(self, alice, notice):
        services.optout_add(actor=None, mobile="13900000003")
        job = job_from(alice, notice, [
            "手机号,姓名,日期",
            "13800138000,王小明,12月1日",
            "12345,李四,12月1日",
            "13900000002,,12月1日",
            "13900000003,退订者,12月1日",
            "",
            "13900000004,赵六,12月2日",
        ])  # fmt: skip
        assert job.status == Job.Status.VALIDATED
        assert (job.total_rows, job.valid_rows, job.invalid_rows, job.opted_out_rows) == (5, 2, 3, 1)
        assert [e[0] for e in job.errors] == [3, 4, 5]
        report = job.error_report.read().decode("utf-8-sig")
        assert "手机号格式不正确" in report and "缺少占位符的值：姓名" in report
        rows = list(Message.objects.filter(job=job).order_by("row").values_list("row", "mobile"))
        assert rows == [(2, "13800138000"), (7, "13900000004")]

    def test_one_sms_per_number_however_it_is_written(self, alice, notice):
        rows = ["手机号,姓名,日期", "13800138010,王小明,周一", "+86 138-0013-8010,王小明,周一",
                "0086 138 0013 8010,王小明,周一", "13900000004,赵六,周二"]  # fmt: skip
        job = job_from(alice, notice, rows)
        assert (job.valid_rows, job.duplicate_rows, job.invalid_rows) == (2, 2, 2)
        assert sorted(Message.objects.filter(job=job).values_list("mobile", flat=True)) == [
            "13800138010", "13900000004"]  # fmt: skip
        assert [e[0] for e in job.errors] == [3, 4] and "号码重复" in job.errors[0][2]
        assert "号码重复" in job.error_report.read().decode("utf-8-sig")

    def test_duplicates_can_be_allowed_per_job(self, alice, notice):
        upload = csv_file(["手机号,姓名,日期", "13800138010,甲,周一", "+86 138-0013-8010,乙,周一"])
        job = services.job_create(actor=alice, unit=notice.unit, template=notice, upload=upload, allow_duplicates=True)
        job = services.job_validate(job=job)
        assert (job.valid_rows, job.duplicate_rows) == (2, 0)
        assert Message.objects.filter(job=job, mobile="13800138010").count() == 2

    def test_gbk_csv_and_excel(self, alice, notice):
        job = job_from(alice, notice, ["手机号,姓名,日期", "13800138000,王小明,周一"], encoding="gb18030")
        assert job.valid_rows == 1 and Message.objects.get(job=job).body.endswith("王小明同学：请于周一参加考试。")
        book = openpyxl.Workbook()
        book.active.append(["手机号码", "姓名", "日期"])
        book.active.append([13800138001, "李雷", "周二"])
        data = io.BytesIO()
        book.save(data)
        upload = SimpleUploadedFile("名单.xlsx", data.getvalue())
        job = services.job_validate(
            job=services.job_create(actor=alice, unit=notice.unit, template=notice, upload=upload)
        )
        assert job.valid_rows == 1 and Message.objects.get(job=job).mobile == "13800138001"

    @pytest.mark.parametrize(
        ("name", "content", "fragment"),
        [
            ("a.csv", b"", "空的"),
            ("a.pdf", b"%PDF-1.4", "只支持"),
            ("a.xlsx", b"not a zip", "Excel"),
            ("a.csv", b"\x00\x01\x02binary", "只支持"),
        ],
    )
    def test_not_a_sheet_is_refused_at_upload(self, alice, notice, name, content, fragment):
        with pytest.raises(ValidationError, match=fragment):
            services.job_create(actor=alice, unit=notice.unit, template=notice,
                                upload=SimpleUploadedFile(name, content))  # fmt: skip
        assert not Job.objects.exists()

    def test_oversized_file_refused(self, alice, notice, monkeypatch):
        monkeypatch.setattr(services, "MAX_UPLOAD_BYTES", 10)
        with pytest.raises(ValidationError, match="文件过大"):
            services.job_create(actor=alice, unit=notice.unit, template=notice, upload=csv_file(["手机号", "138"]))

    def test_missing_placeholder_column_fails_the_whole_file(self, alice, notice):
        job = job_from(alice, notice, ["手机号,姓名", "13800138000,王小明"])
        assert job.status == Job.Status.INVALID and "日期" in job.problem
        assert not Message.objects.exists()

    def test_missing_mobile_column(self, alice, notice):
        job = job_from(alice, notice, ["电话,姓名,日期", "13800138000,王小明,周一"])
        assert job.status == Job.Status.INVALID and "手机号列" in job.problem

    def test_confirm_reserves_quota_and_schedules(self, alice, notice):
        job = job_from(alice, notice, ["手机号,姓名,日期", "13800138000,王,周一", "13800138001,李,周一"])
        job = services.job_confirm(actor=alice, job=job)
        assert job.status == Job.Status.SCHEDULED
        assert UsageDay.objects.get(unit=notice.unit).reserved == 2
        with pytest.raises(ValidationError, match="不能确认"):
            services.job_confirm(actor=alice, job=job)

    def test_over_quota_job_is_refused_whole(self, alice, units, notice):
        services.policy_save(actor=None, unit=units["edu"], daily_quota=1, signature="北仑区教育局")
        job = job_from(alice, notice, ["手机号,姓名,日期", "13800138000,王,周一", "13800138001,李,周一"])
        with pytest.raises(ValidationError, match="配额"):
            services.job_confirm(actor=alice, job=job)
        job.refresh_from_db()
        assert job.status == Job.Status.VALIDATED

    def test_large_job_needs_the_leaders_approval(self, alice, carol, units, notice):
        from yiwang.workflow import selectors as wf_selectors
        from yiwang.workflow import services as workflow

        services.policy_save(actor=None, unit=units["edu"], approval_threshold=2, signature="北仑区教育局")
        job = job_from(alice, notice, ["手机号,姓名,日期", "13800138000,王,周一", "13800138001,李,周一"])
        job = services.job_confirm(actor=alice, job=job)
        assert job.status == Job.Status.PENDING_APPROVAL
        task = wf_selectors.inbox(user=carol).get()
        assert "短信群发" in task.title
        workflow.task_approve(task=task, actor=carol)
        job.refresh_from_db()
        assert job.status == Job.Status.SCHEDULED

    def test_an_approved_job_counts_on_the_day_it_is_approved(self, alice, carol, units, notice, monkeypatch):
        from yiwang.workflow import selectors as wf_selectors
        from yiwang.workflow import services as workflow

        services.policy_save(actor=None, unit=units["edu"], approval_threshold=2, signature="北仑区教育局")
        job = job_from(alice, notice, ["手机号,姓名,日期", "13800138000,王,周一", "13800138001,李,周一"])
        submitted = timezone.localdate()
        services.job_confirm(actor=alice, job=job)
        assert not UsageDay.objects.filter(reserved__gt=0).exists()  # nothing counted while waiting
        later = timezone.now() + dt.timedelta(days=2)
        monkeypatch.setattr(timezone, "now", lambda: later)
        workflow.task_approve(task=wf_selectors.inbox(user=carol).get(), actor=carol)
        job.refresh_from_db()
        approved = timezone.localdate(later)
        assert job.status == Job.Status.SCHEDULED and job.quota_day == approved != submitted
        assert dict(UsageDay.objects.filter(reserved__gt=0).values_list("day", "reserved")) == {approved: 2}
        services.job_cancel(actor=alice, job=job)
        assert UsageDay.objects.get(day=approved).reserved == 0

    def test_approval_over_that_days_quota_refuses_the_job(self, alice, carol, units, notice):
        from yiwang.workflow import selectors as wf_selectors
        from yiwang.workflow import services as workflow

        services.policy_save(
            actor=None, unit=units["edu"], approval_threshold=2, daily_quota=3, signature="北仑区教育局"
        )
        job = services.job_confirm(actor=alice, job=job_from(alice, notice, ["手机号,姓名,日期", "13800138000,王,周一",
                                                                              "13800138001,李,周一"]))  # fmt: skip
        services.message_send(unit=notice.unit, mobile="13900000001", body="当天已用", actor=alice)
        services.message_send(unit=notice.unit, mobile="13900000002", body="当天已用", actor=alice)
        workflow.task_approve(task=wf_selectors.inbox(user=carol).get(), actor=carol)
        job.refresh_from_db()
        assert job.status == Job.Status.REFUSED and "配额" in job.problem
        assert UsageDay.objects.get(unit=notice.unit).reserved == 2

    def test_refused_approval_cancels_rows_and_frees_quota(self, alice, carol, units, notice):
        from yiwang.workflow import selectors as wf_selectors
        from yiwang.workflow import services as workflow

        services.policy_save(actor=None, unit=units["edu"], approval_threshold=1, signature="北仑区教育局")
        job = services.job_confirm(
            actor=alice, job=job_from(alice, notice, ["手机号,姓名,日期", "13800138000,王,周一"])
        )
        workflow.task_reject(task=wf_selectors.inbox(user=carol).get(), actor=carol, comment="不必群发")
        job.refresh_from_db()
        assert job.status == Job.Status.REFUSED
        assert Message.objects.get(job=job).status == Message.Status.CANCELLED
        assert not UsageDay.objects.filter(reserved__gt=0).exists()

    def test_cancel(self, alice, bob, notice):
        job = services.job_confirm(actor=alice, job=job_from(alice, notice, ["手机号,姓名,日期", "13800138000,王,周一"]),
                                   send_at=timezone.now() + dt.timedelta(days=1))  # fmt: skip
        with pytest.raises(PermissionDenied):
            services.job_cancel(actor=bob, job=job)
        services.job_cancel(actor=alice, job=job)
        job.refresh_from_db()
        assert job.status == Job.Status.CANCELLED and not Message.objects.filter(status="created").exists()
        with pytest.raises(ValidationError, match="已结束"):
            services.job_cancel(actor=alice, job=job)


class TestGuards:
    def test_free_text_cannot_forge_a_signature(self, notice):
        with pytest.raises(ValidationError, match="【】"):
            services.message_send(unit=notice.unit, mobile="13800138000", body="【财政局】请缴费")

    def test_only_a_manager_creates_urgent_templates(self, alice, admin, units, policy):
        with pytest.raises(PermissionDenied, match="单位管理员"):
            services.template_save(actor=alice, unit=units["edu"], code="otp", name="码", kind="verification",
                                   body="验证码((码))")  # fmt: skip
        assert services.template_save(actor=admin, unit=units["edu"], code="otp", name="码", kind="verification",
                                      body="验证码((码))").urgent  # fmt: skip

    def test_the_uploaded_sheet_is_not_kept(self, alice, notice):
        job = job_from(alice, notice, ["手机号,姓名,日期", "13800138000,王,周一"])
        assert not job.source

    def test_a_job_confirmed_at_night_starts_in_the_morning(self, alice, notice):
        import time_machine

        services.policy_save(actor=None, unit=None, quiet_start=dt.time(22), quiet_end=dt.time(8))
        job = job_from(alice, notice, ["手机号,姓名,日期", "13800138000,王,周一"])
        with time_machine.travel(timezone.make_aware(dt.datetime(2026, 11, 26, 23, 0)), tick=False):
            job = services.job_confirm(actor=alice, job=job)
        assert job.scheduled_for == timezone.make_aware(dt.datetime(2026, 11, 27, 8, 0))
