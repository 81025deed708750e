"""The desk in the agent's language, in a real browser (Debian's chromium): a Russian browser gets the
sign-in form, the lists, the open conversation's header and the composer in Russian, with times in
Russian and in the browser's time zone; the header's picker switches to Ukrainian (kept across a
reload, the agent still signed in and the conversation still open) and `?lang=` overrides it; a
Ukrainian phone gets the desk in Ukrainian. axe finds nothing serious in either language."""

import re
from datetime import datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import aiohttp
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.e2e.axe import assert_accessible
from tests.e2e.client import StackClient
from tests.e2e.test_browser import (  # noqa: F401 (pytestmark: the skip without chromium)
    CHROMIUM,
    CHROMIUM_ARGS,
    WAIT_MS,
    pytestmark,
    record_console_errors,
    record_errors,
)
from tests.e2e.test_browser_desk_lists import post, row, until_listed

# A time on another day, formatted as the desk formats one (day, short month, hours and minutes).
OTHER_DAY = "2026-01-05T10:00:00Z"


async def token_for(http: aiohttp.ClientSession, stack, agent_id: str) -> str:
    async with http.post(f"{stack.agents_url}/v1/agents/{agent_id}/token",
                         headers={"Authorization": f"Bearer {stack.api_key}"}) as response:
        assert response.status == 201, await response.text()
        return (await response.json())["token"]


async def open_desk(browser: Browser, stack, errors: list[str], *, locale: str, timezone: str, width: int,
                    query: dict) -> Page:
    context = await browser.new_context(locale=locale, timezone_id=timezone,
                                        viewport={"width": width, "height": 900 if width > 500 else 800})
    page = await context.new_page()
    record_errors(page, errors, locale)
    record_console_errors(page, errors, locale)
    await page.goto(f"{stack.agents_url}/desk?{urlencode(query)}")
    return page


def local_hhmm(iso: str, timezone: str) -> str:
    """Hours and minutes of an instant in a time zone: what a 24-hour locale shows for today."""
    return datetime.fromisoformat(iso).astimezone(ZoneInfo(timezone)).strftime("%H:%M")


async def test_a_russian_browser_gets_the_desk_in_russian_and_the_picker_switches_to_ukrainian(stack, tmp_path):
    zone = "Europe/Moscow"
    async with aiohttp.ClientSession() as http, async_playwright() as playwright:
        client = StackClient(http, stack.intake_url, stack.agents_url, stack.api_key)
        await client.put_agent("ann", capacity=3)
        token = await token_for(http, stack, "ann")
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        errors: list[str] = []
        try:
            page = await open_desk(browser, stack, errors, locale="ru-RU", timezone=zone, width=1440,
                                   query={"agent_id": "ann", "token": token})
            # The sign-in form, before signing in.
            await expect(page.locator("html")).to_have_attribute("lang", "ru")
            await expect(page.locator("#login h1")).to_have_text("Вход на стол агента")
            await expect(page.locator("#login label").first).to_contain_text("ID агента")
            await expect(page.locator("#connect")).to_have_text("Войти")
            await expect(page.locator("#agent-id")).to_have_attribute("placeholder", "например, ann")
            await expect(page.locator("#language")).to_have_value("ru")
            await expect(page).to_have_title("Switchyard — стол агента")
            await page.click("#connect")
            await expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
            await expect(page.locator("#connection-text")).to_have_text("На связи")
            await expect(page.locator("#sign-out")).to_have_text("Выйти")
            await expect(page.locator("#view-mine")).to_have_text("Мои")
            await expect(page.locator("#conversations-empty")).to_contain_text("Нет открытых разговоров.")
            await expect(page.locator("#list-q")).to_have_attribute("placeholder", "Поиск по сообщениям и контактам")

            # A conversation comes: its row, its header and the composer, in Russian.
            await post(http, stack, {"id": "olga", "name": "Olga Ivanova", "email": "olga@example.com"}, "Где мой заказ?")
            conversation = (await until_listed(http, stack, 1, status="assigned"))[0]
            mine = row(page, "conversations", "Olga Ivanova")
            await expect(mine).to_have_count(1, timeout=WAIT_MS)
            await expect(mine.locator("[data-testid=unread]")).to_have_attribute("aria-label", "1 непрочитанное")
            shown = mine.locator("time")
            sent_at = await shown.get_attribute("datetime")
            await expect(shown).to_have_text(local_hhmm(sent_at, zone))  # the browser's zone, 24-hour
            await mine.locator("button").click()
            await expect(page.locator("#chat-name")).to_have_text("Olga Ivanova")
            opened = local_hhmm(conversation["created_at"], zone)
            await expect(page.locator("#chat-details")).to_contain_text(f"приоритет 0 · открыт {opened}")
            await expect(page.locator("#send")).to_have_text("Отправить")
            await expect(page.locator("#resolve")).to_have_text("Закрыть")
            await expect(page.locator("#transfer")).to_have_text("Передать")
            await expect(page.locator("#set-pending")).to_have_text("Ожидает клиента")
            await expect(page.locator("#reply")).to_have_attribute("placeholder", "Напишите ответ…")
            await expect(page.locator("#compose-hint")).to_contain_text("Enter — отправить")
            await page.locator("[data-testid=mode-note]").check()
            await expect(page.locator("#send")).to_have_text("Добавить заметку")
            await page.locator("[data-testid=mode-reply]").check()
            # Another day's time: the date in Russian, the hour in Moscow (UTC+3).
            other_day = await page.evaluate("async (iso) => (await import('/desk/format.js')).fmtTime(iso)", OTHER_DAY)
            assert "янв" in other_day and "13:00" in other_day, other_day
            await assert_accessible(page)
            await page.screenshot(path=str(tmp_path / "desk-ru-1440.png"), full_page=True)

            # The picker: Ukrainian, remembered; the desk comes back signed in with the conversation open.
            await page.select_option("#language", "uk")
            await expect(page.locator("html")).to_have_attribute("lang", "uk", timeout=WAIT_MS)
            await expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
            await expect(page.locator("#chat-name")).to_have_text("Olga Ivanova", timeout=WAIT_MS)
            await expect(page.locator("#send")).to_have_text("Надіслати")
            await expect(page.locator("#view-mine")).to_have_text("Мої")
            await expect(page.locator("#chat-details")).to_contain_text("відкрита")
            assert await page.evaluate("localStorage.getItem('switchyard.desk.lang')") == "uk"
            await page.reload()
            await expect(page.locator("#send")).to_have_text("Надіслати", timeout=WAIT_MS)
            # An address's ?lang= overrides the saved choice.
            await page.goto(f"{stack.agents_url}/desk?lang=en")
            await expect(page.locator("html")).to_have_attribute("lang", "en")
            await expect(page.locator("#view-mine")).to_have_text("Mine", timeout=WAIT_MS)
            await expect(page.locator("#language")).to_have_value("en")
            assert errors == []
        finally:
            await browser.close()


