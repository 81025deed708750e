"""What the pages' locale-file tests share (tests/unit/test_chat_locales.py, test_desk_locales.py): reading
a locale file, the placeholders of a text, and every key a page's markup and modules use."""

import json
import re
from pathlib import Path

PLACEHOLDER = re.compile(r"\{(\w+)\}")
# t("key", ...), and the keys a t() call chooses between (t(accept ? "offers.accept_error" : ...)).
T_CALL = re.compile(r"\bt\(([^()]*)")
KEY_LITERAL = re.compile(r'"([a-z]+\.[a-z_0-9]+)"')
FIRST_KEY = re.compile(r'\bt\("([a-z_.0-9]+)"')  # t("welcome"): a key with no dot, as the first argument


def strings(locales: Path, lang: str) -> dict:
    return json.loads((locales / f"{lang}.json").read_text(encoding="utf-8"))


def placeholders(value) -> set[str]:
    texts = value.values() if isinstance(value, dict) else [value]
    return {name for text in texts for name in PLACEHOLDER.findall(text)}


def used_keys(html: Path, modules: Path) -> set[str]:
    """Keys in the markup's data-i18n and data-i18n-attr, and in every t() call of the modules."""
    markup = html.read_text()
    used = set(re.findall(r'data-i18n="([^"]+)"', markup))
    for attrs in re.findall(r'data-i18n-attr="([^"]+)"', markup):
        used |= {pair.split(":")[1] for pair in attrs.split(";")}
    for module in modules.glob("*.js"):
        source = module.read_text()
        used |= set(FIRST_KEY.findall(source))
        for arguments in T_CALL.findall(source):
            used |= set(KEY_LITERAL.findall(arguments))
    return used
