"""Fixtures of the organiser's desk tests: the village, its staff signed in, and a folder of
this test's own for evidence."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ..conftest import text_of
from ..deskkit import DeskVillage, make_desk_village


@pytest.fixture
def desk(engine) -> DeskVillage:
    return make_desk_village(engine)


@pytest.fixture(autouse=True)
def evidence_folder(app, tmp_path, monkeypatch):
    """Evidence goes to this test's own folder, not ./var/evidence."""
    extension = app.extensions["jifen"]
    folder = tmp_path / "evidence"
    monkeypatch.setattr(extension, "settings", replace(extension.settings, evidence_dir=folder))
    return folder


@pytest.fixture
def signed_in(desk, new_visitor):
    """A browser signed in as `who` (a key of `deskkit.STAFF`, or `shop`)."""

    def sign_in(who: str, language: str = "zh-CN"):
        visitor = new_visitor()
        visitor.language = language
        response = visitor.sign_in(desk.usernames[who])
        assert response.status_code == 303, text_of(response)
        return visitor

    return sign_in
