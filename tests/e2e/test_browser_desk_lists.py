"""The desk's lists and contact panel in a real browser (Debian's chromium), the whole stack as
processes: a supervisor's Unassigned view with a conversation no agent has held, assigned to self; an
agent's desk with Mine only (and the API refusing the rest); filters, search and the order by last
activity; the contact panel with two channels' identities, an attribute kept across a reload, an
earlier conversation, and the history of a returning contact read again."""

import asyncio
import json
import uuid
from urllib.parse import urlencode

import aiohttp
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import API_KEY, WORKSPACE, RunningStack
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
from tests.fixtures import twilio as sms_fx

SMS_PUBLIC_URL = "https://switchyard.example.com"


async def desk(browser: Browser, stack, agent_id: str, key: str, errors: list[str], width: int = 1440) -> Page:
    """A signed-in desk (the key is the workspace's, a supervisor's, or an agent token) with its feed live."""
    context = await browser.new_context(viewport={"width": width, "height": 900 if width > 500 else 800})
    page = await context.new_page()
    record_errors(page, errors, agent_id)
    record_console_errors(page, errors, agent_id)
    await page.goto(f"{stack.agents_url}/desk?{urlencode({'agent_id': agent_id, 'token': key})}")
    await page.click("#connect")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
    return page


async def post(http: aiohttp.ClientSession, stack, contact: dict, text: str, **fields) -> None:
    async with http.post(f"{stack.intake_url}/v1/messages", json={"contact": contact, "text": text, **fields},
                         headers={"Authorization": f"Bearer {stack.api_key}"}) as response:
        assert response.status == 202, await response.text()


async def listed(http: aiohttp.ClientSession, stack, **query) -> list[dict]:
    async with http.get(f"{stack.agents_url}/v1/conversations", params=query,
                        headers={"Authorization": f"Bearer {stack.api_key}"}) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["conversations"]


async def until_listed(http: aiohttp.ClientSession, stack, count: int, **query) -> list[dict]:
    """The API's list once it holds `count` conversations (polling an HTTP view; the condition ends it)."""
    async with asyncio.timeout(WAIT_MS / 1000):
        while len(found := await listed(http, stack, **query)) != count:
            await asyncio.sleep(0.1)
        return found


def row(page: Page, view_list: str, text: str):
    return page.locator(f"#{view_list} [data-conversation-id]", has_text=text)


