/* The agent desktop's panels around the call (agent.js runs the phone and the ACD state): the call timer, the
   keypad (DTMF), the agent's own queues (live), their last calls, the wrap-up (disposition and notes) and, on video
   calls only, the video window and its controls (stop/start my video, share the screen, zoom, full screen, hide);
   switching a call between voice and video (re-INVITE).
   It follows agent.js through document events desk:signed-on, desk:state, desk:incoming, desk:call, desk:queues,
   desk:signed-off, and calls the API through agentPage.desk.api (the page's token stays in agent.js). */
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const D = {
    agentId: null, queues: [], dispositions: {}, callId: null, nextQueue: "", wrapCallId: null,
    started: null, stopped: null, tick: null, lastCall: "none",
    camera: null, screen: null, videoOff: false, historyTimers: [], switching: false,
  };
  // What tests can read (nothing secret)
  const pub = window.agentDesk = {
    timer: 0, dtmf: "", dtmfTransport: null, queues: {}, history: [], wrapup: null, sharing: false,
    videoPanel: false, sendingVideo: false, switches: [],
  };
  const desk = () => window.agentPage && window.agentPage.desk;

  function fmt(s) {
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
  }

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  // --- the call timer: runs from connect to hang-up, then stays on the last call's length ---------------------
  function showTimer() {
    const end = D.stopped || Date.now();
    const s = D.started ? (end - D.started) / 1000 : 0;
    pub.timer = Math.floor(s);
    const el = $("call-timer");
    el.textContent = fmt(s);
    el.dataset.seconds = String(pub.timer);
    el.classList.toggle("running", !!D.started && !D.stopped);
  }

  function startTimer() {
    if (D.started && !D.stopped) return;
    D.started = Date.now(); D.stopped = null;
    clearInterval(D.tick);
    D.tick = setInterval(showTimer, 250);
    showTimer();
  }

  function stopTimer() {
    if (D.started && !D.stopped) D.stopped = Date.now();
    clearInterval(D.tick); D.tick = null;
    showTimer();
  }

  // --- keypad: RFC 4733 events in the audio stream where the call negotiated them, SIP INFO otherwise -----------
  function sendDigit(digit) {
    const d = desk(), session = d && d.session();
    if (!session || !session.isEstablished()) return;
    const pc = session.connection;
    const sender = pc && pc.getSenders().find((s) => s.track && s.track.kind === "audio");
    const rtp = !!(sender && sender.dtmf && sender.dtmf.canInsertDTMF);
    try {
      session.sendDTMF(digit, { transportType: rtp ? "RFC2833" : "INFO", duration: 160, interToneGap: 70 });
      pub.dtmf += digit; pub.dtmfTransport = rtp ? "rfc4733" : "info";
      $("dtmf-sent").textContent = pub.dtmf.slice(-24);
    } catch (e) {
      $("call-error").textContent = `keypad: ${e.message || e}`;
    }
  }

  function keypadEnabled(on) {
    $("btn-keypad").disabled = !on;
    for (const b of document.querySelectorAll("#keypad [data-digit]")) b.disabled = !on;
  }

  // --- my queues, live from the event stream ----------------------------------------------------------------
  function showQueues(ev) {
    const body = $("queue-rows");
    const mine = (ev.queues || []).filter((q) => D.queues.includes(q.name));
    body.textContent = "";
    if (!mine.length) {
      const tr = document.createElement("tr");
      cell(tr, D.queues.length ? "waiting for figures…" : "you are in no queue", "muted").colSpan = 4;
      body.appendChild(tr);
    }
    pub.queues = {};
    for (const q of mine) {
      pub.queues[q.name] = q.waiting;
      const tr = document.createElement("tr");
      tr.dataset.queue = q.name;
      cell(tr, q.name);
      cell(tr, String(q.waiting), q.waiting > 0 ? "num hot" : "num");
      cell(tr, q.waiting ? fmt(q.longest_wait) : "–", "num");
      cell(tr, String((q.agents && q.agents.idle) || 0), "num");
      body.appendChild(tr);
    }
  }

  // --- my last calls ------------------------------------------------------------------------------------------
  const OUTCOMES = { answered: "answered", outbound: "outgoing", abandoned: "caller hung up", failed: "failed",
                     overflowed: "overflowed", rejected: "rejected" };

  async function loadHistory() {
    const d = desk();
    if (!d || !D.agentId) return;
    let body;
    try { body = await d.api("/api/agents/me/calls?limit=10"); } catch (e) { return; }
    const rows = $("history-rows");
    rows.textContent = "";
    pub.history = body.calls.map((c) => ({ call_id: c.call_id, caller: c.caller, disposition: c.disposition,
                                           notes: c.notes }));
    if (!body.calls.length) {
      const tr = document.createElement("tr");
      cell(tr, "no calls yet", "muted").colSpan = 6;
      rows.appendChild(tr);
    }
    for (const c of body.calls) {
      const tr = document.createElement("tr");
      tr.dataset.callId = c.call_id;
      const when = new Date(c.started_at * 1000);
      const today = when.toDateString() === new Date().toDateString();
      cell(tr, today ? when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
        : when.toLocaleDateString([], { month: "short", day: "numeric" }), "mono");
      const who = cell(tr, c.caller || (c.outcome === "outbound" ? c.called : "unknown"));
      if (c.caller_name) who.title = c.caller_name;
      cell(tr, c.queue || "–");
      cell(tr, c.talk_s ? fmt(c.talk_s) : "–", "num");
      cell(tr, OUTCOMES[c.outcome] || c.outcome || "");
      cell(tr, [c.disposition, c.notes].filter(Boolean).join(" · ") || "–", "notes");
      rows.appendChild(tr);
    }
  }

  function historySoon() {
    // the CDR is written when the call is over: ask after a moment, and once more a little later
    D.historyTimers.forEach(clearTimeout);
    D.historyTimers = [setTimeout(loadHistory, 800), setTimeout(loadHistory, 3000)];
  }

  // --- wrap-up: the call's outcome code (its queue's dispositions) and notes ---------------------------------
  function openWrapup(callId, queue) {
    if (!callId || D.wrapCallId === callId) return;
    D.wrapCallId = callId;
    pub.wrapup = { call_id: callId, queue, saved: false };
    const sel = $("disposition");
    sel.textContent = "";
    const codes = D.dispositions[queue] || [];
    const none = document.createElement("option");
    none.value = ""; none.textContent = codes.length ? "– choose –" : "no outcome codes for this queue";
    sel.appendChild(none);
    for (const code of codes) {
      const o = document.createElement("option");
      o.value = code; o.textContent = code;
      sel.appendChild(o);
    }
    sel.disabled = !codes.length;
    $("wrapup-notes").value = "";
    $("wrapup-status").textContent = "";
    $("wrapup-call").textContent = queue ? `· ${queue}` : "· outgoing call";
    $("wrapup-panel").hidden = false;
  }

  async function saveWrapup(ev) {
    ev.preventDefault();
    const d = desk();
    if (!d || !D.wrapCallId) return;
    const status = $("wrapup-status");
    const body = { disposition: $("disposition").value, notes: $("wrapup-notes").value.trim() };
    if (!body.disposition && !body.notes) { status.textContent = "choose an outcome or write a note"; return; }
    $("btn-wrapup-save").disabled = true;
    status.textContent = "saving…";
    try {
      await d.api(`/api/calls/${encodeURIComponent(D.wrapCallId)}/wrap-up`, { method: "POST", body: JSON.stringify(body) });
      status.textContent = "saved ✓";
      pub.wrapup = { call_id: D.wrapCallId, saved: true, ...body };
      d.log(`wrap-up saved${body.disposition ? ": " + body.disposition : ""}`);
      loadHistory();
    } catch (e) {
      status.textContent = `not saved: ${e.message}`;
    } finally {
      $("btn-wrapup-save").disabled = false;
    }
  }

  // --- video: the panel on video calls only, with its controls -------------------------------------------------
  function videoSender() {
    const d = desk(), s = d && d.session(), pc = s && s.connection;
    if (!pc) return null;
    const t = pc.getTransceivers().find((x) => x.receiver && x.receiver.track && x.receiver.track.kind === "video");
    return t ? t.sender : null;
  }

  function showLocal(track) {
    const v = $("local-video");
    v.srcObject = track ? new MediaStream([track]) : null;
    v.hidden = !track;
  }

  function setPressed(id, on, onText, offText) {
    const b = $(id);
    b.setAttribute("aria-pressed", String(on));
    b.textContent = on ? onText : offText;
  }

  async function toggleCamera() {
    const sender = videoSender();
    if (!sender) return;
    if (!D.videoOff) {
      await stopSharing(false);
      await sender.replaceTrack(null);          // nothing is sent: the far end's picture freezes/blanks
      D.videoOff = true;
      showLocal(null);
    } else {
      await sender.replaceTrack(D.camera);
      D.videoOff = false;
      showLocal(D.camera);
    }
    pub.sendingVideo = !D.videoOff;
    setPressed("btn-camera", D.videoOff, "Start my video", "Stop my video");
  }

  async function toggleShare() {
    if (D.screen) { await stopSharing(true); return; }
    const sender = videoSender();
    if (!sender) return;
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (e) {
      $("call-error").textContent = e.name === "NotAllowedError" ? "screen sharing was not allowed" : `screen sharing: ${e.message}`;
      return;
    }
    const track = stream.getVideoTracks()[0];
    D.screen = track;
    track.addEventListener("ended", () => stopSharing(true));   // the browser's own "Stop sharing" bar
    await sender.replaceTrack(track);
    D.videoOff = false;
    pub.sharing = true; pub.sendingVideo = true;
    pub.shareSettings = track.getSettings ? track.getSettings() : null;
    showLocal(track);
    setPressed("btn-share", true, "Stop sharing", "Share screen");
    setPressed("btn-camera", false, "Start my video", "Stop my video");
    desk().log("sharing the screen");
  }

  async function stopSharing(backToCamera) {
    const track = D.screen;
    if (!track) return;
    D.screen = null;
    pub.sharing = false;
    track.stop();
    const sender = videoSender();
    if (sender && backToCamera) {
      await sender.replaceTrack(D.videoOff ? null : D.camera);
      showLocal(D.videoOff ? null : D.camera);
    }
    setPressed("btn-share", false, "Stop sharing", "Share screen");
    const d = desk();
    if (d) d.log("screen sharing stopped");
  }

  function showVideoPanel(on) {
    pub.videoPanel = on;
    $("video-panel").hidden = !on;
    if (on) {
      const d = desk(), local = d && d.localStream();
      D.camera = local ? local.getVideoTracks()[0] || null : null;
      D.videoOff = false;
      pub.sendingVideo = !!D.camera;
      showLocal(D.camera);
      setPressed("btn-camera", false, "Start my video", "Stop my video");
      setPressed("btn-hide-video", false, "Show video", "Hide video");
      setPressed("btn-zoom", false, "Normal size", "Zoom");
      $("video-stage").hidden = false;
      $("video-stage").classList.remove("zoomed");
    } else {
      stopSharing(false);
      D.camera = null;
      if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    }
  }

  // --- switching the call between voice and video: a re-INVITE (JsSIP renegotiate) with the video m-line added,
  // or set inactive; the call shows video only if the switch (and the far end) accepted it -----------------------
  function videoTransceiver(pc) {
    return pc.getTransceivers().find((t) => t.receiver && t.receiver.track && t.receiver.track.kind === "video" &&
                                     t.currentDirection !== "stopped") || null;
  }

  async function switchVideo() {
    const d = desk(), s = d && d.session(), pc = s && s.connection;
    if (!pc || D.switching) return;
    const on = !window.agentPage.video, local = d.localStream();
    D.switching = true;
    $("btn-switch-video").disabled = true;
    $("call-error").textContent = "";
    try {
      let t = videoTransceiver(pc);
      if (on) {
        const cam = (await navigator.mediaDevices.getUserMedia({ video: true })).getVideoTracks()[0];
        if (local) local.addTrack(cam);
        if (t) { await t.sender.replaceTrack(cam); t.direction = "sendrecv"; }
        else pc.addTrack(cam, local || new MediaStream([cam]));
      } else {
        await stopSharing(false);
        if (t) { await t.sender.replaceTrack(null); t.direction = "inactive"; }
        if (local) local.getVideoTracks().forEach((v) => { v.stop(); local.removeTrack(v); });
      }
      const done = await new Promise((resolve) => {
        s.once("ended", () => resolve(false)); s.once("failed", () => resolve(false));
        if (!s.renegotiate({}, () => resolve(true))) resolve(false);
      });
      if (!done || d.session() !== s) { if (!s.isEnded()) $("call-error").textContent = "could not switch now"; return; }
      t = videoTransceiver(pc);
      const video = !!t && /send|recv/.test(t.currentDirection || "");
      pub.switches.push({ asked: on ? "video" : "voice", video, at: Date.now() });
      if (on && !video) {          // refused: the camera goes off again
        $("call-error").textContent = "the other side did not take video";
        if (local) local.getVideoTracks().forEach((v) => { v.stop(); local.removeTrack(v); });
      }
      d.log(video ? "switched to video" : "switched to voice");
      d.setVideo(video);
    } catch (e) {
      $("call-error").textContent = `switching failed: ${e.message || e}`;
    } finally {
      D.switching = false;
      switchButton(window.agentPage.call, window.agentPage.video);
    }
  }

  function switchButton(state, video) {
    $("btn-switch-video").disabled = state !== "active" || D.switching;
    setPressed("btn-switch-video", !!video, "Switch to voice", "Switch to video");
  }

  // --- following agent.js ---------------------------------------------------------------------------------------
  document.addEventListener("desk:signed-on", (e) => {
    D.agentId = e.detail.agentId;
    D.dispositions = e.detail.config.dispositions || {};
    loadHistory();
  });
  document.addEventListener("desk:signed-off", () => {
    D.agentId = null; D.queues = []; D.wrapCallId = null;
    stopTimer();
    $("wrapup-panel").hidden = true;
    showVideoPanel(false);
  });
  document.addEventListener("desk:state", (e) => {
    const v = e.detail.view;
    D.queues = v && v.queues ? v.queues : [];
    if (v && v.call_id && (v.state === "ringing" || v.state === "talking")) {
      D.callId = v.call_id;
      // talking comes after the INVITE reached this page, which named the queue (X-CC-Queue)
      if (v.state === "talking") openWrapup(D.callId, D.nextQueue || "");
    }
  });
  document.addEventListener("desk:incoming", (e) => { D.nextQueue = e.detail.queue || ""; });
  document.addEventListener("desk:call", (e) => {
    const { state, video } = e.detail;
    const live = state === "active" || state === "held";
    keypadEnabled(live);
    if (!live) { $("keypad").hidden = true; setPressed("btn-keypad", false, "Hide keypad", "Keypad"); }
    if (state === "incoming" || state === "calling") {
      D.started = null; D.stopped = null; showTimer();
      pub.dtmf = ""; $("dtmf-sent").textContent = "";
      if (state === "calling") D.nextQueue = "";
    }
    if (live) startTimer();
    if (state === "ended" || state === "none") stopTimer();
    if (live && video && !pub.videoPanel) showVideoPanel(true);
    if ((!live || !video) && pub.videoPanel) showVideoPanel(false);
    switchButton(state, video);
    if (state === "ended" && D.lastCall !== "ended") historySoon();
    D.lastCall = state;
  });
  document.addEventListener("desk:queues", (e) => showQueues(e.detail));

  document.addEventListener("DOMContentLoaded", () => {
    $("btn-keypad").addEventListener("click", () => {
      const open = $("keypad").hidden;
      $("keypad").hidden = !open;
      setPressed("btn-keypad", open, "Hide keypad", "Keypad");
    });
    for (const b of document.querySelectorAll("#keypad [data-digit]")) {
      b.addEventListener("click", () => sendDigit(b.dataset.digit));
    }
    document.addEventListener("keydown", (ev) => {
      if ($("keypad").hidden || /^(INPUT|TEXTAREA|SELECT)$/.test(ev.target.tagName)) return;
      if (/^[0-9*#]$/.test(ev.key)) sendDigit(ev.key);
    });
    $("wrapup-form").addEventListener("submit", saveWrapup);
    $("btn-camera").addEventListener("click", toggleCamera);
    $("btn-share").addEventListener("click", toggleShare);
    $("btn-switch-video").addEventListener("click", switchVideo);
    $("btn-zoom").addEventListener("click", () => {
      const on = $("video-stage").classList.toggle("zoomed");
      setPressed("btn-zoom", on, "Normal size", "Zoom");
    });
    $("btn-fullscreen").addEventListener("click", () => {
      const stage = $("video-stage");
      if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
      else if (stage.requestFullscreen) stage.requestFullscreen().catch((e) => { $("call-error").textContent = `full screen: ${e.message}`; });
    });
    $("btn-hide-video").addEventListener("click", () => {
      const hide = !$("video-stage").hidden;
      $("video-stage").hidden = hide;
      setPressed("btn-hide-video", hide, "Show video", "Hide video");
    });
    keypadEnabled(false);
    showTimer();
  });
})();
