"""Retrieval quality of the knowledge-base search on tests/data/kb_eval: recall@3 and MRR per language and method
(lexical only, semantic only, combined), how well the confidence threshold separates answerable questions from
those no article answers, and the tuning of `Scoring` on the dev half.

The questions are split deterministically by their number: odd ones are the dev half (tuning), even ones the test
half (reported). A question with no relevant article is a no-answer question: it only measures the threshold."""

import itertools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from services.assist.search.index import Article, Candidates, KnowledgeIndex, Scoring
from services.assist.search.text import LANGUAGES

DATA = Path(__file__).resolve().parents[3] / "tests" / "data" / "kb_eval"
METHODS = ("lexical", "semantic", "combined")
THRESHOLD = 0.5  # a confidence of 0.5: the top hit is estimated as likely right as wrong
Method = Literal["lexical", "semantic", "combined"]
Split = Literal["dev", "test"]


@dataclass(frozen=True, slots=True)
class Question:
    id: str  # "<language>-<number>"
    language: str
    text: str
    relevant: tuple[str, ...]  # empty: no article answers it

    @property
    def split(self) -> Split:
        return "dev" if int(self.id.rsplit("-", 1)[1]) % 2 else "test"


def load(data: Path = DATA) -> tuple[list[Article], list[Question]]:
    articles = [Article(a["id"], a["title"], a["body"], a["language"], tuple(a["tags"]))
                for a in json.loads((data / "articles.json").read_text())]
    questions = [Question(q["id"], q["language"], q["text"], tuple(q["relevant"]))
                 for q in json.loads((data / "questions.json").read_text())]
    return articles, questions


def half(questions: Iterable[Question], split: Split) -> list[Question]:
    return [question for question in questions if question.split == split]


@dataclass(frozen=True, slots=True)
class Evidence:
    """A question's candidates, computed once and ranked by every method and scoring."""

    question: Question
    ids: list[str]
    found: Candidates


def gather(index: KnowledgeIndex, questions: Iterable[Question]) -> list[Evidence]:
    """Each question searched as a customer's message: its language guessed, not given."""
    evidence = []
    for question in questions:
        found = index.candidates(question.text)
        evidence.append(Evidence(question, [index.articles[p].id for p in found.positions], found))
    return evidence


def method_scores(evidence: Evidence, method: Method, scoring: Scoring) -> np.ndarray:
    found = evidence.found
    if method == "lexical":
        return np.where(found.bm25 > 0, found.bm25, -np.inf)  # no shared term: not found at all
    if method == "semantic":
        return found.cosine
    return scoring.fused(found.bm25, found.cosine)


def ranked(evidence: Evidence, method: Method, scoring: Scoring) -> list[str]:
    scores = method_scores(evidence, method, scoring)
    order = np.argsort(-scores, kind="stable")
    return [evidence.ids[i] for i in order if np.isfinite(scores[i])]


def reciprocal_rank(ranking: list[str], relevant: tuple[str, ...]) -> float:
    return next((1.0 / rank for rank, article in enumerate(ranking, 1) if article in relevant), 0.0)


@dataclass(frozen=True, slots=True)
class Quality:
    recall_at_3: float
    mrr: float
    questions: int


def quality(evidence: list[Evidence], method: Method, scoring: Scoring) -> Quality:
    """Recall@3 (a relevant article among the first three) and MRR over the answerable questions."""
    answerable = [e for e in evidence if e.question.relevant]
    if not answerable:
        return Quality(0.0, 0.0, 0)
    rankings = [(ranked(e, method, scoring), e.question.relevant) for e in answerable]
    recall = np.mean([any(article in relevant for article in ranking[:3]) for ranking, relevant in rankings])
    mrr = np.mean([reciprocal_rank(ranking, relevant) for ranking, relevant in rankings])
    return Quality(float(recall), float(mrr), len(answerable))


def table(evidence: list[Evidence], scoring: Scoring) -> dict[tuple[str, str], Quality]:
    """Quality per (language or "all", method)."""
    groups = {language: [e for e in evidence if e.question.language == language] for language in LANGUAGES}
    groups["all"] = evidence
    return {(group, method): quality(members, method, scoring)
            for group, members in groups.items() for method in METHODS}


def top(evidence: Evidence, scoring: Scoring) -> tuple[str | None, float]:
    """The combined method's first article and its confidence (None, 0 when nothing was searched)."""
    if not evidence.ids:
        return None, 0.0
    fused = scoring.fused(evidence.found.bm25, evidence.found.cosine)
    best = int(np.argmax(fused))
    return evidence.ids[best], float(scoring.confidence(fused[best : best + 1])[0])