async def test_a_supervisor_takes_a_waiting_conversation_from_unassigned_and_filters_and_searches(stack):
    run = uuid.uuid4().hex[:8]
    async with aiohttp.ClientSession() as http, async_playwright() as playwright:
        client = StackClient(http, stack.intake_url, stack.agents_url, stack.api_key)
        await client.put_agent("sam", capacity=5)
        # Nobody speaks Spanish: it waits in its skill queue, known only to the router.
        await post(http, stack, {"id": f"wanda-{run}", "name": "Wanda Waiting"}, "¿Hablan español?", skills=["spanish"])
        await until_listed(http, stack, 1, status="waiting")
        await post(http, stack, {"id": f"pat-{run}", "name": "Pat Parcel"}, "my parcel is late")
        await until_listed(http, stack, 1, status="assigned")
        await post(http, stack, {"id": f"quinn-{run}", "name": "Quinn Refund"}, "I want a refund")
        await until_listed(http, stack, 2, status="assigned")

        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        errors: list[str] = []
        try:
            page = await desk(browser, stack, "sam", stack.api_key, errors)
            mine = page.locator("#conversations [data-conversation-id]")
            # Mine: latest activity first, and a customer writing moves their conversation up.
            await expect(mine).to_have_count(2, timeout=WAIT_MS)
            await expect(mine.first).to_contain_text("Quinn Refund")
            await post(http, stack, {"id": f"pat-{run}", "name": "Pat Parcel"}, "any news on the parcel?")
            await expect(mine.first).to_contain_text("Pat Parcel", timeout=WAIT_MS)
            await expect(mine.first.locator("[data-testid=unread]")).to_have_text("2")

            # Search (the server's full text, debounced) and a channel filter narrow the list.
            await page.fill("#list-q", "refund")
            await expect(mine).to_have_count(1, timeout=WAIT_MS)
            await expect(mine.first).to_contain_text("Quinn Refund")
            await page.fill("#list-q", "")
            await expect(mine).to_have_count(2, timeout=WAIT_MS)
            await page.select_option("#filter-channel", "sms")
            await expect(mine).to_have_count(0)
            await expect(page.locator("#conversations-empty")).to_have_text("Nothing matches these filters.")
            await page.screenshot(path="/tmp/lists-empty-1440.png")
            await page.select_option("#filter-channel", "")

            # The views are a tablist: the arrow keys move between them.
            await page.focus("#view-mine")
            await page.keyboard.press("ArrowRight")
            await expect(page.locator("#view-unassigned")).to_have_attribute("aria-selected", "true")
            await expect(page.locator("#view-unassigned")).to_be_focused()
            await page.keyboard.press("ArrowLeft")
            await expect(page.locator("#view-mine")).to_have_attribute("aria-selected", "true")

            # The supervisor's views: Unassigned holds the waiting one; All everything, filterable by status.
            await expect(page.locator("#view-unassigned")).to_be_visible()
            await page.click("#view-unassigned")
            waiting = row(page, "listed", "Wanda Waiting")
            await expect(waiting).to_have_count(1, timeout=WAIT_MS)
            await expect(page.locator("#listed [data-conversation-id]")).to_have_count(1)
            await page.click("#view-all")
            await expect(page.locator("#listed [data-conversation-id]")).to_have_count(3, timeout=WAIT_MS)
            await page.select_option("#filter-status", "waiting")
            await expect(page.locator("#listed [data-conversation-id]")).to_have_count(1, timeout=WAIT_MS)
            await page.select_option("#filter-status", "")
            await page.fill("#list-q", "parcel")
            await expect(page.locator("#listed [data-conversation-id]")).to_have_count(1, timeout=WAIT_MS)
            await expect(row(page, "listed", "Pat Parcel")).to_have_count(1)
            await page.fill("#list-q", "")
            await page.click("#view-unassigned")
            await expect(waiting).to_have_count(1, timeout=WAIT_MS)
            await page.screenshot(path="/tmp/lists-unassigned-1440.png")
            await assert_accessible(page)

            # Opened, it is read-only with "Assign to me"; taken, it opens in Mine.
            await waiting.locator("button").click()
            await expect(page.locator("#peek-transcript")).to_contain_text("¿Hablan español?", timeout=WAIT_MS)
            await expect(page.locator("#composer")).to_be_hidden()
            await page.screenshot(path="/tmp/lists-peek-1440.png")
            await page.click("#assign-me")
            await expect(page.locator("#peek")).to_be_hidden(timeout=WAIT_MS)
            await expect(page.locator("#view-mine")).to_have_attribute("aria-selected", "true")
            await expect(row(page, "conversations", "Wanda Waiting")).to_have_count(1)
            await expect(page.locator("#transcript")).to_contain_text("¿Hablan español?")
            await expect(page.locator("#reply")).to_be_enabled()
            await until_listed(http, stack, 0, status="waiting")

            # At 390 px: the tabs, the filters and the list fit; a row opens the conversation.
            small = await desk(browser, stack, "sam", stack.api_key, errors, width=390)
            await small.click("#view-all")
            await expect(small.locator("#listed [data-conversation-id]")).to_have_count(3, timeout=WAIT_MS)
            await small.screenshot(path="/tmp/lists-all-390.png")
            await small.select_option("#filter-status", "resolved")
            await expect(small.locator("#conversations-empty")).to_have_text("Nothing matches these filters.",
                                                                            timeout=WAIT_MS)
            await small.screenshot(path="/tmp/lists-empty-390.png")
            assert await small.evaluate("document.documentElement.scrollWidth <= 390")
            assert errors == []
        finally:
            await browser.close()


async def test_an_agent_sees_only_mine_and_the_api_refuses_the_rest(stack):
    async with aiohttp.ClientSession() as http, async_playwright() as playwright:
        client = StackClient(http, stack.intake_url, stack.agents_url, stack.api_key)
        await client.put_agent("ann", capacity=3)
        async with http.post(f"{stack.agents_url}/v1/agents/ann/token",
                             headers={"Authorization": f"Bearer {stack.api_key}"}) as response:
            token = (await response.json())["token"]
        await post(http, stack, {"id": "olga", "name": "Olga Own"}, "hello ann")
        await until_listed(http, stack, 1, status="assigned")
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        errors: list[str] = []
        try:
            page = await desk(browser, stack, "ann", token, errors)
            await expect(row(page, "conversations", "Olga Own")).to_have_count(1, timeout=WAIT_MS)
            await expect(page.locator("#view-mine")).to_be_visible()
            # The session answered (the list's views are set from it) before we look at the tabs.
            await expect(page.locator("#list-views")).to_have_attribute("data-role", "agent", timeout=WAIT_MS)
            await expect(page.locator("#view-unassigned")).to_be_hidden()
            await expect(page.locator("#view-all")).to_be_hidden()
            refused = await page.evaluate("""async (token) => {
                const r = await fetch('/v1/conversations?status=waiting', {headers: {Authorization: 'Bearer ' + token}});
                return r.status; }""", token)
            assert refused == 403
            assert errors == []
        finally:
            await browser.close()


def sms_stack(stack_factory) -> RunningStack:
    """The stack with the SMS channel configured (its replies go nowhere: none is sent here)."""
    channels = {WORKSPACE: {"sms": {**sms_fx.BENCH_CONFIG, "base_url": "http://127.0.0.1:9"}}}
    built = stack_factory(INTAKE_CHANNELS=json.dumps(channels), INTAKE_PUBLIC_URL=SMS_PUBLIC_URL)
    built.start_all()
    return RunningStack(built.url("intake"), built.url("agents"), built.url("router"), API_KEY, WORKSPACE, built)


