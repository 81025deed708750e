"""The conversation search's terms: words and prefixes, casefolded, in any script; queries by prefix."""

from services.agents.search import query_terms, terms_of


def test_words_and_their_prefixes_in_any_case_and_script():
    terms = terms_of(["My PARCEL has not arrived", "Посылка не пришла", None])
    assert {"my", "parcel", "par", "parc", "parce", "has", "not", "arrived", "arr"} <= terms
    assert {"посылка", "посылк", "пос", "не", "пришла"} <= terms
    assert "p" not in terms and "pa" not in terms  # one letter is no word; prefixes start at three


def test_a_query_matches_by_word_or_prefix():
    index = terms_of(["Refundable deliveryman, посылку"])
    for query in ("refund", "REFUNDABLE", "deliveryman", "delivery", "посылк", "ПОСЫЛКУ"):
        assert all(term in index for term in query_terms(query)), query
    assert not all(term in index for term in query_terms("refund invoice"))
    assert query_terms("  a, b!! ") == []  # nothing to look for
    assert query_terms("deliverymanship") == ["deliveryma"]  # past 10 characters: by its first 10
