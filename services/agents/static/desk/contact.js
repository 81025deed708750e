// The contact panel beside the open conversation: the contact's identities on every channel, its
// attributes (edited with PATCH /v1/contacts/{id}), its labels, and its earlier conversations (opened
// read-only). Read again whenever a conversation is opened and when a new conversation of the same
// contact arrives. The same answer gives the transcript the contact's earlier messages (historyOf):
// one read per open serves both.

import { api, enc } from "./api.js";
import { $, el } from "./dom.js";
import { fmtTime } from "./format.js";
import { t } from "./i18n.js";
import { openPeek, statusWord } from "./peek.js";
import { render, select } from "./render.js";
import { state } from "./state.js";

const NARROW = "(max-width: 760px)";
const ATTRIBUTE_RE = /^[a-z][a-z0-9_]{0,31}$/;
let open = null;     // null: the default for the width (shown beside wide desks, collapsed on phones)
let drawn = null;    // the contact data last drawn (inputs are not redrawn under the agent's fingers)
let fetching = null;
const askedFor = new Set();  // conversations the panel read the contact again for (once each)

// Earlier messages of the same person on any channel (merged by email or phone), for the transcript: from
// the contact as read for this conversation (read again on every open, so a conversation resolved
// since, with its survey, shows); none until that answer is in.
export function historyOf(conv) {
  const loaded = state.contact;
  return loaded && loaded.key === `${conv.conversation_id}|${conv.contact_id}` && loaded.history ? loaded.history : [];
}

function current() {
  const entry = state.selected ? state.convs.get(state.selected) : null;
  return entry && !state.peek ? entry.conv : null;
}

function isOpen() { return open ?? !window.matchMedia(NARROW).matches; }

async function load(conv) {
  const key = `${conv.conversation_id}|${conv.contact_id}`;
  fetching = key;
  try {
    const data = await api("GET", `/v1/contacts/${enc(conv.contact_id)}`);
    // The transcript shows the contact's other conversations above this one: kept with the answer.
    const history = (data.messages || []).filter((m) => m.conversation_id !== conv.conversation_id);
    state.contact = { key, id: conv.contact_id, data, error: "", history };
  } catch (e) {
    state.contact = { key, id: conv.contact_id, data: null, error: e.status === 404 ? t("contact.unknown") : e.message };
  } finally {
    if (fetching === key) fetching = null;
  }
  render();
}

// A conversation of this contact that the panel does not list yet arrived: read the contact again.
function missesAConversation(conv) {
  const data = state.contact && state.contact.data;
  if (!data) return false;
  const listed = new Set((data.conversations || []).map((c) => c.conversation_id));
  const missing = [...state.convs.values()].map((e) => e.conv)
    .filter((c) => c.contact_id === conv.contact_id && !listed.has(c.conversation_id) && !askedFor.has(c.conversation_id));
  missing.forEach((c) => askedFor.add(c.conversation_id));
  return missing.length > 0;
}

export function renderContact() {
  const conv = current();
  const shown = !!conv && !!conv.contact_id;
  $("contact-toggle").hidden = !shown;
  $("contact-toggle").setAttribute("aria-expanded", String(shown && isOpen()));
  $("contact-pane").hidden = !shown || !isOpen();
  $("desk-view").classList.toggle("has-contact", shown && isOpen() && !window.matchMedia(NARROW).matches);
  if (!shown) return;
  const key = `${conv.conversation_id}|${conv.contact_id}`;
  const stale = !state.contact || state.contact.key !== key || missesAConversation(conv);
  if (stale && fetching !== key) {
    if (!state.contact || state.contact.key !== key) state.contact = { key, id: conv.contact_id, data: null, error: "" };
    load(conv);
  }
  if (drawn !== state.contact) draw(conv);
}

function section(title, ...children) {
  return el("section", { class: "contact-section" }, el("h3", { text: title }), ...children);
}

function draw(conv) {
  drawn = state.contact;
  const { data, error } = state.contact;
  const body = $("contact-body");
  $("contact-title").textContent = (data && data.name) || (conv.contact && conv.contact.name) || t("contact.title");
  if (!data) {
    body.replaceChildren(el("p", { class: "contact-muted", text: error || t("common.loading") }));
    return;
  }
  const identities = [
    ...(data.identities || []).map((i) => [i.channel, i.address]),
    ...(data.emails || []).map((e) => ["email", e]), ...(data.phones || []).map((p) => ["phone", p]),
  ];
  body.replaceChildren(
    section(t("contact.channels"), el("ul", { class: "identities", "data-testid": "contact-identities" },
      ...identities.map(([kind, value]) => el("li", { "data-channel": kind },
        el("span", { class: "chip", text: kind }), el("span", { class: "identity", text: value }))))),
    section(t("contact.attributes"), attributeList(data), attributeForm()),
    section(t("contact.labels"), labelsForm(data)),
    section(t("contact.earlier"), earlier(data, conv)),
    el("p", { id: "contact-status", class: "contact-muted", role: "status", "data-testid": "contact-status" }),
  );
}

