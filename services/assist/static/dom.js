// The DOM helpers of assist's pages: the supervisor pages' shared ones, and a date format of their own.

export { $, el, setText, show } from "/lib/dom.js";

/** A date for people, in `lang` ("5 Dec 2026"); "" for a value that is not a date. */
export function formatDate(iso, lang) {
  const date = iso ? new Date(iso) : null;
  if (!date || isNaN(date)) return "";
  return new Intl.DateTimeFormat(lang, { day: "numeric", month: "short", year: "numeric" }).format(date);
}
