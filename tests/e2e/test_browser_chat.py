"""The customer chat in a real browser (Debian's chromium), the whole stack as processes: the page in the
browser's language, a waiting customer's place and expected wait, "Ann joined" and agent names, the
resolved notice and survey, the file button by keyboard, and no serious WCAG 2.1 AA violation (axe-core)
on the empty page, with messages and with the survey. Screenshots at 390 and 1440 px go to /tmp/chat-*.png."""

import asyncio
import re
import uuid
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, async_playwright, expect

from deploy.local import free_port
from shared.models import utcnow
from tests.conftest import API_KEY, WORKSPACE, RunningStack
from tests.e2e.axe import assert_accessible
from tests.e2e.client import StackClient
from tests.e2e.test_browser import (  # noqa: F401 (the skip)
    CHROMIUM,
    CHROMIUM_ARGS,
    WAIT_MS,
    pytestmark,
    record_console_errors,
    record_errors,
)
from tests.e2e.test_browser_csat import assigned_conversation

SHOTS = Path("/tmp")


@pytest.fixture
def chat_stack(stack_factory):
    """The stack with queue places told every second (the default is every 5 s)."""
    built = stack_factory(ROUTER_QUEUE_NOTICE_SECONDS="1")
    built.start_all()
    return RunningStack(built.url("intake"), built.url("agents"), built.url("router"), API_KEY, WORKSPACE, built)


@pytest.fixture
async def browser():
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


async def chat_page(browser: Browser, stack, errors: list[str], *, locale: str = "en-US", width: int = 420,
                    query: dict | None = None) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": 760}, locale=locale)
    page = await context.new_page()
    record_errors(page, errors, f"chat {locale}")
    record_console_errors(page, errors, f"chat {locale}")
    await page.goto(f"{stack.intake_url}/chat?{urlencode({'workspace': stack.workspace, **(query or {})})}")
    return page


async def say(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")
    await expect(page.locator('#messages [data-direction="inbound"][data-message-id]', has_text=text)).to_have_count(
        1, timeout=WAIT_MS)


async def test_russian_and_ukrainian_browsers_get_their_language(chat_stack, browser):
    errors: list[str] = []
    russian = await chat_page(browser, chat_stack, errors, locale="ru-RU")
    await expect(russian.locator("html")).to_have_attribute("lang", "ru")
    await expect(russian.locator("h1")).to_have_text("Напишите нам")
    await expect(russian.locator("#text")).to_have_attribute("placeholder", "Введите сообщение…")
    await expect(russian.locator("#send")).to_have_text("Отправить")
    await expect(russian.locator("#messages .welcome")).to_contain_text("Здравствуйте")
    assert await russian.title() == "Напишите нам"
    await assert_accessible(russian)

    ukrainian = await chat_page(browser, chat_stack, errors, locale="uk-UA")
    await expect(ukrainian.locator("html")).to_have_attribute("lang", "uk")
    await expect(ukrainian.locator("#send")).to_have_text("Надіслати")
    # The customer's own message shows its time in their locale: "Ви" and a 24-hour time.
    await say(ukrainian, "Привіт")
    meta = ukrainian.locator('#messages [data-direction="inbound"] .meta')
    await expect(meta).to_contain_text("Ви")
    await expect(meta.locator("time")).to_have_text(re.compile(r"^\d{2}:\d{2}$"))

    # ?lang= overrides the browser; a language without a file falls back to English.
    chosen = await chat_page(browser, chat_stack, errors, locale="ru-RU", query={"lang": "uk"})
    await expect(chosen.locator("html")).to_have_attribute("lang", "uk")
    other = await chat_page(browser, chat_stack, errors, locale="de-DE")
    await expect(other.locator("html")).to_have_attribute("lang", "en")
    await expect(other.locator("h1")).to_have_text("Chat with us")
    assert errors == []


async def test_a_waiting_customer_sees_their_place_then_who_joined_names_and_the_resolve(chat_stack, browser):
    stack = chat_stack
    run = uuid.uuid4().hex[:8]
    agent_id = f"ann-{run}"  # shown as its title: "Ann-<run>"
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    errors: list[str] = []
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{stack.router_url}/v1/routing/config", json={"csat": {stack.workspace: {}}},
                            headers=headers) as response:
            assert response.status == 202, await response.text()
        client = StackClient(http, stack.intake_url, stack.agents_url, stack.api_key)
        await client.put_agent(agent_id, capacity=1)
        name = agent_id.title()

        first = await chat_page(browser, stack, errors, width=390)
        await assert_accessible(first)  # empty
        await say(first, f"first {run}")
        await expect(first.locator('#messages .notice[data-notice="joined"]')).to_contain_text(
            f"{name} joined the chat", timeout=WAIT_MS)

        second = await chat_page(browser, stack, errors, width=1440)
        await say(second, f"second {run}")
        third = await chat_page(browser, stack, errors, width=390)
        await say(third, f"third {run}")
        # Waiting: the place, and no expected wait yet (one assignment is no pace).
        await expect(second.locator("#queue")).to_have_text(
            "You are next in line. We will be with you as soon as we can.", timeout=WAIT_MS)
        await expect(third.locator("#queue")).to_have_text(
            "You are number 2 in line. We will be with you as soon as we can.", timeout=WAIT_MS)
        await assert_accessible(third)
        await third.screenshot(path=str(SHOTS / "chat-waiting-390.png"), full_page=True)

        # The agent answers the first customer by name, then resolves: that customer sees the reply with
        # the agent's name, the resolved notice and the survey; the second is taken, the third moves up.
        conversation = await assigned_conversation(http, stack, agent_id, f"first {run}")
        async with http.post(f"{stack.agents_url}/v1/conversations/{conversation['conversation_id']}/messages",
                             json={"text": f"Hello from {name}"}, headers=headers) as response:
            assert response.status == 201
        reply = first.locator('#messages [data-direction="outbound"]', has_text=f"Hello from {name}")
        await expect(reply.locator(".who")).to_have_text(name, timeout=WAIT_MS)
        async with http.post(f"{stack.agents_url}/v1/conversations/{conversation['conversation_id']}/resolve",
                             headers=headers) as response:
            assert response.status == 200
        await expect(first.locator('#messages .notice[data-notice="resolved"]')).to_contain_text(
            "This conversation was resolved", timeout=WAIT_MS)
        await expect(first.locator("#survey")).to_be_visible(timeout=WAIT_MS)
        await assert_accessible(first)  # messages, notices and the survey
        await first.screenshot(path=str(SHOTS / "chat-resolved-390.png"), full_page=True)

        await expect(second.locator('#messages .notice[data-notice="joined"]')).to_contain_text(
            f"{name} joined the chat", timeout=WAIT_MS)
        await expect(second.locator("#queue")).to_be_hidden()
        await expect(third.locator("#queue")).to_have_text(
            "You are next in line. Expected wait: about 1 minute.", timeout=WAIT_MS)
        await second.screenshot(path=str(SHOTS / "chat-joined-1440.png"), full_page=True)
    assert errors == []


