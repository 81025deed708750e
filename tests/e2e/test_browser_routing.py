"""Offers and transfers on the agent desk, in a real browser (Debian's chromium) over the whole stack.

The default queue offers instead of assigning. Ann's desk shows the offer with a countdown; ann
accepts and the conversation opens with the customer's message and why it came to her. The transfer
picker shows bob offline and not selectable; once he is online, a transfer to him with a note takes
the conversation off ann's desk with a notice. Bob's desk is offered it with ann's note; bob accepts,
and the API shows bob as the assignee with the transfer and its note recorded.
"""

import asyncio
import json
import re
import uuid
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import API_KEY
from tests.e2e.client import StackClient
from tests.e2e.test_browser import record_console_errors

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WAIT_MS = 20_000  # for anything that crosses the broker: intake -> router -> agents -> desk
PATIENCE = 20  # seconds, for API polls of the same

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} not found (install Debian's chromium: apt-get install chromium)"
    ),
]


@pytest.fixture
def offer_stack(stack_factory, tmp_path):
    """The whole stack with one queue in offer mode, with time enough to answer on a slow machine."""
    queues = tmp_path / "queues.yaml"
    queues.write_text(json.dumps({"queues": [{"name": "default", "mode": "offer", "offer_timeout_seconds": 120}]}))
    stack = stack_factory(ROUTER_QUEUES_FILE=str(queues))
    stack.start_all()
    return stack


async def open_desk(browser: Browser, url: str, agent_id: str, errors: list[str]) -> Page:
    context = await browser.new_context(viewport={"width": 1200, "height": 800})
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{agent_id}: {error}"))
    record_console_errors(page, errors, agent_id)
    await page.goto(f"{url}/desk?{urlencode({'agent_id': agent_id, 'token': API_KEY})}")
    await page.click("#connect")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
    return page


async def poll_conversation(http: aiohttp.ClientSession, url: str, done) -> dict:
    """GET the conversation until `done(doc)` holds, within PATIENCE seconds."""
    async with asyncio.timeout(PATIENCE):
        while True:
            async with http.get(url, headers={"Authorization": f"Bearer {API_KEY}"}) as response:
                assert response.status == 200, await response.text()
                doc = await response.json()
            if done(doc):
                return doc
            await asyncio.sleep(0.2)


