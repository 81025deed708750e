// The customer's language: ?lang= first, else the browser's (navigator.languages), among the help
// center's; its strings from /locales/, English underneath. Articles in it come first.

import { loadI18n } from "/lib/i18n.js";

// Languages with a file in /locales/; a translator adds one by adding its file and its tag here.
export const LANGUAGES = ["en", "ru", "uk"];

export async function loadLanguage() {
  const i18n = await loadI18n({ url: (lang) => `/locales/${lang}.json`, supported: LANGUAGES,
                                requested: new URLSearchParams(location.search).get("lang") });
  document.documentElement.lang = i18n.lang;
  i18n.translate(document);
  return i18n;
}

/** The articles in `lang` and the others, each in the order given. */
export function byLanguage(articles, lang) {
  return { mine: articles.filter((a) => a.language === lang), others: articles.filter((a) => a.language !== lang) };
}

/** A language's name in the reader's language ("English", "английский"). */
export function languageName(code, readerLang) {
  try {
    return new Intl.DisplayNames([readerLang], { type: "language" }).of(code) || code;
  } catch (e) {
    return code;
  }
}
