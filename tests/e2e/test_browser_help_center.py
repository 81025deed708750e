"""The public help center in a real browser (Debian's chromium) over the assist app, run in-process on a
real port with the real database: `?lang=ru` gives the page in Russian with the Russian articles first
and the English one under "in other languages"; a Ukrainian browser gets Ukrainian by itself; a draft is
never shown; topics filter the list; the search box says "search unavailable" while the service has no
search (and shows hits when it answers some), the list untouched; an article's page shows its Markdown
rendered, a <script> in it as text. axe finds nothing serious on the list or the article page."""

from contextlib import asynccontextmanager

from playwright.async_api import Browser, Page, async_playwright, expect

from services.assist.app import create_app
from services.assist.settings import AssistSettings
from tests.conftest import auth, serve
from tests.e2e.axe import assert_accessible
from tests.e2e.test_browser import (  # noqa: F401 (pytestmark: the skip without chromium)
    CHROMIUM,
    CHROMIUM_ARGS,
    pytestmark,
    record_console_errors,
    record_errors,
)

RUSSIAN = {"title": "Как сменить пароль", "language": "ru", "tags": ["аккаунт"], "status": "published",
           "body": "## Шаги\n\nОткройте **Настройки**, затем *Безопасность*.\n\n<script>window.pwned = 1</script>"}
RUSSIAN_BILLING = {"title": "Возврат денег", "language": "ru", "tags": ["оплата"], "status": "published",
                   "body": "Деньги вернутся за 5 дней."}
ENGLISH = {"title": "Change your password", "language": "en", "tags": ["account"], "status": "published",
           "body": "Open **Settings**."}
DRAFT = {"title": "Секретный черновик", "language": "ru", "tags": ["аккаунт"], "status": "draft", "body": "Скоро."}


@asynccontextmanager
async def help_center(names):
    """The assist app on a real port, with the articles above written through its API."""
    async with serve(create_app(names.settings(AssistSettings))) as assist:
        ids = {}
        for article in (ENGLISH, RUSSIAN_BILLING, RUSSIAN, DRAFT):
            response = await assist.post("/v1/kb/articles", json=article, headers=auth())
            assert response.status == 201, await response.text()
            ids[article["title"]] = (await response.json())["id"]
        yield str(assist.make_url("")).rstrip("/"), ids


async def open_page(browser: Browser, url: str, errors: list[str], *, locale: str = "en-US",
                    width: int = 1280) -> Page:
    context = await browser.new_context(locale=locale, viewport={"width": width, "height": 900})
    page = await context.new_page()
    record_errors(page, errors, locale)
    record_console_errors(page, errors, locale)
    await page.goto(url)
    return page


async def test_the_help_center_in_russian_with_its_articles_search_and_topics(names):
    async with help_center(names) as (base, ids), async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        errors: list[str] = []
        try:
            page = await open_page(browser, f"{base}/help/default?lang=ru", errors)  # an English browser
            await expect(page.locator("html")).to_have_attribute("lang", "ru")
            await expect(page.locator("h1")).to_have_text("Чем мы можем помочь?")
            await expect(page).to_have_title("Центр помощи")
            mine, others = page.locator("#articles li h3"), page.locator("#other-articles li h3")
            await expect(mine).to_have_text([RUSSIAN["title"], RUSSIAN_BILLING["title"]])  # newest change first
            await expect(page.locator("#others-title")).to_have_text("На других языках")
            await expect(others).to_have_text([ENGLISH["title"]])
            await expect(page.locator("#other-articles li")).to_have_attribute("lang", "en")
            await expect(page.locator("#articles li").first).to_contain_text("Откройте Настройки, затем Безопасность.")
            await expect(page.locator("body")).not_to_contain_text(DRAFT["title"])
            await assert_accessible(page)

            # Topics filter both lists; "all topics" brings everything back.
            await page.get_by_role("button", name="оплата").click()
            await expect(page.get_by_role("button", name="оплата")).to_have_attribute("aria-pressed", "true")
            await expect(mine).to_have_text([RUSSIAN_BILLING["title"]])
            await expect(page.locator("#others")).to_be_hidden()
            await page.get_by_role("button", name="Все темы").click()
            await expect(mine).to_have_count(2)

            # The search answers from the knowledge base: the article that answers first, linked to its page.
            await page.fill("#q", "как поменять пароль")
            await page.click("#search-submit")
            await expect(page.locator("#search-status")).to_contain_text("Найден")
            await expect(page.locator("#results-list a").first).to_have_attribute(
                "href", f"/help/default/articles/{ids[RUSSIAN['title']]}?lang=ru")
            await expect(mine).to_have_count(2)  # the list stays
            # One that is not there (a 404, an older service) or fails (a 500): unavailable, the list stays.
            await page.route("**/v1/help/default/search?*", lambda route: route.fulfill(status=404, body="{}"))
            await page.click("#search-submit")
            await expect(page.locator("#search-status")).to_have_text(
                "Поиск сейчас недоступен. Посмотрите статьи ниже.")
            await expect(mine).to_have_count(2)
            await expect(page.locator("#results")).to_be_hidden()
            await page.unroute("**/v1/help/default/search?*")
            await page.route("**/v1/help/default/search?*", lambda route: route.fulfill(status=500, body="boom"))
            await page.click("#search-submit")
            await expect(page.locator("#search-status")).to_contain_text("Поиск сейчас недоступен")
            await expect(page.locator("#results")).to_be_hidden()

            # The article's page: its Markdown rendered, its <script> shown as text and never run.
            await page.get_by_role("link", name=RUSSIAN["title"]).first.click()
            await expect(page).to_have_url(f"{base}/help/default/articles/{ids[RUSSIAN['title']]}?lang=ru")
            await expect(page.locator("#article-title")).to_have_text(RUSSIAN["title"])
            await expect(page.locator("#body h3")).to_have_text("Шаги")  # the body's headings sit below the title
            await expect(page.locator("#body strong")).to_have_text("Настройки")
            await expect(page.locator("#body em")).to_have_text("Безопасность")
            await expect(page.locator("#body")).to_contain_text("<script>window.pwned = 1</script>")
            assert await page.evaluate("() => window.pwned") is None
            await expect(page.locator("#article")).to_have_attribute("lang", "ru")
            await expect(page.locator("#back")).to_have_text("Все статьи")
            await assert_accessible(page)

            # A Ukrainian phone, no ?lang=: Ukrainian; every article is then "in other languages".
            phone = await open_page(browser, f"{base}/help/default", errors, locale="uk-UA", width=390)
            await expect(phone.locator("h1")).to_have_text("Чим ми можемо допомогти?")
            await expect(phone.locator("#others-title")).to_have_text("Іншими мовами")
            await expect(phone.locator("#other-articles li")).to_have_count(3)
            await expect(phone.locator("#list-status")).to_have_text("Статей вашою мовою поки немає.")
            assert await phone.evaluate("() => document.documentElement.scrollWidth - window.innerWidth") <= 0
            assert not errors, errors

            # A draft has no page: the link answers 404 (a page of its own, not the recorded ones).
            response = await (await browser.new_page()).goto(f"{base}/help/default/articles/{ids[DRAFT['title']]}")
            assert response is not None and response.status == 404
        finally:
            await browser.close()
