"""The CSV export: one row per conversation with every time of docs/metrics.md ("The facts of a conversation")."""

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from services.reporting.facts import ConversationFacts, Measured

COLUMNS = (
    "conversation_id", "channel", "first_queue", "queue", "labels",
    "opened_at", "queued_at", "offered_at", "assigned_at", "answered_at", "first_reply_at", "resolved_at",
    "abandoned_at", "reopened_within_window_at", "csat_at",
    "first_agent", "first_reply_agent", "final_agent",
    "wait_seconds", "wait_business_seconds", "first_response_seconds", "first_response_business_seconds",
    "handle_seconds", "resolution_seconds", "resolution_business_seconds", "responses", "response_seconds_mean",
    "answered_within_target", "resolved_reason", "abandon_reason", "short_abandon", "reopens", "transfers",
    "sla_warnings", "sla_breaches", "surveyed", "csat_score",
    "bot", "bot_outcome", "bot_ended_at", "bot_seconds", "bot_handover_reason", "bot_handover_code",
)
# A cell a spreadsheet would run as a formula (OWASP, "CSV injection"): queue names, labels and
# reasons are free text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _time(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _seconds(measured: Measured | None, business: bool = False) -> float | None:
    if measured is None:
        return None
    return (measured.business_ms if business else measured.ms) / 1000


def csv_row(f: ConversationFacts) -> dict[str, Any]:
    """The conversation's export row: ISO times (UTC), seconds, counts; None where it did not happen."""
    responses = [r.ms for r in f.responses]
    return {
        "conversation_id": f.conversation_id, "channel": f.channel, "first_queue": f.first_queue, "queue": f.queue,
        "labels": ";".join(f.labels),
        "opened_at": _time(f.opened_at), "queued_at": _time(f.queued_at), "offered_at": _time(f.offered_at),
        "assigned_at": _time(f.assigned_at), "answered_at": _time(f.answered_at),
        "first_reply_at": _time(f.first_reply_at), "resolved_at": _time(f.resolved_at),
        "abandoned_at": _time(f.abandoned_at), "reopened_within_window_at": _time(f.reopened_within_window_at),
        "csat_at": _time(f.csat_at),
        "first_agent": f.first_agent, "first_reply_agent": f.first_reply_agent, "final_agent": f.final_agent,
        "wait_seconds": _seconds(f.wait), "wait_business_seconds": _seconds(f.wait, True),
        "first_response_seconds": _seconds(f.first_response),
        "first_response_business_seconds": _seconds(f.first_response, True),
        "handle_seconds": _seconds(f.handle), "resolution_seconds": _seconds(f.resolution),
        "resolution_business_seconds": _seconds(f.resolution, True),
        "responses": len(responses),
        "response_seconds_mean": sum(responses) / len(responses) / 1000 if responses else None,
        "answered_within_target": f.answered_within_target, "resolved_reason": f.resolved_reason,
        "abandon_reason": f.abandon_reason, "short_abandon": f.short_abandon, "reopens": f.reopens,
        "transfers": len(f.transfers), "sla_warnings": sum(a.level == "warning" for a in f.sla_alerts),
        "sla_breaches": sum(a.level == "breached" for a in f.sla_alerts), "surveyed": f.surveyed,
        "csat_score": f.csat_score,
        "bot": f.bot, "bot_outcome": f.bot_outcome, "bot_ended_at": _time(f.bot_ended_at),
        "bot_seconds": _seconds(f.bot_time), "bot_handover_reason": f.bot_handover_reason,
        "bot_handover_code": f.bot_handover_code,
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if isinstance(value, str) and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def csv_text(rows: Iterable[dict[str, Any]], header: bool = False) -> str:
    """Rows as CSV lines (RFC 4180, CRLF), with the header row first when asked."""
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in COLUMNS])
    return out.getvalue()
