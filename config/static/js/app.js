/* The web UI's own behaviour, loaded with `defer` after htmx. A file, not inline script: the content security
   policy allows no inline script and no eval (htmx's `allowEval` is off, so no `hx-on` attributes either).

   Where an answer shows, and where focus goes:
   - A form refused (400, 409, 422): htmx swaps the answer in place (the item's row, the flag's card), and focus
     moves to the first error in it, so that the person who clicked sees and hears what was wrong.
   - A refusal or a failure the page cannot show in place (403, 404, 5xx, or no answer at all): its message goes
     right after the form (or button) that was used, in an alert that takes focus; a server error carries the
     reference its log line has (config/templates/500.html). Only when that control has left the page does the
     message go to the alert region at the top of the page (#htmx-error).
   - A full page answering a form with errors (a post without htmx): focus moves to the first error on load. */
"use strict";

(function () {
  const REFUSED = /^(400|409|422)$/;
  const ERRORS = '.form-error[role="alert"], [aria-invalid="true"], .field-error';
  let pendingFocus = null; // the id of the element whose first error takes focus once htmx has settled

  function controlOf(detail) {
    return (detail.requestConfig && detail.requestConfig.elt) || detail.elt;
  }

  function anchorOf(control) {
    return control.closest("form") || control;
  }

  function placedError(control, create) {
    const anchor = anchorOf(control);
    const next = anchor.nextElementSibling;
    if (next && next.classList.contains("action-error")) return next;
    if (!create) return null;
    const box = document.createElement("div");
    box.className = "form-error action-error";
    box.setAttribute("role", "alert");
    box.setAttribute("data-testid", "action-error");
    box.tabIndex = -1;
    anchor.insertAdjacentElement("afterend", box);
    return box;
  }

  function paragraph(text, strong) {
    const p = document.createElement("p");
    if (strong) {
      const b = document.createElement("strong");
      b.textContent = text;
      p.appendChild(b);
    } else {
      p.textContent = text;
    }
    return p;
  }

  /* The message of an error page (403.html, 404.html, 500.html...): its heading and the parts marked
     data-htmx-message. Whatever else answered (a proxy's 502), a sentence with its status. */
  function messageOf(xhr) {
    const parts = [];
    const html = typeof xhr.responseText === "string" ? xhr.responseText : "";
    const page = new DOMParser().parseFromString(html, "text/html");
    const section = page.querySelector("[data-htmx-error]");
    if (section) {
      const heading = section.querySelector("h1");
      if (heading) parts.push(paragraph(heading.textContent.trim(), true));
      section.querySelectorAll("[data-htmx-message]").forEach((node) => parts.push(document.importNode(node, true)));
    }
    if (parts.length < 2) {
      parts.length = 0;
      parts.push(paragraph("Something went wrong", true));
      parts.push(paragraph(`The server answered ${xhr.status} ${xhr.statusText || ""}`.trim() + ". Please try again in a moment."));
    }
    return parts;
  }

  function show(box, parts) {
    box.replaceChildren(...parts);
    box.focus();
  }

  function focusFirstError(root) {
    const found = root && root.querySelector(ERRORS);
    if (!found) return false;
    if (found.matches(".form-error, .field-error") && !found.hasAttribute("tabindex")) found.tabIndex = -1;
    found.focus();
    return true;
  }

  document.addEventListener("htmx:beforeRequest", (event) => {
    const control = event.detail.elt;
    // A move on one item clears what an earlier move said on another row ("Marked done."): only the latest shows.
    if (control.closest("#checklist")) {
      document.querySelectorAll("#checklist .item .flash").forEach((flash) => flash.remove());
    }
    // What an earlier attempt with this control said goes: the new answer says what happens now.
    const earlier = placedError(control, false);
    if (earlier) earlier.remove();
  });

  document.addEventListener("htmx:beforeSwap", (event) => {
    const detail = event.detail;
    const control = controlOf(detail);
    if (detail.isError) {
      if (control && document.body.contains(control)) {
        detail.shouldSwap = false;
        show(placedError(control, true), messageOf(detail.xhr));
      } else {
        pendingFocus = "htmx-error"; // htmx's responseHandling puts it in the alert region at the top
      }
    } else if (detail.shouldSwap && REFUSED.test(String(detail.xhr.status)) && detail.target && detail.target.id) {
      pendingFocus = detail.target.id;
    }
  });

  document.addEventListener("htmx:afterSettle", () => {
    if (pendingFocus === null) return;
    const target = document.getElementById(pendingFocus);
    pendingFocus = null;
    if (!target) return;
    if (target.id === "htmx-error") {
      target.focus();
    } else {
      focusFirstError(target);
    }
  });

  // No answer at all (the server is down, the connection dropped) or none in time.
  function unreachable(event) {
    const control = event.detail.elt;
    const parts = [
      paragraph("The server could not be reached", true),
      paragraph("Check your connection, then reload the page to see whether the change was made."),
    ];
    if (control && document.body.contains(control)) {
      show(placedError(control, true), parts);
    } else {
      const region = document.getElementById("htmx-error");
      if (region) show(region, parts);
    }
  }
  document.addEventListener("htmx:sendError", unreachable);
  document.addEventListener("htmx:timeout", unreachable);

  function focusOnLoad() {
    const main = document.getElementById("main");
    if (main) focusFirstError(main);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", focusOnLoad);
  } else {
    focusOnLoad();
  }
})();
