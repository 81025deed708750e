"""Full-text search over conversations: a term index kept on each conversation, in any language.

SecantusDB (the embedded default) has no text index, and answers `$all` over an array by scanning;
it does serve an equality on an indexed array field. So each conversation keeps `terms` (indexed
with its workspace): the words of its messages and its contact's name, e-mail and phone, casefolded
and NFKC-normalized, each with its prefixes from 3 to 10 characters, so "parc" finds "parcel" and
"посылк" finds "посылку" (no stemming: a prefix covers most endings in English, Russian and
Ukrainian). A query looks each of its words up on its own and intersects the ids in Python.
"""

import re
import unicodedata
from collections.abc import Iterable

WORD = re.compile(r"\w+", re.UNICODE)
MIN_WORD, MAX_WORD = 2, 40  # shorter or longer words are not indexed whole
MIN_PREFIX, MAX_PREFIX = 3, 10
MAX_WORDS_PER_TEXT = 300  # a long e-mail's words beyond this are not indexed
MAX_QUERY_WORDS = 8


def _words(text: str) -> list[str]:
    return WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def terms_of(texts: Iterable[str | None]) -> set[str]:
    """The index terms of some texts: every word (2-40 characters) and its 3-10 character prefixes."""
    terms: set[str] = set()
    for text in texts:
        for word in _words(text or "")[:MAX_WORDS_PER_TEXT]:
            if MIN_WORD <= len(word) <= MAX_WORD:
                terms.add(word)
            terms.update(word[:k] for k in range(MIN_PREFIX, min(len(word), MAX_PREFIX + 1)))
    return terms


def query_terms(query: str) -> list[str]:
    """The terms a query's words must all match (a word longer than 10 characters by its first 10)."""
    found = []
    for word in _words(query)[:MAX_QUERY_WORDS]:
        term = word[:MAX_PREFIX]
        if len(term) >= MIN_WORD and term not in found:
            found.append(term)
    return found
