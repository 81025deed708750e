"""Live surge (incident) detection over inbound customer messages: many different customers reporting
the same problem at once, across channels and languages. Pure: no I/O; the clock is each message's
`at` (and `tick(now)`'s argument). Per workspace state only: workspaces never share anything.

Method (parameters: `SurgeParams`, chosen by measurement with evaluate.py on generated days):

1. Text. A message with fewer than `min_words` (2) words of three letters or more, once greetings,
   thanks and fillers are left out ("hi", "спасибо", "any news?", "ну що там?"), is ignored. The rest
   becomes one vector of two halves, weighted so that a dot product is
   (1 - `lexical`) x cos(embeddings) + `lexical` x cos(n-grams), `lexical` = 0.5:
   - its embedding (services/assist/search/embedding.py, WordLlama, 256 dimensions, first 300
     characters), *centered*: the workspace's running mean of its script (Latin or Cyrillic) is
     subtracted and the row renormalized. Raw, every Cyrillic text is ~0.8 similar to every other
     (all topics' centroids alike); centered, one topic's Russian and Ukrainian centroids are
     0.35-0.62 similar and another topic's under 0.26. English to Russian/Ukrainian stays weak
     (0.05-0.3 for the same topic): the model is not really cross-lingual.
   - its character 4-grams (of `<word>`, hashed into 1,024 buckets) weighted by their inverse
     document frequency in the workspace's traffic: a word rare in the background ("сайт", "502",
     "Odesa") weighs most, and inflections and Russian/Ukrainian cognates share n-grams.
2. Online clustering. The vector joins the nearest micro-cluster whose centroid (the mean of all
   its members) it matches at cosine >= `join` (0.6), else starts a new one: one product with the
   matrix of centroids. Members stay in the sliding window `window` (30 min) at most `max_window`;
   leaving it, they are folded into their cluster's *history*: an exponentially decayed count
   (half-life `half_life`, 12 h); a member linked to an incident stays out of it (an incident is not
   what normal looks like, and a problem back tomorrow is still news). At most `max_clusters`; when full, the cluster with the least
   history and nobody in the window (and in no incident) is replaced.
3. Surge test, on the message's *group*: its cluster and the clusters within `group` (0.3) of it
   that are in no open incident. n = the group's distinct conversations in the window (one chatty
   customer counts once). expected = the long-run share of the traffic of everything within
   `baseline` (0.25) of the cluster (its history over all history, floored at `min_share`, 0.1 %, so a
   brand-new topic has a small baseline) x the window's other messages. Comparing shares, not
   rates, cancels the daily shape: a topic that rises with the whole morning is no surge; and the
   broad baseline neighbourhood keeps a common topic's rarer phrasing from looking new. An incident
   opens when n >= `min_conversations` (4), n >= `ratio` (8) x expected and the Poisson tail
   P(N >= n | `tolerance` x expected) <= `alpha` (1e-4): `tolerance` 2 says a topic may double by
   nature (the "where is my order" morning rush) before its count is surprising. Nothing opens
   before `warmup` (1,000) messages have gone into history. `tolerance` and `alpha` trade false
   alerts for sensitivity: at `tolerance` 1 the false alerts (the morning rush's among them) rise
   from about none to 0.4-0.7 a day, for a slightly earlier alert on the slowest bursts and the one
   small burst in 200 that 2 misses (bench/surges.py prints both).
4. Matching. An open incident links each new message whose cluster is one of its clusters or whose
   vector is within `link` (0.45) of its centroid (the mean of its linked messages); a conversation
   is linked once. A group surging (n >= `min_joining`, 2, and the ratio) while an incident opened
   within the window is within `merge` (0.1) of it joins that incident instead of opening another:
   the same problem in the other script, which the embedding bridges weakly but which surges at the
   same time. Within the same script the bar is `merge_same` (0.2): two problems in one language
   are not merged. `IncidentUpdated` goes out at most once per `update_every` (30 s) per incident,
   sooner after `update_links` (10) new conversations; an incident with no link for `quiet` (30 min)
   is resolved (`tick()` resolves them when no message comes).

Cost: two matrix-vector products over the centroids per message (numpy's own loop: a multithreaded
BLAS wakes its threads for each, which costs more than the product) plus the window's expiry; about
0.2 ms a message at a 2,000-message window, 3–8 times the embedding's own cost (bench/surges.py).

Memory, per workspace (bounded by `max_clusters`, `max_window`, `max_incidents`, `max_linked`; at most
`max_workspaces`, the longest idle dropped): three float32 arrays of 1,280 columns per cluster slot
(growing by doubling) and one vector per window member, 5,120 bytes each: by those sizes about 18 MB
for a busy workspace (bench/surges.py's: a 2,000-message window, ~300 clusters in 512 slots) and 41 MB
at the caps (1,024 slots, 5,000 members).

Messages are expected in about arrival order (the window is a queue).

Restart: `snapshot()` returns the whole state (plain data and numpy arrays, picklable) and
`restore()` takes it back; or replay the last day of inbound messages into a new detector:
incident ids are the workspace and the id of the message that opened it, so a replay finds the
same ids (an incident resolved meanwhile resolves again, its `at` in the past).
"""

