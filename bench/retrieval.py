"""Knowledge-base search: retrieval quality on tests/data/kb_eval and the index's build and query times.

Run from the repo root: `python -m bench.retrieval [--split test|dev] [--copies N]`.
It prints figures; it asserts nothing about time.

- quality: recall@3 and MRR per language and method (lexical only, semantic only, combined) over the answerable
  questions of the split (test by default: the defaults of `Scoring` were tuned on dev), each question searched as a
  customer's message (its language guessed); then, for the combined score, how the confidence threshold separates:
  the share of no-answer questions under it, of answerable ones at or above it (and answered right there), and
  the AUC of the top score (right top hits against wrong ones and no-answer questions).
- time: the index's build over the 75 articles and over N copies of them (ids made unique; a few thousand articles,
  a large workspace), warm (the model and dictionaries loaded), and its rebuild after one article is edited (the
  unchanged passages' embeddings reused); and a query's time (analysis, BM25, embedding,
  fusion) per question, beside a bare bm25s query (`get_scores` on already analyzed terms) over the same index in
  the same run: their ratio is what the analysis, the embedding and the fusion cost.
"""

import argparse
import logging
import statistics
import time
from dataclasses import replace

from services.assist.search.evaluate import THRESHOLD, auc, gather, half, load, separation, table
from services.assist.search.index import Article, KnowledgeIndex
from services.assist.search.text import LANGUAGES, Language, tokens


def print_quality(index: KnowledgeIndex, split: str) -> None:
    _, questions = load()
    evidence = gather(index, half(questions, split))
    print(f"{split} half: recall@3 / MRR over the answerable questions")
    print(f"{'language':<9}{'lexical':>16}{'semantic':>16}{'combined':>16}{'questions':>11}")
    rows = table(evidence, index.scoring)
    for group in (*LANGUAGES, "all"):
        cells = [rows[group, method] for method in ("lexical", "semantic", "combined")]
        figures = "".join(f"{cell.recall_at_3:>9.2f} / {cell.mrr:.2f}" for cell in cells)
        print(f"{group:<9}{figures}{cells[0].questions:>11}")
    for threshold in (0.3, THRESHOLD, 0.7):
        s = separation(evidence, index.scoring, threshold)
        print(f"threshold {threshold:.1f}: no-answer under it {s.no_answer_below:.0%} (of {s.no_answer}); "
              f"answerable at or above {s.answerable_above:.0%}, answered right there {s.right_above:.0%} "
              f"(of {s.answerable}); wrong answers at or above, of all {s.wrong_above:.0%}")
    print(f"top-score AUC (right top hits vs wrong and no-answer): {auc(evidence, index.scoring):.2f}")


def best_of(repeats: int, action) -> float:
    """The fastest of `repeats` runs of action(), in seconds (the least disturbed by the machine)."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


def print_times_over(corpus: list[Article], texts: list[str], analyzed: list[tuple[Language, list[str]]]) -> None:
    build = best_of(3, lambda: KnowledgeIndex(corpus))
    index = KnowledgeIndex(corpus)
    edited = [replace(corpus[0], body=corpus[0].body + "\n\nOne more paragraph.")] + corpus[1:]
    rebuild = best_of(3, lambda: index.rebuilt(edited))
    query = best_of(5, lambda: [index.search(text) for text in texts]) / len(texts)
    bare = best_of(5, lambda: [index.by_language[language].bm25.get_scores(terms)
                               for language, terms in analyzed]) / len(analyzed)
    print(f"{len(corpus):>5} articles: build {build * 1000:.0f} ms, rebuild after an edit {rebuild * 1000:.0f} ms; "
          f"query {query * 1000:.2f} ms per question, bare BM25 {bare * 1000:.3f} ms, ratio {query / bare:.0f}")


def print_times(copies: int) -> None:
    articles, questions = load()
    texts = [question.text for question in questions]
    analyzed = [(q.language, terms) for q in questions if (terms := tokens(q.text, q.language))]
    KnowledgeIndex(articles)  # loads the model and the dictionaries: the warm figures follow
    print_times_over(articles, texts, analyzed)
    print_times_over([replace(a, id=f"{a.id}#{n}") for n in range(copies) for a in articles], texts, analyzed)
    lengths = [len(tokens(article.body, article.language)) for article in articles]
    print(f"(an article's body: median {statistics.median(lengths):.0f} terms; the questions searched with their "
          f"language guessed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=("test", "dev"), default="test")
    parser.add_argument("--copies", type=int, default=40, help="copies of the 75 articles for the large index")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # wordllama configures the root logger at import; its chatter is no figure
    articles, _ = load()
    print_quality(KnowledgeIndex(articles), args.split)
    print_times(args.copies)


if __name__ == "__main__":
    main()
