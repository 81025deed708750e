"""The agent desk's everyday work, in a real browser (Debian's chromium) over the whole stack: the
transfer form and its picker, a reload keeping the open conversation, keyboard shortcuts,
notifications, layout details, and axe-core's WCAG 2.1 AA checks on each view."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import API_KEY
from tests.e2e.axe import assert_accessible
from tests.e2e.client import StackClient
from tests.e2e.test_browser_routing import CHROMIUM, CHROMIUM_ARGS, PATIENCE, WAIT_MS, open_desk, poll_conversation

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} not found (install Debian's chromium: apt-get install chromium)"
    ),
]
SHOTS = "/tmp/transfer-shots"  # screenshots to look at (390 and 1440 px)


@pytest.fixture
def two_queue_stack(stack_factory, tmp_path):
    """The whole stack with two push queues: `default` and `tier2`."""
    queues = tmp_path / "queues.yaml"
    queues.write_text(json.dumps({"queues": [{"name": "default"}, {"name": "tier2"}]}))
    stack = stack_factory(ROUTER_QUEUES_FILE=str(queues))
    stack.start_all()
    return stack


@dataclass
class Desk:
    """A running stack with a browser, an HTTP session and the customer's posts."""

    stack: object
    http: aiohttp.ClientSession
    client: StackClient
    browser: Browser
    errors: list[str]

    @property
    def agents_url(self) -> str:
        return self.stack.url("agents")

    async def customer_writes(self, contact: str, text: str, **extra) -> None:
        async with self.http.post(
            f"{self.stack.url('intake')}/v1/messages",
            json={"contact": {"id": contact, "name": contact.title()}, "text": text, **extra},
            headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": uuid.uuid4().hex},
        ) as response:
            assert response.status == 202, await response.text()

    async def open_conversation(self, page: Page, text: str) -> str:
        """Wait for the conversation holding `text` on the page's list, open it, and give its id."""
        listed = page.locator("#conversations [data-conversation-id]", has_text=text)
        await expect(listed).to_have_count(1, timeout=WAIT_MS)
        conversation_id = await listed.get_attribute("data-conversation-id")
        await listed.click()
        await expect(page.locator("#transcript [data-direction='inbound']", has_text=text)).to_have_count(1, timeout=WAIT_MS)
        return conversation_id


@asynccontextmanager
async def desk_stack(stack) -> AsyncIterator[Desk]:
    async with aiohttp.ClientSession() as http, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield Desk(stack, http, StackClient(http, stack.url("intake"), stack.url("agents"), API_KEY), browser, [])
        finally:
            await browser.close()


async def put_routing_config(desk: Desk, config: dict) -> None:
    """Replace the router's queues, and wait until the router runs on them."""
    router = desk.stack.url("router")
    async with desk.http.put(f"{router}/v1/routing/config", json=config, headers=desk.client.headers) as response:
        assert response.status in (200, 202), await response.text()
    wanted = sorted(q["name"] for q in config["queues"])
    async with asyncio.timeout(PATIENCE):
        while True:
            async with desk.http.get(f"{router}/v1/routing/config", headers=desk.client.headers) as response:
                if sorted(q["name"] for q in (await response.json())["queues"]) == wanted:
                    return
            await asyncio.sleep(0.2)


async def test_a_refused_transfer_keeps_the_form_and_note_and_the_next_target_is_what_was_picked(two_queue_stack):
    run = uuid.uuid4().hex[:8]
    question, note = f"Refund for order {run}?", f"Order {run}: refund approved by finance"
    async with desk_stack(two_queue_stack) as desk:
        await desk.client.put_agent("ann", capacity=3)
        await desk.client.put_agent("bob", capacity=3, status="away")  # so the conversation surely goes to ann
        ann = await open_desk(desk.browser, desk.agents_url, "ann", desk.errors)
        await desk.customer_writes(f"cust-{run}", question)
        conversation_id = await desk.open_conversation(ann, question)
        async with desk.http.put(f"{desk.agents_url}/v1/agents/bob/status", json={"status": "online"},
                                 headers=desk.client.headers) as response:
            assert response.status == 200, await response.text()

        # The picker: bob online and selectable, both queues; ann does not list herself.
        await ann.get_by_test_id("transfer").click()
        picker = ann.get_by_test_id("transfer-target")
        await expect(picker.locator('option[value="agent:bob"]')).to_be_enabled(timeout=WAIT_MS)
        await expect(picker.locator('option[value="queue:tier2"]')).to_have_count(1)
        await expect(picker.locator('option[value="agent:ann"]')).to_have_count(0)
        await ann.get_by_test_id("transfer-note").fill(note)
        await picker.select_option("queue:tier2")
        await ann.screenshot(path=f"{SHOTS}/transfer-form-1440.png")
        await assert_accessible(ann)

        # tier2 goes from the configuration after the desk listed it: the router refuses. The form stays
        # with the reason and the note; no banner says "requested" next to the refusal.
        await put_routing_config(desk, {"queues": [{"name": "default"}]})
        await ann.get_by_test_id("transfer-submit").click()
        await expect(ann.get_by_test_id("transfer-error")).to_contain_text("unknown queue 'tier2'", timeout=WAIT_MS)
        await expect(ann.get_by_test_id("transfer-form")).to_be_visible()
        await expect(ann.get_by_test_id("transfer-note")).to_have_value(note)
        await expect(ann.get_by_test_id("transfer-status")).to_be_hidden()
        await expect(ann.get_by_test_id("notice")).to_be_hidden()
        await expect(ann.locator("#desk-error")).to_be_hidden()
        await expect(ann.get_by_test_id("transfer-submit")).to_be_enabled()
        await expect(picker.locator('option[value="queue:tier2"]')).to_have_count(0, timeout=WAIT_MS)  # refreshed

        # Ann picks bob: it goes to bob (not to a queue named bob), with the note; the form closes on the outcome.
        await picker.select_option("agent:bob")
        await ann.get_by_test_id("transfer-submit").click()
        await expect(ann.locator(f'#conversations [data-conversation-id="{conversation_id}"]')).to_have_count(
            0, timeout=WAIT_MS)
        await expect(ann.get_by_test_id("transfer-form")).to_be_hidden()
        await expect(ann.get_by_test_id("notice")).to_contain_text("transferred")
        doc = await poll_conversation(desk.http, f"{desk.agents_url}/v1/conversations/{conversation_id}",
                                      lambda d: d["assignee_id"] == "bob")
        transfer = doc["transfers"][-1]
        assert (transfer["to_agent"], transfer["to_queue"], transfer["note"]) == ("bob", None, note)
        assert len(doc["transfers"]) == 1  # the refused one left no record
        assert desk.errors == []
