"""Quick replies: what a button carries back, and the line that lists the choices where there are no buttons.

An outbound message may carry up to three quick replies (shared/models.py QuickReply). Channels with
buttons send each as a button whose payload is `qr:<id>`; a press comes back as an inbound message
with `action=<id>` and the button's title as its text. CSAT buttons carry `csat:...` and are read by
shared/csat.py, never here. Channels without buttons (SMS, email, a caller's SMS) get the choices as
a numbered line in the text; a digit sent back is left as text for the bot to read (intake keeps no
state). See README "Quick replies".
"""

import re

from shared.csat import language_of
from shared.models import QUICK_REPLY_ID, OutboundMessage, QuickReply

PREFIX = "qr:"
_ID = re.compile(QUICK_REPLY_ID)

# The numbered line for channels without buttons, per language; English for any other.
CHOICES = {
    "en": "Reply {choices}",
    "ru": "Ответьте цифрой: {choices}",
    "uk": "Дайте відповідь цифрою: {choices}",
}
CHOICE = "{number} — {title}"
CHOICE_SEPARATOR = "; "


def payload(reply: QuickReply) -> str:
    """What the button of `reply` carries back: `qr:<id>` (at most 51 bytes: fits Telegram's 64)."""
    return PREFIX + reply.id


def action_of(data: object) -> str | None:
    """The quick reply id a button's payload names; None for anything else (a CSAT payload, another
    button's, one with our prefix but an id we could never have sent)."""
    if not isinstance(data, str) or not data.startswith(PREFIX):
        return None
    found = data.removeprefix(PREFIX)
    return found if _ID.fullmatch(found) else None


def buttons_of(message: OutboundMessage) -> list[QuickReply]:
    """The quick replies to render: none on a CSAT survey (its own buttons) or a web chat notice."""
    if message.survey is not None or message.notice is not None:
        return []
    return message.quick_replies


def language(message: OutboundMessage) -> str:
    """The language to list the choices in: the customer's latest message's, when it said one we have."""
    said = language_of((message.reply_to.metadata if message.reply_to else {}).get("language"))
    return said if said in CHOICES else "en"


def choices_line(message: OutboundMessage) -> str:
    """"Reply 1 — Yes, thanks; 2 — No, talk to a person" in the message's language; "" without quick replies."""
    replies = buttons_of(message)
    if not replies:
        return ""
    listed = CHOICE_SEPARATOR.join(CHOICE.format(number=n, title=r.title) for n, r in enumerate(replies, start=1))
    return CHOICES[language(message)].format(choices=listed)


def with_choices(message: OutboundMessage, separator: str = "\n") -> str:
    """The message's text with its choices line after it (the text alone when there are none)."""
    line = choices_line(message)
    if not line:
        return message.text
    return f"{message.text}{separator}{line}" if message.text.strip() else line
