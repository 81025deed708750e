// The incident's dialogs: dismissing asks first; merging picks the incident it is part of; resolving takes
// an optional reply and whether to resolve the conversations agents hold. A refused call keeps its dialog
// open with the error by the field it names (a 422's problems, a 409's parameter), the rest above the buttons.

import { $, el, setText } from "/assist/dom.js";
import { ApiError, problemText } from "/assist/api.js";

// A dialog's fields: the API's name -> the control that holds it.
const MERGE_FIELDS = { into: "merge-into" };
const RESOLVE_FIELDS = { reply: "reply", resolve_conversations: "resolve-conversations" };

function clearErrors(fields, errorId) {
  for (const [field, control] of Object.entries(fields)) {
    $(control).removeAttribute("aria-invalid");
    setText($(`${field}-error`), "");
  }
  setText($(errorId), "");
}

function showError(error, fields, errorId) {
  clearErrors(fields, errorId);
  const placed = (field, text) => {
    if (!(field in fields)) return false;
    const node = $(`${field}-error`);
    setText(node, node.textContent ? `${node.textContent} ${text}` : text);
    $(fields[field]).setAttribute("aria-invalid", "true");
    return true;
  };
  const api = error instanceof ApiError;
  const unplaced = (api ? error.problems : [])
    .filter((problem) => !placed(Array.isArray(problem.loc) ? String(problem.loc[0]) : "", problemText(problem)))
    .map(problemText);
  const byField = api && !error.problems.length && placed(error.parameter, error.message);
  const first = Object.entries(fields).find(([field]) => $(`${field}-error`).textContent);
  if (first) $(first[1]).focus();
  if (!byField) setText($(errorId), [api ? error.message : String(error), ...unplaced].join(" "));
}

/** showModal, and once it closes the focus back where it was (if that is still there to take it). */
function showModal(dialog) {
  const opener = document.activeElement;
  dialog.addEventListener("close", () => {
    if (opener?.isConnected && !opener.closest("[hidden]")) opener.focus();
  }, { once: true });
  dialog.showModal();
}

/** Open a form dialog; `submit()` calls the API. Its answer once it succeeds, null if the dialog is left. */
function formDialog(dialogId, formId, fields, errorId, submit) {
  const dialog = $(dialogId);
  const form = $(formId);
  const button = form.querySelector("[type=submit]");
  clearErrors(fields, errorId);
  return new Promise((resolve) => {
    let answer = null;
    const onSubmit = async (event) => {
      event.preventDefault();
      clearErrors(fields, errorId);
      button.disabled = true;
      try {
        answer = await submit();
        dialog.close();
      } catch (error) {
        showError(error, fields, errorId);
      } finally {
        button.disabled = false;
      }
    };
    const onCancel = () => dialog.close();
    const cancel = form.querySelector(".cancel");
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("close", () => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      resolve(answer);
    }, { once: true });
    showModal(dialog);
  });
}

/** True once the supervisor confirmed dismissing the incident titled `title`. */
export function confirmDismiss(title) {
  const dialog = $("dismiss-dialog");
  setText($("dismiss-text"), `“${title}” is a false alarm: it leaves the active list and later matches are not linked.`);
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "dismiss"), { once: true });
    dialog.returnValue = "";
    showModal(dialog);
  });
}

/** Pick one of `others` (active incidents) and merge `incident` into it: the API's answer, or null. */
export function mergeDialog(incident, others, merge) {
  setText($("merge-text"), `“${incident.title}” is part of another problem: its conversations move there.`);
  $("merge-into").replaceChildren(...others.map((other) => el("option", { value: other.id },
    `${other.title} (${other.conversations} conversation${other.conversations === 1 ? "" : "s"})`)));
  return formDialog("merge-dialog", "merge-form", MERGE_FIELDS, "merge-error", () => merge($("merge-into").value));
}

/** Resolve `incident` with the dialog's reply and choice: the API's answer, or null. */
export function resolveDialog(incident, resolve) {
  setText($("resolve-text"), `“${incident.title}” is fixed: it leaves the active list.`);
  $("reply").value = "";
  $("resolve-conversations").checked = false;
  return formDialog("resolve-dialog", "resolve-form", RESOLVE_FIELDS, "resolve-error", () => {
    const reply = $("reply").value.trim();
    return resolve({ ...(reply ? { reply } : {}), resolve_conversations: $("resolve-conversations").checked });
  });
}