async def test_a_ukrainian_phone_gets_the_desk_in_ukrainian(stack, tmp_path):
    zone = "Europe/Kyiv"
    async with aiohttp.ClientSession() as http, async_playwright() as playwright:
        client = StackClient(http, stack.intake_url, stack.agents_url, stack.api_key)
        await client.put_agent("ann", capacity=3)
        token = await token_for(http, stack, "ann")
        await post(http, stack, {"id": "taras", "name": "Taras Shevchenko"}, "Доброго дня!")
        await until_listed(http, stack, 1, status="assigned")
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        errors: list[str] = []
        try:
            page = await open_desk(browser, stack, errors, locale="uk-UA", timezone=zone, width=390,
                                   query={"agent_id": "ann"})
            await expect(page.locator("html")).to_have_attribute("lang", "uk")
            await expect(page.locator("#login h1")).to_have_text("Вхід на стіл агента")
            await expect(page.locator("#connect")).to_have_text("Увійти")
            await page.click("#connect")  # no key: the desk says so, in Ukrainian
            await expect(page.locator("#login-error")).to_have_text("Введіть ключ API.")
            await assert_accessible(page)
            await page.fill("#api-key", token)
            await page.click("#connect")
            await expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
            await expect(page.locator("#connection-text")).to_have_text("На зв'язку")
            mine = row(page, "conversations", "Taras Shevchenko")
            await expect(mine).to_have_count(1, timeout=WAIT_MS)
            shown = mine.locator("time")
            await expect(shown).to_have_text(local_hhmm(await shown.get_attribute("datetime"), zone))
            await mine.locator("button").click()
            await expect(page.locator("#back")).to_have_text("‹ Назад")
            await expect(page.locator("#back")).to_have_attribute("aria-label", "Назад до розмов")
            await expect(page.locator("#send")).to_have_text("Надіслати")
            await expect(page.locator("#reply")).to_have_attribute("placeholder", "Напишіть відповідь…")
            other_day = await page.evaluate("async (iso) => (await import('/desk/format.js')).fmtTime(iso)", OTHER_DAY)
            assert "січ" in other_day and "12:00" in other_day, other_day  # Kyiv is UTC+2 in January
            await assert_accessible(page)
            await page.screenshot(path=str(tmp_path / "desk-uk-390.png"), full_page=True)
            # The shortcuts dialog's rows are drawn in the language too.
            rows = await page.locator("#shortcuts-list tr").all_inner_texts()
            assert any(re.search(r"Наступна розмова", text) for text in rows), rows
            assert errors == []
        finally:
            await browser.close()
