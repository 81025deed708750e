"""The help center's locale files (services/assist/static/locales/*.json) say the same things: every file has
exactly English's keys, a plural text has an `other` form, placeholders match English's, and every key the
pages' markup and modules use exists. The pages' list of languages names every file."""

import json
from functools import partial

import pytest

from services.assist.pages import LANGUAGES, STATIC
from tests.unit.locale_files import placeholders, used_keys
from tests.unit.locale_files import strings as read_strings

LOCALES = STATIC / "locales"
strings = partial(read_strings, LOCALES)


def test_every_locale_file_is_served_and_the_pages_offer_it():
    assert {path.stem for path in LOCALES.glob("*.json")} == set(LANGUAGES)
    language = (STATIC / "help" / "language.js").read_text()
    assert f"export const LANGUAGES = {json.dumps(list(LANGUAGES))};" in language


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_a_locale_has_the_same_keys_and_placeholders_as_english(lang):
    english, other = strings("en"), strings(lang)
    assert set(other) == set(english), {"missing": set(english) - set(other), "extra": set(other) - set(english)}
    for key, value in other.items():
        assert isinstance(value, str) or "other" in value, key
        assert placeholders(value) <= placeholders(english[key]) | {"count"}, key


@pytest.mark.parametrize("page", ["help.html", "article.html"])
def test_every_key_the_pages_use_is_in_english(page):
    used = used_keys(STATIC / page, STATIC / "help")
    assert used, "no keys found"
    assert used <= set(strings("en")), used - set(strings("en"))
