"""Routing configuration: queues, classification rules, capacity per media, aging.

Loaded from YAML (`ROUTER_QUEUES_FILE`) at start and replaceable live through the router's
`PUT /v1/routing/config`. Validated once here, so the core never meets an unknown queue.
"""

import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, PrivateAttr, field_validator, model_validator

from shared.csat import CsatSettings
from shared.models import MAX_LABELS, InboundMessage, Label, Skill, Wire
from shared.webchat import WebchatSettings

QueueName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:+-]{1,64}$")]
Proficiency = Annotated[int, Field(ge=1, le=5)]
# Every duration is bounded so that any configuration the API accepts can run: timers and
# windows become datetimes (`now ± seconds`), which overflow long before 1e15 seconds.
MAX_SECONDS = 366 * 24 * 3600
Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)]
SecondsOrZero = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
ShortText = Annotated[str, Field(max_length=200)]
Strategy = Literal["least_occupied", "longest_idle", "round_robin", "most_skilled"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SKILLS_QUEUE_PREFIX = "skills:"


class ExpansionStep(Wire):
    """Bullseye: after `after_seconds` of waiting, agents matching these skills may take it too."""

    after_seconds: Seconds
    skills: dict[Skill, Proficiency] = Field(default_factory=dict, max_length=50)


class SlaTargets(Wire):
    first_response_seconds: Seconds | None = None
    resolution_seconds: Seconds | None = None
    # sla.warning fires when this share of a target has passed.
    warning_ratio: float = Field(0.8, gt=0, lt=1)


class MaxWait(Wire):
    """What happens to a conversation that waited `seconds` without an agent."""

    seconds: Seconds
    action: Literal["overflow", "auto_reply", "callback"]
    overflow_queue: QueueName | None = None
    # For auto_reply: {minutes} is replaced by the expected wait in whole minutes.
    message: str = Field("All our agents are busy. Expected wait: about {minutes} min. We will answer here.", max_length=2000)

    @model_validator(mode="after")
    def _overflow_names_a_queue(self) -> "MaxWait":
        if self.action == "overflow" and not self.overflow_queue:
            raise ValueError("max_wait.action overflow needs overflow_queue")
        return self


class BusinessHours(Wire):
    timezone: str = "UTC"
    # e.g. {"mon": ["09:00-17:00"], "sat": ["10:00-14:00"]}; a day not listed is closed.
    weekly: dict[Weekday, list[Annotated[str, Field(pattern=r"^\d\d:\d\d-\d\d:\d\d$")]]]
    holidays: list[date] = Field(default_factory=list, max_length=1000)

    @field_validator("weekly")
    @classmethod
    def _windows_are_times(cls, weekly: dict[str, list[str]]) -> dict[str, list[str]]:
        """"25:00-26:00" fits the pattern but would fail every is_open() at routing time."""
        for day, windows in weekly.items():
            if len(windows) > 24:
                raise ValueError(f"{day}: at most 24 windows a day")
            for window in windows:
                try:
                    start, end = (time.fromisoformat(part) for part in window.split("-"))
                except ValueError:
                    raise ValueError(f"{day}: {window!r} is not HH:MM-HH:MM with real times") from None
                if start >= end:
                    raise ValueError(f"{day}: window {window!r} ends before it starts")
        return weekly

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory's name, an overlong one
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    def is_open(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.timezone))
        if local.date() in self.holidays:
            return False
        for window in self.weekly.get(WEEKDAYS[local.weekday()], []):
            start, end = (time.fromisoformat(part) for part in window.split("-"))
            if start <= local.time() < end:
                return True
        return False


