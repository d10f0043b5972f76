"""SMS text rules: placeholders, values, the 【签名】 signature, length and parts.

The part boundaries (70/71, 134/135) are checked against numbers written out by hand; the
invariants with hypothesis use an independent statement of the carriers' rule.
"""

from __future__ import annotations

import math
import unicodedata

import pytest
from django.core.exceptions import ValidationError
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from yiwang.notify import text
from yiwang.notify.text import (
    BadSignName,
    BadTemplate,
    MissingPlaceholders,
    TooLong,
    check_template,
    clean_value,
    compose,
    normalise,
    placeholders,
    render,
    sms_length,
    sms_parts,
    validate_signature,
    with_signature,
)

# --- placeholders ------------------------------------------------------------------------


class TestPlaceholders:
    def test_names_in_order_each_once(self):
        body = "((姓名))您好，请于((日期))到((地点))办理。((姓名))请带身份证。"
        assert placeholders(body) == ["姓名", "日期", "地点"]

    def test_ascii_and_mixed_names(self):
        assert placeholders("Dear ((first name)), code ((code_1)) / ((编号-2))") == ["first name", "code_1", "编号-2"]

    def test_full_width_parentheses_are_accepted_and_normalised(self):
        body = "尊敬的（（姓名））：请于（（日期))前办理。"
        assert placeholders(body) == ["姓名", "日期"]
        assert normalise(body) == "尊敬的((姓名))：请于((日期))前办理。"

    def test_spaces_around_a_name_are_trimmed(self):
        assert placeholders("(( 姓名 ))（（　日期　））") == ["姓名", "日期"]
        assert normalise("(( 姓名 ))") == "((姓名))"

    def test_not_placeholders(self):
        assert placeholders("(姓名) ((  )) ((a(b))) ((换\n行))") == []

    def test_normalise_line_endings_and_trim(self):
        assert normalise("  第一行\r\n第二行\r第三行  ") == "第一行\n第二行\n第三行"


class TestRender:
    def test_fills_every_placeholder(self):
        body = "尊敬的((姓名))，您预约的((事项))已受理。((姓名))"
        assert render(body, {"姓名": "王丽", "事项": "社保卡补办"}) == "尊敬的王丽，您预约的社保卡补办已受理。王丽"

    def test_missing_values_are_named_in_order(self):
        with pytest.raises(MissingPlaceholders) as caught:
            render("((姓名))((日期))((地点))", {"日期": "5月1日"})
        assert caught.value.names == ["姓名", "地点"]
        assert str(caught.value) == "缺少占位符的值：姓名、地点"
        assert isinstance(caught.value, ValidationError)
        assert caught.value.code == "missing_placeholders"

    def test_an_empty_or_blank_value_is_missing(self):
        with pytest.raises(MissingPlaceholders) as caught:
            render("((姓名))((日期))", {"姓名": "", "日期": " \n "})
        assert caught.value.names == ["姓名", "日期"]

    def test_values_are_inserted_literally_not_expanded(self):
        assert render("((a))|((b))", {"a": "((b))", "b": "x"}) == "((b))|x"
        assert render("((a))", {"a": "（（a））"}) == "（（a））"

    def test_values_keys_are_trimmed_and_values_stringified(self):
        assert render("((号码))-((金额))", {" 号码 ": 12, "金额": 3.5}) == "12-3.5"

    def test_value_line_breaks_become_one_space(self):
        assert (
            render("地址：((地址))。", {"地址": "北仑区\r\n  新碶街道\t\t明州路"}) == "地址：北仑区 新碶街道 明州路。"
        )

    def test_value_invisible_characters_are_removed(self):
        value = "\ufeff王\u200b丽\u202e\x00\x07"
        assert render("((姓名))", {"姓名": value}) == "王丽"

    def test_value_cannot_forge_a_signature(self):
        assert render("((单位))通知", {"单位": "【公安局】"}) == "[公安局]通知"

    def test_extra_values_are_ignored(self):
        assert render("无占位符", {"姓名": "王丽"}) == "无占位符"


class TestCheckTemplate:
    def test_a_good_template_passes(self):
        check_template("尊敬的((姓名))，请于((日期))前办理。", signature="北仑区政府")

    def test_empty(self):
        with pytest.raises(BadTemplate):
            check_template("  \n ")

    @pytest.mark.parametrize("body", ["尊敬的((姓名)，您好", "尊敬的(姓名))，您好", "请于（（日期 前", "((名(字))"])
    def test_stray_double_parentheses(self, body):
        with pytest.raises(BadTemplate, match="占位符格式不正确"):
            check_template(body)

    def test_triple_parentheses_around_a_placeholder_are_fine(self):
        check_template("(((姓名)))")

    def test_signature_brackets_in_the_body(self):
        with pytest.raises(BadTemplate, match="【】"):
            check_template("【教育局】考试通知")

    def test_fixed_text_too_long_with_the_signature(self):
        body = "字" * (text.MAX_LENGTH - 6) + "((姓名))"
        check_template(body, signature="北仑")  # 494 + 【北仑】 4 = 498
        with pytest.raises(TooLong):
            check_template(body, signature="北仑区政府办")  # 494 + 8 = 502


# --- signature ---------------------------------------------------------------------------


