"""Pending and snoozed on the desk, in a real browser with the whole stack as processes: the agent
sets the open conversation pending (a chip in the list, a note over the transcript, the slot freed),
the customer's message opens it again; a snooze from the menu shows until when; Reopen opens it."""

import uuid

import aiohttp
from playwright.async_api import async_playwright, expect

from tests.e2e.axe import assert_accessible
from tests.e2e.client import StackClient
from tests.e2e.test_browser import (  # noqa: F401 (pytestmark: the skip without chromium)
    CHROMIUM,
    CHROMIUM_ARGS,
    WAIT_MS,
    pytestmark,
)
from tests.e2e.test_browser_desk_lists import desk, post, until_listed


async def test_pending_and_snoozed_from_the_desk(stack):
    run = uuid.uuid4().hex[:8]
    agent, skill = f"lee-{run}", f"life{run}"
    errors: list[str] = []
    async with aiohttp.ClientSession() as http, async_playwright() as playwright:
        client = StackClient(http, stack.intake_url, stack.agents_url, stack.api_key)
        await client.put_agent(agent, skills={skill: 3}, capacity=1)
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await desk(browser, stack, agent, stack.api_key, errors)
            await post(http, stack, {"id": f"pia-{run}", "name": "Pia Pending"}, "is my refund done?", skills=[skill])
            first = page.locator("#conversations [data-conversation-id]", has_text="Pia Pending")
            await first.click()
            await page.get_by_test_id("set-pending").click()
            await expect(first.get_by_test_id("row-lifecycle")).to_have_text("Pending", timeout=WAIT_MS)
            await expect(page.get_by_test_id("lifecycle-note")).to_contain_text("does not count against your capacity")
            await expect(page.get_by_test_id("set-open")).to_be_visible()
            await assert_accessible(page)

            # The slot it freed takes the next customer (capacity 1).
            await post(http, stack, {"id": f"nia-{run}", "name": "Nia Next"}, "hello there", skills=[skill])
            await expect(page.locator("#conversations [data-conversation-id]", has_text="Nia Next")).to_be_visible(
                timeout=WAIT_MS)
            held = await until_listed(http, stack, 1, assignee_id=agent, status="assigned")
            assert [c["contact"]["name"] for c in held] == ["Nia Next"]

            # Resolve Nia: then Pia's answer finds room and opens Pia's conversation again, on this desk.
            await page.locator("#conversations [data-conversation-id]", has_text="Nia Next").click()
            await page.get_by_test_id("resolve").click()
            await expect(page.locator("#conversations [data-conversation-id]", has_text="Nia Next")).to_have_count(
                0, timeout=WAIT_MS)
            await post(http, stack, {"id": f"pia-{run}", "name": "Pia Pending"}, "order 77", skills=[skill])
            await expect(first.get_by_test_id("row-lifecycle")).to_have_count(0, timeout=WAIT_MS)
            await first.click()
            await expect(page.get_by_test_id("transcript")).to_contain_text("order 77")
            await expect(page.get_by_test_id("lifecycle-note")).to_be_hidden()

            # Snoozed from the menu, then opened again by hand.
            await page.get_by_test_id("snooze").select_option("3600")
            await expect(first.get_by_test_id("row-lifecycle")).to_contain_text("Snoozed until", timeout=WAIT_MS)
            await page.get_by_test_id("set-open").click()
            await expect(first.get_by_test_id("row-lifecycle")).to_have_count(0, timeout=WAIT_MS)
            await expect(page.get_by_test_id("set-pending")).to_be_visible()
        finally:
            await browser.close()
    assert errors == []
