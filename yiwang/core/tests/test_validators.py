"""Resident ID (GB 11643), unified social credit code (GB 32100) and mobile numbers.

Check characters are computed here independently of ``yiwang.core.validators``.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from yiwang.core.validators import (
    first_invisible_char,
    is_valid_credit_code,
    is_valid_mobile,
    is_valid_resident_id,
    normalise_mobile,
    validate_credit_code,
    validate_mobile,
    validate_resident_id,
    validate_visible_text,
)

# --- independent reference implementations ------------------------------------------------

GB11643_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
GB11643_MAP = "10X98765432"

GB32100_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
GB32100_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]

FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def resident_id(first17: str) -> str:
    assert len(first17) == 17 and first17.isascii() and first17.isdigit()
    total = 0
    for i, ch in enumerate(first17):
        total += int(ch) * GB11643_WEIGHTS[i]
    return first17 + GB11643_MAP[total % 11]


def make_id(region: str = "110105", birth: str = "19491001", seq: str = "002") -> str:
    return resident_id(region + birth + seq)


def credit_code(first17: str) -> str:
    assert len(first17) == 17
    total = 0
    for i, ch in enumerate(first17):
        total += GB32100_CHARSET.index(ch) * GB32100_WEIGHTS[i]
    return first17 + GB32100_CHARSET[(31 - total % 31) % 31]


def id_ending_in_x() -> str:
    for seq in range(1000):
        number = make_id(birth="19800101", seq=f"{seq:03d}")
        if number.endswith("X"):
            return number
    raise AssertionError("no X check digit found")


def has_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


# --- hypothesis strategies ------------------------------------------------------------------

births = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date.today())
valid_ids = st.builds(
    lambda first, region, birth, seq: resident_id(f"{first}{region}{birth:%Y%m%d}{seq:03d}"),
    st.integers(min_value=1, max_value=9),
    st.integers(min_value=0, max_value=99999).map(lambda n: f"{n:05d}"),
    births,
    st.integers(min_value=0, max_value=999),
)
uscc_char = st.sampled_from(GB32100_CHARSET)
valid_codes = st.builds(
    lambda head, region, org: credit_code(head + region + org),
    st.text(alphabet=GB32100_CHARSET, min_size=2, max_size=2),
    st.text(alphabet="0123456789", min_size=6, max_size=6),
    st.text(alphabet=GB32100_CHARSET, min_size=9, max_size=9),
)


class TestIsValidResidentId:
    def test_reference_helper_matches_a_published_example(self):
        # The sample number of GB 11643-1999 itself.
        assert resident_id("11010519491231002") == "11010519491231002X"

    @pytest.mark.parametrize(
        "number",
        [
            make_id(),
            make_id(region="440305", birth="20000229", seq="123"),  # leap day
            make_id(region="310101", birth="19000101", seq="999"),
            "11010519491231002X",
        ],
    )
    def test_known_good_numbers(self, number):
        assert is_valid_resident_id(number)

    def test_lowercase_x_is_accepted(self):
        number = id_ending_in_x()
        assert is_valid_resident_id(number.lower())
        validate_resident_id(number.lower())

    def test_surrounding_whitespace_is_ignored(self):
        assert is_valid_resident_id(f"  {make_id()}\n")

    def test_wrong_check_digit(self):
        number = make_id()
        for check in "0123456789X":
            if check != number[17]:
                assert not is_valid_resident_id(number[:17] + check), check

    @pytest.mark.parametrize("birth", ["19990230", "19990001", "19991301", "19990431", "19000229", "18991231"])
    def test_impossible_birth_date(self, birth):
        assert not is_valid_resident_id(make_id(birth=birth))

    def test_future_birth_date(self):
        today = dt.date(2025, 6, 30)
        assert is_valid_resident_id(make_id(birth="20250630"), today=today)
        assert not is_valid_resident_id(make_id(birth="20250701"), today=today)
        tomorrow = dt.date.today() + dt.timedelta(days=1)
        assert not is_valid_resident_id(make_id(birth=f"{tomorrow:%Y%m%d}"))

    @pytest.mark.parametrize("length", [15, 17, 19])
    def test_wrong_length(self, length):
        number = make_id()
        value = number[:length] if length < 18 else number[:17] + "0" + number[17]
        assert len(value) == length
        assert not is_valid_resident_id(value)

    @pytest.mark.parametrize("value", ["", None, "0" + make_id()[1:], make_id()[:17] + "Y", "11010519491001X002"])
    def test_malformed(self, value):
        assert not is_valid_resident_id(value)

    def test_full_width_digits_rejected(self):
        number = make_id()
        value = number[0] + number[1:17].translate(FULLWIDTH) + number[17]
        assert not is_valid_resident_id(value)

    @settings(max_examples=300)
    @given(number=valid_ids)
    def test_any_generated_valid_id_passes(self, number):
        assert is_valid_resident_id(number)

    @settings(max_examples=300)
    @given(
        number=valid_ids, position=st.integers(min_value=0, max_value=16), delta=st.integers(min_value=1, max_value=9)
    )
    def test_any_single_digit_change_fails(self, number, position, delta):
        digit = str((int(number[position]) + delta) % 10)
        changed = number[:position] + digit + number[position + 1 :]
        assert changed != number
        assert not is_valid_resident_id(changed)


class TestValidateResidentId:
    def test_valid_passes(self):
        validate_resident_id(make_id())

    @pytest.mark.parametrize("value", [make_id()[:17] + ("1" if make_id().endswith("0") else "0"), "123", ""])
    def test_invalid_raises_chinese_message(self, value):
        with pytest.raises(ValidationError) as info:
            validate_resident_id(value)
        assert info.value.code == "invalid_id"
        assert has_chinese(str(info.value.messages[0]))
        assert "身份证" in str(info.value.messages[0])


class TestIsValidCreditCode:
    def test_reference_helper_matches_a_published_example(self):
        assert credit_code("91350100M000100Y4") == "91350100M000100Y43"

    @pytest.mark.parametrize(
        "code",
        [
            "91350100M000100Y43",
            credit_code("91110108MA01ABCDE"),
            credit_code("12100000400000000"),
            credit_code("Y1440300000000000"),
        ],
    )
    def test_known_good_codes(self, code):
        assert is_valid_credit_code(code)

    def test_lowercase_and_whitespace_accepted(self):
        assert is_valid_credit_code(" 91350100m000100y43 ")

    def test_wrong_check_character(self):
        for check in GB32100_CHARSET:
            if check != "3":
                assert not is_valid_credit_code("91350100M000100Y4" + check), check

    @pytest.mark.parametrize("letter", list("IOZSV"))
    @pytest.mark.parametrize("position", [0, 8, 16, 17])
    def test_letters_outside_the_charset_rejected(self, letter, position):
        code = "91350100M000100Y43"
        value = code[:position] + letter + code[position + 1 :]
        assert is_valid_credit_code(value) is False
        with pytest.raises(ValidationError):
            validate_credit_code(value)

    @pytest.mark.parametrize("value", ["", None, "91350100M000100Y4", "91350100M000100Y433", "91350A00M000100Y43"])
    def test_malformed(self, value):
        assert not is_valid_credit_code(value)

    def test_full_width_digit_returns_false_not_error(self):
        assert is_valid_credit_code("91３50100M000100Y43") is False

    @settings(max_examples=300)
    @given(code=valid_codes)
    def test_any_generated_valid_code_passes(self, code):
        assert is_valid_credit_code(code)

    @settings(max_examples=300)
    @given(code=valid_codes, position=st.integers(min_value=0, max_value=16), replacement=uscc_char)
    def test_any_single_character_change_fails(self, code, position, replacement):
        if replacement == code[position]:
            replacement = GB32100_CHARSET[(GB32100_CHARSET.index(replacement) + 1) % 31]
        changed = code[:position] + replacement + code[position + 1 :]
        assert not is_valid_credit_code(changed)


class TestValidateCreditCode:
    def test_valid_passes(self):
        validate_credit_code("91350100M000100Y43")

    def test_invalid_raises_chinese_message(self):
        with pytest.raises(ValidationError) as info:
            validate_credit_code("91350100M000100Y44")
        assert info.value.code == "invalid_uscc"
        assert "统一社会信用代码" in str(info.value.messages[0])

    def test_full_width_digit_raises_validation_error(self):
        with pytest.raises(ValidationError):
            validate_credit_code("91３50100M000100Y43")


class TestNormaliseMobile:
    @pytest.mark.parametrize(
        "value",
        [
            "13800138000",
            "+86 138 0013 8000",
            "+8613800138000",
            "0086-138-0013-8000",
            "86 138 0013 8000",
            "(+86) 138-0013-8000",
        ],
    )
    def test_prefixes_and_separators_removed(self, value):
        assert normalise_mobile(value) == "13800138000"

    def test_short_number_keeps_its_86(self):
        # Only an 11-digit remainder is treated as a mobile number after a prefix.
        assert normalise_mobile("8613800138") == "8613800138"

    def test_none(self):
        assert normalise_mobile(None) == ""


class TestIsValidMobile:
    @pytest.mark.parametrize("value", ["13800138000", "+86 138 0013 8000", "19912345678", "0086 15012345678"])
    def test_valid(self, value):
        assert is_valid_mobile(value)

    @pytest.mark.parametrize(
        "value",
        [
            "12345678901",
            "1380013800",
            "138001380000",
            "23800138000",
            "10800138000",
            "1380013800a",
            "",
            None,
            "+1 138 0013 8000",
        ],
    )
    def test_invalid(self, value):
        assert not is_valid_mobile(value)

    def test_non_ascii_digits_rejected(self):
        assert not is_valid_mobile("13800138٠٠٠")


class TestValidateMobile:
    def test_valid_passes(self):
        validate_mobile("+86 138 0013 8000")

    @pytest.mark.parametrize("value", ["12345678901", "1380013800"])
    def test_invalid_raises_chinese_message(self, value):
        with pytest.raises(ValidationError) as info:
            validate_mobile(value)
        assert info.value.code == "invalid_mobile"
        assert "手机号码" in str(info.value.messages[0])


class TestValidateVisibleText:
    """Names and codes refuse bidi controls, zero-width and control characters (issue 10 item 7)."""

    REFUSED = [
        *(chr(c) for c in range(0x202A, 0x202F)),
        *(chr(c) for c in range(0x2066, 0x206A)),
        "\u200e",
        "\u200f",
        "\u061c",
        "\u200b",
        "\u200c",
        "\u200d",
        "\u2060",
        "\ufeff",
        "\x00",
        "\t",
        "\n",
        "\x7f",
        "\x85",
        "\u2028",
    ]

    @pytest.mark.parametrize("char", REFUSED, ids=lambda c: f"U+{ord(c):04X}")
    def test_refused_anywhere(self, char):
        for value in (f"教{char}育", f"{char}教育", f"教育{char}"):
            assert first_invisible_char(value) == char
            with pytest.raises(ValidationError) as error:
                validate_visible_text(value)
            message = error.value.messages[0]
            assert has_chinese(message) and f"U+{ord(char):04X}" in message

    @pytest.mark.parametrize(
        "value", ["区教育局", "Bureau of Education", "王丽", "阿卜杜·热合曼", "BL-EDU_01", "(筹)", "", "𠀀姓"]
    )
    def test_visible_text_passes(self, value):
        assert first_invisible_char(value) is None
        validate_visible_text(value)
