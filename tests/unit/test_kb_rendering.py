"""Articles' Markdown as the help center shows it (services/assist/rendering.py): raw HTML and unsafe links
never become markup, external links open apart, headings sit below the page's title, and excerpts are plain
text cut at a word, read from the body's opening only."""

from services.assist.rendering import EXCERPT_SOURCE_CHARS, excerpt, to_html, to_text


def test_raw_html_is_text_and_unsafe_links_are_not_links():
    html = to_html('<script>alert(1)</script>\n\n<img src=x onerror="alert(2)">\n\n[a](javascript:alert(3)) '
                   "[b](vbscript:x) [c](data:text/html,x)")
    assert "<script" not in html and "<img" not in html and "href" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "[a](javascript:alert(3))" in html


def test_external_links_open_apart_and_local_ones_stay():
    html = to_html("[out](https://example.com/x) [proto](//cdn.example.com) [here](/help/default) [mail](mailto:a@b.c)")
    external = 'target="_blank" rel="noopener noreferrer nofollow ugc"'
    assert f'<a href="https://example.com/x" {external}>out</a>' in html
    assert f'<a href="//cdn.example.com" {external}>proto</a>' in html
    assert '<a href="/help/default">here</a>' in html and '<a href="mailto:a@b.c">mail</a>' in html


def test_headings_start_below_the_title():
    assert to_html("# One\n\n###### Six") == "<h2>One</h2>\n<h6>Six</h6>\n"


def test_plain_text_keeps_the_words_and_drops_the_markup():
    text = to_text("# Title\n\nHello **world**, [a link](https://x) and `code`.\n\n- one\n- two\n\n```\nfenced\n```")
    assert text == "Title Hello world, a link and code. one two fenced"


def test_an_excerpt_is_cut_at_a_word_with_an_ellipsis():
    assert excerpt("Short **body**.") == "Short body."
    long = excerpt("word, " * 100, limit=30)
    assert long == "word, word, word, word, word…" and len(long) <= 31


def test_an_excerpt_reads_only_the_bodys_opening():
    body = "First paragraph.\n\n" + "x" * EXCERPT_SOURCE_CHARS + "\n\nNever read."
    assert excerpt(body) == "First paragraph.…"  # the opening ends at its last paragraph break
    assert "Never" not in excerpt("y " * EXCERPT_SOURCE_CHARS + "Never read.", limit=10_000)
