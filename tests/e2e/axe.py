"""axe-core inside the browser tests: WCAG 2.1 A and AA rules run on a live page.

`assert_accessible(page)` injects the vendored axe-core (tests/e2e/vendor/axe-core) and fails with
every serious or critical violation it finds, each with the rule, its help text and the elements."""

from pathlib import Path

from playwright.async_api import Page

AXE_SOURCE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
WCAG_AA_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING_IMPACTS = {"serious", "critical"}


async def axe_violations(page: Page, context: str | None = None) -> list[dict]:
    """Every violation of the WCAG 2.1 A/AA rules on the page (or inside the `context` selector)."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol, not as a <script> tag: the pages' CSP refuses inline scripts.
        await page.evaluate(AXE_SOURCE.read_text(encoding="utf-8") + "\n;undefined")
    result = await page.evaluate(
        """([context, tags]) => axe.run(context ? document.querySelector(context) : document,
                                        {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]})""",
        [context, WCAG_AA_TAGS],
    )
    return result["violations"]


def describe(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        targets = ", ".join(" ".join(node["target"]) for node in v["nodes"][:5])
        lines.append(f"{v['impact']}: {v['id']} ({v['help']}) at {targets}")
    return "\n".join(lines)


async def assert_accessible(page: Page, context: str | None = None) -> None:
    """Fail on any serious or critical WCAG 2.1 AA violation axe-core finds on the page as it stands."""
    blocking = [v for v in await axe_violations(page, context) if v["impact"] in BLOCKING_IMPACTS]
    assert not blocking, "axe-core found:\n" + describe(blocking)
