"""Reading mail: MIME into the facts the email channel needs, with no I/O.

Everything here is pure (bytes or strings in, values out) so that every charset, transfer
encoding and provider form can be unit-tested without a server. The stdlib `email` package does
the MIME work (structure, transfer encodings, RFC 2047 and RFC 2231 splitting); text is turned
from bytes into Unicode by `charsets.decode`, never by Python's codec registry alone, which lacks
labels mailers use (windows-874) and reads others unlike mail readers (iso-8859-1, shift_jis).
beautifulsoup4 turns HTML-only mail into readable text.
"""

import base64
import email
import email.policy
import hashlib
import re
import urllib.parse
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.header import decode_header
from email.message import EmailMessage, Message
from email.parser import Parser
from email.utils import parseaddr

from bs4 import BeautifulSoup, Comment, NavigableString
from bs4.dammit import EncodingDetector

from services.intake.channels import charsets

MSG_ID = re.compile(r"<([^<>\s]+)>")
# Our reply Message-IDs: <hex message id>.t<base32 thread key>@domain (see reply_message_id).
HEX_ID = re.compile(r"[0-9a-f]{32}")
REPLY_ID = re.compile(r"<[0-9a-f]{32}\.t([a-z2-7]+)@[^<>\s]+>")
# "Re:", "RE:", "Re[2]:" and the German/Scandinavian "AW:"/"SV:" that mail clients put before a subject.
REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv)\s*(\[\d+\])?\s*:", re.IGNORECASE)
ATTRIBUTION = re.compile(r"^On\s.*\swrote:$", re.DOTALL)
# Blocks get a blank line around them; lines (list items, table rows) just start a new line.
LINE_TAGS = ["li", "tr"]
BLOCK_TAGS = ["p", "div", "table", "ul", "ol", "blockquote", "pre", "hr",
              "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header", "footer"]
BULK_PRECEDENCE = {"bulk", "junk", "list"}
BOUNCE_SENDERS = {"mailer-daemon", "postmaster"}
MAX_THREAD_ID_CHARS = 256


class MailError(ValueError):
    """A mail that cannot become a message (no sender address, no MIME at all)."""


@dataclass(frozen=True)
class MailFile:
    """A file that came with a mail, still in hand (not stored yet)."""

    filename: str | None
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Bounce:
    """A delivery status notification about one of our own mails."""

    original_message_id: str
    reason: str


@dataclass
class ParsedMail:
    """What the channel needs of one mail, whichever way it arrived (SMTP, raw MIME, parsed form)."""

    headers: Message
    message_id: str | None  # "<id@host>" form, as in the header
    in_reply_to: str | None
    references: list[str]
    subject: str
    from_name: str | None
    from_address: str | None
    to: list[str]
    text: str
    # sha256 of what arrived: stands in for a missing Message-ID so a resend still dedupes.
    fingerprint: str
    files: list[MailFile] = field(default_factory=list)
    bounce: Bounce | None = None

    @property
    def provider_id(self) -> str:
        """The Message-ID, or one derived from the content when the mail has none."""
        return self.message_id or f"<{self.fingerprint[:40]}@switchyard.invalid>"


# --- headers -------------------------------------------------------------------------------


def message_ids(value: object) -> list[str]:
    """The msg-ids in a Message-ID / In-Reply-To / References header, each as "<id>"."""
    if value is None:
        return []
    text = str(value)
    found = [f"<{m}>" for m in MSG_ID.findall(text)]
    if not found and text.strip() and " " not in text.strip():
        found = [f"<{text.strip()}>"]  # some mailers leave the angle brackets out
    return found


def thread_id_for(message_id: str, in_reply_to: str | None, references: list[str]) -> str:
    """Stateless thread key: the root of References, else In-Reply-To, else the mail's own id.

    A root that is one of our replies' Message-IDs names its thread itself: a client that answers
    with In-Reply-To alone (no References) still lands in the conversation."""
    root = references[0] if references else in_reply_to or message_id
    from_reply = thread_of_reply_id(root)
    if from_reply is not None:
        return from_reply
    bare = root.strip("<>")
    if len(bare) > MAX_THREAD_ID_CHARS:
        return "sha256:" + hashlib.sha256(bare.encode()).hexdigest()
    return bare


