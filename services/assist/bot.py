"""The pre-routing bot (docs/bot.md): the router gives it a new conversation of a queue or channel
the routing configuration names; it answers with the best published articles and asks whether they
helped ("Did this answer your question?", with channel-native buttons). Yes resolves the conversation
without a human; no, asking for a person, anything else, or no good enough article hands it to human
routing at once. The router keeps the clock: a bot that is late or down is simply handed past.

It consumes `<ns>.assist.bot` (single active consumer: one conversation's request and its customer's
replies in order), publishes the bot's messages for the agents service to store and send
(`bot.reply`), and its decisions for the router (`bot.decision`). Every id it publishes is derived
from the input's, so a redelivered input publishes the same messages (the receivers drop repeats)."""

from datetime import datetime

import structlog
from aio_pika.abc import AbstractIncomingMessage

from services.assist.bot_texts import NO, TEXTS, YES, reading_of
from services.assist.library import KnowledgeLibrary
from services.assist.search.text import LANGUAGES, Language, guess_language
from shared import events
from shared.broker import BatchConsumer, Broker, PoisonMessage
from shared.models import BotDecision, RoutingEvent, utcnow

log = structlog.get_logger(__name__)
MAX_ARTICLES = 3


def parse_bot_input(delivery: AbstractIncomingMessage) -> RoutingEvent:
    if delivery.type not in (events.BOT_REQUESTED, events.BOT_MESSAGE):
        raise PoisonMessage(f"unknown message type {delivery.type!r}")
    event = RoutingEvent.model_validate_json(delivery.body)
    if event.conversation_id is None or not isinstance(event.details.get("session"), int):
        raise PoisonMessage("a bot input names its conversation and session")
    return event


class Bot:
    """Answers what the router asks of the bot; see the module docstring."""

    def __init__(self, broker: Broker, library: KnowledgeLibrary, help_url: str) -> None:
        self.broker = broker
        self.library = library
        self.help_url = help_url.rstrip("/")
        self.consumer: BatchConsumer[RoutingEvent] = BatchConsumer(
            broker, "assist-bot", parse_bot_input, self.handle_batch, key=lambda e: e.conversation_id or "",
            batch_size=20)

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer.attach(self.broker.topology.assist_bot_queue)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def handle_batch(self, items: list[RoutingEvent]) -> None:
        for event in items:
            if event.type == events.BOT_REQUESTED:
                await self.answer(event)
            else:
                await self.read_reply(event)

    async def answer(self, request: RoutingEvent, now: datetime | None = None) -> None:
        """The best articles with the question, or a handover when none is good enough."""
        details = request.details
        if _is_late(details.get("answer_by"), now or utcnow()):
            log.info("bot.late_request", conversation_id=request.conversation_id)
            return  # the router has handed it over already: answering now would only confuse
        language = _language(details)
        hits = await self.library.search(request.workspace_id, str(details.get("text", "")), None, MAX_ARTICLES)
        good = [(hit, doc) for hit, doc in hits if hit.score >= float(details.get("min_score", 0.5))]
        if not good:
            await self.decide(request, "handover", "no article matches the question well enough", code="no_match")
            return
        texts = TEXTS[language]
        lines = [texts["intro"], *(f"• {doc['title']}: {self.article_url(request.workspace_id, doc)}"
                                   for _, doc in good), texts["ask"]]
        await self.reply(request, "\n".join(lines), language, [(YES, texts["yes"]), (NO, texts["no"])])
        await self.decide(request, "answered", articles=[hit.article_id for hit, _ in good])

    async def read_reply(self, message: RoutingEvent) -> None:
        """The customer's answer: yes resolves; no, or anything else, goes to a person."""
        details = message.details
        reading = reading_of(str(details.get("text", "")), details.get("action"))
        language = _language(details)
        if reading == "yes":
            await self.reply(message, TEXTS[language]["glad"], language)
            await self.decide(message, "resolved")
        elif reading == "no":
            await self.reply(message, TEXTS[language]["handing_over"], language)
            await self.decide(message, "handover", "the customer asked for a person", code="declined")
        else:
            await self.decide(message, "handover", "the customer wrote something the bot does not answer",
                              code="other_question")

    def article_url(self, workspace_id: str, doc: dict) -> str:
        return f"{self.help_url}/help/{workspace_id}/articles/{doc['_id']}"

    async def reply(self, cause: RoutingEvent, text: str, language: Language,
                    quick_replies: list[tuple[str, str]] = ()) -> None:
        """The bot's message to the customer: the agents service stores it in the transcript and sends it."""
        details = cause.details
        event = RoutingEvent(
            event_id=f"{cause.event_id}:reply", type=events.BOT_REPLY, workspace_id=cause.workspace_id,
            conversation_id=cause.conversation_id, queue=cause.queue, at=utcnow(),
            details={"channel": details["channel"], "thread_id": details["thread_id"], "contact": details["contact"],
                     "text": text, "language": language,
                     "quick_replies": [{"id": qid, "title": title} for qid, title in quick_replies]},
        )
        await self.broker.publish(event, events.BOT_REPLY, message_type=events.BOT_REPLY, message_id=event.event_id,
                                  workspace_id=cause.workspace_id)

    async def decide(self, cause: RoutingEvent, decision: str, reason: str = "", articles: list[str] = (),
                     code: str | None = None) -> None:
        assert cause.conversation_id is not None
        body = BotDecision(event_id=f"{cause.event_id}:decision", workspace_id=cause.workspace_id,
                           conversation_id=cause.conversation_id, session=cause.details["session"],
                           decision=decision, reason=reason, articles=list(articles), code=code)
        await self.broker.publish(body, events.BOT_DECISION, message_type=events.BOT_DECISION,
                                  message_id=body.event_id, workspace_id=cause.workspace_id)


def _language(details: dict) -> Language:
    """The conversation's language: the channel's hint if it is one we speak, else guessed from the text."""
    hinted = str(details.get("language") or "")[:2].lower()
    return hinted if hinted in LANGUAGES else guess_language(str(details.get("first_text") or details.get("text", "")))


def _is_late(answer_by: object, now: datetime) -> bool:
    if not isinstance(answer_by, str):
        return False
    try:
        return datetime.fromisoformat(answer_by) < now
    except ValueError:
        return False
