"""Chinese full-text search over org units (SQLite FTS5 or PostgreSQL tsvector)."""

from __future__ import annotations

import pytest

from yiwang.core.search import index_text, query_tokens, search
from yiwang.org import services
from yiwang.org.models import Unit

pytestmark = pytest.mark.django_db


def names(text: str, queryset=None) -> set[str]:
    queryset = Unit.objects.all() if queryset is None else queryset
    return set(search(queryset, text).values_list("name", flat=True))


ALL_UNITS = {"测试区", "区电子政务办", "区教育局", "教育局办公室", "区财政局"}


class TestTokenize:
    def test_index_text_has_words_and_single_characters(self):
        words = index_text("区教育局").split()
        assert {"教育", "教育局", "教", "育", "局", "区"} <= set(words)
        assert len(words) == len(set(words))

    def test_index_text_lowercases_and_drops_punctuation(self):
        assert index_text("EDU-OFFICE").split() == ["edu", "office"]

    def test_query_tokens_strip_syntax(self):
        assert query_tokens('"教育"*') == ["教育"]
        assert query_tokens("(教育 OR 财政)") == ["教育", "or", "财政"]
        assert query_tokens("  ") == []


class TestSearch:
    def test_a_word_finds_units_containing_it(self, units):
        assert names("教育") == {"区教育局", "教育局办公室"}

    def test_longer_word(self, units):
        assert names("教育局") == {"区教育局", "教育局办公室"}

    def test_every_word_must_match(self, units):
        assert names("教育 办公室") == {"教育局办公室"}
        assert names("教育 财政") == set()

    def test_one_character(self, units):
        assert names("财") == {"区财政局"}
        assert names("区") == {"测试区", "区电子政务办", "区教育局", "区财政局"}

    def test_the_full_name(self, units):
        for name in ALL_UNITS:
            assert name in names(name), name

    def test_code_case_insensitive(self, units):
        assert names("edu") == {"区教育局", "教育局办公室"}
        assert names("EDU-OFFICE") == {"教育局办公室"}
        assert names("fin") == {"区财政局"}

    def test_no_match(self, units):
        assert names("公安") == set()

    def test_keeps_other_filters(self, units):
        assert names("教育", Unit.objects.filter(kind="office")) == {"教育局办公室"}
        assert names("教育", Unit.objects.exclude(pk=units["edu"].pk)) == {"教育局办公室"}
        assert search(Unit.objects.all(), "教育").count() == 2

    def test_chained_searches_intersect(self, units):
        assert set(search(search(Unit.objects.all(), "教育"), "办公室").values_list("name", flat=True)) == {
            "教育局办公室"
        }

    @pytest.mark.parametrize("text", ["", "   ", None])
    def test_empty_query_returns_everything(self, units, text):
        assert names(text) == ALL_UNITS

    def test_update_reindexes(self, units):
        services.unit_update(actor=None, unit=units["fin"], name="区审计局")
        assert names("审计") == {"区审计局"}
        assert names("财") == set()
        assert names("财政") == set()
        assert names("局") == {"区教育局", "教育局办公室", "区审计局"}

    def test_update_of_another_field_keeps_the_index(self, units):
        services.unit_update(actor=None, unit=units["fin"], phone="010-12345678")
        assert names("财政") == {"区财政局"}

    def test_docstring_example_信息中心(self, units):
        services.unit_create(actor=None, name="区信息中心", code="INFO", kind="office", parent=units["district"])
        assert names("信息中心") == {"区信息中心"}
        assert names("信息") == {"区信息中心"}

    @pytest.mark.parametrize(
        ("name", "code", "query"),
        [("区人力资源和社会保障局", "HRSS", "社会保障"), ("区市场监督管理局", "SAMR", "监督管理")],
        ids=["hrss", "samr"],
    )
    def test_a_word_inside_the_name_finds_it(self, units, name, code, query):
        services.unit_create(actor=None, name=name, code=code, kind="bureau", parent=units["district"])
        assert names(query) == {name}

    def test_new_unit_is_indexed(self, units):
        services.unit_create(actor=None, name="区审计局", code="AUDIT", kind="bureau", parent=units["district"])
        assert names("审计") == {"区审计局"}
        assert names("audit") == {"区审计局"}

    def test_deleted_unit_is_not_found(self, units):
        unit = services.unit_create(actor=None, name="区审计局", code="AUDIT", kind="bureau", parent=units["district"])
        Unit.objects.filter(pk=unit.pk).delete()
        assert names("审计") == set()
        services.unit_create(actor=None, name="区统计局", code="STAT", kind="bureau", parent=units["district"])
        assert names("审计") == set()
        assert names("统计") == {"区统计局"}

    @pytest.mark.parametrize(
        "text",
        [
            '"',
            '"教育',
            "教育*",
            "*",
            "(",
            "(教育",
            "教育)",
            "OR",
            "AND",
            "NOT",
            "教育 OR 财政",
            "NEAR(教育 财政)",
            "教育 -财政",
            "-",
            "^教育",
            "教育:财政",
            "name:教育",
            "'",
            "教育'",
            "a&b",
            "a | b",
            "!教育",
            "<->",
            "教育 <-> 财政",
            "c++",
            "___",
            "教育 ___",
            "\\",
            "教育\\",
            "%",
            "教育%",
            "{教育}",
            "[",
            "+",
            "1.5",
            "a.b",
            "e-mail",
            "x" * 500,
            "教育 " * 50,
        ],
    )
    def test_query_syntax_characters_do_not_raise(self, units, text):
        result = names(text)
        assert result <= ALL_UNITS

    def test_syntax_characters_around_a_word_still_find_it(self, units):
        assert names('"教育"') == {"区教育局", "教育局办公室"}
        assert names("教育*") == {"区教育局", "教育局办公室"}
        assert names("(财政)") == {"区财政局"}
        assert names("财政 OR") == set()  # OR is an ordinary word here, not an operator