class QueueConfig(Wire):
    name: QueueName
    # Required skills with the minimum proficiency (1-5) an agent needs in each.
    skills: dict[Skill, Proficiency] = Field(default_factory=dict, max_length=50)
    priority: int = Field(0, ge=0, le=10)
    strategy: Strategy = "least_occupied"
    mode: Literal["push", "offer"] = "push"
    offer_timeout_seconds: Seconds = 30
    expand: list[ExpansionStep] = Field(default_factory=list, max_length=20)
    sla: SlaTargets = Field(default_factory=SlaTargets)
    # Service level's answer target (seconds from entering the queue to an agent's answer; reports
    # only: docs/metrics.md "Service level"); unset: reporting's default (20 s).
    service_level_seconds: Seconds | None = None
    max_wait: MaxWait | None = None
    hours: BusinessHours | None = None
    # Outside business hours new conversations go here; unset: they wait for this queue.
    closed_overflow: QueueName | None = None
    # When the assignee goes offline, conversations they already answered are routed again too.
    reroute_answered_on_offline: bool = False

    @field_validator("expand")
    @classmethod
    def _steps_in_order(cls, steps: list[ExpansionStep]) -> list[ExpansionStep]:
        if [s.after_seconds for s in steps] != sorted({s.after_seconds for s in steps}):
            raise ValueError("expansion steps need strictly increasing after_seconds")
        return steps

    def criteria(self) -> list[dict[str, int]]:
        """The skill criteria of each bullseye level: level 0 is the queue's own."""
        return [self.skills, *(step.skills for step in self.expand)]


class MessageConditions(Wire):
    """Conditions on a customer's message; every one given must match (none given: every message)."""

    channels: list[ShortText] = Field(default_factory=list, max_length=100)
    languages: list[ShortText] = Field(default_factory=list, max_length=100)  # metadata["language"]
    keywords: list[ShortText] = Field(default_factory=list, max_length=1000)  # any of them, as whole words, any case
    pattern: str | None = Field(None, max_length=1000)  # a regular expression searched in the text
    attributes: dict[ShortText, ShortText] = Field(default_factory=dict, max_length=100)  # metadata["attributes"], e.g. tier: vip

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"pattern does not compile: {error}") from None
        return value

    def matches(self, message: InboundMessage) -> bool:
        metadata = message.metadata
        attributes = metadata.get("attributes") if isinstance(metadata.get("attributes"), dict) else {}
        return (
            (not self.channels or message.channel in self.channels)
            and (not self.languages or metadata.get("language") in self.languages)
            and (not self.keywords or _has_keyword(message.text, self.keywords))
            and (self.pattern is None or re.search(self.pattern, message.text) is not None)
            and all(str(attributes.get(k)) == v for k, v in self.attributes.items())
        )


class ClassificationRule(MessageConditions):
    """The first matching rule names the queue of a new conversation."""

    queue: QueueName
    priority: int = Field(0, ge=0, le=10)  # added to the conversation's priority


class LabelRule(MessageConditions):
    """A contact reason set by rule: every customer message matching it adds these labels to its
    conversation (every matching rule, on the opening message and on later ones). An agent may
    remove one; a rule does not add it again to that conversation."""

    labels: list[Label] = Field(min_length=1, max_length=MAX_LABELS)


def _has_keyword(text: str, keywords: list[str]) -> bool:
    words = set(re.findall(r"\w+", text.casefold()))
    return any(keyword.casefold() in words for keyword in keywords)


class BotSettings(Wire):
    """The pre-routing bot (docs/bot.md): before a human, the knowledge base answers a new conversation
    of these queues and channels; the router hands it to human routing when the bot says so or is late."""

    enabled: bool = True
    queues: list[QueueName] = Field(default_factory=list, max_length=1000)  # empty: every queue
    channels: list[ShortText] = Field(default_factory=list, max_length=100)  # empty: every channel but voice
    # The best article's score (0..1, services/assist/search) the bot needs to answer; below it, a human.
    min_score: float = Field(0.5, ge=0, le=1)
    # The bot must have answered within this, else the conversation goes to human routing.
    answer_seconds: Seconds = 10
    # After the bot's answer, the customer's silence this long hands it to a human too.
    reply_seconds: Seconds = 300

    def takes(self, queue: str, channel: str) -> bool:
        """Whether a new conversation of this queue and channel goes to the bot first (never a call)."""
        if not self.enabled or channel == "voice":
            return False
        return (not self.queues or queue in self.queues) and (not self.channels or channel in self.channels)


class IncidentSettings(Wire):
    """Surge detection (docs/incidents.md): the router hands every customer message to assist, which
    groups them and raises incidents; a conversation linked to an open incident may get a status reply
    and move to a queue of its own."""

    enabled: bool = True
    # Sent once to each conversation linked to an open incident ("We know, we are fixing it").
    status_reply: str | None = Field(None, min_length=1, max_length=2000)
    # A waiting conversation linked to an open incident moves to this queue (a team for the problem).
    queue: QueueName | None = None