import copy
import math
import re
import zlib
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from services.assist.search.embedding import DIMENSIONS, embed


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A customer's message as the detector sees it."""
    id: str
    workspace_id: str
    conversation_id: str
    channel: str
    text: str
    at: datetime


@dataclass(frozen=True, slots=True)
class SurgeParams:
    """The detector's knobs (the module's docstring says what each does); the defaults are the measured choice."""
    join: float = 0.6
    group: float = 0.3
    link: float = 0.45
    merge: float = 0.1
    merge_same: float = 0.2
    baseline: float = 0.25
    min_joining: int = 2
    lexical: float = 0.5
    window: timedelta = timedelta(minutes=30)
    half_life: timedelta = timedelta(hours=12)
    min_conversations: int = 4
    ratio: float = 8.0
    alpha: float = 1e-4
    tolerance: float = 2.0
    min_share: float = 0.001
    warmup: int = 1000
    quiet: timedelta = timedelta(minutes=30)
    update_every: timedelta = timedelta(seconds=30)
    update_links: int = 10
    min_words: int = 2
    max_clusters: int = 1000
    max_window: int = 5000
    max_incidents: int = 50
    max_linked: int = 10_000
    max_workspaces: int = 1_000


@dataclass(frozen=True, slots=True)
class IncidentDetected:
    incident_id: str
    workspace_id: str
    at: datetime
    sample: str  # the text of the message that opened it
    conversations: int
    expected: float  # the group's expected count in the window when it was raised


@dataclass(frozen=True, slots=True)
class IncidentUpdated:
    incident_id: str
    workspace_id: str
    at: datetime
    conversations: int


@dataclass(frozen=True, slots=True)
class IncidentResolved:
    incident_id: str
    workspace_id: str
    at: datetime  # its last link + quiet
    conversations: int


@dataclass(frozen=True, slots=True)
class ConversationLinked:
    incident_id: str
    workspace_id: str
    conversation_id: str
    message_id: str


Change = IncidentDetected | IncidentUpdated | IncidentResolved | ConversationLinked

WORD = re.compile(r"[^\W\d_]{3,}")
FILLER_WORDS = """
hi hello hey there good morning afternoon evening thanks thank you much lot please pls okay any news
anyone somebody what the and for are is this still bye
привет здравствуйте здравствуй добрый доброе день утро вечер спасибо большое пожалуйста есть новости что там
алло тут вы кто нибудь ладно хорошо понятно пока
привіт вітаю добрий доброго день ранку вечір дякую дуже будь ласка новини що там алло тут ви хтось добре
зрозуміло бувай
"""
FILLERS = frozenset(FILLER_WORDS.split())
LEXICAL = 1024  # hashed character 4-gram buckets
FEATURES = DIMENSIONS + LEXICAL


def substantive(text: str, min_words: int = 2) -> bool:
    """Whether a text says something beyond greetings, thanks and fillers."""
    return len(words_of(text)) >= min_words


def words_of(text: str) -> list[str]:
    """The words of three letters or more that are not greetings, thanks or fillers, casefolded."""
    return [word for word in WORD.findall(text.casefold()) if word not in FILLERS]


def ngram_buckets(text: str) -> np.ndarray:
    """The distinct hashed character 4-grams of a text's words (padded: `<word>`): shared by
    inflections and by Russian and Ukrainian cognates ("интернет", "інтернет"), unlike the words."""
    buckets = set()
    for word in words_of(text):
        padded = f"<{word}>"
        for start in range(max(1, len(padded) - 3)):
            buckets.add(zlib.crc32(padded[start:start + 4].encode()) % LEXICAL)
    return np.fromiter(buckets, dtype=np.int64, count=len(buckets))