async def test_the_file_button_works_from_the_keyboard(chat_stack, browser):
    errors: list[str] = []
    page = await chat_page(browser, chat_stack, errors)
    # Listening from the start: Playwright then intercepts the picker before the key is pressed (its
    # interception is switched on asynchronously, and a picker opened before that is lost).
    chooser = asyncio.get_running_loop().create_future()
    page.once("filechooser", lambda picker: chooser.set_result(picker))
    await say(page, "a file is coming")
    await page.focus("#text")
    await page.keyboard.press("Shift+Tab")
    assert await page.evaluate("document.activeElement.id") == "file"
    # The focused button shows it: the label around the icon gets the focus outline.
    outline = await page.evaluate("getComputedStyle(document.querySelector('#attach')).outlineStyle")
    assert outline == "solid"
    await page.keyboard.press("Enter")
    async with asyncio.timeout(WAIT_MS / 1000):
        picker = await chooser
    await picker.set_files({"name": "invoice.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4"})
    await expect(page.locator('#messages [data-direction="inbound"][data-message-id]', has_text="invoice.pdf")).to_have_count(
        1, timeout=WAIT_MS)
    # The icon is SVG, not an emoji: it renders without emoji fonts.
    assert await page.locator("#attach svg").count() == 1
    assert errors == []


