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
from tests.e2e.test_browser import record_console_errors
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


async def test_a_transfer_form_waits_for_the_router_keeps_its_note_when_refused_and_sends_what_was_picked(
        two_queue_stack):
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
        await ann.set_viewport_size({"width": 390, "height": 800})
        await ann.screenshot(path=f"{SHOTS}/transfer-refused-390.png")
        await assert_accessible(ann)
        await ann.set_viewport_size({"width": 1440, "height": 900})

        # Ann picks bob while the router is down: the service takes the request (202), the router has not
        # decided, so the form stays with the note, saying it waits. When the router is back it moves the
        # conversation to bob (not to a queue named bob), and the form closes on that outcome.
        await asyncio.to_thread(two_queue_stack.stop, "router")  # blocking process calls, off the event loop
        await picker.select_option("agent:bob")
        await ann.get_by_test_id("transfer-submit").click()
        await expect(ann.get_by_test_id("transfer-status")).to_contain_text("waiting for the router", timeout=WAIT_MS)
        await expect(ann.get_by_test_id("transfer-form")).to_be_visible()
        await expect(ann.get_by_test_id("transfer-note")).to_have_value(note)
        await expect(ann.locator(f'#conversations [data-conversation-id="{conversation_id}"]')).to_have_count(1)
        await asyncio.to_thread(two_queue_stack.start, "router")
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


@pytest.fixture
def vip_stack(stack_factory, tmp_path):
    """Push queues: `default`, and `vip` worth 3 points of priority with a first response due in 2 s."""
    queues = tmp_path / "queues.yaml"
    queues.write_text(json.dumps({"queues": [
        {"name": "default"},
        {"name": "vip", "priority": 3, "sla": {"first_response_seconds": 2, "warning_ratio": 0.5}},
    ]}))
    stack = stack_factory(ROUTER_QUEUES_FILE=str(queues))
    stack.start_all()
    return stack


async def box(page: Page, selector: str) -> dict:
    found = await page.locator(selector).bounding_box()
    assert found is not None, f"{selector} is not shown"
    return found