async def test_the_contact_panel_across_channels_edits_attributes_and_refreshes_a_returning_contact(stack_factory):
    running = sms_stack(stack_factory)
    agents_url, intake_url, key = running.agents_url, running.intake_url, running.api_key
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as http, async_playwright() as playwright:
        client = StackClient(http, intake_url, agents_url, key)
        await client.put_agent("sam", capacity=5)
        # Ada writes through the API with her phone number first.
        await post(http, running, {"id": "ada-api", "name": "Ada Lovelace", "phone": sms_fx.CUSTOMER},
                   "Where is order 12?")
        (first,) = await until_listed(http, running, 1, status="assigned")
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        errors: list[str] = []
        try:
            page = await desk(browser, running, "sam", key, errors)
            await row(page, "conversations", "Ada Lovelace").locator("button").click()
            panel = page.locator("#contact-pane")
            await expect(panel.locator("[data-testid=contact-identities] li")).to_have_count(2, timeout=WAIT_MS)
            await expect(panel).to_contain_text("This is the first one.")
            await page.click("#resolve")
            await expect(row(page, "conversations", "Ada Lovelace")).to_have_count(0, timeout=WAIT_MS)

            # She comes back by SMS from the same phone: one contact, and its history read again.
            form_headers, body = sms_fx.signed_request(SMS_PUBLIC_URL, "/v1/webhooks/sms/default",
                                                       sms_fx.incoming_sms(1, body="Order 12 again, by text"))
            async with http.post(f"{intake_url}/v1/webhooks/sms/default", data=body, headers=form_headers) as response:
                assert response.status == 200, await response.text()
            await row(page, "conversations", "Order 12 again").locator("button").click(timeout=WAIT_MS)
            await expect(page.locator("[data-testid=history-message]")).to_contain_text(["Where is order 12?"],
                                                                                       timeout=WAIT_MS)
            identities = panel.locator("[data-testid=contact-identities] li")
            await expect(identities).to_have_count(3, timeout=WAIT_MS)  # api, sms and the phone number
            await expect(identities.filter(has_text="ada-api")).to_have_count(1)
            await expect(identities.filter(has_text="sms")).to_have_count(1)

            # An attribute set here is kept: there after a reload.
            await panel.locator("#attribute-name").fill("plan")
            await panel.locator("#attribute-value").fill("gold")
            await panel.locator("[data-testid=attribute-save]").click()
            await expect(panel.locator("[data-testid=contact-attributes]")).to_contain_text("gold", timeout=WAIT_MS)
            await page.screenshot(path="/tmp/lists-contact-1440.png")
            for region in (".list-pane", "#contact-pane"):  # this feature's panes (the transcript is another's)
                await assert_accessible(page, region)
            async with http.get(f"{agents_url}/v1/contacts/{first['contact_id']}", headers=headers) as response:
                assert (await response.json())["attributes"] == {"plan": "gold"}
            await page.reload()
            # Signed in from storage again (the address no longer holds the key).
            await expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
            await row(page, "conversations", "Order 12 again").locator("button").click()
            await expect(panel.locator("[data-testid=contact-attributes]")).to_contain_text("gold", timeout=WAIT_MS)

            # The earlier conversation opens read-only from the panel.
            await panel.locator(f'[data-open="{first["conversation_id"]}"]').click()
            await expect(page.locator("#peek-transcript")).to_contain_text("Where is order 12?")
            await expect(page.locator("#assign-me")).to_be_hidden()  # resolved: nothing to take
            await page.click("#peek-back")
            await expect(page.locator("#peek")).to_be_hidden()

            # At 390 px the panel is collapsed behind its button and opens over the conversation.
            small = await desk(browser, running, "sam", key, errors, width=390)
            await row(small, "conversations", "Order 12 again").locator("button").click()
            await expect(small.locator("#contact-pane")).to_be_hidden()
            await small.screenshot(path="/tmp/lists-chat-390.png")
            await small.click("#contact-toggle")
            await expect(small.locator("#contact-pane [data-testid=contact-attributes]")).to_contain_text("gold")
            await small.screenshot(path="/tmp/lists-contact-390.png")
            await small.locator(f'#contact-pane [data-open="{first["conversation_id"]}"]').click()
            await expect(small.locator("#peek-transcript")).to_contain_text("Where is order 12?")
            await expect(small.locator("#contact-pane")).to_be_hidden()
            await small.screenshot(path="/tmp/lists-peek-390.png")
            await small.click("#peek-back")
            await expect(small.locator("#transcript")).to_contain_text("Order 12 again, by text")
            assert errors == []
        finally:
            await browser.close()
