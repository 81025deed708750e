// The supervisors' article editor: sign in with the workspace key (/assist/session.js), the list of articles,
// and one article's form (create, change, publish, delete).

import { $, setText, show } from "/assist/dom.js";
import { startSession } from "/assist/session.js";
import { articlesApi } from "./api.js";
import { clearErrors, confirmDelete, fillForm, readForm, showError, showPreview, showPublicLink } from "./form.js";
import { renderList } from "./list.js";

const state = { api: null, helpPath: "", articles: [], current: null };

function showView(view) {
  for (const name of ["login", "list", "edit"]) show($(`${name}-view`), name === view);
}

async function showList(focus = true) {
  showView("list");
  try {
    state.articles = await state.api.list();
    renderList(state.articles, state.helpPath, openArticle);
  } catch (error) {
    setText($("list-status"), error.message);
  }
  if (focus) $("list-title").focus();
}

function openArticle(article) {
  state.current = article;
  clearErrors();
  fillForm(article);
  setText($("edit-title"), article ? `Edit “${article.title}”` : "New article");
  setText($("form-status"), "");
  show($("delete"), Boolean(article));
  show($("preview-box"), false);
  showPublicLink(article, state.helpPath);
  showView("edit");
  $("title").focus();
}

async function save() {
  clearErrors();
  setText($("form-status"), "Saving…");
  try {
    const article = readForm();
    const id = state.current?.id;
    state.current = id ? await state.api.replace(id, article) : await state.api.create(article);
  } catch (error) {
    setText($("form-status"), "");
    showError(error);
    return;
  }
  show($("delete"), true);
  setText($("edit-title"), `Edit “${state.current.title}”`);
  showPublicLink(state.current, state.helpPath);
  setText($("form-status"), state.current.status === "published" ? "Saved and published." : "Saved as a draft.");
}

async function remove() {
  const article = state.current;
  if (!article || !(await confirmDelete(article.title))) return;
  try {
    await state.api.remove(article.id);
  } catch (error) {
    showError(error);
    return;
  }
  await showList();
  setText($("list-status"), `“${article.title}” was deleted.`);
}

/** The key is checked by asking where the workspace's help center is (a supervisor's call). */
async function enter(token) {
  const api = articlesApi(token);
  state.helpPath = (await api.helpCenter()).path;
  state.api = api;
  $("help-link").href = state.helpPath;
  show($("help-link"), true);
  await showList(false);
}

function wire() {
  $("new-article").addEventListener("click", () => openArticle(null));
  $("back-to-list").addEventListener("click", () => showList());
  $("article-form").addEventListener("submit", (event) => {
    event.preventDefault();
    save();
  });
  $("preview-button").addEventListener("click", () => showPreview(state.api));
  $("body").addEventListener("input", () => show($("preview-box"), false));  // a preview of older text misleads
  $("delete").addEventListener("click", remove);
}

async function main() {
  wire();
  await startSession(enter);
}

main().catch((error) => setText($("login-error"), `The page could not start: ${error.message}`));
