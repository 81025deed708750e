"""The desk's composer and transcript in a real browser against the real services.

The transcript keeps each message's node (a new message is the only thing its live region gets), says
who wrote each reply and note, shows a failed reply with its reason and a Retry that sends it again;
a draft survives a reload; a private note reaches a colleague and never the customer; `/` opens the
canned responses, picked by keyboard, placeholders filled for the conversation.
"""

import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
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
from tests.fixtures import telegram as fx
from tests.service.helpers import stand_in_server

SHOTS = "/tmp/composer"
INVOICE = b"%PDF-1.4 invoice for the customer\n%%EOF\n"

# Records the transcript's direct children as they are added: the live region's additions.
WATCH_ADDITIONS = """() => {
  window.__added = [];
  new MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes) window.__added.push(n.getAttribute && n.getAttribute("data-message-id"));
  }).observe(document.getElementById("transcript"), { childList: true });
}"""


async def api(stack, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token or stack.api_key}"}
    async with aiohttp.ClientSession() as http, http.request(method, f"{stack.agents_url}{path}", json=body,
                                                            headers=headers) as response:
        assert response.status < 300, await response.text()
        return await response.json() if response.status != 204 else {}


async def agent_with_token(stack, agent_id: str, name: str) -> str:
    async with aiohttp.ClientSession() as http:
        await StackClient(http, stack.intake_url, stack.agents_url, stack.api_key).put_agent(agent_id, capacity=3)
    await api(stack, "PUT", f"/v1/agents/{agent_id}", {"name": name, "max_conversations": 3})
    return (await api(stack, "POST", f"/v1/agents/{agent_id}/token"))["token"]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in(desk: Page, stack, agent_id: str, token: str) -> None:
    await desk.goto(f"{stack.agents_url}/desk?{urlencode({'agent_id': agent_id, 'token': token})}")
    await desk.click("#connect")
    await expect(desk.locator("#connection")).to_have_attribute("data-state", "open", timeout=WAIT_MS)


