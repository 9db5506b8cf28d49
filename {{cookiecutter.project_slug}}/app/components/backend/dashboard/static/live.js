// Keeps the parts of a page marked data-live current without a reload.
//
// The page is read again once a second and each marked part is swapped for its new version.
// The next read starts only after the last one ended, so a slow server never gets a pile of
// requests; a failed read waits longer each time (up to 30 s). A hidden tab does not read,
// and a part holding the keyboard focus is left alone until the focus moves on.
"use strict";

(function () {
  const PERIOD_MS = 1000;
  const MOST_MS = 30000;
  const TIMEOUT_MS = 10000;
  let failures = 0;

  function parts() {
    return document.querySelectorAll("[data-live][id]");
  }

  function say(text) {
    const state = document.getElementById("live-state");
    if (state && state.textContent !== text) {
      state.textContent = text;
    }
  }

  function keepOpen(old, fresh) {
    const before = old.querySelectorAll("details");
    const after = fresh.querySelectorAll("details");
    before.forEach(function (element, index) {
      if (after[index]) {
        after[index].open = element.open;
      }
    });
  }

  function swap(page) {
    parts().forEach(function (part) {
      const fresh = page.getElementById(part.id);
      if (!fresh || part.contains(document.activeElement)) {
        return;
      }
      if (fresh.innerHTML !== part.innerHTML) {
        keepOpen(part, fresh);
        part.replaceWith(document.importNode(fresh, true));
      }
    });
  }

  async function refresh() {
    if (document.hidden) {
      later(PERIOD_MS);
      return;
    }
    const controller = new AbortController();
    const timer = setTimeout(function () { controller.abort(); }, TIMEOUT_MS);
    try {
      const response = await fetch(document.body.dataset.liveUrl || window.location.href, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { "X-Live-Refresh": "1" },
        signal: controller.signal,
      });
      if (response.redirected && new URL(response.url).pathname.endsWith("/sign-in")) {
        // The session ended: go where the server sends a signed-out browser.
        window.location.assign(response.url);
        return;
      }
      // A page with a filter that does not parse (400) still has its parts to show.
      if (!response.ok && response.status !== 400) {
        throw new Error("HTTP " + response.status);
      }
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      swap(page);
      failures = 0;
      say("Live: updated " + new Date().toLocaleTimeString());
    } catch (error) {
      failures += 1;
      say("Not updating: " + error.message + "; trying again");
    } finally {
      clearTimeout(timer);
    }
    later(Math.min(PERIOD_MS * Math.pow(2, failures), MOST_MS));
  }

  function later(delay) {
    window.setTimeout(refresh, delay);
  }

  if (parts().length > 0 && document.body.dataset.liveUrl) {
    later(PERIOD_MS);
  }
})();