class TestSignature:
    def test_with_signature(self):
        assert with_signature("您的验证码是123456。", "北仑区政府") == "【北仑区政府】您的验证码是123456。"

    def test_brackets_around_the_name_are_dropped(self):
        assert validate_signature(" 【北仑区政府】 ") == "北仑区政府"
        assert with_signature("x", "【北仑区政府】") == "【北仑区政府】x"

    @pytest.mark.parametrize("name", ["区政", "北仑区人民政府办公室一二", "Beilun Gov"[:2]])
    def test_lengths_2_to_12(self, name):
        assert validate_signature(name) == name

    @pytest.mark.parametrize("name", ["", "区", "北仑区人民政府办公室一二三"])
    def test_too_short_or_long(self, name):
        with pytest.raises(BadSignName, match="2–12"):
            validate_signature(name)

    @pytest.mark.parametrize("name", ["北仑【区】", "北仑(区)", "北仑（区）", "北仑[区]", "北仑《区》"])
    def test_no_brackets_inside(self, name):
        with pytest.raises(BadSignName, match="括号"):
            validate_signature(name)

    @pytest.mark.parametrize("name", ["北仑 区", "北仑\u200b区", "北仑\t区"])
    def test_no_spaces_or_invisible_characters(self, name):
        with pytest.raises(BadSignName):
            validate_signature(name)


# --- length and parts --------------------------------------------------------------------


class TestLength:
    @pytest.mark.parametrize(
        ("length", "parts"),
        [(0, 0), (1, 1), (69, 1), (70, 1), (71, 2), (133, 2), (134, 2), (135, 3), (201, 3), (202, 4), (500, 8)],
    )
    def test_part_boundaries(self, length, parts):
        assert sms_parts("字" * length) == parts
        assert sms_parts("a" * length) == parts

    def test_every_code_point_counts_one_signature_included(self):
        signed = with_signature("a" * 60 + "中文。", "北仑区政府")
        assert sms_length(signed) == 7 + 60 + 3 == 70
        assert sms_parts(signed) == 1
        assert sms_parts(signed + "!") == 2

    def test_too_long(self):
        assert sms_parts("字" * text.MAX_LENGTH) == 8
        with pytest.raises(TooLong) as caught:
            sms_parts("字" * (text.MAX_LENGTH + 1))
        assert (caught.value.length, caught.value.limit) == (501, 500)
        assert "501" in str(caught.value) and "500" in str(caught.value)

    def test_limit_is_a_parameter(self):
        assert sms_parts("字" * 600, limit=1000) == 9
        with pytest.raises(TooLong):
            text.check_length("字" * 71, limit=70)

    def test_compose(self):
        final = compose("尊敬的((姓名))：您的证件已办好。", {"姓名": "王丽"}, signature="北仑区政府")
        assert final == "【北仑区政府】尊敬的王丽：您的证件已办好。"
        with pytest.raises(TooLong):
            compose("((x))", {"x": "字" * 495}, signature="北仑区政府")


# --- invariants --------------------------------------------------------------------------


def reference_parts(n: int) -> int:
    """The carriers' rule, stated independently: one SMS holds 70; split, each part holds 67."""
    if n == 0:
        return 0
    return 1 if n <= 70 else math.ceil(n / 67)


any_text = st.text(st.characters(codec="utf-8"), max_size=text.MAX_LENGTH)
names = st.from_regex(r"[A-Za-z\u4e00-\u9fa5][A-Za-z0-9_\u4e00-\u9fa5]{0,7}", fullmatch=True)


class TestInvariants:
    @given(any_text)
    @settings(max_examples=300)
    def test_parts_match_the_rule(self, value):
        n = sms_length(value)
        parts = sms_parts(value)
        assert parts == reference_parts(n)
        if n > 70:
            assert (parts - 1) * 67 < n <= parts * 67

    @given(st.integers(min_value=0, max_value=text.MAX_LENGTH - 1))
    def test_parts_never_decrease_and_grow_by_at_most_one(self, n):
        assert 0 <= sms_parts("x" * (n + 1)) - sms_parts("x" * n) <= 1

    @given(st.dictionaries(names, st.text(max_size=30), min_size=1, max_size=5))
    @settings(max_examples=200)
    def test_render_leaves_no_placeholder_of_the_body(self, values):
        assume(all(clean_value(v) for v in values.values()))
        body = "通知：" + "，".join(f"(({name}))" for name in values)
        rendered = render(body, values)
        for value in values.values():
            assert clean_value(value) in rendered
        # Only placeholders a value brought in literally can remain.
        assert set(placeholders(rendered)) <= {p for v in values.values() for p in placeholders(clean_value(v))}

    @given(st.text(max_size=60))
    @settings(max_examples=300)
    def test_clean_value_is_one_visible_line_without_signature_brackets(self, value):
        cleaned = clean_value(value)
        assert "\n" not in cleaned and "\r" not in cleaned
        assert "【" not in cleaned and "】" not in cleaned
        assert all(unicodedata.category(ch) not in ("Cc", "Cf") for ch in cleaned)
        assert cleaned == cleaned.strip()
        assert clean_value(cleaned) == cleaned

    @given(st.text(st.characters(exclude_characters="(（)）"), max_size=80))
    def test_a_body_without_placeholders_renders_to_itself(self, body):
        assert render(body, {}) == body

    @given(st.lists(names, min_size=1, max_size=6))
    def test_placeholders_are_unique_and_in_order(self, found):
        body = "".join(f"（（{name}))x" for name in found)
        assert placeholders(body) == list(dict.fromkeys(found))
        assert placeholders(normalise(body)) == placeholders(body)


@given(
    st.lists(st.sampled_from(["((姓名))", "((日期))", "您好", "，", "((a-b))", " "]), max_size=8),
    st.dictionaries(st.sampled_from(["姓名", "日期", "a-b"]), st.text(max_size=12), max_size=3),
)
def test_compiled_body_renders_exactly_like_render(parts, values):
    body = "".join(parts)
    fill = text.compile_body(body)
    try:
        expected = text.render(body, values)
    except text.MissingPlaceholders as error:
        with pytest.raises(text.MissingPlaceholders) as again:
            fill(values)
        assert again.value.messages == error.messages
    else:
        assert fill(values) == expected