function attributeList(data) {
  const entries = Object.entries(data.attributes || {}).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return el("p", { class: "contact-muted", text: t("contact.no_attributes") });
  return el("dl", { class: "attributes", "data-testid": "contact-attributes" }, ...entries.flatMap(([name, value]) => [
    el("dt", { text: name }),
    el("dd", {}, el("span", { text: value }),
       el("button", { type: "button", class: "link", "data-remove": name, "aria-label": t("contact.remove_label", { name }), text: t("contact.remove") })),
  ]));
}

function attributeForm() {
  return el("form", { id: "attribute-form", class: "attribute-form", autocomplete: "off", novalidate: "" },
    el("label", {}, t("contact.name"), el("input", { id: "attribute-name", "data-testid": "attribute-name", maxlength: "32",
                                           placeholder: t("contact.name_placeholder"), spellcheck: "false", autocapitalize: "off" })),
    el("label", {}, t("contact.value"), el("input", { id: "attribute-value", "data-testid": "attribute-value", maxlength: "500",
                                            placeholder: t("contact.value_placeholder") })),
    el("button", { type: "submit", "data-testid": "attribute-save", text: t("contact.set") }));
}

function labelsForm(data) {
  return el("form", { id: "contact-labels-form", class: "attribute-form", autocomplete: "off" },
    el("label", { class: "grow" }, t("contact.comma_separated"),
       el("input", { id: "contact-labels", "data-testid": "contact-labels", value: (data.labels || []).join(", "),
                     maxlength: "1400", spellcheck: "false" })),
    el("button", { type: "submit", "data-testid": "contact-labels-save", text: t("common.save") }));
}

function earlier(data, conv) {
  const others = (data.conversations || []).filter((c) => c.conversation_id !== conv.conversation_id);
  if (!others.length) return el("p", { class: "contact-muted", text: t("contact.first_one") });
  return el("ul", { class: "earlier", "data-testid": "contact-conversations" }, ...others.map((c) =>
    el("li", {}, el("button", { type: "button", class: "conv", "data-open": c.conversation_id },
      el("span", { class: "conv-meta" }, el("span", { class: "chip", text: c.channel }), el("span", { text: statusWord(c.status) }),
         el("time", { datetime: c.last_message_at || c.created_at, text: fmtTime(c.last_message_at || c.created_at) })),
      el("span", { class: "conv-preview", text: firstText(data, c.conversation_id) })))));
}

function firstText(data, conversationId) {
  const first = (data.messages || []).find((m) => m.conversation_id === conversationId && m.direction === "inbound");
  return first ? first.text : "";
}

function say(text) { const status = $("contact-status"); if (status) status.textContent = text; }

async function patch(body, done) {
  const contact = state.contact;
  if (!contact || !contact.data) return;
  say(t("common.saving"));
  try {
    const data = await api("PATCH", `/v1/contacts/${enc(contact.id)}`, body);
    state.contact = { ...contact, data };
    render();
    say(done);
  } catch (e) {
    say(e.message);
  }
}

function onSubmit(e) {
  e.preventDefault();
  if (e.target.id === "attribute-form") {
    const name = $("attribute-name").value.trim(), value = $("attribute-value").value.trim();
    if (!ATTRIBUTE_RE.test(name)) { say(t("contact.name_rule")); return; }
    if (!value) { say(t("contact.value_needed")); return; }
    patch({ attributes: { [name]: value } }, t("contact.saved", { name }));
  } else if (e.target.id === "contact-labels-form") {
    const labels = $("contact-labels").value.split(",").map((l) => l.trim()).filter(Boolean);
    patch({ labels }, t("contact.labels_saved"));
  }
}

function onClick(e) {
  const remove = e.target.closest("[data-remove]");
  if (remove) { patch({ attributes: { [remove.getAttribute("data-remove")]: null } }, t("contact.removed")); return; }
  const item = e.target.closest("[data-open]");
  if (!item || !state.contact || !state.contact.data) return;
  const id = item.getAttribute("data-open");
  if (state.convs.has(id)) { select(id); return; }
  const data = state.contact.data;
  const conv = data.conversations.find((c) => c.conversation_id === id);
  if (conv) openPeek(conv, data.messages.filter((m) => m.conversation_id === id));
}

export function wireContact() {
  $("contact-body").addEventListener("submit", onSubmit);
  $("contact-body").addEventListener("click", onClick);
  $("contact-toggle").addEventListener("click", () => { open = !isOpen(); render(); });
  // Crossing the phone width goes back to that width's default: a panel open beside a wide desk must
  // not cover the conversation once the window is narrow.
  window.matchMedia(NARROW).addEventListener("change", () => { open = null; render(); });
  $("contact-close").addEventListener("click", () => { open = false; render(); $("contact-toggle").focus(); });
}
