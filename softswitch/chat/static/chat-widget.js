// The customer chat widget. A website embeds it with one tag (no inline script, nothing else to load):
//   <script src="https://NODE/chat/widget.js" data-queue="support_chat" data-title="Chat with us" defer></script>
// It adds a "Chat with us" button; opening it connects a WebSocket to NODE/chat/ws, which the node accepts only
// from the origins listed in its chat.origins. Text only; the agent's typing, and delivered/read marks on the
// visitor's messages. Closing the page ends the chat. Works under a strict CSP on the host page when it allows
// script-src, style-src and connect-src (ws/wss) of NODE.
(function () {
  "use strict";
  const me = document.currentScript;
  if (!me || window.softswitchChat) return;
  const base = new URL(me.src, location.href);
  const queue = me.dataset.queue || "";
  const title = me.dataset.title || "Chat with us";
  const MAX = 2000;
  const S = { ws: null, state: "closed", chat: null, lastAgentSeq: 0, typingSent: 0, typingTimer: null,
              typingHide: null, errorTimer: null, marks: { delivered: 0, read: 0 } };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const link = el("link");
  link.rel = "stylesheet";
  link.href = base.origin + "/chat/widget.css";
  document.head.appendChild(link);

  const root = el("div", "ssw-chat");
  const launcher = el("button", "ssw-chat-launcher", title);
  launcher.type = "button";
  const panel = el("section", "ssw-chat-panel");
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", title);
  const header = el("header", "ssw-chat-header");
  const h = el("h2", "ssw-chat-title", title);
  const status = el("p", "ssw-chat-status", "");
  status.setAttribute("aria-live", "polite");
  const minimise = el("button", "ssw-chat-min", "–");
  minimise.type = "button";
  minimise.title = "Minimise";
  const end = el("button", "ssw-chat-end", "End chat");
  end.type = "button";
  const heading = el("div", "ssw-chat-heading");
  heading.append(h, status);
  header.append(heading, end, minimise);
  const log = el("ol", "ssw-chat-log");
  log.setAttribute("aria-live", "polite");
  const typing = el("p", "ssw-chat-typing", "The agent is typing…");
  typing.hidden = true;
  const error = el("p", "ssw-chat-error");
  error.setAttribute("role", "alert");
  const form = el("form", "ssw-chat-form");
  const input = el("textarea", "ssw-chat-input");
  input.rows = 2;
  input.maxLength = MAX;
  input.placeholder = "Type a message";
  input.setAttribute("aria-label", "Message");
  const send = el("button", "ssw-chat-send", "Send");
  send.type = "submit";
  form.append(input, send);
  const again = el("button", "ssw-chat-again", "Start a new chat");
  again.type = "button";
  again.hidden = true;
  panel.append(header, log, typing, error, form, again);
  root.append(panel, launcher);

  function setState(state, text) {
    S.state = state;
    root.dataset.state = state;
    status.textContent = text;
    const live = state === "queued" || state === "chatting";
    input.disabled = send.disabled = !live;
    end.hidden = !live && state !== "connecting";
    again.hidden = state !== "ended";
  }

  function showError(text) {
    error.textContent = text;
    clearTimeout(S.errorTimer);
    S.errorTimer = setTimeout(() => { error.textContent = ""; }, 5000);
  }

  function clock(at) {
    const d = new Date(at * 1000);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function addMessage(m) {
    const li = el("li", "ssw-msg ssw-from-" + m.from);
    li.dataset.seq = String(m.seq);
    const who = m.from === "agent" ? (m.name || "Agent") : "You";
    const meta = el("span", "ssw-meta", `${who} · ${clock(m.at)}`);
    const text = el("p", "ssw-text", m.text);
    li.append(meta, text);
    if (m.from === "visitor") {
      const mark = el("span", "ssw-mark", "sent");
      li.append(mark);
      li.dataset.mark = "sent";
    }
    log.append(li);
    log.scrollTop = log.scrollHeight;
    if (m.from === "agent") {
      S.lastAgentSeq = m.seq;
      typing.hidden = true;
      markRead();
    }
    paintMarks();
  }

  function paintMarks() {
    for (const li of log.querySelectorAll("li.ssw-from-visitor")) {
      const seq = Number(li.dataset.seq);
      const mark = seq <= S.marks.read ? "read" : seq <= S.marks.delivered ? "delivered" : "sent";
      if (li.dataset.mark !== mark) {
        li.dataset.mark = mark;
        li.querySelector(".ssw-mark").textContent = mark === "read" ? "✓✓ read" : mark === "delivered" ? "✓ delivered" : "sent";
      }
    }
  }

  function frame(obj) {
    if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify(obj));
  }

  function markRead() {
    if (!panel.hidden && document.visibilityState === "visible" && S.lastAgentSeq) frame({ type: "read", upto: S.lastAgentSeq });
  }

  function connect() {
    if (S.ws) return;
    log.textContent = "";
    S.marks = { delivered: 0, read: 0 };
    S.lastAgentSeq = 0;
    setState("connecting", "Connecting…");
    const scheme = base.protocol === "https:" ? "wss://" : "ws://";
    const url = `${scheme}${base.host}/chat/ws?queue=${encodeURIComponent(queue)}` +
      `&page=${encodeURIComponent((location.origin + location.pathname).slice(0, 500))}`;   // no query: it may hold secrets
    const ws = new WebSocket(url);
    S.ws = ws;
    let opened = false;
    ws.onopen = () => { opened = true; };
    ws.onmessage = (ev) => {
      let f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      switch (f.type) {
        case "welcome":
          S.chat = f.chat;
          setState("queued", f.position ? `Waiting for an agent (you are number ${f.position})` : "Waiting for an agent");
          break;
        case "queued":
          setState("queued", f.why === "transferred" ? "Transferred: waiting for the next agent" : "Waiting for an agent");
          break;
        case "agent":
          setState("chatting", `Chatting with ${f.name}`);
          break;
        case "message": addMessage(f); break;
        case "delivered": S.marks.delivered = Math.max(S.marks.delivered, f.upto); paintMarks(); break;
        case "read":
          S.marks.read = Math.max(S.marks.read, f.upto);
          S.marks.delivered = Math.max(S.marks.delivered, f.upto);
          paintMarks();
          break;
        case "typing":
          typing.hidden = !f.on;
          clearTimeout(S.typingHide);
          if (f.on) S.typingHide = setTimeout(() => { typing.hidden = true; }, 8000);
          break;
        case "ended":
          setState("ended", f.reason === "agent ended" ? "The agent ended the chat" : "Chat ended");
          typing.hidden = true;
          break;
        case "error": showError(f.error); break;
      }
    };
    ws.onclose = () => {
      S.ws = null;
      if (S.state !== "ended") setState("ended", opened ? "Chat ended (connection closed)" : "Chat is not available right now");
    };
  }

  function openPanel() {
    panel.hidden = false;
    launcher.hidden = true;
    root.dataset.open = "true";
    if (!S.ws && S.state !== "ended") connect();
    markRead();
    input.focus();
  }

  launcher.addEventListener("click", openPanel);
  minimise.addEventListener("click", () => {
    panel.hidden = true;
    launcher.hidden = false;
    root.dataset.open = "false";
  });
  end.addEventListener("click", () => {
    frame({ type: "end" });
    if (S.ws) S.ws.close();
  });
  again.addEventListener("click", () => { S.state = "closed"; connect(); input.focus(); });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    frame({ type: "message", text: text.slice(0, MAX) });
    input.value = "";
    if (S.typingSent) { frame({ type: "typing", on: false }); S.typingSent = 0; }
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
  });
  input.addEventListener("input", () => {
    const now = Date.now();
    if (now - S.typingSent > 3000) { frame({ type: "typing", on: true }); S.typingSent = now; }
    clearTimeout(S.typingTimer);
    S.typingTimer = setTimeout(() => { if (S.typingSent) frame({ type: "typing", on: false }); S.typingSent = 0; }, 4000);
  });
  document.addEventListener("visibilitychange", markRead);
  window.addEventListener("pagehide", () => { if (S.ws) S.ws.close(); });

  function mount() {
    document.body.append(root);
    setState("closed", "");
    if (me.dataset.open === "true") openPanel();
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
  window.softswitchChat = { open: openPanel, state: () => S.state, chat: () => S.chat };
})();
