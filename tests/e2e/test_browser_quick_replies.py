"""Quick replies on the chat page in a real browser (Debian's chromium), the whole stack as processes: a
bot's message with two buttons is shown as real buttons, pressing one by keyboard sends the press (the
action and the title) over the socket, the buttons are then disabled, and a later message disables a
newer message's buttons too; axe-core finds no serious WCAG 2.1 AA violation with them on the page."""

from urllib.parse import urlencode

from playwright.async_api import Page, expect

from services.intake.channels.webchat import read_token
from services.intake.settings import IntakeSettings
from shared.models import QuickReply
from tests.e2e.axe import assert_accessible
from tests.e2e.test_browser import WAIT_MS, pytestmark, record_console_errors, record_errors  # noqa: F401 (the skip)
from tests.e2e.test_browser_chat import browser, say  # noqa: F401 (the fixture)
from tests.service.test_quick_replies import wire

CHAT_SECRET = IntakeSettings.model_fields["chat_secret"].default  # the stack runs with the development secret


def thread_of(token: str) -> str:
    session = read_token(CHAT_SECRET, token)
    assert session is not None, "the page's session token does not read"
    return session.thread_id


async def open_chat(browser, stack, errors: list[str]) -> Page:  # noqa: F811 (browser is the fixture's value)
    context = await browser.new_context(viewport={"width": 420, "height": 760}, locale="en-US")
    page = await context.new_page()
    record_errors(page, errors, "chat")
    record_console_errors(page, errors, "chat")
    await page.goto(f"{stack.intake_url}/chat?{urlencode({'workspace': stack.workspace})}")
    return page


async def test_a_bot_message_shows_buttons_a_press_sends_its_action_and_disables_them(stack, names, browser):  # noqa: F811
    errors: list[str] = []
    page = await open_chat(browser, stack, errors)
    await say(page, "How do refunds work?")
    token = await page.evaluate(f"localStorage.getItem('switchyard.chat.{stack.workspace}.session')")
    thread_id = thread_of(token)

    async with wire(names) as broker:
        await broker.send("webchat", thread_id, message_id="kb-answer-1")
        bot = page.locator('#messages [data-message-id="kb-answer-1"]')
        buttons = bot.get_by_role("button")
        await expect(bot.get_by_role("group", name="Choose an answer")).to_be_visible(timeout=WAIT_MS)
        await expect(buttons).to_have_text(["Yes, thanks", "No, talk to a person"])
        for button in await buttons.all():
            await expect(button).to_be_enabled()
        await assert_accessible(page)

        # By keyboard: the first button takes focus, Tab reaches the second, Enter presses it.
        await bot.get_by_role("button", name="Yes, thanks").focus()
        await page.keyboard.press("Tab")
        await expect(bot.get_by_role("button", name="No, talk to a person")).to_be_focused()
        await page.keyboard.press("Enter")
        pressed = await broker.next_received()
        assert (pressed.action, pressed.text, pressed.thread_id) == ("kb:human", "No, talk to a person", thread_id)
        sent = page.locator(f'#messages [data-direction="inbound"][data-message-id="{pressed.message_id}"] .bubble')
        await expect(sent).to_have_text("No, talk to a person", timeout=WAIT_MS)
        for button in await buttons.all():
            await expect(button).to_be_disabled()
        await expect(bot.get_by_role("button", name="No, talk to a person")).to_have_attribute("aria-pressed", "true")
        await expect(page.locator("#text")).to_be_focused()
        await assert_accessible(page)

        # A newer question's buttons work until the customer writes something else instead.
        await broker.send("webchat", thread_id, message_id="kb-answer-2", text="Anything else?",
                          quick_replies=[QuickReply(id="done", title="No, that's all")])
        second = page.locator('#messages [data-message-id="kb-answer-2"]').get_by_role("button")
        await expect(second).to_be_enabled(timeout=WAIT_MS)
        await say(page, "Actually, one more thing")
        await expect(second).to_be_disabled()
        typed = await broker.next_received()
        assert (typed.action, typed.text) == (None, "Actually, one more thing")

        # A reload keeps them as they were: pressed and disabled.
        await page.reload()
        await expect(bot.get_by_role("button", name="No, talk to a person")).to_have_attribute("aria-pressed", "true")
        await expect(second).to_be_disabled()
    assert errors == []
