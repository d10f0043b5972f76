"""Demo SMS policies, templates, a few messages and a small job (idempotent), built with services."""

from __future__ import annotations

import datetime as dt

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from yiwang.org.models import Unit, User

from . import services
from .models import Job, Message, Policy, Template

TEMPLATES = [
    (
        "BL-EDU",
        "exam-notice",
        "考试通知",
        "notice",
        "((姓名))家长您好：((学校))将于((日期))举行期末考试，请提醒孩子按时到校。",
    ),
    ("BL-EDU", "login-code", "登录验证码", "verification", "您的登录验证码为((验证码))，5 分钟内有效，请勿告诉他人。"),
    (
        "BL-HOTLINE",
        "reply",
        "诉求办结回访",
        "notice",
        "您反映的((事项))已办结，请回复 1–5 对办理结果评价，感谢您的监督。",
    ),
    ("BL-ITC", "room-alarm", "机房告警", "alarm", "告警：((机房))((指标))为((数值))，超过阈值，请立即处理。"),
]
UNIT_SIGNATURES = {"BL-EDU": "北仑区教育局", "BL-HOTLINE": "北仑81890"}


@transaction.atomic
def load() -> dict[str, int]:
    if not Unit.objects.filter(code="BL").exists():
        return {"模板": 0, "短信": 0}
    units = {u.code: u for u in Unit.objects.filter(code__in=["BL", *UNIT_SIGNATURES, "BL-ITC"])}
    if not Policy.objects.filter(unit__isnull=True).exists():
        services.policy_save(actor=None, unit=None, signature="北仑区政府", daily_quota=20000, per_minute=3000,
                             approval_threshold=10000, quiet_start=dt.time(22), quiet_end=dt.time(8))  # fmt: skip
    for code, signature in UNIT_SIGNATURES.items():
        if not Policy.objects.filter(unit=units[code]).exists():
            services.policy_save(actor=None, unit=units[code], signature=signature, daily_quota=50000)
    created_templates = 0
    for unit_code, code, name, kind, body in TEMPLATES:
        if not Template.objects.filter(unit=units[unit_code], code=code).exists():
            services.template_save(actor=None, unit=units[unit_code], code=code, name=name, kind=kind, body=body)
            created_templates += 1
    created_messages = 0
    if not Message.objects.exists():
        staff = User.objects.filter(username="edu_admin").first()  # 区教育局办公室主任
        exam = Template.objects.get(unit=units["BL-EDU"], code="exam-notice", active=True)
        for i, (name, mobile) in enumerate([("王同学", "13905749001"), ("李同学", "13905749002"),
                                            ("张同学", "13905749003")]):  # fmt: skip
            services.message_send(unit=units["BL-EDU"], mobile=mobile, template=exam, actor=staff, module="notify",
                                  values={"姓名": name, "学校": "新碶小学", "日期": f"1月{12 + i}日"})  # fmt: skip
            created_messages += 1
        if staff is not None and not Job.objects.exists():
            rows = ["手机号,姓名,学校,日期"] + [
                f"1390574{9100 + i:04d},家长{i + 1},新碶小学,1月15日" for i in range(40)
            ]
            rows.append("12345,号码有误,新碶小学,1月15日")
            upload = SimpleUploadedFile("期末考试通知名单.csv", "\n".join(rows).encode("utf-8"))
            job = services.job_create(actor=staff, unit=units["BL-EDU"], template=exam, upload=upload)
            services.job_validate(job=job)
    return {"模板": created_templates, "短信": created_messages}
