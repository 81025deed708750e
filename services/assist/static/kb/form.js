// The article form: what it holds as the API's ArticleIn, the API's 422 shown next to the fields it
// names, the preview rendered by the service as the help center renders it, and deleting with a confirmation.

import { $, setText, show } from "/assist/dom.js";
import { ApiError, problemText } from "/assist/api.js";
import { publicUrl } from "./list.js";

// The API's field (a problem's loc[0]) -> the form control that holds it and the element that says what is wrong.
const FIELDS = { title: "title", body: "body", language: "language", tags: "tags", status: "published" };

export function fillForm(article) {
  $("title").value = article?.title ?? "";
  $("body").value = article?.body ?? "";
  $("language").value = article?.language ?? "en";
  $("tags").value = (article?.tags ?? []).join(", ");
  $("published").checked = article?.status === "published";
}

export function readForm() {
  return {
    title: $("title").value,
    body: $("body").value,
    language: $("language").value,
    tags: $("tags").value.split(",").map((tag) => tag.trim()).filter(Boolean),
    status: $("published").checked ? "published" : "draft",
  };
}

export function clearErrors() {
  for (const [field, control] of Object.entries(FIELDS)) {
    $(control).removeAttribute("aria-invalid");
    setText($(`${field}-error`), "");
  }
  setText($("form-error"), "");
}

/** An API error shown where it belongs: each problem next to its field, the rest above the buttons. */
export function showError(error) {
  clearErrors();
  const unplaced = [];
  for (const problem of (error instanceof ApiError ? error.problems : [])) {
    const named = Array.isArray(problem.loc) ? String(problem.loc[0]) : "";
    const field = named === "markdown" ? "body" : named;  // the preview's name for the body
    if (!(field in FIELDS)) {
      unplaced.push(problemText(problem));
      continue;
    }
    const node = $(`${field}-error`);
    setText(node, node.textContent ? `${node.textContent} ${problemText(problem)}` : problemText(problem));
    $(FIELDS[field]).setAttribute("aria-invalid", "true");
  }
  const first = Object.entries(FIELDS).find(([field]) => $(`${field}-error`).textContent);
  if (first) $(first[1]).focus();
  const message = error instanceof ApiError ? error.message : String(error);
  setText($("form-error"), [message, ...unplaced].join(" "));
}

export function showPublicLink(article, helpPath) {
  const published = article?.status === "published";
  show($("public-link"), published);
  if (published) $("public-link-a").href = publicUrl(helpPath, article.id);
}

export async function showPreview(api) {
  try {
    $("preview").innerHTML = await api.preview($("body").value);  // the service's HTML: raw HTML escaped
    show($("preview-box"), true);
    setText($("form-error"), "");
  } catch (error) {
    showError(error);
  }
}

/** True once the supervisor confirmed deleting `title` in the dialog. */
export function confirmDelete(title) {
  const dialog = $("confirm-delete");
  setText($("confirm-text"), `“${title}” leaves the help center and cannot be brought back.`);
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "delete"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}