class RoutingConfig(Wire):
    default_queue: QueueName = "default"
    queues: list[QueueConfig] = Field(default_factory=lambda: [QueueConfig(name="default")], max_length=1000)
    rules: list[ClassificationRule] = Field(default_factory=list, max_length=1000)
    label_rules: list[LabelRule] = Field(default_factory=list, max_length=1000)
    # Channels grouped into media for capacity; a channel not listed is "chat".
    channel_media: dict[ShortText, ShortText] = Field(default_factory=lambda: {"voice": "voice", "email": "email"},
                                                      max_length=100)
    # A conversation on an exclusive medium (a call) blocks new work of any other medium.
    exclusive_media: list[ShortText] = Field(default_factory=lambda: ["voice"], max_length=100)
    # Aging: one point of priority counts as this many seconds of waiting (see docs/routing.md).
    aging_seconds_per_priority: Seconds = 60
    # A conversation reopening within the window goes back to its last agent if they can take it
    # within `last_agent_wait_seconds`.
    last_agent_window_seconds: SecondsOrZero = 24 * 3600
    last_agent_wait_seconds: SecondsOrZero = 10
    # A pending or snoozed conversation that wakes while its agent is full (or not online) waits
    # reserved for that agent this long, then goes to anyone (docs/routing.md, "Lifecycle").
    wake_reserve_seconds: SecondsOrZero = 120
    # An agent who lets this many offers in a row time out is set away.
    missed_offers_before_away: int = Field(3, ge=1, le=1000)
    # An agent who declined or missed a conversation is skipped for it; after this long it may
    # get it again (so a team whose every agent declined once does not leave it waiting for ever).
    declined_retry_seconds: Seconds = 60
    # Customer feedback surveys per workspace id (docs/csat.md); a workspace not named sends none.
    # The router does not use it: the agents service reads it from the stored configuration when it
    # resolves a conversation, so one file and one PUT configure a deployment.
    csat: dict[Annotated[str, Field(min_length=1, max_length=64)], CsatSettings] = Field(default_factory=dict,
                                                                                         max_length=1000)
    # The web chat's look and opening hours per workspace id (docs/webchat.md). Like `csat`, the router
    # does not use it: intake reads it from the stored configuration, through a short cache.
    webchat: dict[Annotated[str, Field(min_length=1, max_length=64)], WebchatSettings] = Field(default_factory=dict,
                                                                                               max_length=1000)
    # The pre-routing bot (docs/bot.md); None: no bot, and nothing is asked of it.
    bot: BotSettings | None = None
    # Surge detection (docs/incidents.md); None: no customer message is handed to it.
    incidents: IncidentSettings | None = None
    # Lookups by name on the hot path: configured queues, and skill queues made on first use.
    _by_name: dict[str, QueueConfig] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _: object) -> None:
        self._by_name = {queue.name: queue for queue in self.queues}

    @model_validator(mode="after")
    def _queues_resolve(self) -> "RoutingConfig":
        names = [q.name for q in self.queues]
        if len(names) != len(set(names)):
            raise ValueError("queue names must be unique")
        known = set(names)
        referenced = {self.default_queue} | {r.queue for r in self.rules} | set(self.bot.queues if self.bot else ())
        if self.incidents is not None and self.incidents.queue:
            referenced.add(self.incidents.queue)
        for queue in self.queues:
            referenced |= {q for q in (queue.closed_overflow, queue.max_wait and queue.max_wait.overflow_queue) if q}
        unknown = sorted(referenced - known)
        if unknown:
            raise ValueError(f"unknown queue(s) referenced: {', '.join(unknown)}")
        if any(n.startswith(SKILLS_QUEUE_PREFIX) for n in names):
            raise ValueError(f"queue names starting {SKILLS_QUEUE_PREFIX!r} are reserved for skill queues")
        return self

    def queue(self, name: str) -> QueueConfig:
        """A configured queue, or the skill queue a message's own skills name (`skills:a+b`)."""
        # Read from pydantic's store of private attributes: `self._by_name` goes through its
        # __getattr__, which cost more than the lookup (a core rebuild makes 60,000 of them).
        by_name = self.__pydantic_private__["_by_name"]
        queue = by_name.get(name)
        if queue is not None:
            return queue
        if name.startswith(SKILLS_QUEUE_PREFIX):
            skills = name[len(SKILLS_QUEUE_PREFIX):].split("+")
            # Not validated as a configured queue: its name is as long as the message's skills
            # (valid Skills, checked at intake), past the 64 characters a configured name may have.
            queue = by_name[name] = QueueConfig.model_construct(name=name, skills={s: 1 for s in skills if s})
            return queue
        return by_name[self.default_queue]

    def has_queue(self, name: str) -> bool:
        return name in self._by_name and not name.startswith(SKILLS_QUEUE_PREFIX)

    def media_of(self, channel: str) -> str:
        return self.channel_media.get(channel, "chat")


