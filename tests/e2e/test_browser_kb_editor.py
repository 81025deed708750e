"""The supervisors' article editor in a real browser (Debian's chromium) over the assist app, run in-process
on a real port with the real database: sign in with the workspace key, write an article (the API's 422
shown next to the field it names), preview it as the help center renders it, keep it a draft (not in the
help center), publish it (in the help center, linked from the editor), and delete it after a confirmation.
axe finds nothing serious on the sign-in form, the list or the form."""

from playwright.async_api import async_playwright, expect

from services.assist.app import create_app
from services.assist.settings import AssistSettings
from tests.conftest import API_KEY, serve
from tests.e2e.axe import assert_accessible
from tests.e2e.test_browser import (  # noqa: F401 (pytestmark: the skip without chromium)
    CHROMIUM,
    CHROMIUM_ARGS,
    pytestmark,
    record_console_errors,
    record_errors,
)

TITLE = "Track your parcel"


async def public_titles(assist) -> list[str]:
    listed = await assist.get("/v1/help/default/articles")
    assert listed.status == 200
    return [article["title"] for article in (await listed.json())["articles"]]


async def test_a_supervisor_writes_publishes_and_deletes_an_article(names):
    async with serve(create_app(names.settings(AssistSettings))) as assist, async_playwright() as playwright:
        base = str(assist.make_url("")).rstrip("/")
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        errors: list[str] = []
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            record_errors(page, errors, "editor")
            record_console_errors(page, errors, "editor")
            await page.goto(f"{base}/kb")

            # A wrong key is refused with the service's words; the right one opens the (empty) list.
            await assert_accessible(page)
            await page.fill("#token", "not-a-key")
            await page.click("#sign-in")
            await expect(page.locator("#login-error")).to_contain_text("missing, unknown or expired API key")
            await page.fill("#token", API_KEY)
            await page.click("#sign-in")
            await expect(page.locator("#list-status")).to_have_text("No articles yet: write the first one.")
            await expect(page.locator("#help-link")).to_have_attribute("href", "/help/default")

            # A new article with a tag the API refuses (over a label's 64 characters): the 422 sits next to the tags field.
            await page.click("#new-article")
            await page.fill("#title", TITLE)
            await page.select_option("#language", "en")
            await page.fill("#tags", f"delivery, {'x' * 65}")
            await page.fill("#body", "Open **Orders**.\n\n<img src=x onerror=alert(1)>")
            await page.click("#save")
            await expect(page.locator("#tags-error")).to_contain_text("at most 64 characters")
            await expect(page.locator("#tags")).to_have_attribute("aria-invalid", "true")
            await expect(page.locator("#title-error")).to_be_empty()
            await expect(page.locator("#form-error")).to_contain_text("invalid request body")
            await assert_accessible(page)

            # Fixed, it is saved as a draft: not in the help center.
            await page.fill("#tags", "delivery, orders")
            await page.click("#save")
            await expect(page.locator("#form-status")).to_have_text("Saved as a draft.")
            await expect(page.locator("#tags")).not_to_have_attribute("aria-invalid", "true")
            await expect(page.locator("#public-link")).to_be_hidden()
            assert await public_titles(assist) == []

            # The preview is the help center's rendering: Markdown as HTML, raw HTML as text.
            await page.click("#preview-button")
            await expect(page.locator("#preview strong")).to_have_text("Orders")
            await expect(page.locator("#preview")).to_contain_text("<img src=x onerror=alert(1)>")
            await expect(page.locator("#preview img")).to_have_count(0)
            await page.fill("#body", "x" * 50_001)  # over the limit: the preview's 422 sits by the body
            await expect(page.locator("#preview-box")).to_be_hidden()  # a preview of older text is gone
            await page.click("#preview-button")
            await expect(page.locator("#body-error")).to_contain_text("at most 50000 characters")
            await expect(page.locator("#body")).to_have_attribute("aria-invalid", "true")
            await page.fill("#body", "Open **Orders**.")

            # Published: in the help center, and the editor links to its page there.
            await page.check("#published")
            await page.click("#save")
            await expect(page.locator("#form-status")).to_have_text("Saved and published.")
            assert await public_titles(assist) == [TITLE]
            await page.click("#back-to-list")
            row = page.locator("#article-table tbody tr")
            await expect(row).to_have_count(1)
            await expect(row.locator("td").nth(1)).to_have_text("Published")
            await expect(row.locator("td").nth(2)).to_have_text("English")
            await assert_accessible(page)
            await page.get_by_role("button", name=TITLE).click()
            await expect(page.locator("#title")).to_have_value(TITLE)
            await expect(page.locator("#tags")).to_have_value("delivery, orders")
            article_url = await page.locator("#public-link-a").get_attribute("href")
            public = await context.new_page()
            record_errors(public, errors, "public")
            record_console_errors(public, errors, "public")
            await public.goto(f"{base}{article_url}")
            await expect(public.locator("#article-title")).to_have_text(TITLE)
            await expect(public.locator("#body strong")).to_have_text("Orders")
            await public.goto(f"{base}/help/default")
            await expect(public.locator("#articles li h3")).to_have_text([TITLE])

            # Deleting asks first: "keep it" keeps it, "delete" deletes it.
            await page.click("#delete")
            await expect(page.locator("#confirm-delete")).to_be_visible()
            await expect(page.locator("#confirm-text")).to_contain_text(TITLE)
            await page.get_by_role("button", name="Keep it").click()
            await expect(page.locator("#confirm-delete")).to_be_hidden()
            assert await public_titles(assist) == [TITLE]
            await page.click("#delete")
            await page.click("#confirm-delete-button")
            await expect(page.locator("#list-status")).to_have_text(f"“{TITLE}” was deleted.")
            await expect(page.locator("#article-table tbody tr")).to_have_count(0)
            assert await public_titles(assist) == []

            # The key was kept: a reload opens the list without asking again.
            await page.reload()
            await expect(page.locator("#list-view")).to_be_visible()
            await expect(page.locator("#login-view")).to_be_hidden()
            assert not errors, errors
        finally:
            await browser.close()
