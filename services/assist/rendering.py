"""Articles' Markdown as HTML and as plain text, with markdown-it-py: the help center and the editor's preview
render through the same parser, so what a supervisor previews is what a customer reads.

"js-default" is CommonMark with raw HTML off: a `<script>` in an article comes out as text, and
markdown-it's link check refuses javascript:, vbscript:, file: and (but for images) data: URLs.
"""

from functools import lru_cache
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token

EXCERPT_CHARS = 200
# An excerpt reads no further than this into the body (at a paragraph's end when it can): parsing a
# 50,000-character body takes ~100 ms, its opening ~3 ms, and a list shows many excerpts.
EXCERPT_SOURCE_CHARS = 2_000
# The article's title is the page's <h1>: the body's headings start one level below it.
HEADING_SHIFT = 1


def _external(href: str) -> bool:
    return urlsplit(href).scheme in ("http", "https") or href.startswith("//")


def _link_open(self, tokens: list[Token], idx: int, options, env) -> str:
    """Links that leave the help center open in a new tab, without handing it the opener, and earn no ranking."""
    token = tokens[idx]
    if _external(str(token.attrGet("href") or "")):
        token.attrSet("target", "_blank")
        token.attrSet("rel", "noopener noreferrer nofollow ugc")
    return self.renderToken(tokens, idx, options, env)


def _heading(self, tokens: list[Token], idx: int, options, env) -> str:
    token = tokens[idx]
    level = min(6, int(token.tag[1]) + HEADING_SHIFT)
    token.tag = f"h{level}"
    return self.renderToken(tokens, idx, options, env)


def _parser() -> MarkdownIt:
    md = MarkdownIt("js-default")
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("heading_open", _heading)
    md.add_render_rule("heading_close", _heading)
    return md


_MARKDOWN = _parser()


@lru_cache(maxsize=128)  # the articles read most are rendered once per change, not once per reader
def to_html(markdown: str) -> str:
    """The article's body as safe HTML (raw HTML escaped, unsafe links left as text)."""
    return _MARKDOWN.render(markdown)


def to_text(markdown: str) -> str:
    """The words of the body without its markup, one space between blocks."""
    words: list[str] = []
    for block in _MARKDOWN.parse(markdown):
        for child in block.children or ():
            if child.type in ("text", "code_inline"):
                words.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                words.append(" ")
        if block.type in ("code_block", "fence"):
            words.append(block.content)
        if block.type.endswith("_close") or block.type in ("code_block", "fence"):
            words.append(" ")
    return " ".join("".join(words).split())


def _opening(markdown: str) -> str:
    """The body's first EXCERPT_SOURCE_CHARS characters, back to the last paragraph break among them if any."""
    if len(markdown) <= EXCERPT_SOURCE_CHARS:
        return markdown
    head = markdown[:EXCERPT_SOURCE_CHARS]
    paragraph_end = head.rfind("\n\n")
    return head[:paragraph_end] if paragraph_end > 0 else head


# Keyed by openings of at most EXCERPT_SOURCE_CHARS characters: ~20 MB at most.
_opening_text = lru_cache(maxsize=10_000)(to_text)


def excerpt(markdown: str, limit: int = EXCERPT_CHARS) -> str:
    """The body's first words as plain text, cut at a word and marked with an ellipsis when cut."""
    opening = _opening(markdown)
    text = _opening_text(opening)
    if len(text) <= limit:
        return text + "…" if len(opening) < len(markdown) else text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut.rstrip(" ,.;:") + "…"
