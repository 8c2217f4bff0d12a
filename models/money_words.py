"""A CNY amount in Chinese capital numerals (大写金额), as invoices, cheques and contracts
write it, following the People's Bank of China's payment rules (支付结算办法, 附件一):

- capitals that cannot be altered with a stroke (壹贰叁 ..., 拾佰仟万亿), and 壹拾 for ten;
- one 零 for a run of zeros between non-zero digits (¥1,004 壹仟零肆元, ¥100,010,000
  壹亿零壹万元), and 零 after 元 when the 角 is 0 but the 分 is not (¥1.05 壹元零伍分);
  where the rules allow a 零 or none (a 0 in the 元 or 万 place before a non-zero 角 or
  仟: ¥1,680.32, ¥107,000.53) none is written;
- 整 after 元 when there is neither 角 nor 分; after 角 the rules leave it optional and
  none is written, after 分 never.
"""

from __future__ import annotations

from decimal import Decimal

_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_TEN_THOUSAND = 10**4
_HUNDRED_MILLION = 10**8
# 千万亿 is the highest group the rules name (万亿 being the last unit before 亿亿).
_LIMIT = 10**16


def cny_in_words(amount: Decimal, *, with_currency: bool = False) -> str:
    """``amount`` yuan in capitals, e.g. 1,280,000.00 -> 壹佰贰拾捌万元整; with
    ``with_currency``, after 人民币 as on a cheque or a contract."""
    if amount < 0:
        raise ValueError(f"a negative amount has no capitals: {amount}")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"capitals are written in whole fen (0.01): {amount}")
    if amount >= _LIMIT:
        raise ValueError(f"too large to write in capitals (up to 千万亿): {amount}")
    yuan, cents = divmod(int(amount * 100), 100)
    jiao, fen = divmod(cents, 10)
    words = _integer(yuan) + "元" if yuan else ""
    if not cents:
        words = (words or "零元") + "整"
    else:
        if jiao:
            words += _DIGITS[jiao] + "角"
        elif yuan:
            words += "零"
        if fen:
            words += _DIGITS[fen] + "分"
    return ("人民币" if with_currency else "") + words


def _integer(number: int) -> str:
    """A positive whole number in capitals, grouped by 亿 and 万."""
    for size, unit in ((_HUNDRED_MILLION, "亿"), (_TEN_THOUSAND, "万")):
        if number >= size:
            high, low = divmod(number, size)
            words = _integer(high) + unit
            if low:
                # A whole group of zeros reads as one 零: at the top of the lower part, or
                # the 亿 group under a 万亿 (1,0000,1000,0000: 壹万亿零壹仟万).
                zero_group = low < size // 10 or (
                    high >= _TEN_THOUSAND and not high % _TEN_THOUSAND
                )
                words += ("零" if zero_group else "") + _integer(low)
            return words
    return _group(number)


def _group(number: int) -> str:
    """1 to 9999 in capitals: 仟, 佰, 拾, one 零 for zeros between digits, none at the end."""
    words, zeros_before = "", False
    for digit, unit in zip(f"{number:04d}", ("仟", "佰", "拾", ""), strict=True):
        if digit == "0":
            zeros_before = bool(words)
            continue
        words += ("零" if zeros_before else "") + _DIGITS[int(digit)] + unit
        zeros_before = False
    return words
