// The error and notice banners over the desk: each hides itself after 10 s or when dismissed.

import { $ } from "./dom.js";

const SHOWN_MS = 10000;
let errorTimer = null, noticeTimer = null;

export function showError(message) {
  $("desk-error-text").textContent = message;
  $("desk-error").hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { $("desk-error").hidden = true; }, SHOWN_MS);
}

export function showNotice(message) {
  $("desk-notice-text").textContent = message;
  $("desk-notice").hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { $("desk-notice").hidden = true; }, SHOWN_MS);
}

export function hideNotice() { $("desk-notice").hidden = true; }

export function wireBanners() {
  $("desk-error-close").addEventListener("click", () => { $("desk-error").hidden = true; });
  $("desk-notice-close").addEventListener("click", hideNotice);
}
