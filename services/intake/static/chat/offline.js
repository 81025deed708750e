// Outside the workspace's opening hours: the chat says so, shows the hours, and offers to leave an
// email address; messages still go (each becomes a conversation), and carry the address to the contact
// so an agent can answer by email.

import { started } from "./connection.js";
import { $, KEY_EMAIL, lang, load, state, store, t } from "./state.js";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/** "Mon 09:00–18:00, Tue 09:00–18:00 …" with weekday names in the reader's language. */
function schedule(hours) {
  const weekday = new Intl.DateTimeFormat(lang.i18n.lang, { weekday: "short" });
  const monday = new Date(Date.UTC(2024, 0, 1, 12));  // a Monday
  return DAYS.filter((day) => (hours.weekly || {})[day] && hours.weekly[day].length).map((day) => {
    const name = weekday.format(new Date(monday.getTime() + DAYS.indexOf(day) * 86400000));
    return `${name} ${hours.weekly[day].map((s) => `${s.start}–${s.end}`).join(", ")}`;
  }).join("; ");
}

function showSaved(email) {
  $("email-note").textContent = email ? t("offline.email_saved", { email }) : "";
}

export function wireOffline(settings) {
  if (settings.open !== false) return;
  $("offline").hidden = false;
  if (settings.hours) {
    $("offline-hours").textContent = t("offline.hours", { zone: settings.hours.time_zone, schedule: schedule(settings.hours) });
  }
  $("email").value = load(KEY_EMAIL);
  showSaved(load(KEY_EMAIL));
  $("email-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const email = $("email").value.trim();
    if (!$("email").checkValidity() || !email) { $("email-note").textContent = t("offline.email_invalid"); return; }
    store(KEY_EMAIL, email);
    showSaved(email);
    // The address travels with the socket (and uploads): reopen it so what is written next carries it.
    if (started()) { state.socket.stop("email"); state.socket.start(); }
  });
}