async def test_reload_shortcuts_priority_parts_and_layout(vip_stack):
    run = uuid.uuid4().hex[:8]
    urgent, plain = f"Card stolen {run}", f"Change my address {run}"
    async with desk_stack(vip_stack) as desk:
        await desk.client.put_agent("ann", capacity=3)
        ann = await open_probed_desk(desk, "ann", desktop_alerts=True)

        # Nothing yet: the empty state sits in the middle of its pane; /favicon.ico answers (not a 404).
        empty, pane = await box(ann, "#conversations-empty"), await box(ann, ".list-pane")
        assert abs((empty["y"] + empty["height"] / 2) - (pane["y"] + pane["height"] / 2)) < pane["height"] / 4
        empty, pane = await box(ann, "#transcript-empty"), await box(ann, ".chat-pane")
        assert abs((empty["y"] + empty["height"] / 2) - (pane["y"] + pane["height"] / 2)) < pane["height"] / 4
        await ann.screenshot(path=f"{SHOTS}/desk-empty-1440.png")
        favicon = await ann.request.get(f"{desk.agents_url}/favicon.ico")
        assert favicon.status == 200 and favicon.headers["content-type"].startswith("image/")
        await assert_accessible(ann)

        # A message sent with priority 8 into the vip queue (worth 3) shows 10 with its parts.
        # In the background, new conversations come: a desktop notification each.
        await set_hidden(ann, True)
        await desk.customer_writes(f"urgent-{run}", urgent, priority=8, metadata={"queue": "vip"})
        await desk.customer_writes(f"plain-{run}", plain)
        await expect(ann.locator("#conversations [data-conversation-id]")).to_have_count(2, timeout=WAIT_MS)
        notes = await ann.evaluate("window.__notes")
        assert sorted(n[1] for n in notes if n[0].startswith("New conversation:")) == sorted([urgent, plain]), notes
        await set_hidden(ann, False)
        urgent_id = await desk.open_conversation(ann, urgent)
        chip = ann.locator(f'#conversations [data-conversation-id="{urgent_id}"] [data-testid="priority"]')
        await expect(chip).to_have_text("P10")
        await expect(chip).to_have_attribute("title", "Priority 10: message 8 + queue 3 (capped at 10)")
        await expect(ann.locator("#chat-details")).to_contain_text("priority 10: message 8 + queue 3")

        # Its first response is overdue: the SLA chip shows, and the time stays on the chip's line.
        row = f'#conversations [data-conversation-id="{urgent_id}"]'
        await expect(ann.locator(f"{row} [data-testid='sla']")).to_have_attribute("data-state", "breached",
                                                                                timeout=WAIT_MS)
        time_box, sla_box = await box(ann, f"{row} time"), await box(ann, f"{row} [data-testid='sla']")
        assert time_box["height"] < 2 * 12 * 1.2 and abs(time_box["y"] - sla_box["y"]) < sla_box["height"]
        await ann.screenshot(path=f"{SHOTS}/desk-1440.png")
        await assert_accessible(ann)

        # The plain one opened, then a reload: the same conversation is open again (#c=<id> in the address).
        plain_id = await desk.open_conversation(ann, plain)
        assert ann.url.endswith(f"#c={plain_id}")
        await ann.reload()
        await expect(ann.locator("#connection")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        await expect(ann.locator(f'#conversations li.selected[data-conversation-id="{plain_id}"]')).to_have_count(
            1, timeout=WAIT_MS)
        await expect(ann.locator("#transcript [data-direction='inbound']", has_text=plain)).to_have_count(1)

        # Shortcuts: j / k move down and up the list (latest activity first); a letter typed in the reply
        # box stays a letter; with Alt it moves from there too; r focuses the reply box.
        selected = ann.locator("#conversations li.selected")
        order = await ann.locator("#conversations [data-conversation-id]").evaluate_all(
            "rows => rows.map((row) => row.dataset.conversationId)")
        assert set(order) == {urgent_id, plain_id}
        away, back = ("j", "k") if order[0] == plain_id else ("k", "j")
        await ann.locator("#transcript").click()
        await ann.keyboard.press(away)
        await expect(selected).to_have_attribute("data-conversation-id", urgent_id)
        await ann.keyboard.press(back)
        await expect(selected).to_have_attribute("data-conversation-id", plain_id)
        await ann.keyboard.press("r")
        await expect(ann.get_by_test_id("reply")).to_be_focused()
        await ann.keyboard.type("jk")
        await expect(ann.get_by_test_id("reply")).to_have_value("jk")
        await expect(selected).to_have_attribute("data-conversation-id", plain_id)
        await ann.keyboard.press(f"Alt+{away}")
        await expect(selected).to_have_attribute("data-conversation-id", urgent_id)

        # ? lists the shortcuts in a dialog; Escape closes it.
        await ann.locator("#transcript").click()
        await ann.keyboard.press("?")
        dialog = ann.get_by_test_id("shortcuts-dialog")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text("Accept the newest offer")
        await ann.screenshot(path=f"{SHOTS}/shortcuts-1440.png")
        await assert_accessible(ann)
        await ann.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()

        # A banner overlays the panes: the desk does not move when one shows.
        before = await box(ann, "#desk-view")
        async with desk.http.put(f"{desk.agents_url}/v1/agents/ann/status", json={"status": "away"},
                                 headers=desk.client.headers) as response:
            assert response.status == 200, await response.text()
        await expect(ann.get_by_test_id("away-banner")).to_be_visible(timeout=WAIT_MS)
        assert await box(ann, "#desk-view") == before
        await assert_accessible(ann)
        await ann.get_by_test_id("go-online").click()
        await expect(ann.get_by_test_id("away-banner")).to_be_hidden(timeout=WAIT_MS)

        # e resolves the open conversation; the 390 px view.
        await ann.locator("#transcript").click()
        await ann.keyboard.press("e")
        await expect(ann.locator(f'#conversations [data-conversation-id="{urgent_id}"]')).to_have_count(0, timeout=WAIT_MS)
        await poll_conversation(desk.http, f"{desk.agents_url}/v1/conversations/{urgent_id}",
                                lambda d: d["status"] == "resolved")
        await ann.set_viewport_size({"width": 390, "height": 800})
        await ann.screenshot(path=f"{SHOTS}/desk-390.png")
        await desk.open_conversation(ann, plain)
        await ann.screenshot(path=f"{SHOTS}/desk-chat-390.png")
        await assert_accessible(ann)
        assert desk.errors == []


@pytest.fixture
def offering_stack(stack_factory, tmp_path):
    """One queue that offers (two minutes to answer, time enough on a slow machine)."""
    queues = tmp_path / "queues.yaml"
    queues.write_text(json.dumps({"queues": [{"name": "default", "mode": "offer", "offer_timeout_seconds": 120}]}))
    stack = stack_factory(ROUTER_QUEUES_FILE=str(queues))
    stack.start_all()
    return stack


# Records what the page asks of the browser's Notification and WebAudio APIs (both real underneath),
# and lets the test say whether the tab is hidden (a headless page is always "visible").
ALERT_PROBES = """
window.__notes = []; window.__asked = 0; window.__tones = 0; window.__hidden = false;
const RealNotification = window.Notification;
window.Notification = class extends RealNotification {
  constructor(title, options) { window.__notes.push([title, (options || {}).body]); super(title, options); }
  static requestPermission() { window.__asked++; return RealNotification.requestPermission(); }
  static get permission() { return RealNotification.permission; }
};
const realStart = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) { window.__tones++; return realStart.apply(this, args); };
Object.defineProperty(Document.prototype, "visibilityState", { get() { return window.__hidden ? "hidden" : "visible"; } });
Object.defineProperty(Document.prototype, "hidden", { get() { return window.__hidden; } });
"""


async def open_probed_desk(desk: Desk, agent_id: str, *, desktop_alerts: bool) -> Page:
    """A desk in a context of its own with ALERT_PROBES, notifications allowed, signed in through the form."""
    context = await desk.browser.new_context(viewport={"width": 1440, "height": 900})
    await context.grant_permissions(["notifications"])
    await context.add_init_script(ALERT_PROBES)
    page = await context.new_page()
    page.on("pageerror", lambda error: desk.errors.append(f"{agent_id}: {error}"))
    record_console_errors(page, desk.errors, agent_id)
    await page.goto(f"{desk.agents_url}/desk")
    await page.get_by_test_id("agent-id").fill(agent_id)
    await page.get_by_test_id("api-key").fill(API_KEY)
    await page.get_by_test_id("connect").click()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
    if desktop_alerts:
        await page.get_by_test_id("settings-open").click()
        await page.get_by_test_id("alert-desktop").check()
        await expect(page.get_by_test_id("alert-desktop-status")).to_contain_text("in the background")
        await page.keyboard.press("Escape")
    return page


async def set_hidden(page: Page, hidden: bool) -> None:
    await page.evaluate("(h) => { window.__hidden = h; document.dispatchEvent(new Event('visibilitychange')); }", hidden)


async def test_alerts_and_offer_shortcuts(offering_stack):
    run = uuid.uuid4().hex[:8]
    first, again, second = f"Hello {run}", f"Still there {run}?", f"Other question {run}"
    async with desk_stack(offering_stack) as desk:
        await desk.client.put_agent("ann", capacity=3)
        context = await desk.browser.new_context(viewport={"width": 1440, "height": 900})
        await context.grant_permissions(["notifications"])
        await context.add_init_script(ALERT_PROBES)
        ann = await context.new_page()
        ann.on("pageerror", lambda error: desk.errors.append(f"ann: {error}"))
        record_console_errors(ann, desk.errors, "ann")

        # The sign-in view passes axe; then ann signs in.
        await ann.goto(f"{desk.agents_url}/desk")
        await assert_accessible(ann)
        await ann.get_by_test_id("agent-id").fill("ann")
        await ann.get_by_test_id("api-key").fill(API_KEY)
        await ann.get_by_test_id("connect").click()
        await expect(ann.locator("#connection")).to_have_attribute("data-state", "open", timeout=WAIT_MS)

        # Alerts: sound is on by default; desktop notifications are switched on by a click (never asked before).
        assert await ann.evaluate("window.__asked") == 0
        await ann.get_by_test_id("settings-open").click()
        await expect(ann.get_by_test_id("alert-sound")).to_be_checked()
        await expect(ann.get_by_test_id("alert-desktop")).not_to_be_checked()
        await ann.get_by_test_id("alert-desktop").check()
        await expect(ann.get_by_test_id("alert-desktop-status")).to_contain_text("in the background")
        await ann.screenshot(path=f"{SHOTS}/alerts-1440.png")
        await assert_accessible(ann)
        await ann.keyboard.press("Escape")
        await expect(ann.get_by_test_id("settings")).to_be_hidden()

        # In the background, an offer: a desktop notification, a tone, and the count in the title.
        await set_hidden(ann, True)
        await desk.customer_writes(f"c1-{run}", first)
        await expect(ann.get_by_test_id("offer").filter(has_text=first)).to_have_count(1, timeout=WAIT_MS)
        notes = await ann.evaluate("window.__notes")
        assert [n for n in notes if n[1] == first and n[0].startswith("Offer:")], notes
        assert await ann.evaluate("window.__tones") > 0
        await expect(ann).to_have_title("(1) Switchyard desk")

        # Back in front: a accepts the newest offer; it opens.
        await set_hidden(ann, False)
        await ann.keyboard.press("a")
        listed = ann.locator("#conversations [data-conversation-id]", has_text=first)
        await expect(listed).to_have_count(1, timeout=WAIT_MS)
        await expect(ann.locator("#conversations li.selected", has_text=first)).to_have_count(1)

        # In the background again, the customer writes: notified with the message, counted in the title.
        await set_hidden(ann, True)
        await desk.customer_writes(f"c1-{run}", again)
        await expect(ann.locator("#transcript [data-direction='inbound']", has_text=again)).to_have_count(
            1, timeout=WAIT_MS)
        assert [n for n in await ann.evaluate("window.__notes") if n[1] == again]
        await expect(ann).to_have_title("(1) Switchyard desk")
        await set_hidden(ann, False)

        # Another offer while a conversation is open: the desk passes axe; x rejects the newest offer.
        await desk.customer_writes(f"c2-{run}", second)
        offer = ann.get_by_test_id("offer").filter(has_text=second)
        await expect(offer).to_have_count(1, timeout=WAIT_MS)
        await ann.screenshot(path=f"{SHOTS}/offer-open-1440.png")
        await assert_accessible(ann)
        assert not [n for n in await ann.evaluate("window.__notes") if n[1] == second]  # in front: no notification
        await ann.locator("#transcript").click()
        await ann.keyboard.press("x")
        await expect(offer).to_have_count(0, timeout=WAIT_MS)

        # The choices are remembered.
        await ann.reload()
        await expect(ann.locator("#connection")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        await ann.get_by_test_id("settings-open").click()
        await expect(ann.get_by_test_id("alert-desktop")).to_be_checked()
        await ann.get_by_test_id("alert-sound").uncheck()
        await ann.reload()
        await ann.get_by_test_id("settings-open").click()
        await expect(ann.get_by_test_id("alert-sound")).not_to_be_checked()
        await ann.set_viewport_size({"width": 390, "height": 800})
        await ann.screenshot(path=f"{SHOTS}/alerts-390.png")
        assert desk.errors == []
