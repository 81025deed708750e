"""A workspace's knowledge-base index: BM25 over each language's articles and embeddings of their passages, fused
into one calibrated confidence per article.

How a query is scored (the parameters are `Scoring`'s, tuned on the dev half of tests/data/kb_eval by
`services.assist.search.evaluate.tune`):
- candidates: the articles in the query's language (given, else `guess_language`). A language with no articles
  falls back to every article: each language's BM25 with the query analyzed in that language, and the embeddings
  (which match across languages, weakly).
- lexical: the article's BM25 (bm25s, Lucene variant) over title (repeated `title_repeat` times) + tags + body terms,
  divided by the idf of a term only one article of the language has (BM25 grows with the number of articles: so
  divided, one rare term matched weighs about 1 in a workspace of 5 articles as in one of 5,000), then squashed to
  0..1 as b / (b + lexical_half): lexical_half is the evidence that counts as a half match.
- semantic: the best cosine of the query's embedding against the article's passages (title + a block of the body's
  paragraphs, up to `passage_chars`), stretched linearly from [semantic_floor, semantic_ceiling] to 0..1.
- fused: lexical_weight * lexical + (1 - lexical_weight) * semantic; the articles are ranked by it.
- score: a logistic curve over fused, fitted on the dev half to "the top hit answers the question" (no-answer
  questions included, as never answered), so the first hit's score estimates the probability that it is right.
  A threshold of 0.5 therefore means "more likely right than wrong": on the test half it keeps every no-answer
  question out and lets about half the answerable ones through with a right article; a bot that may be wrong more
  often, for more answers, uses a lower one (`python -m bench.retrieval` prints the separation at 0.3, 0.5, 0.7).
  The curve is fitted on 25 articles per language; BM25 is scaled so that it means about the same for other sizes,
  but a workspace whose articles differ much from these may want its own calibration (`evaluate.calibrate`).
The index is immutable: a workspace's index is rebuilt when an article changes (`rebuilt` embeds only the changed
articles' passages: tens of milliseconds for hundreds of articles)."""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import bm25s
import numpy as np

from services.assist.search.embedding import DIMENSIONS, embed
from services.assist.search.text import LANGUAGES, Language, guess_language, plain_text, tokens

MAX_QUERY_CHARS = 1000  # a pasted e-mail is searched by its first part: its cost stays bounded


@dataclass(frozen=True, slots=True)
class Article:
    id: str
    title: str
    body: str  # Markdown
    language: Language
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Hit:
    article_id: str
    score: float  # the calibrated confidence, 0..1, comparable across queries
    lexical: float  # the squashed BM25, 0..1
    semantic: float  # the best passage cosine, -1..1


@dataclass(frozen=True, slots=True)
class Scoring:
    """The fusion's parameters (module docstring); the defaults are those tuned on the dev half."""

    title_repeat: int = 2
    passage_chars: int = 600
    lexical_half: float = 1.5
    semantic_floor: float = 0.0
    semantic_ceiling: float = 0.9
    lexical_weight: float = 0.9
    confidence_slope: float = 15.3
    confidence_midpoint: float = 0.38

    def lexical(self, bm25: np.ndarray) -> np.ndarray:
        return bm25 / (bm25 + self.lexical_half)

    def semantic(self, cosine: np.ndarray) -> np.ndarray:
        stretched = (cosine - self.semantic_floor) / (self.semantic_ceiling - self.semantic_floor)
        return np.clip(stretched, 0.0, 1.0)

    def fused(self, bm25: np.ndarray, cosine: np.ndarray) -> np.ndarray:
        weight = self.lexical_weight
        return weight * self.lexical(bm25) + (1 - weight) * self.semantic(cosine)

    def confidence(self, fused: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.confidence_slope * (fused - self.confidence_midpoint)))


@dataclass(frozen=True, slots=True)
class Candidates:
    """Every candidate article of a query (positions in the index) with its raw lexical and semantic evidence."""

    positions: np.ndarray
    bm25: np.ndarray  # in units of a rare term's idf (LanguageIndex.scores)
    cosine: np.ndarray


@dataclass(frozen=True, slots=True)
class LanguageIndex:
    """One language's articles: BM25 over their terms and their passages' embeddings (an article's rows consecutive,
    from `starts`); `positions` maps them to the index's articles."""

    language: Language
    positions: np.ndarray
    bm25: bm25s.BM25 | None  # None when none of its articles has a term
    vectors: np.ndarray
    starts: np.ndarray

    def scores(self, terms: list[str]) -> np.ndarray:
        """Each article's BM25 in units of the idf of a term that only one article has (module docstring)."""
        if not terms or self.bm25 is None:
            return np.zeros(len(self.positions), dtype=np.float32)
        articles = len(self.positions)
        return self.bm25.get_scores(terms) / math.log(1 + (articles - 1 + 0.5) / (1 + 0.5))  # Lucene's idf, df = 1

    def cosines(self, query_vector: np.ndarray) -> np.ndarray:
        """Each article's best passage cosine. einsum, not BLAS's matrix-vector product: BLAS spreads it over threads,
        which costs more than it saves on a busy machine for a few thousand rows."""
        return np.maximum.reduceat(np.einsum("ij,j->i", self.vectors, query_vector), self.starts)


