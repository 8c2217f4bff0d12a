"""CNY amounts in Chinese capital numerals (大写金额), as invoices and cheques write them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.money_words import cny_in_words

# The examples of the People's Bank of China's payment rules (支付结算办法, 附件一) and
# the usual invoice amounts. Where the rules allow a 零 or none (a 0 in the 元 or 万
# place before a non-zero digit: ¥1,680.32, ¥107,000.53), we write none.
KNOWN = [
    ("1280000.00", "壹佰贰拾捌万元整"),
    ("1004.50", "壹仟零肆元伍角"),
    ("0.05", "伍分"),
    ("0.50", "伍角"),
    ("0.55", "伍角伍分"),
    ("0", "零元整"),
    ("1", "壹元整"),
    ("10", "壹拾元整"),
    ("10.10", "壹拾元壹角"),
    ("1.05", "壹元零伍分"),
    ("325.04", "叁佰贰拾伍元零肆分"),
    ("16409.02", "壹万陆仟肆佰零玖元零贰分"),
    ("1680.32", "壹仟陆佰捌拾元叁角贰分"),
    ("107000.53", "壹拾万柒仟元伍角叁分"),
    ("1010", "壹仟零壹拾元整"),
    ("100100", "壹拾万零壹佰元整"),
    ("384000.00", "叁拾捌万肆仟元整"),
    ("512000.00", "伍拾壹万贰仟元整"),
    ("100000000", "壹亿元整"),
    ("100010000", "壹亿零壹万元整"),
    ("100001000", "壹亿零壹仟元整"),
    ("110000000", "壹亿壹仟万元整"),
    ("1000000000000", "壹万亿元整"),
    ("1000000010000", "壹万亿零壹万元整"),
    ("1000010000000", "壹万亿零壹仟万元整"),
    ("1234567890123.45", "壹万贰仟叁佰肆拾伍亿陆仟柒佰捌拾玖万零壹佰贰拾叁元肆角伍分"),
    (
        "9999999999999999.99",
        "玖仟玖佰玖拾玖万玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分",
    ),
]


@pytest.mark.parametrize(("amount", "words"), KNOWN, ids=[a for a, _ in KNOWN])
def test_known_amounts(amount: str, words: str) -> None:
    assert cny_in_words(Decimal(amount)) == words


def test_the_currency_may_be_named() -> None:
    assert cny_in_words(Decimal("1280000.00"), with_currency=True) == "人民币壹佰贰拾捌万元整"


@pytest.mark.parametrize(
    ("amount", "words"),
    [("-1", "negative"), ("1.005", "whole fen"), ("10000000000000000", "too large")],
)
def test_what_cannot_be_written_is_refused(amount: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        cny_in_words(Decimal(amount))


DIGITS = {d: n for n, d in enumerate("零壹贰叁肆伍陆柒捌玖")}
UNITS = {"拾": 10, "佰": 100, "仟": 1000}


def integer_of(words: str) -> int:
    """A reader of Chinese capital numerals written independently of the writer."""
    above_yi = wan = section = digit = 0
    for char in words:
        if char in DIGITS:
            digit = DIGITS[char]
        elif char in UNITS:
            assert digit, f"{char} without a digit before it in {words}"
            section, digit = section + digit * UNITS[char], 0
        elif char == "万":
            wan, section, digit = (section + digit) * 10**4, 0, 0
        elif char == "亿":
            above_yi, wan, section, digit = (above_yi + wan + section + digit) * 10**8, 0, 0, 0
        else:
            raise AssertionError(f"unexpected {char!r} in {words}")
    return above_yi + wan + section + digit


def amount_of(words: str) -> Decimal:
    whole, has_yuan, rest = words.partition("元")
    if not has_yuan:
        whole, rest = "", words
    rest = rest.removesuffix("整").removeprefix("零")
    jiao, _, rest = rest.rpartition("角") if "角" in rest else ("", "", rest)
    fen = rest.removesuffix("分")
    cents = (DIGITS[jiao] if jiao else 0) * 10 + (DIGITS[fen] if fen else 0)
    return Decimal(integer_of(whole) * 100 + cents) / 100


def zeros_written(cents: int) -> int:
    """How many 零 the rules ask for: one per run of zeros in the yuan before a non-zero
    digit, but none for zeros that only end a 万 or 亿 group before a non-zero 仟 (the
    optional case); and one after 元 when the 角 is 0 and the 分 is not."""
    yuan, small = divmod(cents, 100)
    places = [int(d) for d in reversed(str(yuan))] if yuan else []  # places[k]: 10**k
    count, k = 0, len(places) - 1
    while k >= 0:
        if places[k]:
            k -= 1
            continue
        top = k
        while k >= 0 and places[k] == 0:
            k -= 1
        if k >= 0:  # followed by a non-zero digit at 10**k
            ends_a_group_only = (k + 1) % 4 == 0 and top - (k + 1) < 3
            count += not ends_a_group_only
    return count + (yuan > 0 and small < 10 and small > 0)


sparse_digits = st.lists(st.sampled_from("0000000123456789"), min_size=1, max_size=18).map(
    lambda digits: int("".join(digits))
)
cents = st.one_of(st.integers(min_value=0, max_value=10**18 - 1), sparse_digits)


@settings(max_examples=2000, deadline=None)
@given(cents=cents)
def test_the_words_read_back_as_the_amount_and_follow_the_zero_rules(cents: int) -> None:
    amount = Decimal(cents) / 100
    words = cny_in_words(amount)
    assert amount_of(words) == amount, words
    assert "零零" not in words
    if words != "零元整":
        assert not words.startswith("零")
        assert not any(f"零{unit}" in words for unit in "万亿元角分整拾佰仟"), words
    assert words.endswith("整") == (cents % 100 == 0), "整 only when it ends at 元"
    assert ("元" in words) == (cents >= 100 or cents == 0)
    assert "亿万" not in words
    if words != "零元整":
        assert words.count("零") == zeros_written(cents), words
