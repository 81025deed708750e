// Numbers, durations, dates and times in the browser's locale; local midnight in any IANA zone as RFC 3339.

const numberFormat = new Intl.NumberFormat();
const percentFormat = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
const secondsFormat = new Intl.NumberFormat(undefined, { style: "unit", unit: "second", maximumFractionDigits: 1 });
const DASH = "—";

export function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

export function number(value) {
  return value === null || value === undefined ? DASH : numberFormat.format(value);
}

export function percent(value) {
  return value === null || value === undefined ? DASH : percentFormat.format(value);
}

export function seconds(value) {
  return value === null || value === undefined ? DASH : secondsFormat.format(value);
}

/** A wait or a time in status as a clock: 0:42, 12:05, 1:02:09. */
export function clock(totalSeconds) {
  if (totalSeconds === null || totalSeconds === undefined || !Number.isFinite(totalSeconds)) return DASH;
  const s = Math.max(0, Math.floor(totalSeconds));
  const hours = Math.floor(s / 3600), minutes = Math.floor((s % 3600) / 60), rest = s % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return hours ? `${hours}:${pad(minutes)}:${pad(rest)}` : `${minutes}:${pad(rest)}`;
}

export function dateTime(iso, timeZone) {
  if (!iso) return DASH;
  return new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short", timeZone }).format(new Date(iso));
}

export function time(date) {
  return new Intl.DateTimeFormat(undefined, { timeStyle: "medium" }).format(date);
}

/** An interval's start as its interval reads in `timeZone`: an hour with its date, a day, a week's Monday. */
export function intervalLabel(iso, interval, timeZone) {
  const date = new Date(iso);
  if (interval === "hour") {
    return new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "numeric", minute: "2-digit", timeZone }).format(date);
  }
  const day = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", weekday: "short", timeZone }).format(date);
  return interval === "week" ? `week of ${day}` : day;
}

/** Minutes east of UTC that `timeZone` is at the instant `utcMs`. */
function offsetMinutes(timeZone, utcMs) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(utcMs));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  const asUtc = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return Math.round((asUtc - Math.floor(utcMs / 1000) * 1000) / 60000);
}

function offsetText(minutes) {
  const sign = minutes < 0 ? "-" : "+";
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}

/** "2026-03-02" at local midnight in `timeZone`, as RFC 3339 with its offset: 2026-03-02T00:00:00+02:00. */
export function midnightIn(isoDate, timeZone) {
  const [year, month, day] = isoDate.split("-").map(Number);
  const wall = Date.UTC(year, month - 1, day);
  let offset = offsetMinutes(timeZone, wall);
  offset = offsetMinutes(timeZone, wall - offset * 60000); // the offset in force at that local midnight
  return `${isoDate}T00:00:00${offsetText(offset)}`;
}

/** The calendar date (YYYY-MM-DD) `days` after `isoDate`. */
export function addDays(isoDate, days) {
  const [year, month, day] = isoDate.split("-").map(Number);
  return new Date(Date.UTC(year, month - 1, day + days)).toISOString().slice(0, 10);
}

/** Today's date (YYYY-MM-DD) in `timeZone`. */
export function today(timeZone) {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" })
    .formatToParts(new Date());
  const get = (type) => parts.find((p) => p.type === type).value;
  return `${get("year")}-${get("month")}-${get("day")}`;
}

export function isZone(name) {
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: name });
    return true;
  } catch (e) {
    return false;
  }
}
