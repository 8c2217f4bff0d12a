"""The languages Dealflow writes its emails and pages in, by code: ``en`` (English, the
default) and ``zh_Hans`` (Simplified Chinese). A matrix or a deal may spell a language
as people usually do (``zh``, ``zh-CN``, ``zh_Hans``); it is kept as its code."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

ENGLISH = "en"
CHINESE = "zh_Hans"
LANGUAGES = {ENGLISH: "English", CHINESE: "简体中文 (Simplified Chinese)"}

_SPELLINGS = {
    "en": ENGLISH,
    "en_us": ENGLISH,
    "en_gb": ENGLISH,
    "zh": CHINESE,
    "zh_hans": CHINESE,
    "zh_cn": CHINESE,
    "zh_hans_cn": CHINESE,
}


def language_code(value: str) -> str:
    """``value``'s language code; a ValueError naming the supported ones if none."""
    code = _SPELLINGS.get(value.strip().replace("-", "_").lower())
    if code is None:
        supported = ", ".join(f"{code} ({name})" for code, name in LANGUAGES.items())
        raise ValueError(f"{value!r} is not a supported language; supported: {supported}")
    return code


Language = Annotated[str, AfterValidator(language_code)]
