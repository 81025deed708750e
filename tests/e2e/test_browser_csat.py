"""CSAT through the real pages in a real browser (Debian's chromium), the whole stack as processes:
the chat page shows the survey after the agent resolves, the customer rates 1-5 with a comment and is
thanked; the email survey page (a signed link) keeps an answer and says why it refuses another."""

import asyncio
import uuid
from datetime import timedelta
from urllib.parse import urlencode

import aiohttp
from playwright.async_api import async_playwright, expect

from services.intake.settings import IntakeSettings
from shared.csat import sign_link
from shared.models import utcnow
from tests.e2e.client import StackClient
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, pytestmark, record_errors  # noqa: F401 (the skip)

SECRET = IntakeSettings.model_fields["csat_secret"].default  # the stack runs with the development secret


async def assigned_conversation(http: aiohttp.ClientSession, stack, agent_id: str, text: str) -> dict:
    """The agent's conversation holding `text`, once it is there."""
    client = StackClient(http, stack.intake_url, stack.agents_url, stack.api_key)
    async with asyncio.timeout(WAIT_MS / 1000):
        while True:
            for conversation in await client.conversations(agent_id):
                if any(m["text"] == text for m in conversation["messages"]):
                    return conversation
            await asyncio.sleep(0.1)  # polling an HTTP view; the condition ends it


async def test_a_customer_rates_the_conversation_on_the_chat_page_and_on_the_email_page(stack, tmp_path):
    run = uuid.uuid4().hex[:12]
    agent_id, question = f"e2e-csat-{run}", f"Where is parcel {run}?"
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{stack.router_url}/v1/routing/config", json={"csat": {stack.workspace: {}}},
                            headers=headers) as response:
            assert response.status == 202, await response.text()
        await StackClient(http, stack.intake_url, stack.agents_url, stack.api_key).put_agent(agent_id, capacity=3)

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                chat = await (await browser.new_context(viewport={"width": 420, "height": 760})).new_page()
                errors: list[str] = []
                record_errors(chat, errors, "chat")
                await chat.goto(f"{stack.intake_url}/chat?{urlencode({'workspace': stack.workspace})}")
                await chat.fill("#text", question)
                await chat.click("#send")
                conversation = await assigned_conversation(http, stack, agent_id, question)
                conversation_id = conversation["conversation_id"]
                async with http.post(f"{stack.agents_url}/v1/conversations/{conversation_id}/resolve",
                                     headers=headers) as response:
                    assert response.status == 200
                    survey_id = (await response.json())["csat"]["survey_id"]

                # The survey shows under the chat; a rating and a comment, sent, are thanked for.
                await expect(chat.locator("#survey")).to_be_visible(timeout=WAIT_MS)
                await expect(chat.locator("#survey-question")).to_contain_text("How would you rate")
                await expect(chat.locator("#survey-send")).to_be_disabled()
                await chat.click('#survey-scores button[data-score="4"]')
                await chat.fill("#survey-comment", "quick, thanks")
                await chat.click("#survey-send")
                await expect(chat.locator("#survey-note")).to_have_text("Thank you for your feedback!", timeout=WAIT_MS)
                await expect(chat.locator('#survey-scores button[data-score="5"]')).to_be_disabled()
                async with http.get(f"{stack.agents_url}/v1/conversations/{conversation_id}", headers=headers) as r:
                    shown = await r.json()
                assert (shown["status"], shown["csat"]["score"], shown["csat"]["comment"]) == ("resolved", 4, "quick, thanks")

                # The email page, on a link signed for the same survey: another answer is refused, with the reason.
                token = sign_link(SECRET, stack.workspace, survey_id, utcnow() + timedelta(days=1))
                page = await (await browser.new_context()).new_page()
                record_errors(page, errors, "survey page")
                await page.goto(f"{stack.intake_url}/csat/{token}")
                await page.click('label.score:has(input[value="2"])')
                await page.click("#send")
                await expect(page.locator("#result")).to_have_attribute("data-state", "error", timeout=WAIT_MS)
                await expect(page.locator("#result")).to_contain_text("already answered")
                await expect(page.locator("#send")).to_be_disabled()
                await chat.screenshot(path=str(tmp_path / "chat-survey.png"), full_page=True)
                await page.screenshot(path=str(tmp_path / "email-survey.png"), full_page=True)
                assert errors == []
            finally:
                await browser.close()