async def test_offer_accept_and_transfer_on_the_desk(offer_stack, tmp_path):
    agents_url = offer_stack.url("agents")
    run = uuid.uuid4().hex[:8]
    question = f"Where is my order {run}?"
    note = f"Order {run} is a wholesale one, bob knows those"

    async with aiohttp.ClientSession() as http:
        client = StackClient(http, offer_stack.url("intake"), agents_url, API_KEY)
        await client.put_agent("ann", capacity=3)
        await client.put_agent("bob", capacity=3, status="offline")  # so the first offer surely goes to ann

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                errors: list[str] = []
                ann = await open_desk(browser, agents_url, "ann", errors)

                # A customer writes; ann is offered the conversation, with a countdown, and accepts.
                async with http.post(
                    f"{offer_stack.url('intake')}/v1/messages",
                    json={"contact": {"id": f"cust-{run}", "name": f"Dana {run}"}, "text": question},
                    headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": f"q-{run}"},
                ) as response:
                    assert response.status == 202, await response.text()
                offer = ann.get_by_test_id("offer").filter(has_text=question)
                await expect(offer).to_have_count(1, timeout=WAIT_MS)
                await expect(offer).to_contain_text(f"Dana {run}")
                await expect(offer.get_by_test_id("offer-countdown")).to_have_text(re.compile(r"^[0-9]+:[0-5][0-9]$"))
                conversation_id = await offer.get_attribute("data-offer-id")
                await offer.get_by_test_id("offer-accept").click()

                # The conversation opens with the customer's message and the router's reason.
                await expect(ann.get_by_test_id("offer")).to_have_count(0, timeout=WAIT_MS)
                listed = ann.locator(f'#conversations [data-conversation-id="{conversation_id}"]')
                await expect(listed).to_have_count(1, timeout=WAIT_MS)
                await listed.click()
                await expect(
                    ann.locator('#transcript [data-message-id][data-direction="inbound"]', has_text=question)
                ).to_have_count(1, timeout=WAIT_MS)
                await expect(ann.get_by_test_id("routing-why")).to_contain_text("queue default")
                await expect(ann.get_by_test_id("routing-why")).to_contain_text("offer accepted")

                # The picker lists bob, offline, as one who cannot take it; the note is written meanwhile.
                await ann.get_by_test_id("transfer").click()
                bob_option = ann.locator('#transfer-target option[value="agent:bob"]')
                await expect(bob_option).to_be_disabled(timeout=WAIT_MS)
                await expect(bob_option).to_contain_text("offline")
                await ann.get_by_test_id("transfer-note").fill(note)

                # Bob comes online and opens his desk; ann reopens the form (her note still there) and picks him.
                async with http.put(
                    f"{agents_url}/v1/agents/bob/status", json={"status": "online"}, headers=client.headers
                ) as response:
                    assert response.status == 200, await response.text()
                bob = await open_desk(browser, agents_url, "bob", errors)
                await ann.get_by_test_id("transfer-cancel").click()
                await ann.get_by_test_id("transfer").click()
                await expect(ann.get_by_test_id("transfer-note")).to_have_value(note)
                await expect(bob_option).to_be_enabled(timeout=WAIT_MS)
                await ann.get_by_test_id("transfer-target").select_option("agent:bob")
                await ann.get_by_test_id("transfer-submit").click()
                await expect(listed).to_have_count(0, timeout=WAIT_MS)
                await expect(ann.get_by_test_id("notice")).to_contain_text("transferred", timeout=WAIT_MS)
                await expect(ann.get_by_test_id("transfer-form")).to_be_hidden()

                # Bob is offered it (the queue offers) with ann's note and the customer's first message.
                bob_offer = bob.locator(f'[data-testid="offer"][data-offer-id="{conversation_id}"]')
                await expect(bob_offer).to_have_count(1, timeout=WAIT_MS)
                await expect(bob_offer).to_contain_text(f"Transferred from ann: {note}")
                await expect(bob_offer).to_contain_text(question, timeout=WAIT_MS)
                await bob_offer.get_by_test_id("offer-accept").click()
                bob_listed = bob.locator(f'#conversations [data-conversation-id="{conversation_id}"]')
                await expect(bob_listed).to_have_count(1, timeout=WAIT_MS)
                await bob_listed.click()
                await expect(bob.get_by_test_id("transfer-info")).to_have_text(f"Transferred from ann: {note}")
                await expect(
                    bob.locator('#transcript [data-message-id][data-direction="inbound"]', has_text=question)
                ).to_have_count(1, timeout=WAIT_MS)

                # Bob notes the contact reasons; a bad one is refused with the service's reason.
                await bob.get_by_test_id("labels").fill("wholesale,  delivery late , wholesale")
                await bob.get_by_test_id("labels").press("Enter")
                await expect(bob.get_by_test_id("labels-status")).to_have_text("Saved.", timeout=WAIT_MS)
                await expect(bob.get_by_test_id("labels")).to_have_value("delivery late, wholesale")
                await bob.get_by_test_id("labels").fill("x" * 65)
                await bob.get_by_test_id("labels-save").click()
                await expect(bob.get_by_test_id("labels-status")).to_contain_text("Not saved", timeout=WAIT_MS)

                await ann.screenshot(path=str(tmp_path / "desk-ann.png"), full_page=True)
                await bob.screenshot(path=str(tmp_path / "desk-bob.png"), full_page=True)
                assert errors == []
            finally:
                await browser.close()

        # The API agrees: bob's, with the transfer and its note recorded, and the note in the history.
        doc = await poll_conversation(
            http, f"{agents_url}/v1/conversations/{conversation_id}",
            lambda d: d["assignee_id"] == "bob" and any(m["direction"] == "note" for m in d["messages"]),
        )
        assert doc["status"] == "assigned" and doc["labels"] == ["delivery late", "wholesale"]
        transfer = doc["transfers"][-1]
        assert (transfer["from_agent"], transfer["to_agent"], transfer["note"]) == ("ann", "bob", note)
        assert transfer["by"] == "ann" and transfer["escalation"] is False
        notes = [m["text"] for m in doc["messages"] if m["direction"] == "note"]
        assert notes == [f"Transferred to agent bob: {note}"]


async def test_presence_changed_elsewhere_reaches_the_desk_and_go_online_works(stack_factory):
    stack = stack_factory()
    stack.start_all()
    agents_url = stack.url("agents")
    async with aiohttp.ClientSession() as http:
        client = StackClient(http, stack.url("intake"), agents_url, API_KEY)
        await client.put_agent("ann", capacity=2)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                errors: list[str] = []
                ann = await open_desk(browser, agents_url, "ann", errors)
                await expect(ann.get_by_test_id("away-banner")).to_be_hidden()
                await expect(ann.get_by_test_id("status")).to_have_value("online")

                # A supervisor sets ann away: her desk shows it at once, with the way back.
                async with http.put(f"{agents_url}/v1/agents/ann/status", json={"status": "away"},
                                    headers=client.headers) as response:
                    assert response.status == 200, await response.text()
                await expect(ann.get_by_test_id("away-banner")).to_be_visible(timeout=WAIT_MS)
                await expect(ann.get_by_test_id("away-banner")).to_contain_text("You are away")
                await expect(ann.get_by_test_id("status")).to_have_value("away")

                await ann.get_by_test_id("go-online").click()
                await expect(ann.get_by_test_id("away-banner")).to_be_hidden(timeout=WAIT_MS)
                await expect(ann.get_by_test_id("status")).to_have_value("online")
                async with http.get(f"{agents_url}/v1/agents/ann", headers=client.headers) as response:
                    assert (await response.json())["status"] == "online"
                assert errors == []
            finally:
                await browser.close()
