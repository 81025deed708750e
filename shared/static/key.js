// The workspace key a supervisor page signs in with (served at /lib/key.js): taken from `?token=`
// (and out of the address bar and history), else kept in localStorage under the page's own name.

/** The key kept under `name`, and a way to keep (or, with "", forget) another. */
export function keptKey(name) {
  return {
    remember(token) {
      try {
        if (token) localStorage.setItem(name, token);
        else localStorage.removeItem(name);
      } catch (e) { /* storage off: the key lasts as long as the page */ }
    },
    remembered() {
      try {
        return localStorage.getItem(name) || "";
      } catch (e) {
        return "";
      }
    },
  };
}

/** The key given in the address, removed from it (and from the browser's history); "" without one. */
export function takeTokenFromUrl() {
  const url = new URL(location.href);
  const token = url.searchParams.get("token");
  if (token !== null) {
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  return token || "";
}
