"""Every text marked for translation in the templates and the code has its Simplified
Chinese translation, and the catalog's placeholders are those of its English texts."""

from __future__ import annotations

from babel.messages.checkers import python_format
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from dealflow.infra.rendering import LOCALE_DIR, catalog_path, translate
from models.language import CHINESE, LANGUAGES
from models.settings import PROJECT_ROOT


def marked_texts() -> set[str | tuple[str, ...]]:
    """What `make messages` extracts: the same mapping, the same keywords."""
    with (LOCALE_DIR / "babel.cfg").open(encoding="utf-8") as mapping:
        method_map, options_map = parse_mapping_cfg(mapping)
    keywords = {
        "_": None,
        "gettext": None,
        "ngettext": (1, 2),
        "N_": None,
        "translate": (2,),
        "Words": None,
    }
    found = extract_from_dir(
        PROJECT_ROOT, method_map, options_map, keywords=keywords, strip_comment_tags=True
    )
    return {message for _file, _line, message, _comments, _context in found}


def test_every_text_in_templates_and_code_has_a_chinese_translation() -> None:
    texts = marked_texts()
    assert len(texts) > 50, "the extraction found the marked texts"
    with catalog_path(CHINESE).open("rb") as po:
        catalog = read_po(po, locale=CHINESE)
    problems = []
    for text in sorted(texts, key=str):
        entry = catalog.get(text)
        if entry is None:
            problems.append(f"not in the catalog: {text!r}")
        elif entry.fuzzy:
            problems.append(f"fuzzy: {text!r}")
        elif not all(entry.string if isinstance(entry.string, tuple) else (entry.string,)):
            problems.append(f"no translation: {text!r}")
        else:
            try:
                python_format(catalog, entry)
            except Exception as wrong:
                problems.append(f"placeholders differ: {text!r}: {wrong}")
    assert not problems, "run `make messages` and translate:\n" + "\n".join(problems)


def test_every_supported_language_but_english_has_a_catalog() -> None:
    assert [code for code in LANGUAGES if code != "en" and not catalog_path(code).exists()] == []


def test_a_text_is_translated_with_its_values() -> None:
    assert translate("en", "Paid in full: %(title)s (%(deal_id)s)", title="X", deal_id="D-1") == (
        "Paid in full: X (D-1)"
    )
    assert translate(
        CHINESE, "Paid in full: %(title)s (%(deal_id)s)", title="X", deal_id="D-1"
    ) == ("已全额付款：X（D-1）")
