"""Every string of the pages in both languages, and no page text outside the catalogs.

The strings are extracted from the templates and the Python of web/ exactly
as `pybabel extract -F web/babel.cfg` does (web/i18n.py); each must be in the
Simplified Chinese and the English catalog, translated (not fuzzy, not
empty, every plural form), with the same %(placeholders)s. A catalog entry
no page uses any more fails too. Then the templates are read as HTML with
their Jinja tags taken out: what is left must hold no words, so a string
typed into a template without `_()` cannot slip past.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

import web
from web.i18n import LANGUAGES, CompiledCatalogs, catalog_paths

WEB = Path(web.__file__).resolve().parent
TEMPLATES = WEB / "templates"
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
_WORDS = re.compile(r"[A-Za-z\u3400-\u9fff]")
_JINJA = re.compile(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", re.S)
SHOWN_ATTRIBUTES = {"placeholder", "title", "aria-label", "alt", "value", "data-busy",
                    "data-no-camera"}
NOT_WORDS = {"XXXX-XXXX-XXX"}
"""Literal text that is not language: the shape of a short code."""


def _extracted() -> dict[str, tuple[str, ...]]:
    with (WEB / "babel.cfg").open() as mapping:
        method_map, options_map = parse_mapping_cfg(mapping)
    found = {}
    for _file, _line, message, _comments, _context in extract_from_dir(
            WEB, method_map, options_map):
        ids = (message,) if isinstance(message, str) else tuple(message)
        found[ids[0]] = ids
    return found


EXTRACTED = _extracted()


def test_the_pages_have_strings_to_translate():
    assert len(EXTRACTED) > 50
    assert "Redeem" in EXTRACTED and "%(num)d point" in EXTRACTED


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_string_is_translated_in_each_language(language):
    with catalog_paths()[language].open("rb") as source:
        catalog = read_po(source, locale=language)
    problems = []
    for msgid, ids in EXTRACTED.items():
        message = catalog.get(msgid)
        if message is None:
            problems.append(f"missing: {msgid!r}")
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        forms = catalog.num_plurals if len(ids) > 1 else 1
        if message.fuzzy or not all(strings) or len(strings) != forms:
            problems.append(f"not translated: {msgid!r}")
        wanted = set(_PLACEHOLDER.findall(" ".join(ids)))
        for string in strings:
            if set(_PLACEHOLDER.findall(string)) != wanted:
                problems.append(f"placeholders differ: {msgid!r} -> {string!r}")
    stale = [message.id for message in catalog if message.id and (
        message.id if isinstance(message.id, str) else message.id[0]) not in EXTRACTED]
    problems += [f"no page uses: {msgid!r}" for msgid in stale]
    assert problems == []


def test_the_catalogs_compile_and_chinese_is_chinese():
    compiled = CompiledCatalogs().translations
    chinese = compiled["zh_Hans_CN"]
    assert chinese.ugettext("Redeem") == "确认核销"
    assert chinese.ungettext("%(num)d point", "%(num)d points", 5) % {"num": 5} == "5 积分"
    assert compiled["en"].ungettext("%(num)d point", "%(num)d points", 1) % {"num": 1} == (
        "1 point")


class _VisibleText(HTMLParser):
    """Text and shown attributes that are still there once the Jinja tags are gone."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attributes) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        for name, value in attributes:
            if name in SHOWN_ATTRIBUTES and value and value.strip() not in NOT_WORDS:
                self.found.append(f"{tag}[{name}]={value!r}")

    def handle_endtag(self, tag) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data) -> None:
        if not self._hidden and data.strip():
            self.found.append(data.strip())


@pytest.mark.parametrize("template", sorted(TEMPLATES.rglob("*.html")),
                         ids=lambda path: str(path.relative_to(TEMPLATES)))
def test_no_template_shows_text_that_is_not_in_the_catalogs(template):
    reader = _VisibleText()
    reader.feed(_JINJA.sub("", template.read_text()))
    assert [text for text in reader.found if _WORDS.search(text)] == []
