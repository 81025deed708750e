"""The pre-routing bot on the chat page in a real browser (Debian's chromium), the whole stack as
processes (assist included): the customer asks, the bot answers with the article's link and two
buttons, "Yes" ends it with a thanks; another customer presses "No" and Ann gets the conversation;
the chat links to the workspace's help center; axe-core finds no serious WCAG 2.1 AA violation."""

import aiohttp
from playwright.async_api import expect

from tests.e2e.axe import assert_accessible
from tests.e2e.client import StackClient
from tests.e2e.test_browser import WAIT_MS, pytestmark  # noqa: F401 (the skip)
from tests.e2e.test_browser_chat import browser, say  # noqa: F401 (the fixture)
from tests.e2e.test_browser_quick_replies import open_chat

ARTICLE = {"title": "Reset your password", "language": "en", "status": "published",
           "body": "Open **Sign in**, choose *Forgot password* and follow the link we email you."}


async def setting_up(stack) -> str:
    """The bot on for web chats, one published article, Ann online; the article's id."""
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        config = {"bot": {"channels": ["webchat"], "min_score": 0.3, "answer_seconds": 10, "reply_seconds": 120}}
        async with http.put(f"{stack.router_url}/v1/routing/config", json=config) as response:
            assert response.status == 202, await response.text()
        async with http.post(f"{stack.stack.url('assist')}/v1/kb/articles", json=ARTICLE) as response:
            assert response.status == 201, await response.text()
            article_id = (await response.json())["id"]
        await StackClient(http, stack.intake_url, stack.agents_url, stack.api_key).put_agent("ann", capacity=3)
    return article_id


async def test_the_bot_answers_on_the_chat_page_yes_ends_it_and_no_brings_a_person(stack, browser):  # noqa: F811
    article_id = await setting_up(stack)
    errors: list[str] = []
    page = await open_chat(browser, stack, errors)
    help_center = page.get_by_test_id("help-center")
    await expect(help_center).to_be_visible(timeout=WAIT_MS)
    assert await help_center.get_attribute("href") == f"{stack.stack.url('assist')}/help/{stack.workspace}?lang=en"

    await say(page, "I forgot my password, how can I reset it?")
    answer = page.locator('#messages [data-direction="outbound"]', has_text="Reset your password")
    await expect(answer).to_have_count(1, timeout=WAIT_MS)
    await expect(answer).to_contain_text(f"/help/{stack.workspace}/articles/{article_id}")
    await expect(answer.get_by_role("button")).to_have_text(["Yes, thanks", "No, a person please"])
    await assert_accessible(page)
    await answer.get_by_role("button", name="Yes, thanks").click()
    await expect(page.locator('#messages [data-direction="outbound"]', has_text="Glad it helped")).to_have_count(
        1, timeout=WAIT_MS)
    await expect(answer.get_by_role("button", name="Yes, thanks")).to_be_disabled()

    other = await open_chat(browser, stack, errors)
    await say(other, "how do I reset my password")
    second = other.locator('#messages [data-direction="outbound"]', has_text="Reset your password")
    await second.get_by_role("button", name="No, a person please").click(timeout=WAIT_MS)
    await expect(other.locator('#messages [data-direction="outbound"]', has_text="passing you to a person")).to_have_count(
        1, timeout=WAIT_MS)
    await expect(other.get_by_text("Ann joined")).to_be_visible(timeout=WAIT_MS)
    await assert_accessible(other)
    assert errors == []
