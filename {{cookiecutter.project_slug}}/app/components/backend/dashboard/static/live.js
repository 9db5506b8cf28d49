// Keeps the parts of a page marked data-live current without a reload.
//
// The page is read again once a second and each marked part is brought up to date, node by
// node: only what changed is touched.
//
// The next read starts only after the last one ended, so a slow server never gets a pile of
// requests; a failed read waits longer each time (up to 30 s). A hidden tab does not read,
// and a part holding the keyboard focus is left alone until the focus moves on.
"use strict";

(function () {
  const PERIOD_MS = 1000;
  const MOST_MS = 30000;
  const TIMEOUT_MS = 10000;
  let failures = 0;
  let updates = 0;

  function parts() {
    return document.querySelectorAll("[data-live][id]");
  }

  function say(text) {
    const state = document.getElementById("live-state");
    if (state && state.textContent !== text) {
      state.textContent = text;
    }
  }

  // Brings `old` to match `fresh` by changing only the nodes that differ, so a text
  // selection, an open <details> or a scrolled table elsewhere in the part stays as it is.
  function patch(old, fresh) {
    if (old.nodeType !== fresh.nodeType || old.nodeName !== fresh.nodeName) {
      old.replaceWith(document.importNode(fresh, true));
      return;
    }
    if (old.nodeType !== Node.ELEMENT_NODE) {
      if (old.nodeValue !== fresh.nodeValue) {
        old.nodeValue = fresh.nodeValue;
      }
      return;
    }
    if (old.isEqualNode(fresh)) {
      return;
    }
    // Whether a <details> is open is the reader's choice, not the server's.
    const readers = function (attribute) {
      return old.nodeName === "DETAILS" && attribute.name === "open";
    };
    Array.from(old.attributes).forEach(function (attribute) {
      if (!fresh.hasAttribute(attribute.name) && !readers(attribute)) {
        old.removeAttribute(attribute.name);
      }
    });
    Array.from(fresh.attributes).forEach(function (attribute) {
      if (old.getAttribute(attribute.name) !== attribute.value && !readers(attribute)) {
        old.setAttribute(attribute.name, attribute.value);
      }
    });
    const before = Array.from(old.childNodes);
    const after = Array.from(fresh.childNodes);
    if (before.length !== after.length) {
      // Rows came or went: the children are replaced, and the sections open before stay
      // open, by their place in the part.
      const opened = Array.from(old.querySelectorAll("details")).map(function (d) { return d.open; });
      old.replaceChildren.apply(old, after.map(function (node) { return document.importNode(node, true); }));
      old.querySelectorAll("details").forEach(function (details, index) {
        if (index < opened.length) {
          details.open = opened[index];
        }
      });
      return;
    }
    before.forEach(function (child, index) { patch(child, after[index]); });
  }

  function swap(page) {
    parts().forEach(function (part) {
      const fresh = page.getElementById(part.id);
      if (fresh && !part.contains(document.activeElement)) {
        patch(part, fresh);
      }
    });
    // How many reads have been applied: a test (or a curious reader) can tell one happened.
    updates += 1;
    document.body.dataset.liveUpdates = String(updates);
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
