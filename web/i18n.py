"""Languages of the pages: Simplified Chinese first, English available (flask-babel).

Which language a page is in: `?lang=en` or `?lang=zh_CN` on any page (the
switch in the header; remembered in a cookie for a year), else the
remembered choice, else the browser's Accept-Language, else Chinese.

The catalogs are kept as `web/translations/<locale>/LC_MESSAGES/messages.po`
(msgids in English; the English catalog translates each to itself, so a
missing string is caught in both). No compiled `.mo` file is committed or
built by an install step: `install` compiles the `.po` files with Babel, in
memory, when the app is created, so `make run` needs no extra step and no
folder has to be writable. Each page request makes these catalogs its
flask-babel domain (`Domain.as_default`); the API's responses use none.

After changing a template's strings:

    pybabel extract -F web/babel.cfg -o /tmp/messages.pot web
    pybabel update -i /tmp/messages.pot -d web/translations --no-fuzzy-matching

then translate the new entries in both catalogs; tests/web/test_translations.py
fails while any string lacks a translation.
"""

from __future__ import annotations

import io
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import Flask, request
from flask_babel import Babel, Domain, get_locale

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
LANGUAGES = ("zh_CN", "en")
DEFAULT_LANGUAGE = "zh_CN"
LANGUAGE_COOKIE = "jifen_lang"
LANGUAGE_COOKIE_SECONDS = 365 * 24 * 3600
_ACCEPT_LANGUAGE_TAGS = {"zh-CN": "zh_CN", "zh-Hans": "zh_CN", "zh": "zh_CN", "en": "en"}


class CompiledCatalogs(Domain):
    """A flask-babel domain whose translations were compiled in memory from the `.po` files."""

    def __init__(self) -> None:
        super().__init__(domain="messages")
        self.translations = {}
        for language, path in catalog_paths().items():
            with path.open("rb") as source:
                catalog = read_po(source, locale=language)
            compiled = io.BytesIO()
            write_mo(compiled, catalog)  # fuzzy entries are left out, as msgfmt does
            compiled.seek(0)
            # Keyed as flask-babel names the locale: zh_CN is parsed as zh_Hans_CN.
            self.translations[str(Locale.parse(language))] = Translations(compiled,
                                                                          domain="messages")

    def get_translations(self) -> NullTranslations:
        return self.translations.get(str(get_locale()), NullTranslations())


def install(app: Flask) -> CompiledCatalogs:
    """Set up flask-babel on `app`; the pages make the returned domain theirs per request."""
    app.config["BABEL_DEFAULT_LOCALE"] = DEFAULT_LANGUAGE
    Babel(app, locale_selector=chosen_language)
    return CompiledCatalogs()


def chosen_language() -> str:
    asked = requested_language()
    if asked is not None:
        return asked
    remembered = request.cookies.get(LANGUAGE_COOKIE)
    if remembered in LANGUAGES:
        return remembered
    best = request.accept_languages.best_match(list(_ACCEPT_LANGUAGE_TAGS))
    return _ACCEPT_LANGUAGE_TAGS[best] if best else DEFAULT_LANGUAGE


def requested_language() -> str | None:
    """The language this request's `?lang=` asks for, if it is one of ours."""
    asked = request.args.get("lang")
    return asked if asked in LANGUAGES else None


def catalog_paths() -> dict[str, Path]:
    return {language: TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"
            for language in LANGUAGES}
