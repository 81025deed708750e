// Signing in to assist's supervisor pages (the article editor, the incidents page): the workspace key from
// `?token=` or kept in localStorage (one key for every page of this origin), the sign-in form and sign-out.
// Each page has #login (with #token and #login-error) and a #sign-out button.

import { $, setText, show } from "/assist/dom.js";
import { ApiError } from "/assist/api.js";
import { keptKey, takeTokenFromUrl } from "/lib/key.js";

// The editor's name for it from before the pages shared it: kept, so nobody signed in is signed out.
const { remember, remembered } = keptKey("switchyard.kb.token");

/** `enter(token)` checks the key with a call of the page's own (it throws when refused), then opens the page. */
async function signIn(token, enter) {
  setText($("login-error"), "");
  if (!token) {
    setText($("login-error"), "Enter the workspace's API key.");
    return;
  }
  try {
    await enter(token);
  } catch (error) {
    remember("");
    setText($("login-error"), error instanceof ApiError ? error.message : String(error));
    return;
  }
  remember(token);
  show($("sign-out"), true);
}

/** Wire the sign-in form and sign-out, then sign in with the key given in the address or kept. */
export async function startSession(enter) {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token").value.trim(), enter);
  });
  $("sign-out").addEventListener("click", () => {
    remember("");
    location.replace(location.pathname);
  });
  const token = takeTokenFromUrl() || remembered();
  if (token) await signIn(token, enter);
  else $("token").focus();
}
