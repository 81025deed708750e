// The customer chat's start: the language first (every string goes through it), then the transcript
// kept from an earlier visit, and the socket at once for a returning customer.

import { loadI18n } from "/lib/i18n.js";
import { wireChoices } from "./choices.js";
import { wireComposer } from "./composer.js";
import { createSocket } from "./connection.js";
import { handleFrame } from "./frames.js";
import { $, KEY_NAME, lang, load, params, state, t, workspace } from "./state.js";
import { wireOffline } from "./offline.js";
import { wireSurvey } from "./survey.js";
import { render, setStatus, wireView } from "./view.js";

// Languages with a file in /locales/; a translator adds one by adding its file and its tag here.
export const LANGUAGES = ["en", "ru", "uk"];

// The workspace's chat (title, greeting, language, colour, opening hours); none when it cannot be read.
async function workspaceSettings() {
  try {
    const response = await fetch(`/v1/chat/settings?${new URLSearchParams({ workspace })}`, { cache: "no-cache" });
    return response.ok ? await response.json() : {};
  } catch (e) {
    return {};
  }
}

function applySettings(settings) {
  if (settings.title) { $("title").textContent = settings.title; document.title = settings.title; }
  if (settings.help_center_url) {  // the workspace's articles, in the chat's language, in a new tab
    const link = $("help-center");
    link.href = `${settings.help_center_url}?${new URLSearchParams({ lang: lang.i18n.lang })}`;
    link.hidden = false;
  }
  if (settings.greeting) state.greeting = settings.greeting;
  if (settings.accent_color) {
    for (const name of ["--accent", "--in"]) document.documentElement.style.setProperty(name, settings.accent_color);
  }
}

async function start() {
  // In the widget's frame the panel is the page: no side borders, the whole width.
  if (params.get("embed")) document.body.classList.add("embedded");
  const settings = await workspaceSettings();
  lang.i18n = await loadI18n({ url: (l) => `/locales/${l}.json`, supported: LANGUAGES, requested: params.get("lang"),
                               otherwise: settings.language });
  document.documentElement.lang = lang.i18n.lang;
  lang.i18n.translate(document);
  applySettings(settings);
  wireView();
  wireComposer();
  wireSurvey();
  wireChoices();
  wireOffline(settings);
  createSocket(handleFrame);
  $("name").value = load(KEY_NAME);
  state.forceScroll = true;
  render();
  if (state.session || state.messages.length) state.socket.start();   // a returning customer: resume at once
  else setStatus("idle", t("status.ready"));
  $("text").focus();
}

start();
