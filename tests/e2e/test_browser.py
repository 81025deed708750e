"""A customer and an agent talk through the real pages in a real browser (Debian's chromium).

The customer writes on the web chat page, the agent sees it live on the desk, each sees the other
typing, the agent replies, the reply shows up on the chat page, and a reloaded chat page
continues the same conversation.
"""

import re
import uuid
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.e2e.client import StackClient

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ANY_VALUE = re.compile(r".+")
WAIT_MS = 20_000  # for anything that crosses the broker: intake -> router -> agents -> desk

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} not found (install Debian's chromium: apt-get install chromium)"
)


async def create_online_agent(stack, agent_id: str) -> None:
    async with aiohttp.ClientSession() as http:
        await StackClient(http, stack.intake_url, stack.agents_url, stack.api_key).put_agent(agent_id, capacity=3)


def record_errors(page: Page, errors: list[str], label: str) -> None:
    page.on("pageerror", lambda error: errors.append(f"{label}: {error}"))


def record_console_errors(page: Page, errors: list[str], label: str) -> None:
    """A page file that did not load (the favicon's 404 was one) and console errors such as what the CSP
    refused. The API's refusals (/v1/, a 404 or a 422 the desk shows the agent) are part of the flows."""
    page.on("response", lambda response: errors.append(f"{label}: {response.status} {response.url}")
            if response.status >= 400 and "/v1/" not in response.url else None)
    page.on("console", lambda message: errors.append(f"{label} console: {message.text}")
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)


async def test_customer_and_agent_chat_through_the_pages(stack, tmp_path):
    run = uuid.uuid4().hex[:12]
    agent_id = f"e2e-browser-{run}"
    question = f"Hello, my parcel {run} has not arrived"
    answer = f"Sorry about that! Parcel {run} leaves today."
    await create_online_agent(stack, agent_id)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            desk_context = await browser.new_context(viewport={"width": 1200, "height": 800})
            chat_context = await browser.new_context(viewport={"width": 420, "height": 760})
            desk = await desk_context.new_page()
            chat = await chat_context.new_page()
            errors: list[str] = []
            record_errors(desk, errors, "desk")
            record_console_errors(desk, errors, "desk")
            record_errors(chat, errors, "chat")

            # The agent signs in; the desk's feed goes live.
            query = urlencode({"agent_id": agent_id, "token": stack.api_key})
            await desk.goto(f"{stack.agents_url}/desk?{query}")
            await expect(desk.locator("#agent-id")).to_have_value(agent_id)
            await desk.click("#connect")
            await expect(desk.locator("#connection")).to_have_attribute("data-state", "open", timeout=WAIT_MS)

            # The customer writes.
            await chat.goto(f"{stack.intake_url}/chat?{urlencode({'workspace': stack.workspace})}")
            await chat.fill("#text", question)
            await chat.click("#send")
            customer_line = chat.locator('#messages [data-direction="inbound"]', has_text=question)
            await expect(customer_line).to_have_count(1, timeout=WAIT_MS)
            await expect(customer_line).to_have_attribute("data-message-id", ANY_VALUE, timeout=WAIT_MS)

            # The desk shows the new conversation with the customer's text; the agent opens it.
            conversation = desk.locator("#conversations [data-conversation-id]", has_text=question)
            await expect(conversation).to_have_count(1, timeout=WAIT_MS)
            await conversation.click()
            await expect(
                desk.locator('#transcript [data-message-id][data-direction="inbound"]', has_text=question)
            ).to_have_count(1, timeout=WAIT_MS)

            # Typing shows both ways: the customer's on the desk, then the agent's on the chat page.
            await chat.fill("#text", "one more thing")
            await expect(desk.locator("#typing")).to_be_visible(timeout=WAIT_MS)
            await expect(desk.locator("#typing")).to_contain_text("is typing")
            await chat.fill("#text", "")
            await desk.fill("#reply", answer)
            await expect(chat.locator("#typing")).to_be_visible(timeout=WAIT_MS)

            # The agent replies with Enter; the reply shows on the desk and, live, on the chat page,
            # where it takes the place of the typing line.
            await desk.press("#reply", "Enter")
            await expect(
                desk.locator('#transcript [data-message-id][data-direction="outbound"]', has_text=answer)
            ).to_have_count(1, timeout=WAIT_MS)
            await expect(desk.locator("#reply")).to_have_value("")
            await expect(
                chat.locator('#messages [data-direction="outbound"]', has_text=answer)
            ).to_have_count(1, timeout=WAIT_MS)
            await expect(chat.locator("#typing")).to_be_hidden()

            # A reloaded chat page continues the same conversation.
            await chat.reload()
            await expect_transcript(chat, question, answer)
            await expect(chat.locator("#status")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
            # Even without the page's own copy, the server's history brings both messages back.
            await chat.evaluate(
                "ws => localStorage.removeItem(`switchyard.chat.${ws}.transcript`)", stack.workspace
            )
            await chat.reload()
            await expect_transcript(chat, question, answer)

            await desk.screenshot(path=str(tmp_path / "desk.png"), full_page=True)
            await chat.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
            assert errors == []
        finally:
            await browser.close()


async def expect_transcript(chat: Page, question: str, answer: str) -> None:
    await expect(chat.locator('#messages [data-direction="inbound"]', has_text=question)).to_have_count(
        1, timeout=WAIT_MS
    )
    await expect(chat.locator('#messages [data-direction="outbound"]', has_text=answer)).to_have_count(
        1, timeout=WAIT_MS
    )
