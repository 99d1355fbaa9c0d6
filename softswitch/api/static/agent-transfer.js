/* Transfer, consult and conference on the agent's current call, through the API (POST /api/calls/{id}/transfer,
   consult, swap, conference, complete, cancel). Self-contained: it adds its own row of buttons to the call panel
   and follows agent.js through the desk:state event (the agent's view names the call they talk on); the API goes
   through agentPage.desk.api (the page's token stays in agent.js). */
"use strict";

(function () {
  const T = { callId: null, consult: null };
  const pub = window.agentTransfer = { consult: null, last: null };
  const desk = () => window.agentPage && window.agentPage.desk;
  const el = (tag, props, ...kids) => { const e = Object.assign(document.createElement(tag), props || {}); e.append(...kids); return e; };
  let box = null, input = null, status = null, error = null;
  const buttons = {};

  function build() {
    const panel = document.getElementById("call-panel");
    if (!panel || box) return;
    input = el("input", { id: "xfer-to", placeholder: "queue, agent or number (e.g. sales, 1002)", autocomplete: "off" });
    input.setAttribute("aria-label", "transfer or consult to");
    box = el("div", { id: "transfer-box", className: "row" }, input);
    for (const [name, label, title] of [
      ["transfer", "Transfer", "blind transfer: the customer goes to the target, you are free"],
      ["consult", "Consult", "hold the customer and call the target"],
      ["complete", "Complete", "join the customer to the person you consult, and leave"],
      ["conference", "Conference", "all three of you on the call"],
      ["swap", "Swap", "talk with the other party (the one you talk with now goes on hold)"],
      ["cancel", "Cancel consult", "hang up the person you consult and go back to the customer"]]) {
      buttons[name] = el("button", { type: "button", id: `btn-${name}`, className: "secondary", textContent: label, title });
      buttons[name].addEventListener("click", () => act(name));
      box.append(buttons[name]);
    }
    status = el("p", { id: "transfer-status", className: "muted" });
    error = el("p", { id: "transfer-error", className: "error" });
    error.setAttribute("role", "alert");
    panel.append(box, status, error);
    render();
  }

  function render() {
    if (!box) return;
    const onCall = Boolean(T.callId), c = T.consult;
    buttons.transfer.disabled = !onCall || Boolean(c);
    buttons.consult.disabled = !onCall || Boolean(c);
    for (const name of ["complete", "conference", "swap", "cancel"]) buttons[name].disabled = !onCall || !c;
    status.textContent = !c ? "" : c === "conference" ? "conference: all three on the call"
      : c === "swapped" ? "talking with the customer, the other party on hold"
      : c === "calling" ? "calling… the customer is on hold" : "consulting: the customer is on hold";
    pub.consult = c;
  }

  async function act(name) {
    const d = desk();
    if (!d || !T.callId) return;
    error.textContent = "";
    const to = input.value.trim();
    if ((name === "transfer" || name === "consult") && !to) { error.textContent = "Type where to: a queue, an agent or a number."; return; }
    const path = `/api/calls/${encodeURIComponent(T.callId)}/${name}`;
    try {
      const body = await d.api(path, { method: "POST", body: JSON.stringify(name === "transfer" || name === "consult" ? { to } : {}) });
      pub.last = { action: name, ok: true, body };
      if (name === "transfer" || name === "complete") { T.consult = null; d.log(`call transferred to ${body.to || to}`); }
      else T.consult = body.consult === undefined ? T.consult : body.consult;
      if (name === "consult") T.consult = "calling";
    } catch (e) {
      pub.last = { action: name, ok: false, error: String(e.message || e) };
      error.textContent = `${name}: ${e.message || e}`;
    }
    render();
  }

  document.addEventListener("desk:state", (e) => {
    const v = e.detail && e.detail.view;
    const callId = v && v.state === "talking" ? v.call_id : null;
    if (callId !== T.callId) { T.callId = callId; T.consult = null; }
    if (v && v.consult === false && T.consult && T.consult !== "calling") T.consult = null;
    render();
  });
  document.addEventListener("DOMContentLoaded", build);
})();
