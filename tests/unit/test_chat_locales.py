"""The chat's locale files (services/intake/static/locales/*.json) say the same things: every file has
exactly English's keys, a plural text has an `other` form, placeholders match English's, and every
key the page's markup and modules use exists. The page's list of languages names every file."""

import json
from functools import partial

import pytest

from services.intake.pages import LANGUAGES, STATIC
from tests.unit.locale_files import placeholders, used_keys
from tests.unit.locale_files import strings as read_strings

LOCALES = STATIC / "locales"
strings = partial(read_strings, LOCALES)


def test_every_locale_file_is_served_and_the_page_offers_it():
    on_disk = {path.stem for path in LOCALES.glob("*.json")}
    assert on_disk == set(LANGUAGES)
    main = (STATIC / "chat" / "main.js").read_text()
    assert f"export const LANGUAGES = {json.dumps(list(LANGUAGES))};" in main


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_a_locale_has_the_same_keys_and_placeholders_as_english(lang):
    english, other = strings("en"), strings(lang)
    assert set(other) == set(english), {"missing": set(english) - set(other), "extra": set(other) - set(english)}
    for key, value in other.items():
        assert isinstance(value, str) or "other" in value, key
        assert placeholders(value) <= placeholders(english[key]) | {"count"}, key


def test_every_key_the_page_uses_is_in_english():
    english = strings("en")
    used = used_keys(STATIC / "chat.html", STATIC / "chat")
    assert used, "no keys found"
    assert used <= set(english), used - set(english)
