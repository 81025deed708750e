// The customer chat's start: the language first (every string goes through it), then the transcript
// kept from an earlier visit, and the socket at once for a returning customer.

import { loadI18n } from "/lib/i18n.js";
import { wireComposer } from "./composer.js";
import { createSocket } from "./connection.js";
import { handleFrame } from "./frames.js";
import { $, KEY_NAME, lang, load, params, state, t } from "./state.js";
import { wireSurvey } from "./survey.js";
import { render, setStatus, wireView } from "./view.js";

// Languages with a file in /locales/; a translator adds one by adding its file and its tag here.
export const LANGUAGES = ["en", "ru", "uk"];

async function start() {
  lang.i18n = await loadI18n({ url: (l) => `/locales/${l}.json`, supported: LANGUAGES, requested: params.get("lang") });
  document.documentElement.lang = lang.i18n.lang;
  lang.i18n.translate(document);
  wireView();
  wireComposer();
  wireSurvey();
  createSocket(handleFrame);
  $("name").value = load(KEY_NAME);
  state.forceScroll = true;
  render();
  if (state.session || state.messages.length) state.socket.start();   // a returning customer: resume at once
  else setStatus("idle", t("status.ready"));
  $("text").focus();
}

start();
