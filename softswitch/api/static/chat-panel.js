// The agent's chats, beside the phone on the agent page: fills <section id="chat-panel"> and talks to the node
// over GET /api/chat/agent (WebSocket). Agents of multimedia queues get chats while signed in and idle (up to
// their chats figure) or on a call (up to while_on_call); each chat has its transcript, typing and read marks,
// an answer box, transfer (to a queue or an agent) and end.
// The page's sign-on is reused: the bearer token of the page's own API calls (or a `softswitch:session` event
// with {detail: {token}}), so this file needs nothing from agent.js.
(function () {
  "use strict";
  const root = document.getElementById("chat-panel");
  if (!root) return;
  const S = { token: null, ws: null, retry: null, failures: 0, chats: new Map(), view: null, queues: [] };

  const css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = "/agent/static/chat-panel.css";
  document.head.appendChild(css);

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k in e && typeof v !== "string") e[k] = v;
      else e.setAttribute(k, v);
    }
    e.append(...children);
    return e;
  }

  const count = el("span", { class: "chat-count", text: "" });
  const note = el("p", { class: "muted chat-note", text: "Chats appear here while you are signed in and ready." });
  const list = el("div", { class: "chat-list" });
  const error = el("p", { class: "error", role: "alert" });
  root.replaceChildren(el("h2", {}, "Chats ", count), note, error, list);
  root.hidden = true;

  // --- the page's session ---------------------------------------------------------------------------------
  function useToken(token) {
    if (!token || token === S.token) return;
    S.token = token;
    S.failures = 0;
    connect();
  }
  function dropToken() {
    S.token = null;
    clearTimeout(S.retry);
    if (S.ws) S.ws.close();
    root.hidden = true;
  }
  document.addEventListener("softswitch:session", (ev) => (ev.detail && ev.detail.token ? useToken(ev.detail.token) : dropToken()));
  const pageFetch = window.fetch.bind(window);
  window.fetch = async function (input, init) {
    const url = new URL(typeof input === "string" ? input : input.url, location.href);
    const headers = new Headers((init && init.headers) || (typeof input === "string" ? undefined : input.headers));
    const auth = headers.get("Authorization") || "";
    const r = await pageFetch(input, init);
    if (url.origin === location.origin) {
      if (url.pathname === "/api/logout" || (r.status === 401 && auth)) dropToken();
      else if (url.pathname === "/api/login" && r.ok) r.clone().json().then((b) => useToken(b.token)).catch(() => {});
      else if (auth.startsWith("Bearer ") && r.ok) useToken(auth.slice(7));
    }
    return r;
  };

  // --- the connection ---------------------------------------------------------------------------------------
  function connect() {
    if (!S.token || S.ws) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/api/chat/agent?token=${encodeURIComponent(S.token)}`);
    S.ws = ws;
    let opened = false;
    ws.onopen = () => { opened = true; S.failures = 0; root.hidden = false; root.dataset.conn = "live"; };
    ws.onmessage = (ev) => { try { onFrame(JSON.parse(ev.data)); } catch (e) { /* a frame we do not know */ } };
    ws.onclose = () => {
      S.ws = null;
      root.dataset.conn = "off";
      for (const c of S.chats.values()) c.card.remove();
      S.chats.clear();
      update();
      if (!S.token) return;
      S.failures = opened ? 0 : S.failures + 1;
      // refused before it opened (no multimedia queue for this account): stop asking after a few tries
      if (S.failures >= 3) { root.hidden = true; return; }
      S.retry = setTimeout(connect, 2000);
    };
  }

  function send(obj) {
    if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify(obj));
  }

  function onFrame(f) {
    switch (f.type) {
      case "hello":
        S.queues = f.transfer_queues || [];
        capacity(f);
        for (const c of f.chats || []) addChat(c);
        break;
      case "capacity": capacity(f); break;
      case "chat": addChat(f); break;
      case "message": { const c = S.chats.get(f.chat); if (c) { addMessage(c, f); markRead(c); } break; }
      case "typing": { const c = S.chats.get(f.chat); if (c) showTyping(c, f.on); break; }
      case "delivered": { const c = S.chats.get(f.chat); if (c) { c.delivered = Math.max(c.delivered, f.upto); paint(c); } break; }
      case "read": { const c = S.chats.get(f.chat); if (c) { c.read = Math.max(c.read, f.upto); c.delivered = Math.max(c.delivered, f.upto); paint(c); } break; }
      case "removed": removeChat(f.chat, f.why === "transferred" ? "transferred" : "returned to the queue"); break;
      case "ended": endChat(f.chat, f.reason); break;
      case "error":
        error.textContent = f.error;
        setTimeout(() => { if (error.textContent === f.error) error.textContent = ""; }, 6000);
        break;
    }
  }

  function capacity(v) {
    S.view = v;
    update();
  }

  function update() {
    const active = [...S.chats.values()].filter((c) => !c.over).length;
    const cap = S.view ? S.view.capacity : 0;
    count.textContent = S.view ? `${active} / ${cap}` : "";
    count.dataset.full = String(S.view ? active >= cap : false);
    root.dataset.chats = String(active);
    note.hidden = S.chats.size > 0;
    if (S.view) {
      note.textContent = cap > 0 ? `Ready for up to ${cap} chat${cap === 1 ? "" : "s"} at once.`
        : "No new chats while you are not ready (sign in and go idle).";
    }
  }

  // --- a chat ------------------------------------------------------------------------------------------------
  function clock(at) {
    return new Date(at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function addChat(f) {
    const old = S.chats.get(f.chat);
    if (old) old.card.remove();
    const log = el("ol", { class: "chat-log", "aria-live": "polite" });
    const typing = el("p", { class: "chat-typing muted", text: "Visitor is typing…" });
    typing.hidden = true;
    const input = el("textarea", { class: "chat-input", rows: 2, maxLength: 2000, placeholder: "Answer", "aria-label": "Answer" });
    const sendBtn = el("button", { type: "submit", text: "Send" });
    const form = el("form", { class: "chat-form" }, input, sendBtn);
    const target = el("select", { class: "chat-target", "aria-label": "transfer to" },
      el("option", { value: "", text: "Transfer to…" }),
      ...S.queues.map((q) => el("option", { value: `queue:${q}`, text: `queue ${q}` })));
    const agentId = el("input", { class: "chat-agent", placeholder: "agent id", "aria-label": "transfer to agent id", size: 8 });
    const transfer = el("button", { type: "button", class: "secondary chat-transfer", text: "Transfer" });
    const end = el("button", { type: "button", class: "state-busy chat-end", text: "End" });
    const where = f.origin ? ` · ${f.origin}` : "";
    const status = el("span", { class: "chat-status muted", text: f.transferred_from ? "transferred to you" : "" });
    const card = el("article", { class: "chat-card" },
      el("header", {}, el("strong", { text: f.visitor || "Visitor" }), el("span", { class: "muted", text: ` ${f.queue}${where}` }), status),
      log, typing, form, el("div", { class: "chat-actions" }, target, agentId, transfer, end));
    card.dataset.chat = f.chat;
    const c = { id: f.chat, card, log, typing, input, status, delivered: 0, read: 0, last: 0, over: false, typingSent: 0, typingTimer: null, hideTimer: null };
    S.chats.set(f.chat, c);
    list.append(card);
    for (const m of f.messages || []) {
      addMessage(c, m);
      if (m.from === "agent" && m.read) c.read = Math.max(c.read, m.seq);
      if (m.from === "agent" && m.delivered) c.delivered = Math.max(c.delivered, m.seq);
    }
    paint(c);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const text = input.value.trim();
      if (!text || c.over) return;
      send({ type: "message", chat: c.id, text });
      input.value = "";
      if (c.typingSent) { send({ type: "typing", chat: c.id, on: false }); c.typingSent = 0; }
    });
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
    });
    input.addEventListener("input", () => {
      const now = Date.now();
      if (now - c.typingSent > 3000) { send({ type: "typing", chat: c.id, on: true }); c.typingSent = now; }
      clearTimeout(c.typingTimer);
      c.typingTimer = setTimeout(() => { if (c.typingSent) send({ type: "typing", chat: c.id, on: false }); c.typingSent = 0; }, 4000);
    });
    input.addEventListener("focus", () => markRead(c));
    transfer.addEventListener("click", () => {
      const id = agentId.value.trim();
      if (id) send({ type: "transfer", chat: c.id, agent: id });
      else if (target.value.startsWith("queue:")) send({ type: "transfer", chat: c.id, queue: target.value.slice(6) });
      else { error.textContent = "Pick a queue or type an agent id to transfer to."; }
    });
    end.addEventListener("click", () => {
      if (c.over) { c.card.remove(); S.chats.delete(c.id); update(); }
      else send({ type: "end", chat: c.id });
    });
    markRead(c);
    update();
  }

  function addMessage(c, m) {
    const li = el("li", { class: `chat-msg from-${m.from}` },
      el("span", { class: "chat-meta", text: `${m.from === "agent" ? "You" : "Visitor"} · ${clock(m.at)}` }),
      el("p", { class: "chat-text", text: m.text }));
    li.dataset.seq = String(m.seq);
    if (m.from === "agent") li.append(el("span", { class: "chat-mark", text: "sent" }));
    else c.last = Math.max(c.last, m.seq);
    c.log.append(li);
    c.log.scrollTop = c.log.scrollHeight;
    if (m.from === "visitor") showTyping(c, false);
    paint(c);
  }

  function paint(c) {
    for (const li of c.log.querySelectorAll("li.from-agent")) {
      const seq = Number(li.dataset.seq);
      const mark = seq <= c.read ? "read" : seq <= c.delivered ? "delivered" : "sent";
      if (li.dataset.mark !== mark) {
        li.dataset.mark = mark;
        li.querySelector(".chat-mark").textContent = mark === "read" ? "✓✓ read" : mark === "delivered" ? "✓ delivered" : "sent";
      }
    }
  }

  function markRead(c) {
    if (c.last && document.visibilityState === "visible") send({ type: "read", chat: c.id, upto: c.last });
  }

  function showTyping(c, on) {
    c.typing.hidden = !on;
    clearTimeout(c.hideTimer);
    if (on) c.hideTimer = setTimeout(() => { c.typing.hidden = true; }, 8000);
  }

  function closeCard(c, text) {
    c.over = true;
    c.card.dataset.over = "true";
    c.status.textContent = text;
    c.input.disabled = true;
    c.typing.hidden = true;
    c.card.querySelector(".chat-end").textContent = "Close";
    update();
  }

  function removeChat(id, why) {
    const c = S.chats.get(id);
    if (!c) return;
    closeCard(c, why);
    setTimeout(() => { c.card.remove(); S.chats.delete(id); update(); }, 4000);
  }

  function endChat(id, reason) {
    const c = S.chats.get(id);
    if (c) closeCard(c, reason === "visitor left" ? "the visitor left" : reason);
  }

  document.addEventListener("visibilitychange", () => { for (const c of S.chats.values()) if (!c.over) markRead(c); });
})();
