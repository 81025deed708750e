"""The desk's locale files (services/agents/static/locales/*.json) say the same things: every file has
exactly English's keys, a plural text has an `other` form, placeholders match English's, and every key
the desk's markup and modules use exists in English. The service serves every file and the desk's
language module offers the same languages."""

import json
import re
from functools import partial

import pytest

from services.agents.pages import DESK_MODULES, LANGUAGES, PAGE_FILES, STATIC
from tests.unit.locale_files import placeholders
from tests.unit.locale_files import strings as read_strings
from tests.unit.locale_files import used_keys as keys_in

LOCALES = STATIC / "locales"
strings = partial(read_strings, LOCALES)
used_keys = partial(keys_in, STATIC / "desk.html", STATIC / "desk")


def test_every_locale_file_is_served_and_the_desk_offers_it():
    on_disk = {path.stem for path in LOCALES.glob("*.json")}
    assert on_disk == set(LANGUAGES)
    served = {f.path for f in PAGE_FILES}
    assert {f"/locales/{lang}.json" for lang in LANGUAGES} <= served
    assert "i18n" in DESK_MODULES
    module = (STATIC / "desk" / "i18n.js").read_text()
    assert f"export const LANGUAGES = {json.dumps(list(LANGUAGES))};" in module
    picker = re.findall(r'<select id="language".*?</select>', (STATIC / "desk.html").read_text(), re.DOTALL)[0]
    assert re.findall(r'<option value="(\w+)"', picker) == list(LANGUAGES)


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_a_locale_has_the_same_keys_and_placeholders_as_english(lang):
    english, other = strings("en"), strings(lang)
    assert set(other) == set(english), {"missing": set(english) - set(other), "extra": set(other) - set(english)}
    for key, value in other.items():
        assert isinstance(value, str) or "other" in value, key
        assert placeholders(value) <= placeholders(english[key]) | {"count"}, key
        assert placeholders(english[key]) - {"count"} <= placeholders(value), key  # nothing the desk passes is lost


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_plural_text_has_the_forms_its_language_needs(lang):
    forms = {"en": {"one", "other"}, "ru": {"one", "few", "many", "other"}, "uk": {"one", "few", "many", "other"}}[lang]
    for key, value in strings(lang).items():
        if isinstance(value, dict):
            assert forms <= set(value), (key, forms - set(value))


def test_every_key_the_desk_uses_is_in_english():
    english = strings("en")
    used = used_keys()
    assert len(used) > 200, "the scan found too few keys"
    assert used <= set(english), used - set(english)


def test_english_has_no_key_the_desk_does_not_use():
    english = strings("en")
    assert set(english) <= used_keys(), set(english) - used_keys()