def reply_message_id(message_id: str, thread_id: str, domain: str) -> str:
    """The Message-ID of our reply: our message id, then the thread key in base32 ("t" marks it).

    An id that is not 32 hex digits (an auto-reply's "auto:<event>") is hashed to 32: a msg-id
    allows no ":", and the same message must keep the same Message-ID when it is sent again."""
    local = message_id if HEX_ID.fullmatch(message_id) else hashlib.sha256(message_id.encode()).hexdigest()[:32]
    token = base64.b32encode(thread_id.encode()).decode().rstrip("=").lower()
    return f"<{local}.t{token}@{domain}>"


def thread_of_reply_id(msg_id: str) -> str | None:
    """The thread key carried by one of our reply Message-IDs, or None for any other id."""
    match = REPLY_ID.fullmatch(msg_id)
    if match is None:
        return None
    token = match.group(1).upper()
    try:
        thread_id = base64.b32decode(token + "=" * (-len(token) % 8)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    # Our thread keys are at most MAX_THREAD_ID_CHARS (a longer root is hashed): a longer one is forged.
    return thread_id if 0 < len(thread_id) <= MAX_THREAD_ID_CHARS else None


def reply_subject(subject: str | None) -> str:
    """"Re: <subject>", without stacking a second "Re:"."""
    subject = " ".join((subject or "").split())
    if not subject:
        return "Re: (no subject)"
    return subject if REPLY_PREFIX.match(subject) else f"Re: {subject}"


def _header(msg: Message, name: str) -> str | None:
    """A header as text; a header the registry cannot parse still gives its raw text."""
    try:
        value = msg.get(name)
    except (ValueError, IndexError, TypeError):
        raw = dict(msg.raw_items()).get(name) if hasattr(msg, "raw_items") else None
        return str(raw) if raw is not None else None
    return None if value is None else str(value)


def _raw_headers(msg: Message, name: str) -> list[str]:
    """Every `name` header as it came (encoded words and 8-bit bytes still in it), unfolded.

    Read raw because the stdlib decodes encoded words with Python's codecs only: an unknown
    charset (windows-874) or a strict one (iso-8859-1 for windows-1252) would lose the text."""
    found = [str(value) for key, value in msg.raw_items() if key.lower() == name.lower()]
    return [re.sub(r"\r?\n(?=[ \t])", "", value) for value in found]


def decode_words(text: str) -> str:
    """Header text with its RFC 2047 encoded words decoded through the charset table.

    Raw 8-bit bytes (which the parser keeps as surrogate escapes) are read as UTF-8 when they are,
    else as the bytes' likeliest legacy charset, as mail readers do with unlabelled headers."""
    try:
        chunks = decode_header(text)
    except HeaderParseError:  # a broken encoded word (bad base64): show the header as it came
        chunks = [(text, None)]
    return "".join(_chunk_text(chunk, label) for chunk, label in chunks)


def _chunk_text(chunk: bytes | str, label: str | None) -> str:
    if label is not None and isinstance(chunk, bytes):  # an encoded word's bytes
        # RFC 2231 section 5 lets an encoded word name its language: "=?utf-8*en?Q?...?=".
        return charsets.decode(chunk, label.split("*")[0])
    # decode_header hands unencoded text back as raw-unicode-escape bytes when encoded words surround it.
    return _raw_text(chunk if isinstance(chunk, str) else chunk.decode("raw-unicode-escape"))


def _raw_text(text: str) -> str:
    """Text parsed from bytes with its 8-bit bytes as surrogate escapes, read as a mail reader would."""
    if not any("\udc80" <= char <= "\udcff" for char in text):
        return text
    return charsets.decode(text.encode("utf-8", "surrogateescape"))


def _decoded_header(msg: Message, name: str) -> str:
    values = _raw_headers(msg, name)
    return " ".join(decode_words(values[0]).split()) if values else ""


def _sender(msg: Message) -> tuple[str | None, str | None]:
    """(display name, lowercased address) of From."""
    raw = _raw_headers(msg, "From")
    if not raw or not raw[0].strip():
        return None, None
    # The address is parsed before the name is decoded: a decoded name may hold "<", "," or "@".
    name, address = parseaddr(raw[0])
    address = _raw_text(address).strip().lower() or None
    if address is not None and "@" not in address:
        address = None
    return (" ".join(decode_words(name).split()) or None), address


def _addresses(msg: Message, name: str) -> list[str]:
    return [_raw_text(addr).lower() for _, addr in email.utils.getaddresses(_raw_headers(msg, name)) if addr]


def automated_reason(msg: Message, envelope_sender: str | None = None) -> str | None:
    """Why this mail was sent by a machine (auto-reply, bounce, list mail), or None for a person's mail.

    Such mail must never open a conversation nor be answered: two auto-responders answering each
    other would loop forever (RFC 3834).
    """
    auto_submitted = (_header(msg, "Auto-Submitted") or "").strip().lower()
    if auto_submitted and auto_submitted.split(";")[0].strip() != "no":
        return "auto-submitted"
    if (_header(msg, "Precedence") or "").strip().lower() in BULK_PRECEDENCE:
        return "bulk"
    if msg.get("List-Id") is not None or msg.get("List-Unsubscribe") is not None:
        return "mailing-list"
    if msg.get("X-Autoreply") is not None or msg.get("X-Autorespond") is not None:
        return "auto-reply"
    if msg.get_content_type() == "multipart/report":
        return "report"
    if (_header(msg, "Return-Path") or "").strip() == "<>" or envelope_sender == "":
        return "bounce"
    _, address = _sender(msg)
    if address is not None and address.split("@")[0] in BOUNCE_SENDERS:
        return "bounce"
    return None


# --- bodies --------------------------------------------------------------------------------


def _decoded_text(part: Message) -> str:
    """A text part's content in Unicode, whatever its charset and transfer encoding."""
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    label = part.get_content_charset()
    if label is None and part.get_content_type() == "text/html":
        label = EncodingDetector.find_declared_encoding(data, is_html=True)  # <meta charset>, as a browser reads it
    return charsets.decode(data, label)


def _filename(part: Message) -> str | None:
    """A part's file name (Content-Disposition filename, else Content-Type name), decoded.

    RFC 2231 names (filename*=windows-874''%C0...) and the RFC 2047 encoded words many mailers
    put in quoted names are read through the charset table; the stdlib would read them with
    Python's codecs and lose a name in a charset it does not know."""
    view = Message()  # the compat32 view: RFC 2231 values as (charset, language, bytes-as-latin-1)
    for key, value in part.raw_items():
        view[key] = _raw_text(str(value))  # raw 8-bit names (UTF-8 from most clients) read first: compat32 drops them
    value = view.get_param("filename", None, "content-disposition")
    if value is None:
        value = view.get_param("name", None, "content-type")
    if value is None:
        return None
    if isinstance(value, tuple):
        label, _, text = value
        return charsets.decode(text.encode("latin-1", "surrogateescape"), label or None).strip()
    return decode_words(value).strip()


def html_to_text(html: str) -> str:
    """HTML mail as readable plain text: blocks on lines of their own, links kept, no markup."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "head", "title"]):
        tag.decompose()
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    for string in soup.find_all(string=True):
        if string.find_parent("pre") is None:
            string.replace_with(NavigableString(re.sub(r"\s+", " ", str(string))))
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for link in soup.find_all("a", href=True):
        href, label = link["href"], link.get_text().strip()
        if href.startswith(("http:", "https:", "mailto:")) and label and href.removeprefix("mailto:") not in label:
            link.append(f" ({href})")
    for item in soup.find_all("li"):
        item.insert(0, "- ")
    for tag in soup.find_all(LINE_TAGS):
        tag.insert_before("\n")
    for cell in soup.find_all(["td", "th"]):
        cell.insert_after(" ")
    for tag in soup.find_all(BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    lines = [line.strip() for line in soup.get_text().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def strip_quoted_reply(text: str) -> str | None:
    """The new part of a reply, when the rest is reliably quoted history; else None.

    Reliable means: an "On <date>, <someone> wrote:" line (Gmail folds it over two lines) followed
    only by lines starting with ">" to the end. Anything less certain is left as it is.
    """
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("On "):
            continue
        for span in (1, 2):
            attribution = " ".join(part.strip() for part in lines[i:i + span])
            rest = [rest_line for rest_line in lines[i + span:] if rest_line.strip()]
            if ATTRIBUTION.match(attribution) and rest and all(r.lstrip().startswith(">") for r in rest):
                visible = "\n".join(lines[:i]).rstrip()
                return visible or None
    return None


def _body_parts(msg: EmailMessage) -> tuple[Message | None, Message | None]:
    return msg.get_body(preferencelist=("plain",)), msg.get_body(preferencelist=("html",))


def _body_text(plain: Message | None, html: Message | None) -> str:
    """The plain-text body if there is one, else the HTML body made readable."""
    if plain is not None:
        text = _decoded_text(plain)
        if text.strip():
            return text.replace("\r\n", "\n").strip()
    if html is not None:
        return html_to_text(_decoded_text(html))
    return ""


def _files(part: Message, skip: set[int], found: list[MailFile]) -> None:
    """Every part that is not the body, depth first: the mail's attachments and inline images."""
    if id(part) in skip:
        return
    if part.is_multipart():
        for sub in part.iter_parts():
            _files(sub, skip, found)
        return
    if part.get_content_maintype() == "message":
        inner = part.get_payload()
        data = inner[0].as_bytes() if isinstance(inner, list) else (part.get_payload(decode=True) or b"")
        found.append(MailFile(_filename(part) or "message.eml", "message/rfc822", data))
        return
    data = part.get_payload(decode=True) or b""
    found.append(MailFile(_filename(part), part.get_content_type(), data))


def _bounce(msg: EmailMessage) -> Bounce | None:
    """The Message-ID of ours that a delivery-status report says failed, and why."""
    if msg.get_content_type() != "multipart/report" or msg.get_param("report-type", "").lower() != "delivery-status":
        return None
    status_text, original = "", None
    for part in msg.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status":
            blocks = part.get_payload()
            status_text = "\n".join(str(block) for block in blocks) if isinstance(blocks, list) else _decoded_text(part)
        elif content_type in ("message/rfc822", "text/rfc822-headers") and original is None:
            if content_type == "message/rfc822":
                headers = part.get_payload(0)
            else:
                headers = Parser(policy=email.policy.default).parsestr(_decoded_text(part), headersonly=True)
            ids = message_ids(_header(headers, "Message-ID"))
            original = ids[0] if ids else None
    if original is None or not re.search(r"^Action:\s*failed", status_text, re.IGNORECASE | re.MULTILINE):
        return None
    diagnostic = re.search(r"^Diagnostic-Code:\s*(.+)$", status_text, re.IGNORECASE | re.MULTILINE)
    status = re.search(r"^Status:\s*(\S+)", status_text, re.IGNORECASE | re.MULTILINE)
    if diagnostic:
        reason = diagnostic.group(1).strip()
    else:
        reason = f"bounced (status {status.group(1) if status else 'unknown'})"
    return Bounce(original, reason[:500])


def _threading(msg: Message) -> tuple[str | None, str | None, list[str]]:
    own = message_ids(_header(msg, "Message-ID"))
    parent = message_ids(_header(msg, "In-Reply-To"))
    return (own[0] if own else None), (parent[0] if parent else None), message_ids(_header(msg, "References"))


def _mail(msg: EmailMessage, text: str, files: list[MailFile], fingerprint: str, bounce: Bounce | None) -> ParsedMail:
    message_id, in_reply_to, references = _threading(msg)
    name, address = _sender(msg)
    return ParsedMail(
        headers=msg, message_id=message_id, in_reply_to=in_reply_to, references=references,
        subject=_decoded_header(msg, "Subject"), from_name=name, from_address=address,
        to=_addresses(msg, "To"), text=text, fingerprint=fingerprint, files=files, bounce=bounce,
    )


def parse_mime(raw: bytes) -> ParsedMail:
    """A whole RFC 5322 mail (from SMTP, or a provider's raw-MIME post)."""
    if not raw.strip():
        raise MailError("the mail is empty")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    if not msg.keys():
        raise MailError("the mail has no headers")
    plain, html = _body_parts(msg)
    files: list[MailFile] = []
    if msg.get_content_type() != "multipart/report":
        _files(msg, {id(p) for p in (plain, html) if p is not None}, files)
    fingerprint = hashlib.sha256(raw).hexdigest()
    return _mail(msg, _body_text(plain, html), files, fingerprint, _bounce(msg))


def headers_from_pairs(pairs: list[tuple[str, str]]) -> EmailMessage:
    """A header-only message from (name, value) pairs, as Mailgun posts them in message-headers."""
    lines = []
    for name, value in pairs:
        name = re.sub(r"[^!-9;-~]", "", str(name))  # a header name is printable ASCII without ":"
        if name:
            lines.append(f"{name}: {' '.join(str(value).split())}")
    return Parser(policy=email.policy.default).parsestr("\n".join(lines) + "\n\n", headersonly=True)


def headers_from_text(text: str) -> EmailMessage:
    """A header-only message from a raw header block, as SendGrid's parsed post carries it in `headers`."""
    return Parser(policy=email.policy.default).parsestr(text.strip("\r\n") + "\n\n", headersonly=True)


def parse_fields(headers: EmailMessage, plain: str, html: str, files: list[MailFile]) -> ParsedMail:
    """A mail a provider already took apart: its headers, its text and HTML bodies, its files."""
    text = plain.replace("\r\n", "\n").strip() or (html_to_text(html) if html.strip() else "")
    fingerprint = hashlib.sha256(str(headers).encode() + plain.encode() + html.encode()).hexdigest()
    return _mail(headers, text, files, fingerprint, None)


# --- provider forms ------------------------------------------------------------------------


@dataclass
class Form:
    """A posted form: its text fields (raw bytes, first value wins), the charset each part names, its files."""

    fields: dict[str, bytes]
    files: dict[str, MailFile]
    labels: dict[str, str] = field(default_factory=dict)

    def raw(self, name: str) -> bytes | None:
        """A field's bytes, whether the provider posted it as a field or as a file part."""
        if name in self.fields:
            return self.fields[name]
        return self.files[name].data if name in self.files else None

    def text(self, name: str, charset: str | None = None) -> str | None:
        """A field as text, in `charset` if the caller knows it (SendGrid's `charsets`), else in the
        charset its part names, else the form's `_charset_` (RFC 7578 section 4.6), else UTF-8 or a guess."""
        value = self.fields.get(name)
        if value is None:
            return None
        default = self.fields.get("_charset_", b"").decode("ascii", errors="ignore") or None
        return charsets.decode(value, charset or self.labels.get(name) or default)


def read_form(content_type_header: str, body: bytes) -> Form:
    """A multipart/form-data or urlencoded body, parsed without losing a byte of the files."""
    content_type = content_type_header.split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        try:
            pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise MailError("the form is not UTF-8") from None
        fields: dict[str, bytes] = {}
        for name, value in pairs:
            fields.setdefault(name, value.encode())
        return Form(fields, {})
    if content_type != "multipart/form-data":
        raise MailError(f"expected multipart/form-data or a urlencoded form, got {content_type or 'no content type'!r}")
    # The stdlib MIME parser reads form-data too: the body is a multipart with the request's boundary.
    envelope = f"Content-Type: {content_type_header}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.message_from_bytes(envelope + body, policy=email.policy.HTTP)
    if not msg.is_multipart() or msg.defects and not list(msg.iter_parts()):
        raise MailError("the multipart form could not be parsed (boundary missing or wrong)")
    form = Form({}, {})
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        data = part.get_payload(decode=True) or b""
        filename = _filename(part)
        if filename is not None:
            form.files.setdefault(name, MailFile(filename, part.get_content_type(), data))
        elif name not in form.fields:
            form.fields[name] = data
            if part.get_content_charset():  # RFC 7578 section 4.4: a part may name its charset
                form.labels[name] = part.get_content_charset()
    return form