@dataclass(frozen=True, slots=True)
class Separation:
    threshold: float
    no_answer_below: float  # the share of no-answer questions whose top confidence is under the threshold
    answerable_above: float  # the share of answerable questions whose top confidence reaches it
    right_above: float  # the share of answerable questions answered at or above it by a relevant article
    wrong_above: float  # the share of all questions answered at or above it by an irrelevant article
    no_answer: int
    answerable: int


def separation(evidence: list[Evidence], scoring: Scoring, threshold: float = THRESHOLD) -> Separation:
    tops = [(e.question.relevant, *top(e, scoring)) for e in evidence]
    none = [confidence for relevant, _, confidence in tops if not relevant]
    some = [(article in relevant, confidence) for relevant, article, confidence in tops if relevant]
    wrong = [article not in relevant and confidence >= threshold for relevant, article, confidence in tops]
    return Separation(
        threshold,
        float(np.mean([c < threshold for c in none])) if none else 0.0,
        float(np.mean([c >= threshold for _, c in some])) if some else 0.0,
        float(np.mean([right and c >= threshold for right, c in some])) if some else 0.0,
        float(np.mean(wrong)) if wrong else 0.0,
        len(none), len(some))


def top_evidence(evidence: list[Evidence], scoring: Scoring) -> tuple[np.ndarray, np.ndarray]:
    """The combined method's top fused value per question and whether that top article is relevant."""
    fused, right = [], []
    for e in evidence:
        if e.ids:
            scores = scoring.fused(e.found.bm25, e.found.cosine)
            best = int(np.argmax(scores))
            fused.append(scores[best])
            right.append(e.ids[best] in e.question.relevant)
        else:
            fused.append(0.0)
            right.append(False)
    return np.asarray(fused, dtype=np.float64), np.asarray(right, dtype=bool)


def auc(evidence: list[Evidence], scoring: Scoring) -> float:
    """How well the top score orders the right answers above the wrong ones and the no-answer questions: the chance
    that a random right top hit outscores a random wrong one (1: a threshold can separate them perfectly; 0.5: luck)."""
    fused, right = top_evidence(evidence, scoring)
    good, bad = fused[right], fused[~right]
    if not len(good) or not len(bad):
        return 1.0
    return float(np.mean((good[:, None] > bad[None, :]) + 0.5 * (good[:, None] == bad[None, :])))


def logistic_fit(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """(slope, midpoint) of the logistic curve P(y=1 | x), fitted by Newton's method (lightly regularized, so a
    perfectly separable dev half still gives a finite slope)."""
    slope, intercept = 1.0, 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(slope * x + intercept)))
        w = p * (1 - p) + 1e-9
        gradient = np.array([np.sum((p - y) * x) + 0.01 * slope, np.sum(p - y)])
        hessian = np.array([[np.sum(w * x * x) + 0.01, np.sum(w * x)], [np.sum(w * x), np.sum(w)]])
        slope, intercept = np.array([slope, intercept]) - np.linalg.solve(hessian, gradient)
    return float(slope), float(-intercept / slope)


def calibrate(evidence: list[Evidence], scoring: Scoring) -> Scoring:
    """The scoring with its confidence curve fitted to "the top hit is relevant" (no-answer questions: never)."""
    fused, right = top_evidence(evidence, scoring)
    slope, midpoint = logistic_fit(fused, right.astype(np.float64))
    return replace(scoring, confidence_slope=round(slope, 1), confidence_midpoint=round(midpoint, 2))


GRID = {
    "lexical_half": (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
    "lexical_weight": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    "semantic_floor": (0.0, 0.1, 0.2, 0.3),
    "semantic_ceiling": (0.6, 0.7, 0.8, 0.9),
}
BUILD_GRID = {"title_repeat": (1, 2, 3), "passage_chars": (300, 600, 2000)}


def tune(articles: list[Article], dev: list[Question], log: Callable[[str], None] = print) -> Scoring:
    """The scoring that maximizes the combined method's MRR + recall@3 + top-score AUC on the dev half, then its
    confidence curve calibrated on the dev half."""
    best: tuple[float, Scoring] = (-1.0, Scoring())
    for title_repeat, passage_chars in itertools.product(*BUILD_GRID.values()):
        built = Scoring(title_repeat=title_repeat, passage_chars=passage_chars)
        evidence = gather(KnowledgeIndex(articles, built), dev)
        for values in itertools.product(*GRID.values()):
            scoring = replace(built, **dict(zip(GRID, values)))
            measured = quality(evidence, "combined", scoring)
            objective = measured.mrr + measured.recall_at_3 + auc(evidence, scoring)
            if objective > best[0] + 1e-9:
                best = (objective, scoring)
    log(f"dev objective (MRR + recall@3 + AUC, combined): {best[0]:.3f}")
    return calibrate(gather(KnowledgeIndex(articles, best[1]), dev), best[1])


if __name__ == "__main__":
    articles, questions = load()
    print(tune(articles, half(questions, "dev")))