def classify(config: RoutingConfig, message: InboundMessage, now: datetime) -> tuple[str, str, int]:
    """The queue for a new conversation, the rule that chose it, and the priority it gets."""
    name, reason, boost = choose_queue(config, message, now)
    return name, reason, priority_of(priority_parts(config, message, name, boost))


def priority_parts(config: RoutingConfig, message: InboundMessage, queue: str, boost: int) -> dict[str, int]:
    """Where a conversation's priority comes from: the message's own, its queue's, its rule's boost.

    Kept on the conversation so the desk can say why a message sent with 8 shows 10."""
    return {"message": message.priority, "queue": config.queue(queue).priority, "rule": boost}


def priority_of(parts: dict[str, int]) -> int:
    return min(10, sum(parts.values()))


def choose_queue(config: RoutingConfig, message: InboundMessage, now: datetime) -> tuple[str, str, int]:
    """The queue for a new conversation, the rule that chose it, and the rule's priority boost.

    Order: the API caller's hint (metadata["queue"]) naming a configured queue, then the rules in
    order, then the message's own skills (a skill queue), then the default queue. A queue outside
    its business hours hands over to its `closed_overflow` queue.
    """
    hint = message.metadata.get("queue")
    boost = 0
    if isinstance(hint, str) and config.has_queue(hint):
        name, reason = hint, "hint"
    else:
        rule_index, rule = next(((i, r) for i, r in enumerate(config.rules) if r.matches(message)), (None, None))
        if rule is not None:
            name, reason, boost = rule.queue, f"rule {rule_index}", rule.priority
        elif message.skills:
            name, reason = SKILLS_QUEUE_PREFIX + "+".join(sorted(set(message.skills))), "message skills"
        else:
            name, reason = config.default_queue, "default"
    queue = config.queue(name)
    if queue.hours is not None and not queue.hours.is_open(now) and queue.closed_overflow:
        name, reason = queue.closed_overflow, f"{reason}; {queue.name} closed"
        queue = config.queue(name)
    return queue.name, reason, boost


def rule_labels(config: RoutingConfig, message: InboundMessage) -> set[str]:
    """The labels of every label rule the message matches."""
    return {label for rule in config.label_rules if rule.matches(message) for label in rule.labels}


def load_config(path: Path | None) -> RoutingConfig:
    """The configuration in a YAML file; the built-in default (one queue, anyone) without one."""
    if path is None:
        return RoutingConfig()
    return RoutingConfig.model_validate(yaml.safe_load(path.read_text()) or {})


class WorkspaceConfigs:
    """Each workspace's routing configuration: its own where it has one, else the deployment's default
    (shared/routing_config.py says where they are stored)."""

    def __init__(self, default: RoutingConfig, own: dict[str, RoutingConfig] | None = None) -> None:
        self.default = default
        self.own = dict(own or {})

    def of(self, workspace_id: str) -> RoutingConfig:
        return self.own.get(workspace_id, self.default)

    def has_own(self, workspace_id: str) -> bool:
        return workspace_id in self.own

    def copy(self) -> "WorkspaceConfigs":
        """Each partition keeps its own: it applies changes in its own input order."""
        return WorkspaceConfigs(self.default, self.own)