HOST_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Acme shop</title><link rel="icon" href="data:,"></head>
<body><main><h1>Acme shop</h1><p>Our products.</p></main>
<script src="{intake}/widget.js" data-workspace="{workspace}" async></script></body></html>"""


async def put_webchat_settings(http: aiohttp.ClientSession, stack, settings: dict) -> None:
    async with http.put(f"{stack.router_url}/v1/routing/config", json={"webchat": {stack.workspace: settings}},
                        headers={"Authorization": f"Bearer {stack.api_key}"}) as response:
        assert response.status == 202, await response.text()


@pytest.fixture
async def host_site(chat_stack):
    """A plain page on another origin (a port of the test's own) that embeds the widget with one tag."""
    app = web.Application()

    async def page(_: web.Request) -> web.Response:
        html = HOST_PAGE.format(intake=chat_stack.intake_url, workspace=chat_stack.workspace)
        return web.Response(text=html, content_type="text/html")

    app.router.add_get("/", page)
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        yield str(server.make_url("/"))
    finally:
        await server.close()


async def test_the_widget_on_another_site_opens_the_chat_and_a_message_reaches_the_desk(chat_stack, browser, host_site):
    stack = chat_stack
    run = uuid.uuid4().hex[:8]
    agent_id, text = f"widget-{run}", f"Question from the shop {run}"
    errors: list[str] = []
    async with aiohttp.ClientSession() as http:
        await put_webchat_settings(http, stack, {"title": "Acme help", "greeting": "Hi from Acme!",
                                                 "accent_color": "#8a2be2", "language": "uk"})
        await StackClient(http, stack.intake_url, stack.agents_url, stack.api_key).put_agent(agent_id)
        for width in (390, 1440):
            context = await browser.new_context(viewport={"width": width, "height": 800}, locale="de-DE")
            page = await context.new_page()
            record_errors(page, errors, f"host {width}")
            record_console_errors(page, errors, f"host {width}")
            await page.goto(host_site)
            launcher = page.locator("#switchyard-chat button.launcher")
            await expect(launcher).to_have_attribute("aria-label", "Acme help", timeout=WAIT_MS)
            assert await launcher.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(138, 43, 226)"
            await assert_accessible(page)  # launcher closed
            await launcher.click()
            await expect(launcher).to_have_attribute("aria-expanded", "true")
            chat = page.frame_locator("#switchyard-chat iframe")
            # The workspace's title and greeting; German is not offered, so the workspace's Ukrainian.
            await expect(chat.locator("h1")).to_have_text("Acme help", timeout=WAIT_MS)
            await expect(chat.locator("html")).to_have_attribute("lang", "uk")
            await expect(chat.locator("#messages .welcome")).to_have_text("Hi from Acme!")
            await assert_accessible(page)  # launcher open
            frame = next(f for f in page.frames if "/chat?" in f.url)
            await assert_accessible(frame)
            if width == 1440:
                await chat.locator("#text").fill(text)
                await chat.locator("#text").press("Enter")
                await expect(chat.locator('#messages [data-direction="inbound"][data-message-id]', has_text=text)).to_have_count(
                    1, timeout=WAIT_MS)
            await page.screenshot(path=str(SHOTS / f"chat-widget-{width}.png"))
            await context.close()
        conversation = await assigned_conversation(http, stack, agent_id, text)
        assert conversation["channel"] == "webchat"
    assert errors == []


async def test_outside_opening_hours_the_chat_says_so_and_keeps_the_email(chat_stack, browser):
    stack = chat_stack
    run = uuid.uuid4().hex[:8]
    agent_id, text = f"hours-{run}", f"Please call me back {run}"
    errors: list[str] = []
    async with aiohttp.ClientSession() as http:
        # Open 10-14 on one day of the week that is not today in Kyiv: closed now, whatever the day.
        today = utcnow().astimezone(ZoneInfo("Europe/Kyiv")).strftime("%a").lower()
        other = "sun" if today == "sat" else "sat"
        await put_webchat_settings(http, stack, {"hours": {"time_zone": "Europe/Kyiv",
                                                           "weekly": {other: [{"start": "10:00", "end": "14:00"}]}}})
        client = StackClient(http, stack.intake_url, stack.agents_url, stack.api_key)
        await client.put_agent(agent_id)
        page = await chat_page(browser, stack, errors, width=390)
        await expect(page.locator("#offline")).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator("#offline")).to_contain_text("We are away right now.")
        await expect(page.locator("#offline-hours")).to_contain_text("Opening hours (Europe/Kyiv)")
        await expect(page.locator("#offline-hours")).to_contain_text("10:00–14:00")
        await assert_accessible(page)
        await page.fill("#email", "ann@example.com")
        await page.click("#email-send")
        await expect(page.locator("#email-note")).to_have_text("Thank you! We will answer at ann@example.com.")
        await say(page, text)
        await page.screenshot(path=str(SHOTS / "chat-offline-390.png"), full_page=True)

        # The message is a conversation like any other, and its contact has the address.
        conversation = await assigned_conversation(http, stack, agent_id, text)
        async with http.get(f"{stack.agents_url}/v1/contacts/{conversation['contact_id']}",
                            headers={"Authorization": f"Bearer {stack.api_key}"}) as response:
            assert (await response.json())["emails"] == ["ann@example.com"]
    assert errors == []
