// Translations and locale formatting for the pages (the customer chat; the desk can use it too).
// Nothing here knows about a page: it picks a language, loads its JSON file and gives t().
//
//   const i18n = await loadI18n({ url: (lang) => `/locales/${lang}.json`, supported: ["en", "ru"],
//                                 requested: params.get("lang") });
//   i18n.t("status.connected"); i18n.t("queue.position", { position: 3 });
//   i18n.translate(document);   // [data-i18n="key"] gets its text, [data-i18n-attr="placeholder:key;title:key"] its attributes
//   i18n.time(iso); i18n.duration(seconds);
//
// A locale file is flat JSON: "key": "text with {name} placeholders". A text that depends on a number
// is an object of Intl.PluralRules categories ({"one": ..., "few": ..., "many": ..., "other": ...})
// chosen by the `count` variable. A key missing from a translation falls back to English, then to the key.

export const FALLBACK = "en";

/** The first of the preferred languages (BCP 47 tags, best first) that is supported, by full tag or by its
 * primary subtag ("uk-UA" -> "uk"); the fallback when none is. */
export function pickLanguage(supported, preferred, fallback = FALLBACK) {
  const known = new Set(supported.map((l) => l.toLowerCase()));
  for (const tag of preferred) {
    if (typeof tag !== "string" || !tag) continue;
    const lower = tag.toLowerCase();
    if (known.has(lower)) return supported.find((l) => l.toLowerCase() === lower);
    const primary = lower.split("-")[0];
    if (known.has(primary)) return supported.find((l) => l.toLowerCase() === primary);
  }
  return fallback;
}

/** The browser's languages, best first (navigator.languages, or navigator.language on older browsers). */
export function browserLanguages() {
  if (Array.isArray(navigator.languages) && navigator.languages.length) return navigator.languages;
  return navigator.language ? [navigator.language] : [];
}

async function fetchMessages(url) {
  try {
    const response = await fetch(url, { cache: "no-cache" });
    return response.ok ? await response.json() : {};
  } catch (e) {
    return {};  // a missing file leaves English: the page still works
  }
}

export class I18n {
  constructor(lang, messages, fallback = {}) {
    this.lang = lang;
    this.messages = messages;
    this.fallback = fallback;
    this.plurals = new Intl.PluralRules(lang);
    this.timeFormat = new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit" });
    this.dateTimeFormat = new Intl.DateTimeFormat(lang, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
  }

  t(key, vars = {}) {
    let text = this.messages[key] ?? this.fallback[key] ?? key;
    if (text && typeof text === "object") {
      const count = Number(vars.count ?? 0);
      text = text[this.plurals.select(count)] ?? text.other ?? key;
    }
    return String(text).replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
  }

  /** Text of [data-i18n] elements and attributes named by [data-i18n-attr] ("attr:key;attr:key"). */
  translate(root) {
    for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = this.t(el.dataset.i18n);
    for (const el of root.querySelectorAll("[data-i18n-attr]")) {
      for (const pair of el.dataset.i18nAttr.split(";")) {
        const [attr, key] = pair.split(":").map((s) => s.trim());
        if (attr && key) el.setAttribute(attr, this.t(key));
      }
    }
  }

  /** A time in the reader's locale and time zone: hours and minutes today, with the date otherwise. */
  time(iso) {
    const d = iso ? new Date(iso) : null;
    if (!d || isNaN(d)) return "";
    const today = new Date();
    const sameDay = d.toDateString() === today.toDateString();
    return (sameDay ? this.timeFormat : this.dateTimeFormat).format(d);
  }

  /** A rough duration for people ("about 2 minutes"), from the locale's duration.* keys. */
  duration(seconds) {
    const minutes = Math.max(1, Math.round(seconds / 60));
    if (minutes < 60) return this.t("duration.minutes", { count: minutes });
    return this.t("duration.hours", { count: Math.round(minutes / 60) });
  }
}

/** The I18n for the requested language (if supported), else the browser's, else `otherwise` (a site's
 * own language), English underneath. */
export async function loadI18n({ url, supported, requested = null, otherwise = null }) {
  const preferred = [requested, ...browserLanguages(), otherwise].filter(Boolean);
  const lang = pickLanguage(supported, preferred);
  const fallback = await fetchMessages(url(FALLBACK));
  const messages = lang === FALLBACK ? fallback : await fetchMessages(url(lang));
  return new I18n(lang, messages, fallback);
}
