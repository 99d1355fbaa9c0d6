// First sign-in (or after an admin reset): the API answers 403 {"error": "password_change_required"} until the
// account sets a new password. This file watches the page's API answers for that, shows a small dialog asking
// for the current and a new password, sends POST /api/me/password, then signs in again with the new password.
// Self-contained: the page only loads it; nothing in agent.js knows about it.
(function () {
  "use strict";
  const realFetch = window.fetch.bind(window);
  let dialog = null, auth = "", lastPassword = "";

  window.fetch = async function (input, init) {
    const url = typeof input === "string" ? input : (input && input.url) || "";
    if (url.endsWith("/api/login") && init && typeof init.body === "string") {
      try { lastPassword = JSON.parse(init.body).password || ""; } catch (_) { lastPassword = ""; }
    }
    const r = await realFetch(input, init);
    if (r.status === 403 && !(dialog && dialog.open)) {
      let body = null;
      try { body = await r.clone().json(); } catch (_) { /* not JSON */ }
      if (body && body.error === "password_change_required") {
        const h = (init && init.headers) || {};
        auth = h.Authorization || h.authorization || "";
        show(body.detail || "");
      }
    }
    return r;
  };

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    Object.assign(e, props || {});
    children.forEach((c) => e.append(c));
    return e;
  }

  function field(id, label, autocomplete) {
    const input = el("input", { id, type: "password", required: true, autocomplete });
    const l = el("label", { htmlFor: id, textContent: label });
    l.style.display = "block";
    input.style.display = "block";
    input.style.marginBottom = "0.6em";
    return [l, input];
  }

  function build() {
    const error = el("p", { id: "pw-error", className: "error", role: "alert" });
    const form = el("form", { id: "pw-form", method: "dialog" },
      el("h2", { textContent: "Set a new password" }),
      el("p", { id: "pw-why", className: "muted",
                textContent: "This account must set a new password before it can go on." }),
      ...field("pw-old", "Current password", "current-password"),
      ...field("pw-new", "New password", "new-password"),
      ...field("pw-repeat", "New password again", "new-password"),
      el("button", { id: "pw-submit", type: "submit", textContent: "Change password" }),
      error);
    form.addEventListener("submit", submit);
    const d = el("dialog", { id: "pw-dialog" }, form);
    d.addEventListener("cancel", (ev) => ev.preventDefault());     // Escape does not skip the change
    document.body.append(d);
    return d;
  }

  function show(detail) {
    dialog = dialog || build();
    document.getElementById("pw-error").textContent = "";
    document.getElementById("pw-old").value = lastPassword;
    document.getElementById("pw-new").value = "";
    document.getElementById("pw-repeat").value = "";
    if (!dialog.open) dialog.showModal();
    document.getElementById(lastPassword ? "pw-new" : "pw-old").focus();
  }

  async function submit(ev) {
    ev.preventDefault();
    const error = document.getElementById("pw-error"), button = document.getElementById("pw-submit");
    const oldPw = document.getElementById("pw-old").value, newPw = document.getElementById("pw-new").value;
    if (newPw !== document.getElementById("pw-repeat").value) {
      error.textContent = "the two new passwords differ";
      return;
    }
    button.disabled = true;
    try {
      const r = await realFetch("/api/me/password", {
        method: "POST", cache: "no-store",
        headers: { "Content-Type": "application/json", Authorization: auth },
        body: JSON.stringify({ old_password: oldPw, new_password: newPw }),
      });
      let body = null;
      try { body = await r.json(); } catch (_) { /* empty */ }
      if (!r.ok) {
        error.textContent = (body && body.error) || `HTTP ${r.status}`;
        return;
      }
      dialog.close();
      // sign in again, now with the new password (the form of the page, as the agent would)
      const login = document.getElementById("login-form"), pw = document.getElementById("password");
      if (login && pw && !document.getElementById("login-view").hidden) {
        pw.value = newPw;
        document.getElementById("login-error").textContent = "";
        login.requestSubmit();
      }
    } catch (e) {
      error.textContent = `password change failed: ${e.message}`;
    } finally {
      button.disabled = false;
    }
  }
}());