async def test_transcript_keeps_its_nodes_names_authors_and_keeps_notes_from_the_customer(stack):
    run = uuid.uuid4().hex[:8]
    agent_id = f"ann-{run}"
    token = await agent_with_token(stack, agent_id, "Ann Agent")
    await api(stack, "POST", "/v1/canned-responses", {
        "shortcut": f"thanks{run}", "title": "Thank the customer",
        "text": "Thanks {{contact.first_name|there}}, {{agent.first_name}} here: it is on its way."})
    first, second = f"Where is parcel {run}?", f"It was due on Monday ({run})"
    async with chromium() as browser:
        desk = await (await browser.new_context(viewport={"width": 1440, "height": 900})).new_page()
        chat = await (await browser.new_context(viewport={"width": 420, "height": 760})).new_page()
        errors: list[str] = []
        record_errors(desk, errors, "desk")
        record_console_errors(desk, errors, "desk")
        record_errors(chat, errors, "chat")
        await sign_in(desk, stack, agent_id, token)

        await chat.goto(f"{stack.intake_url}/chat?{urlencode({'workspace': stack.workspace})}")
        await chat.fill("#text", first)
        await chat.click("#send")
        conversation = desk.locator("#conversations [data-conversation-id]", has_text=first)
        await expect(conversation).to_have_count(1, timeout=WAIT_MS)
        conversation_id = await conversation.get_attribute("data-conversation-id")
        await conversation.click()
        inbound = desk.locator('#transcript [data-direction="inbound"]')
        await expect(inbound).to_have_count(1, timeout=WAIT_MS)

        # A new message (after a typing burst) adds one node; the first message's node is the same one.
        await desk.evaluate("() => { window.__first = document.querySelector('#transcript [data-direction=inbound]'); }")
        await desk.evaluate(WATCH_ADDITIONS)
        await chat.fill("#text", "typing a")
        await expect(desk.locator("#typing")).to_be_visible(timeout=WAIT_MS)
        await chat.fill("#text", second)
        await chat.click("#send")
        await expect(inbound).to_have_count(2, timeout=WAIT_MS)
        second_id = await inbound.nth(1).get_attribute("data-message-id")
        assert await desk.evaluate("() => window.__first.isConnected && window.__first === "
                                   "document.querySelector('#transcript [data-direction=inbound]')")
        assert await desk.evaluate("() => window.__added") == [second_id]

        # The agent's reply says who wrote it; its node stays while its status moves on.
        await desk.fill("#reply", f"Let me look ({run})")
        await desk.press("#reply", "Enter")
        reply = desk.locator('#transcript [data-direction="outbound"]', has_text=f"Let me look ({run})")
        await expect(reply.get_by_test_id("author")).to_have_text("You (Ann Agent)", timeout=WAIT_MS)
        await expect(chat.locator('#messages [data-direction="outbound"]', has_text=f"Let me look ({run})")) \
            .to_have_count(1, timeout=WAIT_MS)
        await expect(reply).to_have_attribute("data-status", re.compile("delivered|read"), timeout=WAIT_MS)
        assert await desk.evaluate("() => window.__added.length") == 2  # the second message and the reply

        # A private note by the agent (the composer's switch) and one by a supervisor: both in the
        # transcript, labelled; neither ever reaches the customer's chat.
        await desk.get_by_test_id("mode-note").check()
        await expect(desk.locator("#send")).to_have_text("Add note")
        await desk.fill("#reply", f"Customer is VIP {run}")
        await desk.press("#reply", "Enter")
        own_note = desk.locator('#transcript [data-testid="note"]', has_text=f"Customer is VIP {run}")
        await expect(own_note.get_by_test_id("author")).to_have_text("Private note · You (Ann Agent)", timeout=WAIT_MS)
        await api(stack, "POST", f"/v1/conversations/{conversation_id}/notes", {"text": f"Refund approved {run}"})
        supervisor_note = desk.locator('#transcript [data-testid="note"]', has_text=f"Refund approved {run}")
        await expect(supervisor_note.get_by_test_id("author")).to_have_text("Private note · Supervisor", timeout=WAIT_MS)

        # `/` opens the canned responses: filtered as typed, Down/Up/Enter, placeholders filled.
        await desk.get_by_test_id("mode-reply").check()
        await desk.locator("#reply").press_sequentially(f"/thanks{run[:3]}")
        options = desk.get_by_test_id("canned-option")
        await expect(options).to_have_count(1, timeout=WAIT_MS)
        await expect(desk.locator("#reply")).to_have_attribute("aria-expanded", "true")
        await expect(options.first).to_have_attribute("aria-selected", "true")
        await desk.screenshot(path=f"{SHOTS}/canned-1440.png")
        await assert_accessible(desk, ".chat-pane")  # the list pane is another change's (issue 12's list)
        await desk.press("#reply", "Escape")
        await expect(desk.get_by_test_id("canned-list")).to_be_hidden()
        await desk.locator("#reply").press_sequentially("x")
        await desk.locator("#reply").press("Backspace")
        await expect(options).to_have_count(1, timeout=WAIT_MS)
        await desk.press("#reply", "ArrowDown")
        await desk.press("#reply", "Enter")
        filled = "Thanks there, Ann here: it is on its way."
        await expect(desk.locator("#reply")).to_have_value(filled)
        await expect(desk.get_by_test_id("canned-list")).to_be_hidden()
        await desk.press("#reply", "Enter")
        await expect(chat.locator('#messages [data-direction="outbound"]', has_text=filled)).to_have_count(1, timeout=WAIT_MS)

        # A file from the desk (the paperclip, reachable by keyboard) reaches the customer's chat page as a link.
        # The previous send has finished (the chat may show the reply before the desk's POST returns, and the
        # desk then puts the focus back in the reply box).
        await expect(desk.get_by_test_id("send")).to_be_enabled(timeout=WAIT_MS)
        await desk.locator("#reply").focus()
        await desk.keyboard.press("Shift+Tab")
        assert await desk.evaluate("() => document.activeElement.id") == "attach"
        await desk.set_input_files("#file-input", files=[{"name": f"invoice-{run}.pdf", "mimeType": "application/pdf",
                                                          "buffer": INVOICE}])
        await expect(desk.get_by_test_id("pending-file")).to_contain_text(f"invoice-{run}.pdf", timeout=WAIT_MS)
        await desk.screenshot(path=f"{SHOTS}/file-1440.png")
        await desk.fill("#reply", "Your invoice")
        await desk.press("#reply", "Enter")
        await expect(desk.get_by_test_id("pending-file")).to_have_count(0, timeout=WAIT_MS)
        await expect(desk.locator('#transcript [data-direction="outbound"]', has_text="Your invoice")
                     .get_by_test_id("attachment")).to_contain_text(f"invoice-{run}.pdf", timeout=WAIT_MS)
        link = chat.get_by_test_id("agent-file").filter(has_text=f"invoice-{run}.pdf")
        await expect(link).to_have_count(1, timeout=WAIT_MS)
        fetched = await chat.request.get(f"{stack.intake_url}{await link.get_attribute('href')}")
        assert fetched.ok and await fetched.body() == INVOICE

        # The customer's page got the replies and none of the notes, live or from the server's history.
        await chat.reload()
        await expect(chat.locator('#messages [data-direction="outbound"]', has_text=filled)).to_have_count(1, timeout=WAIT_MS)
        assert f"VIP {run}" not in await chat.locator("#messages").inner_text()
        assert f"Refund approved {run}" not in await chat.locator("#messages").inner_text()
        await expect(link).to_have_count(1, timeout=WAIT_MS)  # the file's link comes back with the history

        # A colleague reading the conversation (a supervisor, through the API) sees both notes with their authors.
        doc = await api(stack, "GET", f"/v1/conversations/{conversation_id}")
        notes = [(m["text"], m.get("agent_id")) for m in doc["messages"] if m["direction"] == "note"]
        assert (f"Customer is VIP {run}", agent_id) in notes and (f"Refund approved {run}", None) in notes

        # A draft survives a reload (per agent and conversation), and is gone once sent.
        await desk.fill("#reply", f"half-written answer {run}")
        await desk.reload()
        await expect(desk.locator("#connection")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        await desk.locator(f'#conversations [data-conversation-id="{conversation_id}"]').click()
        await expect(desk.locator("#reply")).to_have_value(f"half-written answer {run}")
        await desk.press("#reply", "Enter")
        await expect(desk.locator("#reply")).to_have_value("")
        await desk.reload()
        await expect(desk.locator("#connection")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        await desk.locator(f'#conversations [data-conversation-id="{conversation_id}"]').click()
        await expect(desk.locator('#transcript [data-testid="note"]')).to_have_count(2, timeout=WAIT_MS)
        await expect(desk.locator("#reply")).to_have_value("")

        await desk.get_by_test_id("mode-note").check()
        await desk.screenshot(path=f"{SHOTS}/desk-1440.png")
        await desk.set_viewport_size({"width": 390, "height": 800})
        await desk.screenshot(path=f"{SHOTS}/desk-390.png")
        await desk.locator("#reply").fill("")
        await desk.get_by_test_id("mode-reply").check()
        await desk.locator("#reply").press_sequentially("/")
        await expect(options.first).to_be_visible(timeout=WAIT_MS)
        await desk.screenshot(path=f"{SHOTS}/canned-390.png")
        await options.first.click()  # the mouse inserts too
        await expect(desk.locator("#reply")).to_have_value(filled)
        await expect(desk.get_by_test_id("canned-list")).to_be_hidden()

        # A colleague the conversation is transferred to reads both notes, with their authors.
        bob_token = await agent_with_token(stack, f"bob-{run}", "Bob Builder")
        await api(stack, "POST", f"/v1/conversations/{conversation_id}/transfer", {"to_agent": f"bob-{run}"})
        bob = await (await browser.new_context(viewport={"width": 1440, "height": 900})).new_page()
        record_errors(bob, errors, "bob")
        await sign_in(bob, stack, f"bob-{run}", bob_token)
        await bob.locator(f'#conversations [data-conversation-id="{conversation_id}"]').click()
        notes = bob.locator('#transcript [data-testid="note"]')
        await expect(notes.filter(has_text=f"Customer is VIP {run}").get_by_test_id("author")).to_have_text(
            "Private note · Ann Agent", timeout=WAIT_MS)
        await expect(notes.filter(has_text=f"Refund approved {run}").get_by_test_id("author")).to_have_text(
            "Private note · Supervisor")
        await expect(bob.locator('#transcript [data-direction="outbound"]', has_text=f"Let me look ({run})")
                     .get_by_test_id("author")).to_have_text("Ann Agent")
        assert errors == []


@asynccontextmanager
async def bot_api(fail_first: int) -> AsyncIterator[tuple[str, list]]:
    """A stand-in Telegram Bot API: the first `fail_first` sendMessage calls get Telegram's 403 (blocked)."""
    calls: list = []

    async def method(request: web.Request) -> web.Response:
        calls.append((request.match_info["method"], await request.json()))
        if len(calls) <= fail_first:
            return web.json_response({"ok": False, "error_code": 403,
                                      "description": "Forbidden: bot was blocked by the user"}, status=403)
        return web.json_response(fx.SEND_OK)

    async with stand_in_server(("POST", "/bot{token}/{method}", method)) as base:
        yield base, calls


async def test_a_failed_reply_shows_why_and_retry_sends_it(stack_factory):
    async with bot_api(fail_first=1) as (base, calls):
        channels = {"default": {"telegram": {**fx.BENCH_CONFIG, "base_url": base}}}
        built = stack_factory(INTAKE_CHANNELS=json.dumps(channels))
        built.start_all()
        stack = RunningStack(built.url("intake"), built.url("agents"), built.url("router"), API_KEY, WORKSPACE, built)
        token = await agent_with_token(stack, "tess", "Tess Teller")
        async with chromium() as browser:
            desk = await (await browser.new_context(viewport={"width": 1440, "height": 900})).new_page()
            errors: list[str] = []
            record_errors(desk, errors, "desk")
            record_console_errors(desk, errors, "desk")
            await sign_in(desk, stack, "tess", token)
            async with aiohttp.ClientSession() as http, http.post(
                    f"{stack.intake_url}/v1/webhooks/telegram/default", data=fx.body(fx.TEXT),
                    headers=fx.headers(fx.SECRET_TOKEN)) as response:
                assert response.status == 200, await response.text()
            conversation = desk.locator("#conversations [data-conversation-id]")
            await expect(conversation).to_have_count(1, timeout=WAIT_MS)
            await conversation.click()

            await desk.fill("#reply", "Your parcel left today")
            await desk.press("#reply", "Enter")
            failed = desk.locator('#transcript [data-direction="outbound"][data-status="failed"]')
            await expect(failed).to_have_count(1, timeout=WAIT_MS)
            await expect(failed.get_by_test_id("message-status")).to_contain_text("bot was blocked by the user")
            await expect(conversation.get_by_test_id("failed-reply")).to_be_visible()
            await desk.screenshot(path=f"{SHOTS}/failed-1440.png")
            await desk.set_viewport_size({"width": 390, "height": 800})
            await desk.screenshot(path=f"{SHOTS}/failed-390.png")
            await desk.set_viewport_size({"width": 1440, "height": 900})
            await assert_accessible(desk, ".chat-pane")

            await failed.get_by_test_id("retry").click()
            sent = desk.locator('#transcript [data-direction="outbound"][data-status="sent"]',
                                has_text="Your parcel left today")
            await expect(sent).to_have_count(1, timeout=WAIT_MS)
            await expect(failed.get_by_test_id("retry")).to_have_count(0)
            await expect(conversation.get_by_test_id("failed-reply")).to_have_count(0)
            assert [c[1]["text"] for c in calls if c[0] == "sendMessage"] == ["Your parcel left today"] * 2

            # A supervisor's reply in the conversation is labelled as theirs.
            conversation_id = await conversation.get_attribute("data-conversation-id")
            await api(stack, "POST", f"/v1/conversations/{conversation_id}/messages", {"text": "A word from the lead"})
            by_lead = desk.locator('#transcript [data-direction="outbound"]', has_text="A word from the lead")
            await expect(by_lead.get_by_test_id("author")).to_have_text("Supervisor (for Tess Teller)", timeout=WAIT_MS)
            assert errors == []


async def test_the_csat_survey_shows_as_an_automatic_message_in_the_contacts_history(stack):
    run = uuid.uuid4().hex[:8]
    agent_id = f"cid-{run}"
    token = await agent_with_token(stack, agent_id, "Cid Agent")
    async with aiohttp.ClientSession() as http, http.put(
            f"{stack.router_url}/v1/routing/config", json={"csat": {stack.workspace: {}}},
            headers={"Authorization": f"Bearer {stack.api_key}"}) as response:
        assert response.status == 202, await response.text()
    async with chromium() as browser:
        desk = await (await browser.new_context(viewport={"width": 1440, "height": 900})).new_page()
        chat = await (await browser.new_context(viewport={"width": 420, "height": 760})).new_page()
        errors: list[str] = []
        record_errors(desk, errors, "desk")
        record_console_errors(desk, errors, "desk")
        await sign_in(desk, stack, agent_id, token)
        await chat.goto(f"{stack.intake_url}/chat?{urlencode({'workspace': stack.workspace})}")
        await chat.fill("#text", f"First question {run}")
        await chat.click("#send")
        first = desk.locator("#conversations [data-conversation-id]", has_text=f"First question {run}")
        await expect(first).to_have_count(1, timeout=WAIT_MS)
        await first.click()
        await desk.click("#resolve")
        await expect(chat.locator("#survey")).to_be_visible(timeout=WAIT_MS)

        # The customer writes again: a new conversation, whose history shows the survey as the system's.
        await chat.fill("#text", f"Second question {run}")
        await chat.click("#send")
        second = desk.locator("#conversations [data-conversation-id]", has_text=f"Second question {run}")
        await expect(second).to_have_count(1, timeout=WAIT_MS)
        await second.click()
        survey = desk.locator('#transcript [data-testid="history-message"][data-direction="outbound"]')
        await expect(survey.get_by_test_id("author")).to_have_text("Automatic: CSAT survey", timeout=WAIT_MS)
        assert errors == []
