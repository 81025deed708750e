"""Language-aware text analysis for the knowledge base: Markdown to plain text, words, stop words dropped,
then English stems (Snowball, PyStemmer) and Russian and Ukrainian lemmas (pymorphy3: Snowball has no Ukrainian)."""

import re
from functools import cache, lru_cache
from typing import Literal

import pymorphy3
import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS, STOPWORDS_RUSSIAN

Language = Literal["en", "ru", "uk"]
LANGUAGES: tuple[Language, ...] = ("en", "ru", "uk")

# bm25s ships English and Russian lists (NLTK's); no package here has a Ukrainian one, so this is a short hand
# list of pronouns, prepositions, conjunctions and particles (surface forms: they are dropped before lemmatizing).
STOPWORDS_UK = frozenset([
    "а", "аби", "або", "але", "ані", "б", "би", "бо", "був", "була", "були", "було", "бути", "в", "вам", "вас", "ви",
    "від", "він", "вона", "вони", "воно", "всі", "все", "г", "де", "для", "до", "дуже", "є", "ж", "же", "з", "за",
    "зі", "і", "із", "й", "їй", "їм", "їх", "к", "коли", "лише", "мене", "мені", "ми", "мій", "мого", "моє", "моя",
    "моїй", "на", "над", "нам", "нас", "не", "немає", "ні", "ніж", "о", "об", "от", "по", "при", "про", "та", "так",
    "також", "там", "те", "тим", "то", "тобі", "того", "той", "ти", "тут", "у", "усе", "хоча", "це", "цей", "ці",
    "цього", "цю", "ця", "чи", "що", "щоб", "як", "який", "яка", "яке", "які", "якщо", "я", "вже", "ще",
])

# NLTK's Russian list (bm25s's) spells ё as е and lacks "это".
RUSSIAN_MISSING = frozenset(["это", "всё", "ещё", "её", "моё", "твоё", "своё"])

STOPWORDS: dict[Language, frozenset[str]] = {
    "en": frozenset(STOPWORDS_EN_PLUS),
    "ru": frozenset(STOPWORDS_RUSSIAN) | RUSSIAN_MISSING,
    "uk": STOPWORDS_UK,
}

UKRAINIAN_ONLY = frozenset("ієїґ")
RUSSIAN_ONLY = frozenset("ыэъё")

# Markdown syntax, removed or replaced by the text it wraps; a fenced or inline code's content is kept
# (in support articles it is a menu path, a setting's name or a command a customer may type).
FENCE = re.compile(r"^\s*(```|~~~).*$", re.MULTILINE)
IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
AUTOLINK = re.compile(r"<(https?://[^>]+)>")
HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
LINE_MARKERS = re.compile(r"^\s{0,3}(#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)", re.MULTILINE)
EMPHASIS_AND_CODE = re.compile(r"[*_~`]+")
# Letters and digits, with an apostrophe (', ’ or ʼ) allowed inside a word: Ukrainian п'ять, English don't.
WORD = re.compile(r"[^\W_]+(?:['’ʼ][^\W_]+)*")
APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'"})


def plain_text(markdown: str) -> str:
    """The text a reader sees: links and images keep their text, code keeps its content, the marks go."""
    text = FENCE.sub(" ", markdown)
    text = IMAGE.sub(r"\1", text)
    text = LINK.sub(r"\1", text)
    text = AUTOLINK.sub(r"\1", text)
    text = HTML_TAG.sub(" ", text)
    text = LINE_MARKERS.sub("", text)
    return EMPHASIS_AND_CODE.sub(" ", text)


def words(text: str) -> list[str]:
    """The lowercased words of a plain text, apostrophes inside words unified to '."""
    return [word.translate(APOSTROPHES) for word in WORD.findall(text.lower())]


@cache
def stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


@cache
def morphology(language: Language) -> pymorphy3.MorphAnalyzer:
    """One analyzer per language per process: each loads its dictionary (tens of MB) once."""
    return pymorphy3.MorphAnalyzer(lang=language)


@lru_cache(maxsize=200_000)
def lemma(word: str, language: Language) -> str:
    """The most likely normal form of a Russian or Ukrainian word (a guess for words not in the dictionary)."""
    return morphology(language).parse(word)[0].normal_form


def normal_forms(found: list[str], language: Language) -> list[str]:
    if language == "en":
        return stemmer().stemWords(found)
    return [lemma(word, language) for word in found]


def tokens(text: str, language: Language) -> list[str]:
    """The terms of a (Markdown) text in a language: lowercased words, stop words dropped, stemmed or lemmatized."""
    stop = STOPWORDS[language]
    found = [word for word in words(plain_text(text)) if word not in stop]
    return [term for term in normal_forms(found, language) if term not in stop]


def guess_language(text: str) -> Language:
    """The text's language by its letters: Ukrainian-only or Russian-only letters decide; other Cyrillic text goes
    to the analyzer that knows more of its words (Russian on a tie); Latin (or no letters) is English."""
    letters = set(text.lower())
    if letters & UKRAINIAN_ONLY:
        return "uk"
    if letters & RUSSIAN_ONLY:
        return "ru"
    cyrillic = [word for word in words(text) if any("а" <= ch <= "я" for ch in word)]
    if not cyrillic:
        return "en"
    known = {lang: sum(morphology(lang).word_is_known(word) for word in cyrillic) for lang in ("ru", "uk")}
    return "uk" if known["uk"] > known["ru"] else "ru"
