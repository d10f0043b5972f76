"""The English catalog: complete, compiled, and actually used by workflow, notify and the API."""

import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation
from rest_framework import serializers

LC_MESSAGES = Path(settings.LOCALE_PATHS[0]) / "en" / "LC_MESSAGES"
PLACEHOLDER = re.compile(r"%\([^)]+\)[sdif]|%[sdif]|%%|\{[^}]*\}")
# Look-ups under other names, so that makemessages does not list this file as a source of the strings.
lookup, lookup_plural = translation.gettext, translation.ngettext


def _unquote(line: str) -> str:
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
    return re.sub(r"\\(.)", lambda m: escapes[m.group(1)], line.strip()[1:-1])


def po_entries(path: Path) -> list[dict]:
    """Entries of a .po file: msgid, msgid_plural, msgstr (list), flags; the header is left out."""
    entries = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        entry = {"flags": [], "fields": {}}
        field = None
        for line in block.splitlines():
            if line.startswith("#,"):
                entry["flags"] += [flag.strip() for flag in line[2:].split(",")]
            elif line.startswith("#~"):
                field = None  # obsolete entries are not part of the catalog
            elif line.startswith("#") or not line.strip():
                continue
            elif line.startswith('"'):
                entry["fields"][field] += _unquote(line)
            else:
                field, value = line.split(" ", 1)
                entry["fields"][field] = _unquote(value)
        fields = entry["fields"]
        if fields.get("msgid"):
            entries.append(
                {
                    "msgid": fields["msgid"],
                    "msgid_plural": fields.get("msgid_plural"),
                    "msgstr": [v for k, v in sorted(fields.items()) if k.startswith("msgstr")],
                    "flags": entry["flags"],
                }
            )
    return entries


@pytest.fixture(scope="module")
def catalog() -> list[dict]:
    return po_entries(LC_MESSAGES / "django.po")


def en(client):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


class TestCatalog:
    def test_every_entry_is_translated_and_not_fuzzy(self, catalog):
        assert len(catalog) > 1000
        untranslated = [e["msgid"] for e in catalog if not all(e["msgstr"])]
        fuzzy = [e["msgid"] for e in catalog if "fuzzy" in e["flags"]]
        assert untranslated == [] and fuzzy == []

    def test_placeholders_are_kept(self, catalog):
        wrong = []
        for e in catalog:
            for i, text in enumerate(e["msgstr"]):
                source = e["msgid_plural"] if i and e["msgid_plural"] else e["msgid"]
                if sorted(PLACEHOLDER.findall(source)) != sorted(PLACEHOLDER.findall(text)):
                    wrong.append((e["msgid"], text))
        assert wrong == []

    def test_mo_is_compiled_from_the_po(self, catalog):
        """compilemessages was run after the last change to the .po."""
        with open(LC_MESSAGES / "django.mo", "rb") as mo:
            compiled = gettext.GNUTranslations(mo)._catalog
        stale = []
        for e in catalog:
            if e["msgid_plural"]:
                got = [compiled.get((e["msgid"], i)) for i in range(len(e["msgstr"]))]
            else:
                got = [compiled.get(e["msgid"])]
            if got != e["msgstr"]:
                stale.append(e["msgid"])
        assert stale == []


class TestStrings:
    def test_workflow_and_notify_labels(self):
        from yiwang.notify.models import Job
        from yiwang.workflow import schema
        from yiwang.workflow.models import Case, ProcessDefinition

        with translation.override("en"):
            assert str(ProcessDefinition._meta.verbose_name) == "Process definition"
            assert str(Case.Status.WITHDRAWN.label) == "Withdrawn"
            assert str(Job._meta.verbose_name) == "Bulk job"
            assert str(schema.STEP_KINDS["countersign"]) == "Countersign (all must approve)"
            assert lookup("已超期") == "Overdue"
            assert lookup_plural("%(days)s 个工作日", "%(days)s 个工作日", 3) % {"days": 3} == "3 working days"
        with translation.override("zh-hans"):
            assert str(Case.Status.WITHDRAWN.label) == "已撤回"

    @pytest.mark.django_db
    def test_api_messages_are_translated_when_shown(self):
        from yiwang.workflow import api

        serializer = api.WorkflowCommentInputSerializer(data={"comment": "x" * 2001})
        with translation.override("en"):
            assert not serializer.is_valid()
            assert serializer.errors["comment"] == ["Comment must not exceed 2000 characters."]
            with pytest.raises(serializers.ValidationError) as raised:
                api._users(["nobody"], "to_user")
            assert raised.value.detail == {"to_user": ["User not found: nobody."]}
        start = api.WorkflowCaseStartInputSerializer(data={"process": "x", "title": "t", "comment": "x" * 2001})
        with translation.override("zh-hans"):
            assert not start.is_valid()
            assert start.errors["comment"] == ["发起意见不能超过 2000 字。"]

    def test_recipient_sample_header_is_accepted_back(self):
        """The sample CSV's header is translated: in English it must still name the mobile column."""
        from yiwang.notify.spreadsheet import MOBILE_HEADERS

        with translation.override("en"):
            assert lookup("手机号").lower() in MOBILE_HEADERS


@pytest.mark.django_db
class TestPages:
    def test_inbox_in_english(self, alice_client):
        response = en(alice_client).get(reverse("workflow:inbox"))
        assert response.status_code == 200
        page = response.content.decode()
        assert "<title>My to-dos" in page
        assert "To do" in page and "Start a request" in page
        assert "我的待办" not in page

    def test_inbox_stays_chinese_by_default(self, alice_client):
        page = alice_client.get(reverse("workflow:inbox")).content.decode()
        assert "<title>我的待办" in page

    def test_sms_dashboard_in_english(self, alice_client):
        response = en(alice_client).get(reverse("notify:dashboard"))
        assert response.status_code == 200
        page = response.content.decode()
        assert "Usage overview" in page and "New bulk job" in page
        assert "Send SMS" in page and "发送短信" not in page

    def test_api_errors_in_english(self, alice_client):
        response = alice_client.get("/api/workflow/tasks/abc/", HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 400
        assert response.json()["error"]["message"] == "ID must be a positive integer: abc"
        response = alice_client.get("/api/workflow/tasks/999999/", HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "The record does not exist or you may not view it."
