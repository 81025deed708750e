"""The knowledge-base search: text analysis per language (stems, lemmas, Markdown, stop words, the language guess)
and the index (title matches, language preference and fallback, empty and degenerate queries, the score's range)."""

from dataclasses import replace

import pytest

from services.assist.search import index as index_module
from services.assist.search.index import MAX_QUERY_CHARS, Article, KnowledgeIndex, passages
from services.assist.search.text import guess_language, plain_text, tokens


def test_english_words_are_stemmed_and_stop_words_dropped():
    assert tokens("The passwords were RESET by you", "en") == ["password", "reset"]
    assert tokens("Refunding refunds", "en") == ["refund", "refund"]


def test_russian_words_become_their_lemmas():
    assert tokens("Посылки не пришли, а деньги списали", "ru")[:1] == ["посылка"]
    assert "деньга" in tokens("Посылки не пришли, а деньги списали", "ru")  # pymorphy3's lemma of "деньги"
    assert tokens("заказы заказов заказом", "ru") == ["заказ"] * 3


def test_ukrainian_words_become_their_lemmas_and_keep_their_apostrophes():
    assert tokens("Замовлення повернули", "uk") == ["замовлення", "повернути"]
    assert tokens("посилки посилкою", "uk") == ["посилка", "посилка"]
    assert tokens("п'ять", "uk") == tokens("п’ять", "uk") == tokens("пʼять", "uk") == ["п'ять"]
    assert tokens("я і ти та він", "uk") == []  # all stop words


def test_markdown_syntax_is_stripped_and_the_text_kept():
    text = plain_text("## Reset **your** _password_\n\nSee [the guide](https://example.com/guide) and "
                      "`Settings > Security`.\n\n```\nreset --all\n```\n- ![a picture](pic.png) item")
    assert "#" not in text and "*" not in text and "`" not in text and "_" not in text
    assert "example.com" not in text and "pic.png" not in text
    for kept in ("Reset", "password", "the guide", "Settings > Security", "reset --all", "a picture", "item"):
        assert kept in text
    assert tokens("[Delivery](https://example.com/shipping)", "en") == ["deliveri"]


@pytest.mark.parametrize(("text", "language"), [
    ("Як змінити пароль", "uk"),  # і
    ("Їжак", "uk"),  # ї
    ("Подобається", "uk"),  # є
    ("Мы не можем", "ru"),  # ы
    ("Объём", "ru"),  # ъ, ё
    ("Where is my parcel?", "en"),
    ("", "en"),
    ("замовлення", "uk"),  # no telling letter: only the Ukrainian dictionary knows it
    ("как поменять пароль", "ru"),  # no telling letter: the Russian dictionary knows more of it
])
def test_the_language_is_guessed_from_letters_then_dictionaries(text, language):
    assert guess_language(text) == language


ARTICLES = [
    Article("en-refunds", "Refunds", "When you return an item we refund the money within ten days.", "en",
            ("payment",)),
    Article("en-returns", "Returning an item", "Print the label. Refunds are described in another article.", "en"),
    Article("en-delivery", "Delivery times", "Couriers deliver in **two to four** business days.", "en"),
    Article("ru-refunds", "Возврат денег", "Деньги вернутся на карту в течение десяти дней.", "ru"),
    Article("ru-delivery", "Сроки доставки", "Курьер доставит заказ за два-четыре рабочих дня.", "ru"),
]


@pytest.fixture(scope="module")
def index():
    return KnowledgeIndex(ARTICLES)


def test_a_title_match_wins_over_a_body_mention(index):
    hits = index.search("refunds")
    assert [hit.article_id for hit in hits[:2]] == ["en-refunds", "en-returns"]
    assert hits[0].lexical > hits[1].lexical


def test_a_query_searches_its_own_language_given_or_guessed(index):
    assert {hit.article_id for hit in index.search("когда вернут деньги")} <= {"ru-refunds", "ru-delivery"}
    assert index.search("когда вернут деньги")[0].article_id == "ru-refunds"
    assert index.search("delivery", language="ru")[0].article_id.startswith("ru-")
    assert index.search("деньги", language="en")[0].article_id.startswith("en-")


def test_a_language_without_articles_falls_back_to_all(index):
    hits = index.search("Коли повернуть гроші на картку?", limit=5)  # Ukrainian: no Ukrainian articles here
    assert {hit.article_id[:2] for hit in hits} == {"en", "ru"}
    assert hits[0].article_id == "ru-refunds"  # "картку" and "карту" share no lemma, but the embeddings match


def test_scores_are_confidences_best_first_and_limited(index):
    hits = index.search("how long does delivery take", limit=2)
    assert len(hits) == 2 and hits[0].article_id == "en-delivery"
    assert all(0.0 <= hit.score <= 1.0 and 0.0 <= hit.lexical <= 1.0 for hit in hits)
    assert hits[0].score > hits[1].score
    assert hits[0].score > index.search("tell me about owls", limit=1)[0].score


def test_an_empty_index_finds_nothing():
    assert KnowledgeIndex([]).search("refund") == []


def test_an_empty_article_is_indexed_and_never_matches():
    index = KnowledgeIndex([Article("empty", "", "", "en"), *ARTICLES])
    hits = index.search("refunds", limit=10)
    assert hits[0].article_id == "en-refunds"
    assert [(hit.lexical, hit.semantic) for hit in hits if hit.article_id == "empty"] == [(0.0, 0.0)]
    assert [hit.score < 0.1 for hit in KnowledgeIndex([Article("empty", "", "", "en")]).search("refund")] == [True]


def test_a_query_of_only_stop_words_or_no_words_finds_nothing(index):
    assert index.search("what is it, and how?") == []
    assert index.search("   ?!  ") == []
    assert index.search("а что это", language="ru") == []


def test_a_very_long_query_is_searched_by_its_first_part(index):
    pasted = "Hello, my refund has not arrived. " + "Here is the rest of my long letter. " * 500
    assert index.search(pasted)[0].article_id == "en-refunds"
    buried = "Here is the rest of my long letter. " * (MAX_QUERY_CHARS // 30) + "delivery"
    assert "en-delivery" not in [hit.article_id for hit in index.search(buried, limit=1)]


def test_an_unsupported_language_is_refused(index):
    with pytest.raises(ValueError, match="unsupported language 'de'"):
        index.search("Rückerstattung", language="de")
    with pytest.raises(ValueError, match="unsupported article language"):
        KnowledgeIndex([Article("de-1", "Rückerstattung", "", "de")])


def test_a_rebuild_embeds_only_the_changed_article(index, monkeypatch):
    embedded = []
    embed = index_module.embed
    monkeypatch.setattr(index_module, "embed", lambda texts: embedded.extend(texts) or embed(texts))
    edited = replace(ARTICLES[2], body="Couriers deliver in two to four business days, parcel lockers in one.")
    rebuilt = index.rebuilt([*ARTICLES[:2], edited, *ARTICLES[3:]])
    assert embedded == passages(edited, index.scoring.passage_chars)
    assert rebuilt.search("parcel lockers")[0].article_id == "en-delivery"
    assert index.search("parcel lockers")[0].lexical == 0  # the old index is unchanged
