// The embeddable chat: one tag on any site gives a launcher button and the chat (an iframe of /chat).
//
//   <script src="https://<intake>/widget.js" data-workspace="acme" async></script>
//   optional: data-lang="uk" (else the reader's browser, then the workspace's language)
//
// The workspace's colour, title and language come from GET /v1/chat/settings (docs/webchat.md). The
// launcher lives in a shadow root, so the host page's styles and ours do not meet. A classic script,
// not a module: it runs on pages we do not control, and must not leak names into them.
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || window.__switchyardChat) return;
  window.__switchyardChat = true;
  const origin = new URL(script.src).origin;
  const workspace = script.dataset.workspace || "default";
  const lang = script.dataset.lang || "";
  const LABELS = { en: ["Chat with us", "Close the chat"], ru: ["Напишите нам", "Закрыть чат"], uk: ["Напишіть нам", "Закрити чат"] };

  function labelsFor(settings) {
    const wanted = [lang, ...(navigator.languages || [navigator.language]), settings.language || "", "en"];
    for (const tag of wanted) {
      const primary = (tag || "").toLowerCase().split("-")[0];
      if (LABELS[primary]) return LABELS[primary];
    }
    return LABELS.en;
  }

  function build(settings) {
    const accent = settings.accent_color || "#2f6fde";
    const [openLabel, closeLabel] = labelsFor(settings);
    const host = document.createElement("div");
    host.id = "switchyard-chat";
    const root = host.attachShadow({ mode: "open" });
    const style = document.createElement("style");
    style.textContent = `
      :host { all: initial; }
      .launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483646; width: 56px; height: 56px;
        border-radius: 50%; border: 0; background: ${accent}; color: #fff; cursor: pointer;
        box-shadow: 0 4px 14px rgba(0,0,0,.25); display: flex; align-items: center; justify-content: center; }
      .launcher:focus-visible { outline: 3px solid #1d2330; outline-offset: 3px; }
      .panel { position: fixed; right: 20px; bottom: 88px; z-index: 2147483647; width: 380px; height: 600px;
        max-width: calc(100vw - 24px); max-height: calc(100vh - 110px); border: 0; border-radius: 14px;
        box-shadow: 0 8px 30px rgba(0,0,0,.25); background: #fff; }
      .panel[hidden] { display: none; }
      @media (max-width: 480px) { .panel { right: 12px; width: calc(100vw - 24px); max-width: none; bottom: 84px; } }`;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "launcher";
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-label", settings.title || openLabel);
    button.innerHTML = '<svg viewBox="0 0 24 24" width="26" height="26" aria-hidden="true" focusable="false">'
      + '<path d="M4 5h16v11H8l-4 4z" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round"/></svg>';
    let frame = null;
    button.addEventListener("click", () => {
      if (!frame) {  // the chat loads on first open, not with the host page
        frame = document.createElement("iframe");
        frame.className = "panel";
        frame.title = settings.title || openLabel;
        const query = new URLSearchParams({ workspace, embed: "1" });
        if (lang) query.set("lang", lang);
        frame.src = `${origin}/chat?${query}`;
        frame.hidden = true;
        root.appendChild(frame);
      }
      const opening = frame.hidden;
      frame.hidden = !opening;
      button.setAttribute("aria-expanded", String(opening));
      button.setAttribute("aria-label", opening ? closeLabel : (settings.title || openLabel));
      if (opening) frame.focus();
    });
    root.append(style, button);
    document.body.appendChild(host);
  }

  fetch(`${origin}/v1/chat/settings?${new URLSearchParams({ workspace })}`)
    .then((response) => (response.ok ? response.json() : {}))
    .catch(() => ({}))
    .then(build);
})();
