"""structlog setup, called once at each entry point, and the redaction every log line goes through.

Secrets reach the logs in URLs (a browser's WebSocket passes the API key as `?token=`, the chat
page its `?session=`, SendGrid its `?token=`, Meta its `hub.verify_token=`), in headers
(Authorization) and in error texts that quote them. Each line is scrubbed on the way out: the
aiohttp access log and every other stdlib record by a filter on the one handler, structlog events
by a processor. Over-redacting a harmless value is cheap; a leaked key is not.
"""

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

REDACTED = "[REDACTED]"
# A name that holds a secret: a query parameter, a header, a structlog key, a form field.
SECRET_NAME = (
    r"[\w.\-]*(?:token|session|secret|signature|password|passwd|credential|cookie|authorization"
    r"|api[_\-]?key|access[_\-]?key|signing[_\-]?key|private[_\-]?key)[\w.\-]*|key|auth|sig"
)
SECRET_KEY = re.compile(rf"^(?:{SECRET_NAME})$", re.IGNORECASE)
# name=value in a query string or a form (value up to the next separator, quote or space).
SECRET_PARAMETER = re.compile(rf"(?P<name>(?:^|(?<=[?&;\s\"'(,]))(?:{SECRET_NAME})=)[^&;\s\"'#,)]+", re.IGNORECASE)
# "Authorization: Bearer abc", "Bearer abc", "Basic abc==" wherever they appear in a text.
SECRET_SCHEME = re.compile(r"(?P<name>\b(?:Bearer|Basic|Digest|Token)\s+)[^\s\"',;]+", re.IGNORECASE)
SECRET_HEADER = re.compile(
    r"(?P<name>\b(?:Authorization|Proxy-Authorization|Cookie|Set-Cookie|X-Api-Key|X-Auth-Token|"
    r"X-Telegram-Bot-Api-Secret-Token|X-Twilio-Signature|X-Hub-Signature(?:-256)?|X-Switchyard-Signature)"
    r"[\"']?\s*[:=]\s*[\"']?)[^\"'\r\n,}]+",
    re.IGNORECASE,
)
MAX_DEPTH = 8  # nested event values are scrubbed this deep; deeper ones are replaced whole


def redact_text(text: str) -> str:
    """`text` with every secret-looking query parameter, credential scheme and secret header value masked."""
    text = SECRET_HEADER.sub(lambda m: m["name"] + REDACTED, text)
    text = SECRET_SCHEME.sub(lambda m: m["name"] + REDACTED, text)
    return SECRET_PARAMETER.sub(lambda m: m["name"] + REDACTED, text)


def redact_value(value: Any, depth: int = 0) -> Any:
    """A log value with its secrets masked: strings scrubbed, mappings by key and value, sequences item by item."""
    if isinstance(value, str):
        return redact_text(value)
    if depth >= MAX_DEPTH and isinstance(value, (dict, list, tuple)):
        return REDACTED
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and SECRET_KEY.match(k) else redact_value(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v, depth + 1) for v in value)
    return value


def redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: secret-named keys masked, every other value scrubbed (the exception text too)."""
    for key, value in list(event.items()):
        if SECRET_KEY.match(key) and value is not None:
            event[key] = REDACTED
        else:
            event[key] = redact_value(value)
    return event


# Attributes every LogRecord has; anything else on a record came in through `extra=` and is scrubbed too.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Masks secrets in a stdlib record (aiohttp's access log line, its `extra` fields, library warnings)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a call whose arguments do not fit its format: logging reports it
            return True
        record.msg = redact_text(message)
        record.args = None
        for name, value in list(vars(record).items()):
            if name not in _RECORD_FIELDS:
                setattr(record, name, redact_value(value))
        return True


def redacting_handler(stream: Any = None) -> logging.Handler:
    """The one stdlib handler: plain messages (structlog renders its own), secrets masked."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter())
    return handler


def configure_logging(level: str = "info") -> None:
    """JSON lines when not on a TTY, coloured console otherwise; contextvars merged into every line."""
    renderer = (
        structlog.dev.ConsoleRenderer()
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    logging.basicConfig(level=level.upper(), handlers=[redacting_handler()], force=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event,  # last before rendering: the exception text is scrubbed too
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
