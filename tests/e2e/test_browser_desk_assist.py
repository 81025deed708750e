"""Suggested articles on the desk in a real browser against the real services (docs/desk.md "Suggested
articles"): the customer's message finds a published article, Insert puts its title and public link into
the reply box (nothing is sent), the agent searches by hand, axe passes at 1440 and 390 px; with assist
stopped the panel says search is unavailable and the desk keeps working."""

import asyncio
import re
import uuid
from collections import Counter
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from playwright.async_api import Route, expect

from tests.e2e.axe import assert_accessible
from tests.e2e.client import StackClient
from tests.e2e.test_browser import (  # noqa: F401 (pytestmark: the skip without chromium)
    WAIT_MS,
    pytestmark,
    record_console_errors,
    record_errors,
)
from tests.e2e.test_browser_desk_composer import agent_with_token, chromium, sign_in

SHOTS = "/tmp/desk-assist"
PASSWORD = {"title": "Reset your password", "language": "en", "tags": ["account"], "status": "published",
            "body": "Forgot your password? Open **Settings**, then *Security*, and choose *Reset password*. "
                    "We e-mail you a link to set a new password and log in again."}
REFUND = {"title": "Refunds for cancelled orders", "language": "en", "tags": ["billing"], "status": "published",
          "body": "A cancelled order is refunded to the card it was paid with within five working days."}


async def write_article(stack, article: dict) -> dict:
    async with aiohttp.ClientSession() as http, http.post(
            f"{stack.stack.url('assist')}/v1/kb/articles", json=article,
            headers={"Authorization": f"Bearer {stack.api_key}"}) as response:
        assert response.status == 201, await response.text()
        return await response.json()


async def customer_says(stack, contact: str, text: str) -> None:
    async with aiohttp.ClientSession() as http:
        client = StackClient(http, stack.intake_url, stack.agents_url, stack.api_key)
        await client.post_until_accepted(contact, text, uuid.uuid4().hex)


async def test_suggested_articles_insert_search_and_a_desk_that_outlives_assist(stack):
    run = uuid.uuid4().hex[:8]
    agent_id = f"ann-{run}"
    token = await agent_with_token(stack, agent_id, "Ann Agent")
    password = await write_article(stack, PASSWORD)
    refund = await write_article(stack, REFUND)
    link = f"{stack.stack.url('assist')}/help/{stack.workspace}/articles/{password['id']}"
    question = f"I forgot my password and cannot log in, how do I reset it? ({run})"

    async with chromium() as browser:
        desk = await (await browser.new_context(viewport={"width": 1440, "height": 900})).new_page()
        chat = await (await browser.new_context(viewport={"width": 420, "height": 760})).new_page()
        errors: list[str] = []
        record_errors(desk, errors, "desk")
        record_console_errors(desk, errors, "desk")
        await sign_in(desk, stack, agent_id, token)
        await chat.goto(f"{stack.intake_url}/chat?{urlencode({'workspace': stack.workspace})}")
        await chat.fill("#text", question)
        await chat.click("#send")
        conversation = desk.locator("#conversations [data-conversation-id]", has_text=run)
        await expect(conversation).to_have_count(1, timeout=WAIT_MS)
        await conversation.click()

        # Opening the conversation searches with the customer's message: the password article comes first.
        panel = desk.get_by_test_id("assist")
        hits = panel.get_by_test_id("assist-hit")
        await expect(hits.first).to_have_attribute("data-article", password["id"], timeout=WAIT_MS)
        first = hits.first
        await expect(first.locator("h3")).to_have_text(PASSWORD["title"])
        await expect(first.get_by_test_id("assist-score")).to_have_text(re.compile(r"^\d+% match$"))
        await expect(first.get_by_test_id("assist-open")).to_have_attribute("href", link)
        await expect(first.get_by_test_id("assist-open")).to_have_attribute("target", "_blank")
        await desk.screenshot(path=f"{SHOTS}/assist-1440.png")
        await assert_accessible(desk, "#contact-pane")
        async with desk.context.expect_page() as opened:
            await first.get_by_test_id("assist-open").click()
        article_page = await opened.value
        await expect(article_page.locator("h1")).to_have_text(PASSWORD["title"], timeout=WAIT_MS)
        assert article_page.url == link
        await article_page.close()

        # Insert, by keyboard: title and public link at the cursor; the reply is not sent.
        await desk.fill("#reply", "Hello! Here is how: ")
        await first.get_by_test_id("assist-insert").focus()
        await desk.keyboard.press("Enter")
        await expect(desk.locator("#reply")).to_have_value(f"Hello! Here is how: {PASSWORD['title']}: {link}")
        await expect(desk.locator("#reply")).to_be_focused()
        await expect(desk.locator('#transcript [data-direction="outbound"]')).to_have_count(0)
        await expect(panel.get_by_test_id("assist-status")).to_have_text(f"Inserted “{PASSWORD['title']}”.")

        # A search by hand; clearing it goes back to the customer's messages.
        await panel.get_by_test_id("assist-q").fill("refund for a cancelled order")
        await panel.get_by_test_id("assist-q").press("Enter")
        await expect(hits.first).to_have_attribute("data-article", refund["id"], timeout=WAIT_MS)
        await assert_accessible(desk, "#contact-pane")
        await panel.get_by_test_id("assist-q").fill("")
        await expect(hits.first).to_have_attribute("data-article", password["id"], timeout=WAIT_MS)

        # At 390 px the panel is in the contact aside behind the Contact button.
        await desk.set_viewport_size({"width": 390, "height": 800})
        await expect(desk.locator("#contact-pane")).to_be_hidden()
        await desk.get_by_test_id("contact-toggle").click()
        await expect(hits.first).to_be_visible()
        await desk.screenshot(path=f"{SHOTS}/assist-390.png")
        await assert_accessible(desk, "#contact-pane")
        await desk.locator("#contact-close").click()
        await desk.set_viewport_size({"width": 1440, "height": 900})

        # Assist stops: the next customer message's search fails quietly; the desk goes on working.
        stack.stack.stop("assist")
        await chat.fill("#text", f"Also, my order was cancelled: where is my refund? ({run})")
        await chat.click("#send")
        await expect(desk.locator('#transcript [data-direction="inbound"]')).to_have_count(2, timeout=WAIT_MS)
        status = panel.get_by_test_id("assist-status")
        await expect(status).to_have_text("Article search is unavailable right now.", timeout=WAIT_MS)
        await expect(hits).to_have_count(0)
        await panel.get_by_test_id("assist-q").fill("password")
        await panel.get_by_test_id("assist-submit").click()
        await expect(status).to_have_text("Article search is unavailable right now.", timeout=WAIT_MS)
        await desk.press("#reply", "Enter")  # the reply with the inserted link reaches the customer
        reply = desk.locator('#transcript [data-direction="outbound"]', has_text=link)
        await expect(reply).to_have_attribute("data-status", re.compile("delivered|read"), timeout=WAIT_MS)
        await expect(chat.locator('#messages [data-direction="outbound"]', has_text=link)).to_have_count(1)
        await expect(desk.locator("#desk-error")).to_be_hidden()
        await assert_accessible(desk, "#contact-pane")
        await desk.screenshot(path=f"{SHOTS}/assist-unavailable.png")
        # The refused connections are the browser's "Failed to load resource" lines, which the recorder leaves out.
        assert errors == []