NO_CANDIDATES = Candidates(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))


def document_terms(article: Article, title_repeat: int) -> list[str]:
    """An article's BM25 document: the title's terms `title_repeat` times (a title match weighs more), tags, body."""
    language = article.language
    tags = [term for tag in article.tags for term in tokens(tag, language)]
    return tokens(article.title, language) * title_repeat + tags + tokens(article.body, language)


def passages(article: Article, max_chars: int) -> list[str]:
    """The texts embedded for an article: its title followed by consecutive paragraphs up to max_chars each."""
    blocks, current = [], ""
    for paragraph in article.body.split("\n\n"):
        text = " ".join(plain_text(paragraph).split())
        if current and len(current) + len(text) > max_chars:
            blocks.append(current)
            current = ""
        current = f"{current} {text}".strip()
    blocks.append(current)
    return [f"{article.title}. {block}".strip() for block in blocks if block] or [article.title]


def embedded(texts: list[str], known: Mapping[str, np.ndarray]) -> np.ndarray:
    """The texts' embeddings, those already known reused (a rebuild after one article changed embeds only it).
    An empty text (an article with no title nor body) gets a zero vector: WordLlama would divide by zero."""
    missing = list(dict.fromkeys(text for text in texts if text and text not in known))
    fresh = dict(zip(missing, embed(missing)))
    fresh[""] = np.zeros(DIMENSIONS, dtype=np.float32)
    return np.stack([known[text] if text in known else fresh[text] for text in texts]) if texts else embed([])


def language_index(language: Language, positions: list[int], articles: Sequence[Article], scoring: "Scoring",
                   known: Mapping[str, np.ndarray]) -> tuple[LanguageIndex, list[str]]:
    """The language's index, and the passage texts behind its vectors' rows."""
    corpus = [document_terms(articles[p], scoring.title_repeat) for p in positions]
    bm25 = None
    if any(corpus):  # bm25s divides by the mean document length
        bm25 = bm25s.BM25()
        bm25.index(corpus, show_progress=False)
    groups = [passages(articles[p], scoring.passage_chars) for p in positions]
    texts = [text for group in groups for text in group]
    starts = np.cumsum([0] + [len(group) for group in groups[:-1]]).astype(np.int64)
    index = LanguageIndex(language, np.asarray(positions, dtype=np.int64), bm25, embedded(texts, known), starts)
    return index, texts


class KnowledgeIndex:
    """An immutable search index over a workspace's published articles: built once, queried many times."""

    def __init__(self, articles: Iterable[Article], scoring: Scoring = Scoring(),
                 known: Mapping[str, np.ndarray] | None = None) -> None:
        self.articles = tuple(articles)
        self.scoring = scoring
        unknown = {article.language for article in self.articles} - set(LANGUAGES)
        if unknown:
            raise ValueError(f"unsupported article language(s): {sorted(unknown)}")
        self.by_language: dict[Language, LanguageIndex] = {}
        self.passage_vectors: dict[str, np.ndarray] = {}
        for language in LANGUAGES:
            positions = [i for i, article in enumerate(self.articles) if article.language == language]
            if positions:
                index, texts = language_index(language, positions, self.articles, scoring, known or {})
                self.by_language[language] = index
                self.passage_vectors.update(zip(texts, index.vectors))

    def rebuilt(self, articles: Iterable[Article]) -> "KnowledgeIndex":
        """A new index over `articles` (after one was added, edited or removed), reusing this one's embeddings."""
        return KnowledgeIndex(articles, self.scoring, self.passage_vectors)

    def candidates(self, query: str, language: Language | None = None) -> Candidates:
        """The query's candidate articles (its language's, else all) with their BM25 and best passage cosine."""
        query = query[:MAX_QUERY_CHARS]
        language = language or guess_language(query)
        if language not in LANGUAGES:
            raise ValueError(f"unsupported language {language!r}: one of {', '.join(LANGUAGES)}")
        searched = [self.by_language[language]] if language in self.by_language else list(self.by_language.values())
        terms = [tokens(query, index.language) for index in searched]
        if not any(terms):
            return NO_CANDIDATES  # an empty index, or nothing but stop words to look for
        vector = embed([query])[0]
        return Candidates(np.concatenate([index.positions for index in searched]),
                          np.concatenate([index.scores(found) for index, found in zip(searched, terms)]),
                          np.concatenate([index.cosines(vector) for index in searched]))

    def search(self, query: str, language: Language | None = None, limit: int = 3) -> list[Hit]:
        """The best `limit` articles for a query, best first, each with its confidence (see the module docstring)."""
        found = self.candidates(query, language)
        if not len(found.positions):
            return []
        fused = self.scoring.fused(found.bm25, found.cosine)
        best = np.argsort(-fused, kind="stable")[:limit]
        confidence = self.scoring.confidence(fused[best])
        lexical = self.scoring.lexical(found.bm25[best])
        return [Hit(self.articles[found.positions[i]].id, round(float(score), 4), round(float(lex), 4),
                    round(float(found.cosine[i]), 4))
                for i, score, lex in zip(best, confidence, lexical)]
