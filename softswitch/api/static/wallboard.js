// Wallboard: queues (KPIs with threshold colours, service level against its goal, 60-minute trend), calls waiting
// and with agents, and agents by name, of one node, live.
// Data: GET /api/wallboard and GET /api/wallboard/agents (the page of agents the panel shows: filtered by queue,
// state and a search, sorted, 50 at a time), refetched when the /api/wallboard/events WebSocket says something
// changed (at most once a second) and every 2 s as a fallback, and GET /api/wallboard/trends (every 10 s).
// The server builds each answer once per second for all viewers. Waits, talk times and times in state tick
// client-side between fetches. Supervisors' Listen / Whisper / Barge buttons call POST /api/calls/ID/supervise.
"use strict";
(() => {
  const STATES = ["idle", "ringing", "talking", "wrap_up", "busy", "rest", "offline"];
  const STATE_WORDS = { idle: "ready", ringing: "ringing", talking: "talking", wrap_up: "wrap-up", busy: "busy",
                        rest: "rest", offline: "offline" };
  const MODES = [["listen", "Listen"], ["whisper", "Whisper"], ["barge", "Barge"]];
  const POLL_MS = 2000;        // fallback refresh, with or without the WebSocket
  const TREND_MS = 10000;      // the trend is per minute: a few fetches a minute are plenty
  const THROTTLE_MS = 1000;    // at most one refresh per this, however many events arrive (the server's interval)
  const COMPACT_FROM = 4;      // more queues than this: compact cards, opened one at a time
  const PAGE_SIZE = 50;
  const SHOW_CALLS = 12;       // calls listed per table before "show more"        // agents per page of the panel
  const BIG_SITE = 200;        // past this many agents the panel starts with the signed-in ones
  const TICK_MS = 500;         // client-side clocks
  const TOKEN_KEY = "wallboard.token";

  const $ = (id) => document.getElementById(id);
  const S = {
    token: null, account: "", skew: 0, board: null, boardAt: 0, trends: null, trendsAt: -Infinity,
    ws: null, wsRetryMs: 1000, wsTimer: null, pollTimer: null, tickTimer: null,
    pending: null, inflight: false, again: false, lastRefresh: 0,
    events: 0, refreshes: 0, conn: "off", supervising: new Map(),
    cards: new Map(), rows: new Map(), waitRows: new Map(), activeRows: new Map(),
    showAll: { waiting: false, active: false }, agents: null, query: { queue: "", state: null, sort: "name", q: "", offset: 0 }, agentsSeq: 0,
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
  const shortSeconds = (x) => (x < 60 ? `${+x.toFixed(1)} s` : x % 60 ? duration(x) : `${x / 60} min`);
  function percent(x) {
    if (x == null) return "—";
    const p = 100 * x;
    return `${Number.isInteger(Math.round(p * 10) / 10) ? Math.round(p) : p.toFixed(1)}%`;
  }
  const serverNow = () => Date.now() / 1000 + S.skew;
  // seconds since the board's figures were taken: its age when served (it is shared for a second) plus since
  const sinceFetch = () => (performance.now() - S.boardAt) / 1000 + Math.max(0, (S.board.served_at || 0) - S.board.now);

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  // ok / warn / alarm of a KPI against its thresholds; "none" without a value
  function level(t, value) {
    if (value == null || !t) return "none";
    if (t.higher_is_worse) return value >= t.alarm ? "alarm" : value >= t.warn ? "warn" : "ok";
    return value < t.alarm ? "alarm" : value < t.warn ? "warn" : "ok";
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
    S.board = null;
    S.agents = null;
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* storage disabled */ }
    setConn("off");
    $("board").hidden = true;
    $("sign-out").hidden = true;
    $("who").textContent = "";
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
    const ws = new WebSocket(`${proto}//${location.host}/api/wallboard/events?token=${encodeURIComponent(S.token)}`);
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

  function showError(id, text) {
    const e = $(id);
    e.textContent = text;
    e.hidden = !text;
  }

  async function refresh() {
    if (!S.token) return;
    if (S.inflight) { S.again = true; return; }
    S.inflight = true;
    S.lastRefresh = performance.now();
    try {
      const wantTrends = performance.now() - S.trendsAt > TREND_MS;
      const seq = S.agentsSeq;
      const [board, trends, agents] = await Promise.all([api("/api/wallboard"),
                                                         wantTrends ? api("/api/wallboard/trends") : null,
                                                         fetchAgents()]);
      S.board = board;
      if (seq === S.agentsSeq) S.agents = agents;         // else the filter changed meanwhile: its own fetch wins
      S.boardAt = performance.now();
      S.skew = board.now - Date.now() / 1000;
      if (trends) { S.trends = trends; S.trendsAt = performance.now(); }
      S.refreshes += 1;
      render();
      showError("board-error", "");
      $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (e instanceof Unauthorized) { stopBoard(); $("login-error").textContent = "Session expired: sign in again."; return; }
      showError("board-error", `Cannot refresh the board: ${e.message || e}`);
    } finally {
      S.inflight = false;
      if (S.again) { S.again = false; schedule(); }
    }
  }

  // --- queue cards ----------------------------------------------------------------------------------------------
  const TILES = [
    ["waiting", "Waiting"], ["longest_wait", "Longest wait"], ["service_level", "Service level"],
    ["average_speed_of_answer", "Speed of answer"], ["abandon_rate", "Abandoned"],
    ["average_handle_time", "Handle time"], ["agents_needed", "Agents needed"],
  ];

  // a compact card's four tiles are narrow: their labels in a word
  const SHORT_LABELS = { longest_wait: "Longest", service_level: "SL", abandon_rate: "Abandon" };

  function queueCard(name) {
    const f = { tiles: {}, subs: {}, chips: {} };
    const tiles = el("div", { class: "tiles" });
    for (const [key, label] of TILES) {
      f[key] = el("div", { class: "value", "data-field": key });
      f.subs[key] = el("div", { class: "sub", "data-sub": key });
      f.tiles[key] = el("div", { class: "tile", "data-kpi": key, "data-level": "none" },
        el("div", { class: "label" }, el("span", { class: "full", text: label }),
           el("span", { class: "short", text: SHORT_LABELS[key] || label })), f[key], f.subs[key]);
      tiles.append(f.tiles[key]);
    }
    f.goal = el("span", { class: "goal", "data-field": "goal" });
    // many queues: cards show the four main figures until opened (all figures and the trend, full width)
    f.more = el("button", { type: "button", class: "quiet more", "aria-expanded": "false", text: "details" });
    f.by_state = el("div", { class: "by-state", "data-field": "agents" });
    for (const st of STATES) {
      f.chips[st] = el("span", { class: `chip state-${st}`, "data-state": st });
      f.by_state.append(f.chips[st]);
    }
    f.chart = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    f.chart.setAttribute("class", "trend-chart");
    f.chart.dataset.points = "0";
    f.counts = el("div", { class: "counts", "data-field": "counts" });
    const card = el("section", { class: "queue", "data-queue": name },
      el("div", { class: "queue-head" }, el("h3", { text: name }), f.goal, f.more),
      tiles, f.by_state,
      el("div", { class: "trend" }, f.chart,
        el("div", { class: "legend" },
          el("span", {}, el("i", { class: "k-waiting" }), "most waiting"),
          el("span", {}, el("i", { class: "k-sl" }), "service level (right axis)"),
          el("span", {}, el("i", { class: "k-answered" }), "answered"),
          el("span", {}, el("i", { class: "k-abandoned" }), "abandoned"),
          el("span", { text: "per minute, last 60 min" }))),
      f.counts);
    f.more.addEventListener("click", () => {
      const open = !card.classList.contains("open");
      card.classList.toggle("open", open);
      f.more.setAttribute("aria-expanded", String(open));
      f.more.textContent = open ? "less" : "details";
    });
    return { card, f };
  }

  // The trend is fetched every few seconds, the board more often: the current minute shows the board's waiting
  // count as soon as it is known.
  function withLive(series, q) {
    const period = S.trends.period, minute = S.board.now - (S.board.now % period);
    const out = series.slice();
    const last = out[out.length - 1];
    if (last && last.t === minute) {
      out[out.length - 1] = { ...last, waiting: q.waiting, waiting_max: Math.max(last.waiting_max ?? 0, q.waiting) };
    } else if (!last || last.t < minute) {
      out.push({ t: minute, waiting: q.waiting, waiting_max: q.waiting, answered: 0, abandoned: 0,
                 short_abandoned: 0, service_level: null });
    }
    return out;
  }

  function setTile(c, key, text, sub, lvl = "none") {
    c.f[key].textContent = text;
    c.f.subs[key].textContent = sub;
    c.f.tiles[key].dataset.level = lvl;
  }

  function renderQueues() {
    const box = $("queues");
    const queues = S.board.queues;
    box.classList.toggle("compact", queues.length > COMPACT_FROM);
    const names = new Set(queues.map((q) => q.name));
    for (const [name, c] of S.cards) if (!names.has(name)) { c.card.remove(); S.cards.delete(name); }
    for (const q of queues) {
      let c = S.cards.get(q.name);
      if (!c) { c = queueCard(q.name); S.cards.set(q.name, c); }
      box.append(c.card);                       // keeps the API's order
      c.q = q;
      const t = q.thresholds || {};
      const goal = `${percent(q.service_level_goal)} in ${shortSeconds(q.service_level_time)}`;
      c.f.goal.textContent = `goal ${goal}`;
      c.card.classList.toggle("has-waiting", q.waiting > 0);
      setTile(c, "waiting", String(q.waiting), q.waiting === 1 ? "call in queue" : "calls in queue",
              level(t.waiting, q.waiting));
      setTile(c, "service_level", percent(q.service_level), `goal ${goal}`, level(t.service_level, q.service_level));
      setTile(c, "average_speed_of_answer", seconds(q.average_speed_of_answer), "average wait of answered calls",
              level(t.average_speed_of_answer, q.average_speed_of_answer));
      // short abandons (the caller hung up within short_abandon_time) are left out of the rate: say so
      const shortNote = ` + ${q.short_abandoned} short (under ${shortSeconds(q.short_abandon_time)}, not in the rate)`;
      setTile(c, "abandon_rate", percent(q.abandon_rate), `${q.abandoned - q.short_abandoned} abandoned${shortNote}`,
              level(t.abandon_rate, q.abandon_rate));
      c.f.abandon_rate.dataset.short = q.short_abandoned;
      setTile(c, "average_handle_time", q.average_handle_time == null ? "—" : duration(q.average_handle_time),
              "average talk time", level(t.average_handle_time, q.average_handle_time));
      const staffed = STATES.filter((s) => s !== "offline").reduce((n, s) => n + ((q.agents || {})[s] || 0), 0);
      setTile(c, "agents_needed", q.agents_needed == null ? "—" : String(q.agents_needed),
              staffed === 0 ? "nobody signed in" : q.agents_needed == null ? `after the first calls · ${staffed} signed in`
                : `for the goal · ${staffed} signed in`,
              staffed === 0 ? "alarm" : q.agents_needed == null ? "none" : q.agents_needed > staffed ? "warn" : "ok");
      for (const st of STATES) {
        const n = (q.agents && q.agents[st]) || 0;
        c.f.chips[st].textContent = `${STATE_WORDS[st]} ${n}`;
        c.f.chips[st].dataset.count = n;
        c.f.chips[st].classList.toggle("zero", n === 0);
      }
      c.f.counts.replaceChildren(
        "entered ", el("b", { text: String(q.entered) }), " · answered ", el("b", { text: String(q.answered) }),
        " · abandoned ", el("b", { text: String(q.abandoned) }),
        q.short_abandoned ? ` (${q.short_abandoned} short)` : "",
        " · overflowed ", el("b", { text: String(q.overflowed) }));
      if (S.trends && window.WallboardChart) {
        window.WallboardChart.draw(c.f.chart, withLive(S.trends.queues[q.name] || [], q),
          { now: S.board.now, period: S.trends.period, minutes: S.trends.minutes, goal: q.service_level_goal });
      }
    }
  }

  // --- calls ---------------------------------------------------------------------------------------------------
  function callerCell(row) {
    const td = el("td", { class: "caller-col", "data-field": "caller" });
    if (row.caller) {
      td.append(row.caller.number || "unknown");
      if (row.caller.name) td.append(el("span", { class: "small", text: row.caller.name }));
    }
    return td;
  }

  function syncRows(tbody, map, rows, make, update) {
    const ids = new Set(rows.map((r) => r.id));
    for (const [id, r] of map) if (!ids.has(id)) { r.tr.remove(); map.delete(id); }
    for (const row of rows) {
      let r = map.get(row.id);
      if (!r) { r = make(row); map.set(row.id, r); }
      tbody.append(r.tr);
      r.row = row;
      update(r, row);
    }
  }

  // the longest waits and talks first; past SHOW_CALLS a button shows the rest the board has (up to 100 each)
  function shown(list, key) {
    const all = S.showAll[key], extra = list.length - SHOW_CALLS;
    const button = $(`more-${key}`);
    button.hidden = extra <= 0;
    button.textContent = all ? "show fewer" : `show ${extra} more`;
    return all ? list : list.slice(0, SHOW_CALLS);
  }

  function renderCalls() {
    const waiting = shown(S.board.calls.waiting, "waiting"), active = shown(S.board.calls.active, "active");
    const totals = S.board.calls.totals || { waiting: S.board.calls.waiting.length, active: S.board.calls.active.length };
    const counted = (shown, all, what) => (all > shown ? `${all} (the ${shown} ${what} listed)` : String(all));
    $("waiting-count").textContent = counted(S.board.calls.waiting.length, totals.waiting, "longest waiting");
    $("active-count").textContent = counted(S.board.calls.active.length, totals.active, "longest talking");
    $("no-waiting").hidden = waiting.length > 0;
    $("no-active").hidden = active.length > 0;
    $("waiting-calls").hidden = waiting.length === 0;
    $("active-calls").hidden = active.length === 0;
    syncRows(document.querySelector("#waiting-calls tbody"), S.waitRows, waiting, (row) => {
      const f = {};
      const tr = el("tr", { "data-call": row.id },
        (f.caller = callerCell(row)), (f.queue = el("td", { "data-field": "queue" })),
        (f.wait = el("td", { class: "num wait", "data-field": "wait" })),
        (f.ringing = el("td", { "data-field": "ringing" })));
      return { tr, f };
    }, (r, row) => {
      r.f.queue.textContent = row.queue + (row.transferred ? " · transferred" : "");
      r.f.ringing.textContent = row.ringing.length ? (row.ringing_names || row.ringing).join(", ") : "—";
    });
    syncRows(document.querySelector("#active-calls tbody"), S.activeRows, active, (row) => {
      const f = {};
      f.buttons = {};
      f.status = el("span", { class: "status", "data-field": "supervise-status" });
      const box = el("div", { class: "supervise" });
      for (const [mode, label] of MODES) {
        f.buttons[mode] = el("button", { type: "button", "data-mode": mode, "aria-pressed": "false", text: label });
        f.buttons[mode].addEventListener("click", () => supervise(row.id, mode, label));
        box.append(f.buttons[mode]);
      }
      box.append(f.status);
      const tr = el("tr", { "data-call": row.id },
        (f.caller = callerCell(row)), (f.queue = el("td", { "data-field": "queue" })),
        (f.agent = el("td", { "data-field": "agent" })), (f.talk = el("td", { class: "num", "data-field": "talk" })),
        (f.waited = el("td", { class: "num", "data-field": "waited" })),
        el("td", { class: "supervise-col" }, box));
      return { tr, f };
    }, (r, row) => {
      r.f.queue.textContent = (row.outbound ? "outbound" : row.queue) + (row.transferred ? " · transferred" : "") +
        (row.consulting ? (row.consulting === "conference" ? " · conference" : " · consulting") : "");
      r.f.agent.textContent = row.agent_name || row.agent_id || "";
      r.f.waited.textContent = duration(row.wait);
      const mode = row.supervisor_mode;
      for (const [m] of MODES) r.f.buttons[m].setAttribute("aria-pressed", String(row.supervisor === "connected" && m === mode));
      const phone = S.board.supervisor_phone;
      const asked = askedState(row, phone);
      r.f.status.textContent = row.supervisor === "connected"
        ? `supervisor ${mode === "barge" ? "barged in" : mode + "ing"}${phone ? ` · hang up phone ${phone} to stop` : ""}`
        : row.supervisor === "calling" ? `calling ${phone ? "phone " + phone : "the supervisor"}…`
        : asked ? asked.text : "";
    });
  }

  // A Listen/Whisper/Barge that was accepted ("calling") but whose phone call then failed leaves no trace in the
  // board but the call's supervisor going back to none: say so, instead of "calling" for ever.
  function askedState(row, phone) {
    const asked = S.supervising.get(row.id);
    if (!asked) return null;
    if (row.supervisor === "connected") { S.supervising.delete(row.id); return null; }
    if (row.supervisor === "calling") { asked.seenCalling = true; return asked; }
    if (asked.seenCalling || performance.now() - asked.at > 10000) {
      S.supervising.delete(row.id);
      showError("supervise-error", `${asked.label} failed: ${phone ? "phone " + phone : "your phone"} was called ` +
                "but did not answer. Check that it is on and answers calls by itself, then try again.");
      return null;
    }
    return asked;
  }

  function superviseHint(message) {
    const phone = S.board && S.board.supervisor_phone;
    if (/not registered/.test(message)) {
      return ` Register your softphone${phone ? " " + phone : ""} (it is called and answers by itself), then try again.`;
    }
    if (/no softphone/.test(message)) return " Your account needs an agents entry with a softphone in the YAML.";
    if (/no connected call/.test(message)) return " The call has ended or is not connected to an agent yet.";
    return "";
  }

  async function supervise(callId, mode, label) {
    const r = S.activeRows.get(callId);
    const buttons = r ? Object.values(r.f.buttons) : [];
    buttons.forEach((b) => { b.disabled = true; });
    showError("supervise-error", "");
    try {
      const res = await api(`/api/calls/${encodeURIComponent(callId)}/supervise`, {
        method: "POST", body: JSON.stringify({ mode }),
      });
      const phone = S.board && S.board.supervisor_phone;
      if (res.mode === "calling") {
        S.supervising.set(callId, { label, at: performance.now(), seenCalling: false,
                                    text: `${label}: calling your phone${phone ? " " + phone : ""}…` });
        if (r) r.f.status.textContent = S.supervising.get(callId).text;
      }
      schedule();
    } catch (e) {
      if (e instanceof Unauthorized) { stopBoard(); $("login-error").textContent = "Session expired: sign in again."; return; }
      const msg = e.message || String(e);
      showError("supervise-error", `${label} failed: ${msg}.${superviseHint(msg)}`);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  // --- agents --------------------------------------------------------------------------------------------------
  function agentRow(id) {
    const f = {};
    const cell = (key, cls = "") => (f[key] = el("td", { class: cls, "data-field": key }));
    f.name = el("span", { class: "agent-name", "data-field": "name" });
    f.ids = el("span", { class: "small", "data-field": "ids" });
    const row = el("tr", { "data-agent": id }, el("td", {}, f.name, f.ids), cell("state"), cell("reason"),
      cell("time_in_state", "num"), cell("queues"), cell("answered", "num"), cell("registered"));
    f.chip = el("span", { class: "chip" });
    f.state.append(f.chip);
    return { row, f };
  }

  function agentsPath() {
    const q = S.query, p = new URLSearchParams();
    for (const k of ["queue", "state", "q"]) if (q[k]) p.set(k, q[k]);
    if (q.sort !== "name") p.set("sort", q.sort);
    if (q.offset) p.set("offset", String(q.offset));
    p.set("limit", String(PAGE_SIZE));
    return `/api/wallboard/agents?${p}`;
  }

  function fetchAgents() {
    if (S.query.state === null) {         // first fetch: a big site starts with the agents signed in
      S.query.state = "";
      return api(agentsPath()).then((page) => {
        if (page.counts.total <= BIG_SITE) return page;
        S.query.state = "signed_in";
        $("filter-state").value = "signed_in";
        return api(agentsPath());
      });
    }
    return api(agentsPath());
  }

  // A filter, sort or page changed: fetch that page now (the shared answers make this cheap on the server).
  async function requery(resetOffset = true) {
    if (resetOffset) S.query.offset = 0;
    const seq = ++S.agentsSeq;
    try {
      const page = await api(agentsPath());
      if (seq !== S.agentsSeq || !S.board) return;
      S.agents = page;
      renderAgents();
      tick();
      showError("board-error", "");
    } catch (e) {
      if (e instanceof Unauthorized) { stopBoard(); $("login-error").textContent = "Session expired: sign in again."; return; }
      showError("board-error", `Cannot list the agents: ${e.message || e}`);
    }
  }

  function renderAgentStates() {
    const box = $("agent-states"), counts = S.board.agent_counts;
    if (!counts) return;
    if (!box.children.length) {
      for (const st of STATES) {
        const chip = el("button", { type: "button", class: `chip state-${st}`, "data-state": st,
                                    title: `list the agents who are ${STATE_WORDS[st]}` });
        chip.addEventListener("click", () => {
          S.query.state = S.query.state === st ? "" : st;
          $("filter-state").value = S.query.state;
          requery();
        });
        box.append(chip);
      }
    }
    for (const chip of box.children) {
      const st = chip.dataset.state, n = counts.by_state[st] || 0;
      chip.textContent = `${STATE_WORDS[st]} ${n.toLocaleString()}`;
      chip.dataset.count = n;
      chip.classList.toggle("zero", n === 0);
      chip.setAttribute("aria-pressed", String(S.query.state === st));
    }
  }

  function renderQueueOptions() {
    const sel = $("filter-queue"), names = S.board.queues.map((q) => q.name);
    const have = [...sel.options].slice(1).map((o) => o.value);
    if (have.join("\n") === names.join("\n")) return;
    const keep = sel.value;
    sel.replaceChildren(el("option", { value: "", text: "all queues" }), ...names.map((n) => el("option", { value: n, text: n })));
    sel.value = names.includes(keep) ? keep : "";
  }

  function renderAgents() {
    const body = document.querySelector("#agents tbody");
    const page = S.agents;
    if (!page) return;
    const agents = page.agents;
    const ids = new Set(agents.map((a) => String(a.id)));
    for (const [id, r] of S.rows) if (!ids.has(id)) { r.row.remove(); S.rows.delete(id); }
    const c = page.counts;
    $("agents-count").textContent = `${c.signed_in.toLocaleString()} of ${c.total.toLocaleString()} signed in`;
    const first = page.total ? page.offset + 1 : 0, last = page.offset + agents.length;
    $("page-info").textContent = page.total ? `${first.toLocaleString()}–${last.toLocaleString()} of ` +
      `${page.total.toLocaleString()} listed` : "";
    $("page-prev").disabled = page.offset === 0;
    $("page-next").disabled = last >= page.total;
    $("no-agents").hidden = agents.length > 0;
    $("agents").hidden = agents.length === 0;
    for (const a of agents) {
      const id = String(a.id);
      let r = S.rows.get(id);
      if (!r) { r = agentRow(id); S.rows.set(id, r); }
      body.append(r.row);
      r.a = a;
      r.row.dataset.state = a.state;
      r.f.name.textContent = a.name || `agent ${id}`;
      r.f.ids.textContent = `${id} · phone ${a.softphone || "—"}`;
      r.f.state.dataset.state = a.state;
      r.f.chip.className = `chip state-${a.state}`;
      r.f.chip.textContent = STATE_WORDS[a.state] || a.state;
      r.f.reason.textContent = a.reason_text || "";
      r.f.queues.textContent = (a.queues || []).join(", ") || "—";
      r.f.answered.textContent = a.answered ?? "";
      r.f.registered.textContent = a.registered ? "registered" : "not registered";
      r.f.registered.className = a.registered ? "" : "reg-no";
    }
  }

  // Client-side clocks: longest waits, callers' waits, talk times and times in state move on between fetches.
  function tick() {
    $("clock").textContent = new Date(serverNow() * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    if (!S.board) return;
    const since = sinceFetch();
    for (const c of S.cards.values()) {
      if (!c.q) continue;
      const wait = c.q.waiting > 0 ? c.q.longest_wait + since : 0;
      const t = (c.q.thresholds || {}).longest_wait;
      setTile(c, "longest_wait", duration(wait),
              `goal: answer within ${shortSeconds(c.q.service_level_time)}`, level(t, c.q.waiting > 0 ? wait : 0));
      c.card.classList.toggle("long-wait", level(t, wait) === "alarm");
    }
    const queues = new Map(S.board.queues.map((q) => [q.name, q]));
    for (const r of S.waitRows.values()) {
      const wait = r.row.wait + since;
      r.f.wait.textContent = duration(wait);
      const q = queues.get(r.row.queue);
      r.f.wait.dataset.level = level(q && q.thresholds && q.thresholds.longest_wait, wait);
    }
    for (const r of S.activeRows.values()) r.f.talk.textContent = duration(r.row.talk + since);
    const now = serverNow();
    for (const r of S.rows.values()) {
      r.f.time_in_state.textContent = r.a && r.a.since ? duration(now - r.a.since) : "";
    }
  }

  // --- web chat: one card of tiles when the node has multimedia queues ------------------------------------------
  const CHAT_TILES = [["waiting", "Chats waiting"], ["active", "Chats with agents"],
    ["average_speed_of_answer", "Chat speed of answer"], ["concurrency", "Chats per agent"]];

  function renderChat() {
    const c = S.board.chat, card = $("chat-tile");
    card.hidden = !c || !c.queues.length;
    if (card.hidden) return;
    const box = $("chat-tiles");
    if (!box.children.length) {
      for (const [key, label] of CHAT_TILES) {
        box.append(el("div", { class: "tile", "data-kpi": `chat_${key}`, "data-level": "none" },
          el("div", { class: "label", text: label }), el("div", { class: "value", "data-field": `chat_${key}` }),
          el("div", { class: "sub", "data-sub": `chat_${key}` })));
      }
    }
    const set = (key, text, sub, lvl = "none") => {
      box.querySelector(`[data-field="chat_${key}"]`).textContent = text;
      box.querySelector(`[data-sub="chat_${key}"]`).textContent = sub;
      box.querySelector(`[data-kpi="chat_${key}"]`).dataset.level = lvl;
    };
    set("waiting", String(c.waiting), c.waiting === 1 ? "visitor waiting" : "visitors waiting",
        c.waiting >= 5 ? "alarm" : c.waiting >= 1 ? "warn" : "ok");
    set("active", String(c.active), `${c.agents_online} agent${c.agents_online === 1 ? "" : "s"} with the chat panel open`);
    set("average_speed_of_answer", seconds(c.average_speed_of_answer), "average wait of answered chats");
    set("concurrency", c.concurrency.toFixed(1), `most held: ${c.max_concurrency}`);
    $("chat-sub").textContent = c.queues.map((q) => q.name).join(", ");
  }

  // --- trunks: a tile each, when the node has trunks --------------------------------------------------------------
  function renderTrunks() {
    const rows = S.board.trunks || [], card = $("trunk-tile"), box = $("trunk-tiles");
    card.hidden = !rows.length;
    if (card.hidden) return;
    box.replaceChildren(...rows.map((t) => {
      const reg = t.registration ? `, ${t.registration === "registered" ? "registered" : `registration ${t.registration}`}` : "";
      const lvl = t.state === "down" ? "alarm" : (t.registration && t.registration !== "registered") ? "warn"
        : t.state === "up" ? "ok" : "none";
      return el("div", { class: "tile", "data-trunk": t.trunk, "data-level": lvl },
        el("div", { class: "label", text: t.trunk }),
        el("div", { class: "value", "data-field": "state", text: t.state + reg }),
        el("div", { class: "sub", "data-field": "counts",
          text: `${t.calls} call${t.calls === 1 ? "" : "s"} now, ${t.failures} failed outbound` }));
    }));
    $("trunk-sub").textContent = `${rows.filter((t) => t.state === "down").length} down`;
  }

  function render() {
    const b = S.board;
    document.body.classList.toggle("supervisor", !!b.can_supervise);
    $("who").textContent = `${b.name || b.account} (${b.role})`;
    renderQueues();
    renderCalls();
    renderQueueOptions();
    renderAgentStates();
    renderAgents();
    renderChat();
    renderTrunks();
    tick();
  }

  // --- start --------------------------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", onLogin);
    $("sign-out").addEventListener("click", () => signOut());
    const form = $("agent-filter");
    form.addEventListener("submit", (ev) => ev.preventDefault());
    for (const [id, key] of [["filter-queue", "queue"], ["filter-state", "state"], ["filter-sort", "sort"]]) {
      $(id).addEventListener("change", () => { S.query[key] = $(id).value; requery(); });
    }
    let typing = null;
    $("filter-q").addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => { S.query.q = $("filter-q").value.trim(); requery(); }, 300);
    });
    $("page-prev").addEventListener("click", () => {
      S.query.offset = Math.max(0, S.query.offset - PAGE_SIZE);
      requery(false);
    });
    $("page-next").addEventListener("click", () => { S.query.offset += PAGE_SIZE; requery(false); });
    for (const key of ["waiting", "active"]) {
      $(`more-${key}`).addEventListener("click", () => {
        S.showAll[key] = !S.showAll[key];
        if (S.board) { renderCalls(); tick(); }
      });
    }
    let saved = null;
    try { saved = sessionStorage.getItem(TOKEN_KEY); } catch (_) { /* storage disabled */ }
    if (saved) { S.token = saved; startBoard(); }
  });
})();
