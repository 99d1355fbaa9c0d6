// Wallboard: queues, agents and KPIs of one node, live.
// Data: /api/queues and /api/agents (bearer token of a supervisor), refetched on each /api/events WebSocket
// event (throttled) and every 2 s as a fallback. Waits and times in state tick client-side between fetches.
"use strict";
(() => {
  const STATES = ["idle", "ringing", "talking", "wrap_up", "busy", "rest", "offline"];
  const POLL_MS = 2000;        // fallback refresh, with or without the WebSocket
  const THROTTLE_MS = 250;     // at most one refresh per this, however many events arrive
  const TICK_MS = 500;         // client-side clocks
  const LONG_WAIT_S = 30;      // a queue's longest wait past this is shown in red
  const TOKEN_KEY = "wallboard.token";

  const $ = (id) => document.getElementById(id);
  const S = {
    token: null, skew: 0, queues: [], queuesAt: 0, agents: [],
    ws: null, wsRetryMs: 1000, wsTimer: null, pollTimer: null, tickTimer: null,
    pending: null, inflight: false, again: false, lastRefresh: 0,
    events: 0, refreshes: 0, conn: "off",
    cards: new Map(), rows: new Map(),
  };
  // Read-only counters for tests and the curious (no token here).
  window.wallboard = Object.freeze({
    get events() { return S.events; }, get refreshes() { return S.refreshes; }, get conn() { return S.conn; },
  });

  // --- formatting ---------------------------------------------------------------------------------------
  const pad = (n) => String(n).padStart(2, "0");
  function duration(s) {
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return h ? `${h}:${pad(m)}:${pad(sec)}` : `${m}:${pad(sec)}`;
  }
  const seconds = (x) => (x == null ? "—" : x < 60 ? `${x.toFixed(1)} s` : duration(x));
  const percent = (x) => (x == null ? "—" : `${(100 * x).toFixed(1)}%`);
  const stateLabel = (st) => String(st).replace(/_/g, " ");
  const serverNow = () => Date.now() / 1000 + S.skew;

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  // --- HTTP -----------------------------------------------------------------------------------------------
  class Unauthorized extends Error {}

  async function api(path, options = {}) {
    const headers = { "Content-Type": "application/json" };
    if (S.token) headers.Authorization = `Bearer ${S.token}`;
    const r = await fetch(path, { ...options, headers, cache: "no-store" });
    let body = null;
    try { body = await r.json(); } catch (_) { /* empty or not JSON */ }
    if (r.status === 401 && S.token) throw new Unauthorized((body && body.error) || "session expired");
    if (!r.ok) throw new Error((body && body.error) || `HTTP ${r.status}`);
    return body;
  }

  async function syncClock() {
    try {
      const t0 = Date.now();
      const r = await fetch("/wallboard/clock", { cache: "no-store" });
      const body = await r.json();
      const t1 = Date.now();
      S.skew = body.now - (t0 + t1) / 2000;
      $("node-id").textContent = body.node_id || "";
    } catch (_) {
      S.skew = 0;
    }
  }

  // --- sign-in / sign-out -----------------------------------------------------------------------------------
  async function onLogin(ev) {
    ev.preventDefault();
    const error = $("login-error"), submit = $("login-submit");
    error.textContent = "";
    submit.disabled = true;
    try {
      const r = await api("/api/login", {
        method: "POST", body: JSON.stringify({ account: $("account").value.trim(), password: $("password").value }),
      });
      if (r.role !== "supervisor" && r.role !== "admin") {
        S.token = r.token;
        await api("/api/logout", { method: "POST" }).catch(() => {});
        S.token = null;
        error.textContent = "The wallboard needs a supervisor account.";
        return;
      }
      $("password").value = "";
      S.token = r.token;
      try { sessionStorage.setItem(TOKEN_KEY, r.token); } catch (_) { /* storage disabled */ }
      await startBoard();
    } catch (e) {
      error.textContent = e.message || String(e);
    } finally {
      submit.disabled = false;
    }
  }

  function stopBoard() {
    clearInterval(S.pollTimer); clearInterval(S.tickTimer); clearTimeout(S.pending); clearTimeout(S.wsTimer);
    S.pollTimer = S.tickTimer = S.pending = S.wsTimer = null;
    const ws = S.ws;
    S.ws = null;
    if (ws) ws.close();
    S.token = null;
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* storage disabled */ }
    setConn("off");
    $("board").hidden = true;
    $("sign-out").hidden = true;
    $("login-view").hidden = false;
  }

  async function signOut(message = "") {
    if (S.token) await api("/api/logout", { method: "POST" }).catch(() => {});
    stopBoard();
    $("login-error").textContent = message;
  }

  async function startBoard() {
    $("login-view").hidden = true;
    $("board").hidden = false;
    $("sign-out").hidden = false;
    setConn("polling");
    await syncClock();
    await refresh();
    if (!S.token) return;                       // the token was refused: back at the sign-in form
    connectEvents();
    S.pollTimer = setInterval(refresh, POLL_MS);
    S.tickTimer = setInterval(tick, TICK_MS);
  }

  // --- live data --------------------------------------------------------------------------------------------
  function setConn(mode) {
    S.conn = mode;
    const c = $("conn");
    c.dataset.conn = mode;
    c.className = `conn conn-${mode}`;
    c.textContent = { live: "live", polling: "polling every 2 s", off: "signed out" }[mode];
  }

  function connectEvents() {
    if (!S.token) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/events?token=${encodeURIComponent(S.token)}`);
    S.ws = ws;
    ws.onopen = () => {
      if (S.ws !== ws) return;
      S.wsRetryMs = 1000;
      setConn("live");
      schedule();
    };
    ws.onmessage = () => {
      if (S.ws !== ws) return;
      S.events += 1;
      schedule();
    };
    ws.onclose = () => {
      if (S.ws !== ws) return;                  // signed out, or replaced
      S.ws = null;
      setConn("polling");
      S.wsTimer = setTimeout(connectEvents, S.wsRetryMs);
      S.wsRetryMs = Math.min(2 * S.wsRetryMs, 15000);
    };
  }

  // An event asks for a refresh; events in a burst share one.
  function schedule() {
    if (S.pending) return;
    const wait = Math.max(0, S.lastRefresh + THROTTLE_MS - performance.now());
    S.pending = setTimeout(() => { S.pending = null; refresh(); }, wait);
  }

  async function refresh() {
    if (!S.token) return;
    if (S.inflight) { S.again = true; return; }
    S.inflight = true;
    S.lastRefresh = performance.now();
    try {
      const [queues, agents] = await Promise.all([api("/api/queues"), api("/api/agents")]);
      S.queues = queues;
      S.queuesAt = performance.now();
      S.agents = agents;
      S.refreshes += 1;
      render();
      $("board-error").textContent = "";
      $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (e instanceof Unauthorized) { stopBoard(); $("login-error").textContent = "Session expired: sign in again."; return; }
      $("board-error").textContent = `Cannot refresh: ${e.message || e}`;
    } finally {
      S.inflight = false;
      if (S.again) { S.again = false; schedule(); }
    }
  }

  // --- rendering --------------------------------------------------------------------------------------------
  function queueCard(name) {
    const f = {};
    const field = (key, cls = "value") => (f[key] = el("div", { class: cls, "data-field": key }));
    const kpi = (key, label) => el("div", {}, el("div", { class: "label", text: label }), field(key));
    const card = el("section", { class: "queue", "data-queue": name },
      el("h3", { text: name }),
      el("div", { class: "top" },
        el("div", { class: "waiting" }, el("div", { class: "label", text: "Waiting" }), field("waiting", "big")),
        el("div", { class: "longest" }, el("div", { class: "label", text: "Longest wait" }), field("longest_wait", "big"))),
      (f.by_state = el("div", { class: "by-state", "data-field": "agents" })),
      el("div", { class: "kpis" },
        kpi("service_level", "Service level"), kpi("average_speed_of_answer", "ASA"),
        kpi("abandon_rate", "Abandoned"), kpi("average_handle_time", "AHT"),
        kpi("agents_needed", "Agents needed")),
      field("counts", "counts"));
    f.chips = {};
    for (const st of STATES) {
      f.chips[st] = el("span", { class: `chip state-${st}`, "data-state": st });
      f.by_state.append(f.chips[st]);
    }
    return { card, f };
  }

  function renderQueues() {
    const box = $("queues");
    const names = new Set(S.queues.map((q) => q.name));
    for (const [name, c] of S.cards) if (!names.has(name)) { c.card.remove(); S.cards.delete(name); }
    for (const q of S.queues) {
      let c = S.cards.get(q.name);
      if (!c) { c = queueCard(q.name); S.cards.set(q.name, c); }
      box.append(c.card);                       // keeps the API's order
      c.q = q;
      c.f.waiting.textContent = q.waiting;
      c.card.classList.toggle("has-waiting", q.waiting > 0);
      for (const st of STATES) {
        const n = (q.agents && q.agents[st]) || 0;
        c.f.chips[st].textContent = `${stateLabel(st)} ${n}`;
        c.f.chips[st].dataset.count = n;
        c.f.chips[st].classList.toggle("zero", n === 0);
      }
      c.f.service_level.textContent = percent(q.service_level);
      c.f.average_speed_of_answer.textContent = seconds(q.average_speed_of_answer);
      c.f.abandon_rate.textContent = percent(q.abandon_rate);
      c.f.average_handle_time.textContent = seconds(q.average_handle_time);
      c.f.agents_needed.textContent = q.agents_needed == null ? "\u2014" : String(q.agents_needed);
      c.f.counts.textContent = `entered ${q.entered} · answered ${q.answered} · abandoned ${q.abandoned}` +
        ` · overflowed ${q.overflowed}`;
    }
  }

  function agentRow(id) {
    const f = {};
    const cell = (key, cls = "") => (f[key] = el("td", { class: cls, "data-field": key }));
    const row = el("tr", { "data-agent": id },
      cell("id"), cell("softphone"), cell("state"), cell("reason"), cell("time_in_state", "time"),
      cell("queues"), cell("answered", "num"), cell("registered"));
    f.chip = el("span", { class: "chip" });
    f.state.append(f.chip);
    return { row, f };
  }

  function renderAgents() {
    const body = document.querySelector("#agents tbody");
    const agents = [...S.agents].sort((a, b) => String(a.id).localeCompare(String(b.id), undefined, { numeric: true }));
    const ids = new Set(agents.map((a) => String(a.id)));
    for (const [id, r] of S.rows) if (!ids.has(id)) { r.row.remove(); S.rows.delete(id); }
    for (const a of agents) {
      const id = String(a.id);
      let r = S.rows.get(id);
      if (!r) { r = agentRow(id); S.rows.set(id, r); }
      body.append(r.row);
      r.a = a;
      r.row.dataset.state = a.state;
      r.f.id.textContent = id;
      r.f.softphone.textContent = a.softphone || "";
      r.f.state.dataset.state = a.state;
      r.f.chip.className = `chip state-${a.state}`;
      r.f.chip.textContent = stateLabel(a.state);
      r.f.reason.textContent = a.reason || "";
      r.f.queues.textContent = (a.queues || []).join(", ");
      r.f.answered.textContent = a.answered ?? "";
      r.f.registered.textContent = a.registered ? "yes" : "no";
    }
  }

  // Client-side clocks: queues' longest waits and agents' times in state move on between fetches.
  function tick() {
    const since = (performance.now() - S.queuesAt) / 1000;
    for (const c of S.cards.values()) {
      if (!c.q) continue;
      const wait = c.q.waiting > 0 ? c.q.longest_wait + since : 0;
      c.f.longest_wait.textContent = duration(wait);
      c.card.classList.toggle("long-wait", wait > LONG_WAIT_S);
    }
    const now = serverNow();
    for (const r of S.rows.values()) {
      r.f.time_in_state.textContent = r.a && r.a.since ? duration(now - r.a.since) : "";
    }
  }

  function render() {
    renderQueues();
    renderAgents();
    tick();
  }

  // --- start --------------------------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", onLogin);
    $("sign-out").addEventListener("click", () => signOut());
    let saved = null;
    try { saved = sessionStorage.getItem(TOKEN_KEY); } catch (_) { /* storage disabled */ }
    if (saved) { S.token = saved; startBoard(); }
  });
})();
