/* Click-to-dial: a "call us" button for any web page, served by the contact-center node itself.

   <script src="https://NODE/widget/click-to-dial.js" data-widget="website" async></script>

   Optional attributes: data-route="4011" (which of the widget's routes; default its first), data-label="Call us".
   The visitor clicks, allows the microphone (and camera for a video route), and the browser calls the route over
   the node's SIP WebSocket with a short-lived token the node hands to allowed pages only. Everything it loads comes
   from the node (JsSIP included); it keeps to a shadow root, so the page's styles and its own do not mix.
   window.clickToDial reports the call's state (and lets a page start or end it from its own controls). */
(() => {
  "use strict";
  const me = document.currentScript;
  if (!me || window.clickToDial) return;
  const node = new URL(me.src, location.href).origin;
  const opts = { widget: me.dataset.widget || "", route: me.dataset.route || "", label: me.dataset.label || "" };
  const api = window.clickToDial = { state: "idle", cause: null, video: false, pc: null, route: null,
                                     start, hangup, stats: () => api.pc ? api.pc.getStats() : null };
  let ua = null, session = null, local = null, timer = null, startedAt = 0;

  const host = document.createElement("div");
  host.setAttribute("data-click-to-dial", opts.widget);
  const root = host.attachShadow({ mode: "open" });
  root.innerHTML = `
    <style>
      :host { all: initial; }
      * { box-sizing: border-box; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
      .wrap { position: fixed; right: 24px; bottom: 24px; z-index: 2147483000; display: flex;
              flex-direction: column; align-items: flex-end; gap: 12px; }
      button { font-family: inherit; font-size: 15px; font-weight: 600; line-height: 1; border: 0;
               border-radius: 999px; cursor: pointer; }
      .call { display: inline-flex; align-items: center; gap: 10px; padding: 14px 22px 14px 18px; color: #fff;
              background: #0b7a4b; box-shadow: 0 6px 18px rgba(0,0,0,.22); }
      .call:hover { background: #096a41; } .call:focus-visible, .panel button:focus-visible { outline: 3px solid #7cc4ff; }
      .call svg { width: 20px; height: 20px; fill: currentColor; }
      [hidden] { display: none !important; }
      .panel { width: 320px; background: #fff; color: #1d2430; border-radius: 14px; padding: 16px;
               box-shadow: 0 10px 30px rgba(0,0,0,.25); border: 1px solid #e3e7ee; }
      .head { display: flex; justify-content: space-between; align-items: baseline; margin-bottom: 6px; }
      .title { font-weight: 700; font-size: 16px; }
      .time { font-variant-numeric: tabular-nums; color: #5b6575; font-size: 14px; }
      .status { font-size: 14px; line-height: 1.4; color: #3b4454; min-height: 20px; margin-bottom: 12px; }
      .videos { position: relative; margin-bottom: 12px; }
      .remote { width: 100%; aspect-ratio: 4 / 3; background: #1d2430; border-radius: 8px; display: block; }
      .local { position: absolute; right: 8px; bottom: 8px; width: 30%; border-radius: 6px; background: #333;
               border: 2px solid #fff; }
      .row { display: flex; gap: 8px; }
      .row button { flex: 1; padding: 11px 0; }
      .hang { background: #c62828; color: #fff; } .hang:hover { background: #a91f1f; }
      .hang.done { background: #eef1f6; color: #1d2430; } .hang.done:hover { background: #dfe4ec; }
      .mute { background: #eef1f6; color: #1d2430; } .mute[aria-pressed="true"] { background: #ffe08a; }
    </style>
    <div class="wrap">
      <div class="panel" role="dialog" aria-label="Call" hidden>
        <div class="head"><span class="title"></span><span class="time"></span></div>
        <div class="status" role="status" aria-live="polite"></div>
        <div class="videos" hidden>
          <video class="remote" autoplay playsinline></video>
          <video class="local" autoplay playsinline muted></video>
        </div>
        <audio class="audio" autoplay></audio>
        <div class="row">
          <button class="mute" type="button" aria-pressed="false">Mute</button>
          <button class="hang" type="button">Hang up</button>
        </div>
      </div>
      <button class="call" type="button">
        <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2-2.2a1 1 0 0 1 1-.25
          11.4 11.4 0 0 0 3.6.57 1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2
          2.45.57 3.58a1 1 0 0 1-.25 1z"/></svg><span class="label"></span>
      </button>
    </div>`;
  const $ = (sel) => root.querySelector(sel);
  const label = opts.label || "Call us";
  $(".label").textContent = label;
  $(".title").textContent = label;
  $(".call").addEventListener("click", start);
  $(".hang").addEventListener("click", () => (session || ua ? hangup() : open(false)));
  $(".mute").addEventListener("click", () => {
    if (!session) return;
    const muted = $(".mute").getAttribute("aria-pressed") !== "true";
    if (muted) session.mute({ audio: true }); else session.unmute({ audio: true });
    $(".mute").setAttribute("aria-pressed", String(muted));
    $(".mute").textContent = muted ? "Unmute" : "Mute";
  });
  (document.body || document.documentElement).appendChild(host);

  function show(state, text) {
    api.state = state;
    host.setAttribute("data-state", state);
    $(".status").textContent = text;
  }

  function open(isOpen) {
    $(".panel").hidden = !isOpen;
    $(".call").hidden = isOpen;
  }

  async function post(path, body) {
    const r = await fetch(node + path, { method: "POST", mode: "cors", credentials: "omit",
                                         headers: { "Content-Type": "text/plain" }, body: JSON.stringify(body) });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
    return data;
  }

  function loadJsSIP() {
    if (window.JsSIP) return Promise.resolve(window.JsSIP);
    return new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = node + "/widget/jssip.min.js";
      s.onload = () => (window.JsSIP ? resolve(window.JsSIP) : reject(new Error("JsSIP did not load")));
      s.onerror = () => reject(new Error("JsSIP did not load"));
      document.head.appendChild(s);
    });
  }

  function tick() {
    const s = Math.floor((Date.now() - startedAt) / 1000);
    $(".time").textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  async function start() {
    if (session || ua || api.state === "starting") return;     // one call at a time (a second click)
    api.cause = null;
    open(true);
    $(".time").textContent = "";
    $(".hang").textContent = "Hang up";
    $(".hang").classList.remove("done");
    $(".mute").hidden = false;
    $(".mute").setAttribute("aria-pressed", "false");
    $(".mute").textContent = "Mute";
    show("starting", "Connecting…");
    try {
      const { nonce } = await post("/widget/nonce", { widget: opts.widget });
      const t = await post("/widget/token", { widget: opts.widget, nonce, page: location.href });
      const route = t.routes.find((r) => r.called === opts.route) || (opts.route ? null : t.routes[0]);
      if (!route) throw new Error(`this widget has no route ${opts.route}`);
      api.route = route.called;
      api.video = !!route.video;
      const JsSIP = await loadJsSIP();
      show("starting", api.video ? "Allow your microphone and camera…" : "Allow your microphone…");
      local = await navigator.mediaDevices.getUserMedia({ audio: true, video: api.video });
      $(".videos").hidden = !api.video;
      if (api.video) $(".local").srcObject = local;
      show("calling", "Calling…");
      ua = new JsSIP.UA({ sockets: [new JsSIP.WebSocketInterface(t.ws_url)], uri: `sip:web-visitor@${t.domain}`,
                          display_name: "Web visitor", register: false, session_timers: false });
      ua.on("connected", () => call(t, route));
      ua.on("disconnected", () => { if (!session) finish("failed", "Could not reach the contact center."); });
      ua.start();
    } catch (e) {
      api.cause = e.message || String(e);
      finish("failed", "Sorry, calls cannot be placed from this page right now.");
    }
  }

  function call(t, route) {
    if (session || !ua) return;
    const remote = new MediaStream();
    (api.video ? $(".remote") : $(".audio")).srcObject = remote;
    if (api.video) $(".audio").srcObject = null;
    session = ua.call(`sip:${route.called}@${t.domain}`, {
      mediaStream: local, mediaConstraints: { audio: true, video: api.video }, pcConfig: { iceServers: [] },
      extraHeaders: [`${t.header}: ${t.token}`],
    });
    const wire = (pc) => {
      api.pc = pc;
      pc.addEventListener("track", (e) => remote.addTrack(e.track));
    };
    if (session.connection) wire(session.connection);
    session.on("peerconnection", (e) => wire(e.peerconnection));
    session.on("progress", () => show("calling", "Ringing…"));
    session.on("confirmed", () => {
      startedAt = Date.now(); tick(); timer = setInterval(tick, 1000);
      show("connected", "Connected. While you hear music, please hold: the next available agent will answer.");
    });
    session.on("ended", (e) => { api.cause = e.cause; finish("ended", "Call ended. Thank you!"); });
    session.on("failed", (e) => {
      api.cause = e.cause;
      finish("failed", e.cause === "Rejected" || e.cause === "Forbidden" ? "Sorry, the call was not accepted."
        : e.cause === "Canceled" ? "Call cancelled." : "Sorry, nobody can take your call right now.");
    });
  }

  function hangup() {
    if (session && !session.isEnded()) session.terminate();
    else finish("ended", "Call ended.");
  }

  function finish(state, text) {
    clearInterval(timer); timer = null;
    if (local) local.getTracks().forEach((tr) => tr.stop());
    local = null; session = null;
    const old = ua; ua = null;
    if (old) setTimeout(() => old.stop(), 0);
    show(state, text);
    $(".hang").textContent = "Close";
    $(".hang").classList.add("done");
    $(".mute").hidden = true;
  }
})();
