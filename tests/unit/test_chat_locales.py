"""The chat's locale files (services/intake/static/locales/*.json) say the same things: every file has
exactly English's keys, a plural text has an `other` form, placeholders match English's, and every
key the page's markup and modules use exists. The page's list of languages names every file."""

import json
import re

import pytest

from services.intake.pages import LANGUAGES, STATIC

LOCALES = STATIC / "locales"
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def strings(lang: str) -> dict:
    return json.loads((LOCALES / f"{lang}.json").read_text(encoding="utf-8"))


def placeholders(value) -> set[str]:
    texts = value.values() if isinstance(value, dict) else [value]
    return {name for text in texts for name in PLACEHOLDER.findall(text)}


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
    used = set(re.findall(r'data-i18n="([^"]+)"', (STATIC / "chat.html").read_text()))
    for attrs in re.findall(r'data-i18n-attr="([^"]+)"', (STATIC / "chat.html").read_text()):
        used |= {pair.split(":")[1] for pair in attrs.split(";")}
    for module in (STATIC / "chat").glob("*.js"):
        used |= set(re.findall(r'\bt\("([a-z_.]+)"', module.read_text()))
    assert used, "no keys found"
    assert used <= set(english), used - set(english)
