// The desk's language: every string it shows goes through t() from services/agents/static/locales/<lang>.json
// (the shared /lib/i18n.js picks and loads it), and times are formatted in that locale and the
// browser's time zone. Chosen, first found: `?lang=`, the header's picker (remembered in
// localStorage), the browser's languages (navigator.languages), English.

import { I18n, loadI18n } from "/lib/i18n.js";
import { load, store } from "./dom.js";

export const LANGUAGES = ["en", "ru", "uk"];
const KEY_LANG = "switchyard.desk.lang";

// English keys until the start has loaded the file (nothing is drawn before that).
export const lang = { i18n: new I18n("en", {}, {}) };
export const t = (key, vars) => lang.i18n.t(key, vars);

// Made once per language: fmtTime (format.js) runs hundreds of times per frame on a full desk
// (bench/desk.py), and building a formatter per call (toLocaleString) cost most of that.
export const clock = { today: null, otherDay: null };

function makeClock(tag) {
  clock.today = new Intl.DateTimeFormat(tag, { hour: "2-digit", minute: "2-digit" });
  clock.otherDay = new Intl.DateTimeFormat(tag, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}
makeClock("en");

/** Loads the language, sets <html lang>, translates the markup ([data-i18n], [data-i18n-attr]). */
export async function startI18n() {
  const requested = new URLSearchParams(location.search).get("lang") || load(KEY_LANG) || null;
  lang.i18n = await loadI18n({ url: (l) => `/locales/${l}.json`, supported: LANGUAGES, requested });
  document.documentElement.lang = lang.i18n.lang;
  makeClock(lang.i18n.lang);
  lang.i18n.translate(document);
  return lang.i18n.lang;
}

/** The picker's choice: remembered, then the desk starts again in it (the sign-in, the open
 * conversation and drafts are kept in storage, so a reload is the whole switch and nothing is left
 * half-translated). An address's `?lang=` would override the choice: it goes. */
export function chooseLanguage(tag) {
  if (!LANGUAGES.includes(tag) || tag === lang.i18n.lang) return;
  store(KEY_LANG, tag);
  const params = new URLSearchParams(location.search);
  params.delete("lang");
  const rest = params.toString();
  history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  location.reload();
}