class HeldSearches:
    """Intercepts the desk's searches on assist: records each query and, per conversation (told by
    `conversation_of(query)`), the most in flight at once; a query containing a held word waits for its release."""

    def __init__(self, conversation_of) -> None:
        self.conversation_of = conversation_of
        self.asked: list[str] = []
        self.in_flight: Counter[str] = Counter()
        self.most_in_flight: Counter[str] = Counter()
        self.gates: dict[str, asyncio.Event] = {}

    def hold(self, word: str) -> None:
        self.gates[word] = asyncio.Event()

    def release(self, word: str) -> None:
        self.gates[word].set()

    async def handle(self, route: Route) -> None:
        query = parse_qs(urlsplit(route.request.url).query)["q"][0]
        conversation = self.conversation_of(query)
        self.asked.append(query)
        self.in_flight[conversation] += 1
        self.most_in_flight[conversation] = max(self.most_in_flight[conversation], self.in_flight[conversation])
        try:
            for word, gate in self.gates.items():
                if word in query:
                    await gate.wait()
            await route.continue_()
        finally:
            self.in_flight[conversation] -= 1


async def test_one_search_in_flight_per_conversation_and_stale_answers_are_ignored(stack):
    run = uuid.uuid4().hex[:8]
    agent_id = f"bob-{run}"
    token = await agent_with_token(stack, agent_id, "Bob Agent")
    password = await write_article(stack, PASSWORD)
    refund = await write_article(stack, REFUND)
    searches = HeldSearches(lambda query: "b" if "refund" in query else "a")
    async with chromium() as browser:
        desk = await (await browser.new_context(viewport={"width": 1440, "height": 900})).new_page()
        await desk.route(f"{stack.stack.url('assist')}/v1/kb/search?*", searches.handle)
        await sign_in(desk, stack, agent_id, token)
        panel = desk.get_by_test_id("assist")
        hits = panel.get_by_test_id("assist-hit")

        # Conversation A: its first search is held; the customer's second message waits behind it.
        searches.hold("forgot")
        await customer_says(stack, f"a-{run}", f"I forgot my password ({run})")
        await customer_says(stack, f"b-{run}", f"Where is the refund for my cancelled order? ({run})")
        rows = desk.locator("#conversations [data-conversation-id]")
        await expect(rows).to_have_count(2, timeout=WAIT_MS)
        await rows.filter(has_text="forgot").click()
        await expect(panel).to_have_attribute("data-search", "asking", timeout=WAIT_MS)
        await customer_says(stack, f"a-{run}", f"I cannot log in since yesterday ({run})")
        await expect(desk.locator('#transcript [data-direction="inbound"]')).to_have_count(2, timeout=WAIT_MS)
        await expect(panel).to_have_attribute("data-search", "queued", timeout=WAIT_MS)
        assert searches.asked == [f"I forgot my password ({run})"]

        # Conversation B is opened meanwhile and answered; A's answer, released now, is not drawn over it.
        await rows.filter(has_text="refund").click()
        await expect(hits.first).to_have_attribute("data-article", refund["id"], timeout=WAIT_MS)
        searches.release("forgot")
        await expect(panel).to_have_attribute("data-ignored", re.compile(r"[1-9]"), timeout=WAIT_MS)
        await expect(hits.first).to_have_attribute("data-article", refund["id"])
        # A's newest query (both messages, newest first) went out after the first came back, never beside it.
        newest = f"I cannot log in since yesterday ({run})\nI forgot my password ({run})"
        await rows.filter(has_text="log in").click()
        await expect(hits.first).to_have_attribute("data-article", password["id"], timeout=WAIT_MS)
        assert searches.asked[-1] == newest and searches.asked[0] == f"I forgot my password ({run})"
        assert searches.most_in_flight == {"a": 1, "b": 1}
