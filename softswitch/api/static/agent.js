/* The agent's connection bar: business sign-in, browser softphone (JsSIP over the node's SIP WebSocket listener),
   ACD state controls and the live state stream. No inline script, nothing from elsewhere (see the page's CSP). */
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const S = {
    token: null, agentId: null, account: null, config: null,
    phones: null, session: null, sip: "unregistered",
    events: 0, ws: null, wsRetry: null, poll: null, view: null, viewAt: 0, refetch: null,
    autoTimer: null, autoTick: null, autoAt: 0,
    localStream: null, remoteStream: null, muted: false, held: false,
  };
  // What tests (and a curious agent with devtools) can read: no secrets in here.
  const pub = window.agentPage = {
    events: 0, sip: "unregistered", sipCause: null, call: "none", lastInvite: null, autoAnswered: false,
    answerError: null, endCause: null, endText: null, remoteTracks: 0, video: false,
    phones: [],            // each browser phone: { url, state, cause } (two or more in pool mode)
    dialedVia: null,       // the phone (its node's URL) the last outbound call left through
  };
  // agent-desk.js (queues, history, wrap-up, keypad, video controls) follows the page through these events
  const emit = (name, detail) => document.dispatchEvent(new CustomEvent(`desk:${name}`, { detail }));

  // RTP counters of the current call (inbound/outbound audio bytes), for the agent's own diagnostics and tests.
  pub.stats = async function () {
    const pc = S.session && S.session.connection;
    if (!pc) return null;
    const out = { bytesReceived: 0, bytesSent: 0, packetsReceived: 0, audioEnergy: 0 };
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && (r.kind || r.mediaType) === "audio") {
        out.bytesReceived += r.bytesReceived || 0; out.packetsReceived += r.packetsReceived || 0;
        out.audioEnergy += r.totalAudioEnergy || 0;      // what the agent actually hears, not just bytes
      }
      if (r.type === "outbound-rtp" && (r.kind || r.mediaType) === "audio") out.bytesSent += r.bytesSent || 0;
    });
    return out;
  };

  // --- small helpers ----------------------------------------------------------------------------------------
  function log(text) {
    const li = document.createElement("li");
    li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
    const list = $("log");
    list.prepend(li);
    while (list.children.length > 60) list.lastChild.remove();
  }

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

  const STATE_WORDS = { offline: "not taking calls", idle: "idle", ringing: "ringing", talking: "on a call",
                        busy: "busy", rest: "rest", wrap_up: "wrap-up", elsewhere: "engaged at another node" };

  function fmtDuration(s) {
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
  }

  // --- business sign-in -------------------------------------------------------------------------------------
  async function onLogin(ev) {
    ev.preventDefault();
    const error = $("login-error"), submit = $("login-submit");
    error.textContent = "";
    submit.disabled = true;
    try {
      const body = await api("/api/login", {
        method: "POST", body: JSON.stringify({ account: $("account").value.trim(), password: $("password").value }),
      });
      if (!body.agent_id) throw new Error("this account is not an agent");
      S.token = body.token; S.agentId = body.agent_id; S.account = body.account;
      $("password").value = "";
      S.config = await api("/agent/config");
      enterConsole();
    } catch (e) {
      S.token = null;
      error.textContent = e.message === "wrong account or password" ? e.message : `sign-in failed: ${e.message}`;
    } finally {
      submit.disabled = false;
    }
  }

  function enterConsole() {
    const c = S.config;
    $("login-view").hidden = true;
    $("console").hidden = false;
    $("logout").hidden = false;
    $("who").textContent = `${S.account} · agent ${S.agentId}`;
    $("sp-number").textContent = c.softphone;
    const urls = phoneUrls(c);
    $("sp-server").textContent = urls.length > 1 ? `pool: ${urls.length} phones, one per node`
      : (urls.length ? `via ${urls[0]}` : (c.error || "no WebSocket listener"));
    if (!urls.length) $("sp-error").textContent = c.error || "this node has no SIP WebSocket listener";
    $("sp-connect").textContent = urls.length > 1 ? "Connect phones" : "Connect phone";
    $("sp-disconnect").textContent = urls.length > 1 ? "Disconnect phones" : "Disconnect";
    if (typeof JsSIP === "undefined") $("sp-error").textContent = "JsSIP did not load (static/vendor/jssip.min.js)";
    log(`logged in as ${S.account}`);
    emit("signed-on", { agentId: S.agentId, config: c });
    openEvents();
    refreshState();
    S.poll = setInterval(refreshState, 5000);
    $("sp-password").focus();
  }

  async function onLogout() {
    try { if (S.session) S.session.terminate(); } catch (_) { /* already gone */ }
    // leaving the desktop also stops calls from the queues (a desk phone of the agent's may stay registered)
    if (S.view && S.view.state !== "offline") {
      try { await api("/api/agents/me/sign-out", { method: "POST" }); } catch (_) { /* expired anyway */ }
    }
    stopUa();
    try { await api("/api/logout", { method: "POST" }); } catch (_) { /* expired anyway */ }
    signedOff("");
  }

  function signedOff(message) {
    S.token = null;
    clearInterval(S.poll); S.poll = null;
    clearTimeout(S.wsRetry);
    if (S.ws) { const ws = S.ws; S.ws = null; ws.close(); }
    stopUa();
    setConn(false);
    $("console").hidden = true;
    $("logout").hidden = true;
    $("login-view").hidden = false;
    $("who").textContent = "";
    $("login-error").textContent = message;
    showState(null);
    emit("signed-off", {});
  }

  function authFailed(e) {
    if (e instanceof Unauthorized) { signedOff(`logged out: ${e.message}`); return true; }
    return false;
  }

  // --- ACD state: controls, live stream, display -------------------------------------------------------------
  async function action(name, body) {
    $("state-error").textContent = "";
    try {
      const view = await api(`/api/agents/me/${name}`, { method: "POST", body: JSON.stringify(body || {}) });
      showState(view);
      log(`${name}${body && body.state ? " " + body.state : ""}${body && body.reason ? " (" + body.reason + ")" : ""}`);
      // signing out signs the phones out too (every one of them in pool mode)
      if (name === "sign-out" && S.phones && S.phones.active()) { stopUa(); log("phones signed out"); }
    } catch (e) {
      if (!authFailed(e)) $("state-error").textContent = e.message;
    }
  }

  async function refreshState() {
    if (!S.token) return;
    try { showState(await api("/api/agents/me")); } catch (e) { authFailed(e); }
  }

  function refetchSoon() {
    if (S.refetch) return;
    S.refetch = setTimeout(() => { S.refetch = null; refreshState(); }, 150);
  }

  function showState(view) {
    S.view = view; S.viewAt = Date.now();
    const el = $("state");
    let state = view ? view.state : "offline";
    // pool mode: another node holds the agent's call; this node only knows the agent is engaged there, and the
    // page knows what its own phone is doing
    if (view && view.elsewhere && state !== "offline") {
      state = pub.call === "incoming" ? "ringing"
        : ["connecting", "active", "held"].includes(pub.call) ? "talking" : "elsewhere";
    }
    el.textContent = STATE_WORDS[state] || state.replace("_", " ");
    el.dataset.state = state;
    el.className = `chip state-${state}`;
    // the agent's own reasons (busy: lunch, rest: break); the ACD's for ringing/talking are call ids and such
    const own = view && view.reason && (state === "busy" || state === "rest") ? view.reason : "";
    $("state-reason").textContent = own;
    // a reason belongs to the Busy/Rest it was given for: gone when that ends (not while the agent types one)
    if (state !== S.shownState && (S.shownState === "busy" || S.shownState === "rest")) $("busy-reason").value = "";
    S.shownState = state;
    // which availability is current: pressed, and the others not
    for (const [id, st] of [["btn-idle", "idle"], ["btn-rest", "rest"], ["btn-busy", "busy"]]) {
      const b = $(id);
      b.setAttribute("aria-pressed", String(state === st));
      b.classList.toggle("current", state === st);
      b.disabled = state === "offline" || state === "ringing" || state === "talking" || state === "elsewhere";
    }
    const signedIn = state !== "offline";
    $("btn-sign-in").disabled = signedIn; $("btn-sign-out").disabled = !signedIn;
    $("acd-status").dataset.on = String(signedIn);
    $("acd-status").textContent = signedIn ? "You are taking calls from your queues." : "You are not taking calls.";
    emit("state", { view });
    $("queues").textContent = view && view.queues && view.queues.length ? view.queues.join(", ") : "–";
    $("answered").textContent = view ? String(view.answered || 0) : "0";
    el.title = view ? `registered: ${view.registered ? "yes" : "no"}` : "";
    tickStateTime();
  }

  function tickStateTime() {
    const v = S.view;
    $("state-time").textContent = v && v.since ? fmtDuration(Date.now() / 1000 - v.since) : "";
  }

  function setConn(live) {
    const el = $("events-status");
    el.dataset.conn = live ? "live" : "off";
    el.className = `chip ${live ? "conn-live" : "conn-off"}`;
    el.textContent = live ? "live" : "offline";
  }

  function openEvents() {
    if (!S.token) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/api/events?token=${encodeURIComponent(S.token)}`);
    S.ws = ws;
    ws.onopen = () => setConn(true);
    ws.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch (_) { return; }
      if (ev.type === "queues") { emit("queues", ev); return; }    // live KPIs: the agent's own queues
      S.events += 1; pub.events = S.events;
      if (ev.type === "snapshot") { showState(ev); return; }
      if (ev.agent_id && ev.agent_id !== S.agentId) return;
      if (ev.type === "state" && ev.new && S.view) {
        showState({ ...S.view, state: ev.new, reason: ev.reason || "", since: ev.at || Date.now() / 1000 });
      }
      if (ev.type !== "state" || ev.old !== ev.new) log(`event ${ev.type}${ev.old ? " " + ev.old + " → " + ev.new : ""}`);
      refetchSoon();                                // the full view (registered, answered, ...) from the API
    };
    ws.onclose = () => {
      if (S.ws !== ws) return;
      S.ws = null;
      setConn(false);
      if (S.token) S.wsRetry = setTimeout(openEvents, 2000);
    };
  }

  // JsSIP 3.x answers only MD5 digest challenges and keeps only the last WWW-Authenticate of a 401; the switch
  // offers MD5 and SHA-256 (RFC 8760) with one shared nonce, MD5 first, so JsSIP would see only SHA-256 and give
  // up. This keeps, within one response, the MD5 challenge of that nonce when a non-MD5 one follows it.
  function preferMd5Challenges() {
    const G = typeof JsSIP !== "undefined" && JsSIP.Grammar;
    if (!G || typeof G.parse !== "function" || G.__md5First) return;
    const original = G.parse;
    let md5 = null;
    const wrapped = function (input, rule) {
      const r = original.apply(this, arguments);
      if ((rule === "WWW_Authenticate" || rule === "Proxy_Authenticate") && r && r !== -1) {
        const alg = (r.algorithm || "MD5").toUpperCase();
        if (alg === "MD5") md5 = { rule, nonce: r.nonce, realm: r.realm, parsed: r };
        else if (md5 && md5.rule === rule && md5.nonce === r.nonce && md5.realm === r.realm) return md5.parsed;
      }
      return r;
    };
    try { G.parse = wrapped; G.__md5First = G.parse === wrapped; } catch (_) { /* frozen: leave JsSIP as it is */ }
  }

  // --- the softphone -----------------------------------------------------------------------------------------
  const REG_WORDS = { "Connection Error": "the switch cannot be reached", "Request Timeout": "the switch did not answer",
                      "SIP Failure Code": "the switch refused it", "Internal Error": "the browser phone failed" };
  const POOL_WORDS = { "Connection Error": "its node cannot be reached", "Request Timeout": "its node did not answer" };
  const SIP_WORDS = { unregistered: "not connected", connecting: "connecting…", registering: "signing in…",
                      registered: "registered", failed: "failed", disconnected: "disconnected" };
  // the node's own listener, or every node of the pool (pool.nodes), in the pool's order
  const phoneUrls = (c) => (c && c.pool && c.pool.length ? c.pool : (c && c.ws_url ? [c.ws_url] : []));

  // one state for the page from the phones' states: registered while any is (calls can reach the agent)
  function overall(list) {
    const has = (st) => list.some((p) => p.state === st);
    if (!list.length) return "unregistered";
    if (has("registered")) return "registered";
    for (const st of ["registering", "connecting", "failed", "disconnected"]) if (has(st)) return st;
    return "unregistered";
  }

  function onPhones(list) {
    pub.phones = list;
    const failed = list.map((p, i) => [p, i]).filter(([p]) => p.state === "failed");
    const errors = failed.map(([p, i]) => {
      const wrong = p.cause === "Authentication Error" || p.cause === "Rejected";
      if (list.length < 2) return wrong ? "wrong softphone password" : `the phone could not connect: ${REG_WORDS[p.cause] || p.cause}`;
      const why = wrong ? "wrong softphone password" : (POOL_WORDS[p.cause] || REG_WORDS[p.cause] || p.cause);
      return `phone ${i + 1} (${p.url}): ${why}; click it to register again`;
    });
    $("sp-error").textContent = errors.join("; ");
    if (list.length > 1) {
      const n = list.filter((p) => p.state === "registered").length;
      setSip(overall(list), null, `phones: ${n} of ${list.length} registered`);
    } else {
      setSip(list.length ? list[0].state : "unregistered", list.length ? list[0].cause : null);
    }
    showPhones(list);
    refetchSoon();
  }

  // pool mode: a chip per phone in the header; a failed one is a button that registers it again
  function showPhones(list) {
    const box = $("sip-phones");
    box.replaceChildren();
    box.hidden = list.length < 2;
    $("sip-status").hidden = list.length > 1;
    if (list.length < 2) return;
    list.forEach((p, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = `chip phone sip-${p.state}`;
      b.dataset.sip = p.state;
      b.dataset.phone = String(i + 1);
      const again = p.state === "failed" || p.state === "unregistered" || p.state === "disconnected";
      b.disabled = !again;
      b.textContent = `phone ${i + 1}: ${SIP_WORDS[p.state] || p.state}${again ? " ↻" : ""}`;
      b.title = `${p.url}${p.cause ? " · " + p.cause : ""}${again ? " · click to register again" : ""}`;
      b.setAttribute("aria-label", `phone ${i + 1} at ${p.url}: ${SIP_WORDS[p.state] || p.state}${again ? ", register again" : ""}`);
      b.addEventListener("click", () => { if (S.phones) S.phones.retry(i); });
      box.append(b);
    });
  }

  function setSip(state, cause, text) {
    S.sip = state; pub.sip = state; pub.sipCause = cause || null;
    const el = $("sip-status");
    el.dataset.sip = state;
    el.className = `chip sip-${state}`;
    el.textContent = text || `phone: ${SIP_WORDS[state] || state}${cause ? " (" + cause + ")" : ""}`;
    const up = state === "registered";
    $("btn-dial").disabled = !up || !!S.session;
    $("sp-connect").disabled = state === "registered" || state === "connecting" || state === "registering";
    $("sp-disconnect").disabled = !(S.phones && S.phones.active());
    // connected: the password box and Connect make no sense until it is disconnected again
    $("sp-credentials").hidden = up; $("sp-connect").hidden = up;
  }

  function onConnect(ev) {
    ev.preventDefault();
    const c = S.config;
    $("sp-error").textContent = "";
    if (typeof JsSIP === "undefined") { $("sp-error").textContent = "JsSIP did not load"; return; }
    const urls = phoneUrls(c);
    if (!urls.length) { $("sp-error").textContent = "this node has no SIP WebSocket listener"; return; }
    stopUa();
    S.phones = new AgentPhones({
      softphone: c.softphone, domain: c.domain, realm: c.realm, displayName: S.account, pool: urls.length > 1,
      onSession: onNewSession, onChange: onPhones, log,
    });
    S.phones.start(urls, $("sp-password").value);
    $("sp-password").value = "";
  }

  function stopUa() {
    const phones = S.phones;
    S.phones = null;
    if (phones) phones.stop();
    onPhones([]);
  }

  // --- calls -------------------------------------------------------------------------------------------------
  function setCall(state, text) {
    pub.call = state;
    $("call-panel").dataset.call = state;
    $("call-status").textContent = text;
    document.querySelector(".caller-line").hidden = state === "none";
    const s = S.session, live = state === "active" || state === "held";
    $("btn-answer").disabled = state !== "incoming";
    $("btn-answer").hidden = state !== "incoming";          // only a ringing call is answered
    $("btn-hangup").disabled = !s || state === "ended" || state === "none";
    $("btn-mute").disabled = !live;
    $("btn-hold").disabled = !live;
    $("btn-dial").disabled = S.sip !== "registered" || (!!s && state !== "ended");
    emit("call", { state, session: s, video: pub.video });
    if (S.view && S.view.elsewhere) showState(S.view);       // the agent's state follows the call of this page
  }

  function answerAfter(request) {
    // Call-Info: <sip:domain>;answer-after=N (the switch sets it); Alert-Info ...;delay=N as a fallback
    const info = request.getHeader("Call-Info") || "";
    let m = /answer-after\s*=\s*"?([\d.]+)/i.exec(info);
    if (!m) m = /info=alert-autoanswer[^,]*;\s*delay\s*=\s*([\d.]+)/i.exec(request.getHeader("Alert-Info") || "");
    return { info, delay: m ? parseFloat(m[1]) : null };
  }

  function callerOf(session, request) {
    const from = session.remote_identity;
    const name = from.display_name;
    const user = from.uri ? from.uri.user : "";
    return name && user && name !== user ? `${name} <${user}>` : (user || name || "anonymous");
  }

  function onNewSession(data, via) {
    const session = data.session;
    if (S.session && S.session !== session && !S.session.isEnded()) {
      if (data.originator === "remote") session.terminate({ status_code: 486, reason_phrase: "Busy Here" });
      return;
    }
    S.session = session;
    S.muted = false; S.held = false;
    $("btn-mute").setAttribute("aria-pressed", "false"); $("btn-mute").textContent = "Mute";
    $("btn-hold").setAttribute("aria-pressed", "false"); $("btn-hold").textContent = "Hold";
    $("call-error").textContent = "";
    pub.answerError = null; pub.endCause = null; pub.endText = null; pub.autoAnswered = false; pub.remoteTracks = 0;
    pub.video = false;
    const caller = callerOf(session, data.request);
    const ident = session.remote_identity;
    $("caller").textContent = (ident.uri && ident.uri.user) || caller;
    $("caller-name").textContent = ident.display_name && ident.uri && ident.display_name !== ident.uri.user ? ident.display_name : "";
    wireSession(session);

    if (data.originator === "remote") {
      const req = data.request;
      const { info, delay } = answerAfter(req);
      const queue = req.getHeader("X-CC-Queue") || "";
      S.offerVideo = /\r?\nm=video /.test(req.body || "");
      pub.lastInvite = { from: caller, callInfo: info, answerAfter: delay, queue, video: S.offerVideo, at: Date.now(), via };
      const from = session.remote_identity;
      emit("incoming", { number: from.uri ? from.uri.user : "", name: from.display_name || "", queue, video: S.offerVideo });
      $("call-queue").textContent = queue ? `· queue ${queue}` : "";
      setCall("incoming", "incoming call");
      log(`incoming call from ${caller}${queue ? " (" + queue + ")" : ""}${info ? "; Call-Info " + info : ""}`);
      if (delay !== null) scheduleAutoAnswer(session, delay);
    } else {
      $("call-queue").textContent = "· outgoing call";
      setCall("calling", "calling…");
    }
  }

  function scheduleAutoAnswer(session, delay) {
    clearAuto();
    S.autoAt = Date.now() + delay * 1000;
    const tick = () => {
      const left = Math.max(0, (S.autoAt - Date.now()) / 1000);
      $("auto-answer").textContent = `auto-answer in ${left.toFixed(1)} s`;
    };
    tick();
    S.autoTick = setInterval(tick, 200);
    S.autoTimer = setTimeout(() => {
      clearAuto();
      if (S.session === session && !session.isEstablished() && !session.isEnded()) {
        pub.autoAnswered = Date.now();     // when, in ms (truthy): tests read the delay from the page
        log("auto-answer");
        answer(session);
      }
    }, delay * 1000);
  }

  function clearAuto() {
    clearTimeout(S.autoTimer); clearInterval(S.autoTick);
    S.autoTimer = null; S.autoTick = null;
    $("auto-answer").textContent = "";
  }

  async function localMedia(video) {
    if (S.localStream) { S.localStream.getTracks().forEach((t) => t.stop()); S.localStream = null; }
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: !!video });
    S.localStream = stream;
    $("local-video").srcObject = stream;
    return stream;
  }

  const RTC = { pcConfig: { iceServers: [] } };

  async function answer(session) {
    clearAuto();
    if (session.isEstablished() || session.isEnded()) return;
    setCall("connecting", "answering…");
    try {
      const video = $("video").checked && S.offerVideo;
      pub.video = !!video;
      const stream = await localMedia(video);
      if (session.isEnded()) return;
      session.answer({ ...RTC, mediaStream: stream, mediaConstraints: { audio: true, video } });
    } catch (e) {
      pub.answerError = e.message || String(e);
      $("call-error").textContent = `answer failed: ${pub.answerError}`;
      log(`answer failed: ${pub.answerError}`);
    }
  }

  async function dial(ev) {
    ev.preventDefault();
    const number = $("dial-number").value.trim().replace(/[^0-9A-Za-z*#+._-]/g, "");
    const out = S.phones && S.phones.outbound();      // the first registered phone
    if (!number || !out) return;
    $("call-error").textContent = "";
    try {
      const video = $("video").checked;
      const stream = await localMedia(video);
      S.offerVideo = video; pub.video = !!video;
      pub.dialedVia = out.url;
      out.ua.call(`sip:${number}@${S.config.domain}`, { ...RTC, mediaStream: stream, mediaConstraints: { audio: true, video } });
      $("caller").textContent = number; $("caller-name").textContent = "";
      log(`calling ${number}`);
    } catch (e) {
      $("call-error").textContent = `call failed: ${e.message || e}`;
    }
  }

  function attachRemote(pc) {
    S.remoteStream = new MediaStream();
    $("remote-video").srcObject = S.remoteStream;
    // an outgoing call may have its tracks already (they arrive before "confirmed"): take those too
    pc.getReceivers().forEach((r) => { if (r.track) S.remoteStream.addTrack(r.track); });
    pub.remoteTracks = S.remoteStream.getTracks().length;
    pc.addEventListener("track", (e) => {
      if (!S.remoteStream.getTracks().includes(e.track)) S.remoteStream.addTrack(e.track);
      pub.remoteTracks = S.remoteStream.getTracks().length;
    });
  }

  function wireSession(session) {
    session.on("peerconnection", (e) => attachRemote(e.peerconnection));
    session.on("progress", () => { if (session.direction === "outgoing") setCall("calling", "ringing…"); });
    session.on("accepted", () => setCall("active", "connected"));
    session.on("confirmed", () => {
      setCall("active", "connected");
      if (session.connection && !S.remoteStream) attachRemote(session.connection);
      log("call connected");
    });
    session.on("hold", (e) => { if (e.originator === "remote") { S.held = true; holdUi(true); } else holdUi(false, "putting on hold…"); });
    session.on("unhold", (e) => { if (e.originator === "remote") { S.held = false; holdUi(true); } else holdUi(false, "resuming…"); });
    session.on("muted", () => { S.muted = true; muteUi(); });
    session.on("unmuted", () => { S.muted = false; muteUi(); });
    const done = (kind) => (e) => {
      clearAuto();
      const cause = (e && e.cause) || kind;
      const text = endWords(kind, cause, e && e.originator, session.direction);
      pub.endCause = cause; pub.endText = text;
      if (kind === "failed" && !(e && e.originator === "local")) $("call-error").textContent = text;
      log(text);
      if (S.session === session) {
        S.session = null;
        if (S.localStream) { S.localStream.getTracks().forEach((t) => t.stop()); S.localStream = null; }
        $("local-video").srcObject = null;
        $("remote-video").srcObject = null;
        S.remoteStream = null;
        setCall("ended", text);
      }
      refetchSoon();
    };
    session.on("ended", done("ended"));
    session.on("failed", done("failed"));
  }

  // JsSIP's causes ("Terminated", "Canceled", ...) in the words an agent uses
  function endWords(kind, cause, originator, direction) {
    const C = (typeof JsSIP !== "undefined" && JsSIP.C.causes) || {};
    const words = {
      [C.CANCELED]: "the caller hung up before it was answered", [C.BUSY]: "busy", [C.REJECTED]: "call refused",
      [C.NOT_FOUND]: "no such number", [C.UNAVAILABLE]: "not reachable now", [C.NO_ANSWER]: "no answer",
      [C.USER_DENIED_MEDIA_ACCESS]: "no microphone or camera access", [C.CONNECTION_ERROR]: "connection to the switch lost",
      [C.REQUEST_TIMEOUT]: "the switch did not answer", [C.ADDRESS_INCOMPLETE]: "incomplete number",
      [C.INCOMPATIBLE_SDP]: "media not accepted", [C.WEBRTC_ERROR]: "the browser could not set up the media",
      [C.AUTHENTICATION_ERROR]: "not allowed", [C.RTP_TIMEOUT]: "the line went silent",
      [C.DIALOG_ERROR]: "the switch lost the call", [C.NO_ACK]: "the switch did not confirm the call",
    };
    if (kind === "ended") {
      if (cause !== C.BYE) return `call ended: ${words[cause] || "the connection was lost"}`;
      if (originator === "local") return "call ended: you hung up";
      return direction === "incoming" ? "call ended: the caller hung up" : "call ended: the other side hung up";
    }
    if (originator === "local" && (cause === C.CANCELED || cause === C.REJECTED || cause === C.BUSY)) {
      return direction === "incoming" ? "call not taken" : "call cancelled";
    }
    return `call failed: ${words[cause] || "the switch could not connect it"}`;
  }

  function muteUi() {
    const b = $("btn-mute");
    b.setAttribute("aria-pressed", String(S.muted));
    b.textContent = S.muted ? "Unmute" : "Mute";
  }

  function holdUi(done, pending) {
    const b = $("btn-hold");
    if (!done) { $("call-status").textContent = pending; b.disabled = true; return; }
    b.setAttribute("aria-pressed", String(S.held));
    b.textContent = S.held ? "Resume" : "Hold";
    setCall(S.held ? "held" : "active", S.held ? "on hold" : "connected");
  }

  // for agent-desk.js: the API with this page's token, the current call, the log
  pub.desk = { api: (path, options) => api(path, options).catch((e) => { authFailed(e); throw e; }),
               session: () => S.session, localStream: () => S.localStream, log,
               // a call switched between voice and video: the panels follow (desk:call with the new video flag)
               setVideo: (on) => { pub.video = !!on; setCall(pub.call, $("call-status").textContent); } };

  // --- wiring --------------------------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", onLogout);
    $("sp-form").addEventListener("submit", onConnect);
    $("sp-disconnect").addEventListener("click", () => { stopUa(); log("softphone disconnected"); });
    $("btn-sign-in").addEventListener("click", () => action("sign-in"));
    $("btn-sign-out").addEventListener("click", () => action("sign-out"));
    $("btn-idle").addEventListener("click", () => action("state", { state: "idle" }));
    $("btn-rest").addEventListener("click", () => action("state", { state: "rest", reason: $("busy-reason").value.trim() }));
    $("btn-busy").addEventListener("click", () => action("state", { state: "busy", reason: $("busy-reason").value.trim() }));
    $("btn-answer").addEventListener("click", () => { if (S.session) answer(S.session); });
    $("btn-hangup").addEventListener("click", () => {
      clearAuto();
      if (S.session && !S.session.isEnded()) S.session.terminate();
    });
    $("btn-mute").addEventListener("click", () => {
      if (!S.session) return;
      if (S.muted) S.session.unmute({ audio: true, video: true }); else S.session.mute({ audio: true, video: true });
    });
    $("btn-hold").addEventListener("click", () => {
      if (!S.session) return;
      // JsSIP flags hold/unhold at once and re-INVITEs; the call shows held (or active) only once the switch
      // accepted the re-INVITE (a refused one makes JsSIP end the call).
      const session = S.session;
      const confirmed = (held) => () => {
        if (S.session !== session) return;
        S.held = held; holdUi(true); log(held ? "on hold" : "resumed");
      };
      if (S.held) session.unhold({}, confirmed(false)); else session.hold({}, confirmed(true));
    });
    $("dial-form").addEventListener("submit", dial);
    setInterval(tickStateTime, 1000);
    preferMd5Challenges();
    setSip("unregistered");
    setCall("none", "no call");
    window.addEventListener("beforeunload", () => { if (S.phones) S.phones.stop(); });
  });
})();
