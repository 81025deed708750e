"""The agents store against the real database: one contact across channels, and receipts."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from pymongo import AsyncMongoClient

from services.agents.contacts import Identities, normalize_phone
from services.agents.store import AgentsStore
from shared.models import (
    Contact,
    ConversationAssigned,
    ConversationInfo,
    ConversationMessage,
    DeliveryStatus,
    InboundMessage,
    new_id,
    utcnow,
)


@pytest.fixture
async def store(names) -> AsyncIterator[AgentsStore]:
    client = AsyncMongoClient(names.infra.mongo_url, tz_aware=True)
    store = AgentsStore(client[names.namespace])
    await store.ensure_indexes()
    yield store
    await client.close()


def person(channel: str, contact_id: str, **fields) -> Identities:
    return Identities("default", channel, Contact(id=contact_id, **fields))


def test_phone_numbers_compare_in_one_form():
    assert normalize_phone("+1 (415) 555-0100") == normalize_phone("14155550100") == "+14155550100"
    assert normalize_phone("12") is None


async def test_the_same_phone_on_two_channels_is_one_contact(store):
    [sms] = await store.contact_book.resolve([person("sms", "+14155550100", phone="+14155550100")])
    [whatsapp] = await store.contact_book.resolve([person("whatsapp", "14155550100", phone="+1 415 555 0100", name="Ann")])
    assert whatsapp == sms
    contact = await store.contact_book.get("default", sms)
    assert contact["phones"] == ["+14155550100"]
    assert {(i["channel"], i["address"]) for i in contact["identities"]} == {("sms", "+14155550100"), ("whatsapp", "14155550100")}
    assert contact["name"] == "Ann"


async def test_the_same_email_in_one_batch_is_one_contact_and_strangers_stay_apart(store):
    ids = await store.contact_book.resolve([
        person("email", "ann@example.com", email="ann@example.com"),
        person("api", "crm-17", email="Ann@Example.com"),
        person("api", "crm-18", email="bob@example.com"),
    ])
    assert ids[0] == ids[1] != ids[2]


async def test_a_known_channel_address_keeps_its_contact_and_other_workspaces_are_apart(store):
    [first] = await store.contact_book.resolve([person("telegram", "42")])
    [again] = await store.contact_book.resolve([person("telegram", "42", phone="+4915112345678")])
    [elsewhere] = await store.contact_book.resolve([Identities("other", "telegram", Contact(id="42"))])
    assert again == first != elsewhere
    # The phone learned on the second message now leads to the same person from SMS.
    [sms] = await store.contact_book.resolve([person("sms", "+4915112345678", phone="+4915112345678")])
    assert sms == first


async def stored_reply(store: AgentsStore, channel: str = "whatsapp") -> str:
    message_id = new_id()
    await store.messages.insert_one({
        "_id": message_id, "workspace_id": "default", "conversation_id": "c1", "direction": "outbound",
        "channel": channel, "text": "hi", "agent_id": "a1", "status": "queued", "created_at": utcnow(), "seq": 1,
    })
    return message_id


async def test_receipts_follow_the_send_outcome_and_never_go_back(store):
    message_id = await stored_reply(store)
    await store.apply_statuses([DeliveryStatus(message_id=message_id, workspace_id="default", conversation_id="c1",
                                               status="sent", channel="whatsapp", channel_message_id="wamid.1")])
    changed = await store.apply_statuses([
        DeliveryStatus(workspace_id="default", channel="whatsapp", channel_message_id="wamid.1", status="read"),
        DeliveryStatus(workspace_id="default", channel="whatsapp", channel_message_id="wamid.1", status="delivered"),
    ])
    assert [d["status"] for d in changed] == ["read"]
    assert (await store.messages.find_one({"_id": message_id}))["status"] == "read"


async def test_a_receipt_before_its_send_outcome_is_kept_then_applied(store):
    message_id = await stored_reply(store)
    early = await store.apply_statuses([
        DeliveryStatus(workspace_id="default", channel="whatsapp", channel_message_id="wamid.2", status="delivered"),
    ])
    assert early == []
    changed = await store.apply_statuses([DeliveryStatus(message_id=message_id, workspace_id="default", conversation_id="c1",
                                                         status="sent", channel="whatsapp", channel_message_id="wamid.2")])
    assert [d["status"] for d in changed] == ["delivered"]
    assert await store.pending_receipts.count_documents({}) == 0


async def test_a_receipt_for_someone_elses_message_changes_nothing(store):
    message_id = await stored_reply(store)
    await store.apply_statuses([
        DeliveryStatus(workspace_id="default", channel="whatsapp", channel_message_id="not-ours", status="read"),
    ])
    assert (await store.messages.find_one({"_id": message_id}))["status"] == "queued"


async def test_a_read_watermark_marks_the_threads_replies_sent_up_to_it(store):
    await store.conversations.insert_many([
        {"_id": "c1", "workspace_id": "default", "channel": "messenger", "thread_id": "psid-1"},
        {"_id": "c2", "workspace_id": "default", "channel": "messenger", "thread_id": "psid-2"},
    ])
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    async def reply(message_id: str, conversation_id: str, status: str, minutes: int) -> None:
        await store.messages.insert_one({
            "_id": message_id, "workspace_id": "default", "conversation_id": conversation_id, "direction": "outbound",
            "channel": "messenger", "text": "hi", "agent_id": "a1", "status": status,
            "created_at": at + timedelta(minutes=minutes), "seq": minutes,
        })

    await reply("early", "c1", "sent", 0)
    await reply("delivered", "c1", "delivered", 1)
    await reply("failed", "c1", "failed", 2)
    await reply("queued", "c1", "queued", 3)
    await reply("after", "c1", "sent", 10)
    await reply("other-thread", "c2", "sent", 0)
    watermark = DeliveryStatus(workspace_id="default", channel="messenger", thread_id="psid-1",
                               up_to=at + timedelta(minutes=5), status="read")
    changed = await store.apply_statuses([watermark])
    assert sorted(d["_id"] for d in changed) == ["delivered", "early"]
    statuses = {d["_id"]: d["status"] async for d in store.messages.find({})}
    assert statuses == {"early": "read", "delivered": "read", "failed": "failed", "queued": "queued",
                        "after": "sent", "other-thread": "sent"}
    # The provider's repeat of the same watermark changes nothing more.
    assert await store.apply_statuses([watermark]) == []


async def test_a_watermark_counts_from_when_the_provider_took_the_reply_not_when_it_was_written(store):
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    await store.conversations.insert_one({"_id": "c1", "workspace_id": "default", "channel": "messenger", "thread_id": "psid-1"})
    await store.messages.insert_one({"_id": "r1", "workspace_id": "default", "conversation_id": "c1", "direction": "outbound",
                                     "channel": "messenger", "text": "hi", "agent_id": "a1", "status": "queued",
                                     "created_at": t0, "seq": 1})
    # Written at 12:00, handed to Messenger at 12:02 (intake was retrying meanwhile).
    await store.apply_statuses([DeliveryStatus(message_id="r1", workspace_id="default", channel="messenger",
                                               channel_message_id="m_r1", status="sent", at=t0 + timedelta(minutes=2))])
    older = DeliveryStatus(workspace_id="default", channel="messenger", thread_id="psid-1",
                           up_to=t0 + timedelta(minutes=1), status="read")
    assert await store.apply_statuses([older]) == []
    newer = older.model_copy(update={"up_to": t0 + timedelta(minutes=3)})
    assert [d["_id"] for d in await store.apply_statuses([newer])] == ["r1"]


def test_a_status_names_a_message_or_a_thread_up_to_a_time():
    with pytest.raises(ValidationError):
        DeliveryStatus(workspace_id="default", channel="messenger", thread_id="psid-1", status="read")
    mark = DeliveryStatus(workspace_id="default", channel="messenger", thread_id="psid-1",
                          up_to=datetime(2026, 3, 1, tzinfo=UTC), status="read")
    assert mark.is_watermark and mark.names == "messenger:psid-1:2026-03-01T00:00:00+00:00"
    assert DeliveryStatus(workspace_id="default", channel="messenger", channel_message_id="m.1", status="read").names == "messenger:m.1"


async def test_the_same_message_twice_in_one_batch_reaches_the_desk_once(store):
    message = InboundMessage(message_id=new_id(), channel="whatsapp", thread_id="t", contact=Contact(id="t"), text="hi")
    delivery = ConversationMessage(conversation_id="c1", workspace_id="default", assignee_id="ann", message=message)
    for_desk = await store.apply_deliveries([delivery, delivery])
    assert [[m["_id"] for m in item.messages] for item in for_desk if item.messages] == [[message.message_id]]
    assert await store.messages.count_documents({}) == 1


async def test_the_same_assignment_twice_in_one_batch_reaches_the_desk_once(store):
    """A standby replays the outbox of a killed router that had published part of it."""
    message = InboundMessage(message_id=new_id(), channel="whatsapp", thread_id="t", contact=Contact(id="t"), text="hi")
    info = ConversationInfo(conversation_id="c1", workspace_id="default", channel="whatsapp", thread_id="t",
                            contact=message.contact, created_at=utcnow(), waiting_since=utcnow(),
                            assignee_id="ann", assigned_at=utcnow(), assignment_seq=1)
    assigned = ConversationAssigned(conversation=info, messages=[message])
    for_desk = await store.apply_deliveries([assigned, assigned])
    assert [(item.conversation["_id"], len(item.messages)) for item in for_desk] == [("c1", 1)]