def similarities_to(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """matrix @ vector by numpy's own loop, not BLAS: a multithreaded BLAS wakes its threads for each
    product, which costs more than the product (0.5 ms against 0.03 ms for 500 x 1280 on 2 cores)."""
    return np.einsum("ij,j->i", matrix, vector)


def script_of(text: str) -> int:
    """0 for mostly Latin letters, 1 for mostly Cyrillic: the centering mean to use."""
    cyrillic = sum(1 for ch in text if "\u0400" <= ch <= "\u04ff")
    latin = sum(1 for ch in text if "a" <= ch.lower() <= "z")
    return 1 if cyrillic > latin else 0


def poisson_tail(n: int, expected: float) -> float:
    """P(N >= n) for N ~ Poisson(expected): summed upward from n above the mean (exact where it is tiny),
    else one minus the sum below n."""
    if n <= 0:
        return 1.0
    if n <= expected:
        return max(0.0, 1.0 - sum(math.exp(-expected + k * math.log(expected) - math.lgamma(k + 1)) for k in range(n)))
    log_term = -expected + n * math.log(expected) - math.lgamma(n + 1)
    total, k = 0.0, n
    while True:
        term = math.exp(log_term)
        total += term
        k += 1
        log_term += math.log(expected / k)
        if term < total * 1e-12 or k > n + 1000:
            return min(1.0, total)


@dataclass(slots=True)
class _Incident:
    id: str
    opened: datetime
    clusters: set[tuple[int, int]]  # (slot, generation)
    centroid_sum: np.ndarray
    conversations: set[str] = field(default_factory=set)  # the first `max_linked`; a later one may count twice
    linked: int = 0  # conversations linked: the count every event reports
    last_link: datetime | None = None
    last_update: datetime | None = None
    reported: int = 0  # the count in the last event sent
    scripts: list[int] = field(default_factory=lambda: [0, 0])  # linked conversations by script (Latin, Cyrillic)


@dataclass(slots=True)
class _Member:
    at: datetime
    slot: int
    generation: int
    conversation_id: str
    message_id: str
    script: int
    vector: np.ndarray
    linked: bool = False  # to an incident: then it stays out of the baseline


class _Workspace:
    """One workspace's clusters, window, baseline and incidents. The cluster arrays grow by doubling up
    to `max_clusters` rows, so a quiet workspace holds little."""

    def __init__(self, params: SurgeParams):
        size = min(64, params.max_clusters)
        self.centroids = np.zeros((size, FEATURES), dtype=np.float32)  # unit rows; zero = free slot
        self.sums = np.zeros((size, FEATURES), dtype=np.float32)  # window members' vector sums
        self.totals = np.zeros((size, FEATURES), dtype=np.float32)  # all members' vector sums (the centroid)
        self.history = np.zeros(size)  # decayed count of past members, scaled by exp((t - t0) / tau)
        self.generation = np.zeros(size, dtype=np.int64)
        self.conversations: list[Counter] = [Counter() for _ in range(size)]  # window members by conversation
        self.counts = np.zeros(size, dtype=np.int64)  # window members per cluster
        self.used = np.zeros(size, dtype=bool)
        self.document_frequency = np.zeros(LEXICAL, dtype=np.float64)  # of the hashed n-grams
        self.documents = 0.0
        self.window: deque[_Member] = deque()
        self.history_total = 0.0
        self.history_messages = 0
        self.t0: datetime | None = None
        self.means = np.zeros((2, DIMENSIONS), dtype=np.float64)  # running mean vector per script
        self.seen = np.zeros(2, dtype=np.int64)
        self.incidents: dict[str, _Incident] = {}
        self.last_seen: datetime | None = None


class SurgeDetector:
    """Groups inbound messages by similarity over a sliding window and raises incidents on surges."""

    def __init__(self, params: SurgeParams | None = None):
        self.params = params or SurgeParams()
        self.workspaces: dict[str, _Workspace] = {}
        self._tau = self.params.half_life.total_seconds() / math.log(2)

    def vector(self, text: str) -> np.ndarray | None:
        """The embedding of a substantive text (None for a greeting, a thanks, too little text)."""
        if not substantive(text, self.params.min_words):
            return None
        return embed([text[:300]])[0]

    def observe(self, message: InboundMessage, vector: np.ndarray | None = None) -> list[Change]:
        """One inbound message in; the incidents it opens, updates or links it to, and any that ended.
        `vector` is its embedding if the caller has it (a batch embed), else it is embedded here."""
        space = self._workspace(message.workspace_id)
        changes = self._expire(space, message.workspace_id, message.at)
        if vector is None:
            vector = self.vector(message.text)
        elif not substantive(message.text, self.params.min_words):
            vector = None
        if vector is not None:
            changes += self._place(space, message, self._features(space, message.text, vector))
        changes += self._updates(space, message.workspace_id, message.at)
        space.last_seen = message.at
        return changes

    def tick(self, now: datetime) -> list[Change]:
        """Resolves the incidents gone quiet and sends due updates when no message comes to do it."""
        changes: list[Change] = []
        for workspace_id, space in self.workspaces.items():
            changes += self._expire(space, workspace_id, now) + self._updates(space, workspace_id, now)
        return changes

    def snapshot(self) -> dict:
        """The whole state, as plain data and numpy arrays (a deep copy; picklable)."""
        return {"params": self.params, "workspaces": copy.deepcopy(self.workspaces)}

    def restore(self, snapshot: dict) -> None:
        """Takes back a `snapshot()` (its params included)."""
        self.params = snapshot["params"]
        self._tau = self.params.half_life.total_seconds() / math.log(2)
        self.workspaces = copy.deepcopy(snapshot["workspaces"])

    def open_incidents(self, workspace_id: str) -> dict[str, frozenset[str]]:
        """The workspace's open incidents and their linked conversations."""
        space = self.workspaces.get(workspace_id)
        return {} if space is None else {i.id: frozenset(i.conversations) for i in space.incidents.values()}

    # --- state ---

    def _workspace(self, workspace_id: str) -> _Workspace:
        space = self.workspaces.get(workspace_id)
        if space is None:
            if len(self.workspaces) >= self.params.max_workspaces:  # the longest idle goes
                idle = min(self.workspaces, key=lambda w: self.workspaces[w].last_seen or datetime.min)
                del self.workspaces[idle]
            space = self.workspaces[workspace_id] = _Workspace(self.params)
        return space

    def _features(self, space: _Workspace, text: str, vector: np.ndarray) -> np.ndarray:
        """The centered embedding and the IDF-weighted n-grams side by side, weighted so that the dot
        product of two is (1 - lexical) x their embeddings' cosine + lexical x their n-grams' cosine."""
        lexical = np.zeros(LEXICAL, dtype=np.float32)
        buckets = ngram_buckets(text)
        if buckets.size:
            lexical[buckets] = np.log((space.documents + 1) / (space.document_frequency[buckets] + 1)) + 0.1
            lexical /= float(np.linalg.norm(lexical))
            space.document_frequency[buckets] += 1
        space.documents += 1
        if space.documents > 20_000:  # a long-run frequency that still follows the traffic
            space.document_frequency /= 2
            space.documents /= 2
        weight = self.params.lexical
        return np.concatenate([math.sqrt(1 - weight) * self._center(space, text, vector), math.sqrt(weight) * lexical])

    def _center(self, space: _Workspace, text: str, vector: np.ndarray) -> np.ndarray:
        """The vector minus its script's running mean (common component removal), renormalized."""
        script = script_of(text)
        space.seen[script] += 1
        space.means[script] += (vector - space.means[script]) / min(space.seen[script], 2000)
        centered = vector - space.means[script] if space.seen[script] > 20 else vector
        norm = float(np.linalg.norm(centered))
        return (centered / norm).astype(np.float32) if norm > 1e-6 else vector.astype(np.float32)

    def _weight(self, space: _Workspace, at: datetime) -> float:
        """exp((at - t0) / tau): history counts scaled so that shares need no decaying step."""
        if space.t0 is None:
            space.t0 = at
        exponent = (at - space.t0).total_seconds() / self._tau
        if exponent > 200:  # rescale before floats overflow (after 200 time constants)
            scale = math.exp(-exponent)
            space.history *= scale
            space.history_total *= scale
            space.t0, exponent = at, 0.0
        return math.exp(exponent)

    def _forget(self, space: _Workspace, now: datetime) -> None:
        """Members older than the window leave it for their cluster's history (the oldest too, to make room
        for one more, at `max_window`)."""
        horizon = now - self.params.window
        while space.window and (space.window[0].at < horizon or len(space.window) >= self.params.max_window):
            member = space.window.popleft()
            weight = 0.0 if member.linked else self._weight(space, member.at)
            space.history_total += weight
            space.history_messages += 1
            if space.generation[member.slot] != member.generation:
                continue  # its cluster was evicted
            slot = member.slot
            space.sums[slot] -= member.vector
            space.history[slot] += weight
            space.counts[slot] -= 1
            counter = space.conversations[slot]
            counter[member.conversation_id] -= 1
            if counter[member.conversation_id] <= 0:
                del counter[member.conversation_id]

    def _slot_for(self, space: _Workspace, centered: np.ndarray) -> int:
        """The nearest cluster at `join` or better, else a new slot: free, grown, or the evicted one with
        the least history among those with nobody in the window and in no incident."""
        similarities = similarities_to(space.centroids, centered)
        best = int(np.argmax(similarities))
        if space.used[best] and similarities[best] >= self.params.join:
            return best
        free = np.flatnonzero(~space.used)
        if free.size:
            return int(free[0])
        if len(space.used) < self.params.max_clusters:
            return self._grow(space)
        candidates = space.counts == 0
        candidates[[slot for incident in space.incidents.values() for slot, _ in incident.clusters]] = False
        pool = np.flatnonzero(candidates) if candidates.any() else np.arange(len(space.used))
        slot = int(pool[np.argmin(space.history[pool])])
        space.generation[slot] += 1
        space.history[slot] = 0.0
        space.sums[slot] = 0.0
        space.totals[slot] = 0.0
        space.counts[slot] = 0  # its members still in the window are now of an old generation
        space.conversations[slot].clear()
        return slot

    def _grow(self, space: _Workspace) -> int:
        """Doubles the cluster arrays (up to `max_clusters`); the first new slot."""
        old = len(space.used)
        extra = min(old, self.params.max_clusters - old)
        space.centroids = np.vstack([space.centroids, np.zeros((extra, FEATURES), dtype=np.float32)])
        space.sums = np.vstack([space.sums, np.zeros((extra, FEATURES), dtype=np.float32)])
        space.totals = np.vstack([space.totals, np.zeros((extra, FEATURES), dtype=np.float32)])
        space.history = np.concatenate([space.history, np.zeros(extra)])
        space.generation = np.concatenate([space.generation, np.zeros(extra, dtype=np.int64)])
        space.counts = np.concatenate([space.counts, np.zeros(extra, dtype=np.int64)])
        space.used = np.concatenate([space.used, np.zeros(extra, dtype=bool)])
        space.conversations += [Counter() for _ in range(extra)]
        return old

    # --- one message ---

    def _place(self, space: _Workspace, message: InboundMessage, centered: np.ndarray) -> list[Change]:
        self._forget(space, message.at)
        slot = self._slot_for(space, centered)
        space.used[slot] = True
        space.sums[slot] += centered
        space.conversations[slot][message.conversation_id] += 1
        space.counts[slot] += 1
        space.totals[slot] += centered
        space.centroids[slot] = space.totals[slot] / max(float(np.linalg.norm(space.totals[slot])), 1e-6)
        member = _Member(message.at, slot, int(space.generation[slot]), message.conversation_id, message.id,
                         script_of(message.text), centered)
        space.window.append(member)
        incident = self._matching_incident(space, slot, centered)
        if incident is not None:
            return self._link(incident, message.workspace_id, member)
        return self._surge(space, message, slot)

    def _matching_incident(self, space: _Workspace, slot: int, centered: np.ndarray) -> _Incident | None:
        """The open incident owning this cluster, else the one nearest the vector within `link`."""
        key = (slot, int(space.generation[slot]))
        best, best_similarity = None, self.params.link
        for incident in space.incidents.values():
            if key in incident.clusters:
                return incident
            similarity = float(centered @ incident.centroid_sum) / max(float(np.linalg.norm(incident.centroid_sum)),
                                                                        1e-6)
            if similarity >= best_similarity:
                best, best_similarity = incident, similarity
        return best

    def _link(self, incident: _Incident, workspace_id: str, member: _Member) -> list[Change]:
        """Links a message's conversation to the incident, once per conversation."""
        member.linked = True
        incident.last_link = max(incident.last_link or member.at, member.at)
        if member.conversation_id in incident.conversations:
            return []
        incident.centroid_sum += member.vector
        incident.scripts[member.script] += 1
        incident.linked += 1
        if len(incident.conversations) < self.params.max_linked:
            incident.conversations.add(member.conversation_id)
        return [ConversationLinked(incident.id, workspace_id, member.conversation_id, member.message_id)]

    def _group(self, space: _Workspace, slot: int) -> tuple[np.ndarray, float]:
        """The clusters within `group` of this one (itself included), none of them in an incident; and
        the long-run share of the traffic of the clusters within `baseline` of it."""
        similarities = similarities_to(space.centroids, space.centroids[slot])
        members = np.flatnonzero((similarities >= self.params.group) & space.used)
        taken = {s for incident in space.incidents.values() for s, g in incident.clusters if space.generation[s] == g}
        history = float(space.history[similarities >= self.params.baseline].sum())
        return np.array([s for s in members if s not in taken] or [slot]), history / max(space.history_total, 1e-12)

    def _surge(self, space: _Workspace, message: InboundMessage, slot: int) -> list[Change]:
        """The surge test of the message's group (step 3), or its joining an incident (step 4)."""
        params = self.params
        if space.history_messages < params.warmup:
            return []
        group, share = self._group(space, slot)
        conversations = set().union(*(space.conversations[s].keys() for s in group))
        n = len(conversations)
        if n < min(params.min_conversations, params.min_joining):
            return []
        group_window = int(space.counts[group].sum())
        expected = max(share, params.min_share) * max(len(space.window) - group_window, 1)
        if n < params.ratio * expected:
            return []
        merged = self._merge_target(space, message.at, space.sums[group].sum(axis=0).astype(np.float64),
                                    space.window[-1].script)
        if merged is None and (n < params.min_conversations or
                               poisson_tail(n, expected * params.tolerance) > params.alpha):
            return []
        return self._open(space, message, group, expected, merged)

    def _open(self, space: _Workspace, message: InboundMessage, group: np.ndarray, expected: float,
              merged: _Incident | None) -> list[Change]:
        """A new incident of the group's window members, or them joining `merged`."""
        clusters = {(int(s), int(space.generation[s])) for s in group}
        if merged is not None:
            merged.clusters |= clusters
            incident, changes = merged, []
        else:
            if len(space.incidents) >= self.params.max_incidents:
                return []
            incident = _Incident(f"{message.workspace_id}:{message.id}", message.at, clusters, np.zeros(FEATURES))
            space.incidents[incident.id] = incident
            changes = []
        for member in space.window:  # the group's window members, the trigger among them, in arrival order
            if (member.slot, member.generation) in clusters:
                changes += self._link(incident, message.workspace_id, member)
        if merged is None:
            changes.insert(0, IncidentDetected(incident.id, message.workspace_id, message.at, message.text,
                                               incident.linked, round(expected, 3)))
            incident.last_update, incident.reported = message.at, incident.linked
        return changes

    def _merge_target(self, space: _Workspace, at: datetime, centroid_sum: np.ndarray,
                      script: int) -> _Incident | None:
        """The incident opened within the window nearest to this group's centroid: within `merge` if
        it is mostly of the other script (a language the embedding bridges weakly), else `merge_same`."""
        unit = centroid_sum / max(float(np.linalg.norm(centroid_sum)), 1e-6)
        best, best_margin = None, 0.0
        for incident in space.incidents.values():
            if at - incident.opened > self.params.window:
                continue
            similarity = float(unit @ incident.centroid_sum) / max(float(np.linalg.norm(incident.centroid_sum)), 1e-6)
            same = incident.scripts[script] * 2 >= sum(incident.scripts)
            margin = similarity - (self.params.merge_same if same else self.params.merge)
            if margin >= best_margin:
                best, best_margin = incident, margin
        return best

    # --- time ---

    def _expire(self, space: _Workspace, workspace_id: str, now: datetime) -> list[Change]:
        """Resolves the incidents with no link for `quiet`."""
        changes: list[Change] = []
        for incident in list(space.incidents.values()):
            ends = incident.last_link + self.params.quiet
            if now >= ends:
                del space.incidents[incident.id]
                changes.append(IncidentResolved(incident.id, workspace_id, ends, incident.linked))
        return changes

    def _updates(self, space: _Workspace, workspace_id: str, now: datetime) -> list[Change]:
        """An update per incident with new links, at most one per `update_every` unless `update_links` more."""
        changes: list[Change] = []
        for incident in space.incidents.values():
            count = incident.linked
            if count == incident.reported:
                continue
            if now - incident.last_update >= self.params.update_every or \
                    count - incident.reported >= self.params.update_links:
                incident.last_update, incident.reported = now, count
                changes.append(IncidentUpdated(incident.id, workspace_id, now, count))
        return changes
