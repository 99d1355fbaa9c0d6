/* The agent's browser phones: one JsSIP user agent per SIP WebSocket URL. A single node gives one phone; in pool
   mode the page registers the same softphone (same password) to every node of the pool, each node offers its own
   calls on its own phone, and outbound calls leave through the first registered one. A pool phone whose node
   cannot be reached or refuses it shows `failed` and stays down until the agent clicks it (retry): no silent
   retry loop against a node that is away. The password is kept in this closure only while the phones are on,
   so a retry needs no typing; stop() unregisters every phone and forgets it. */
"use strict";

window.AgentPhones = function AgentPhones(opts) {
  // opts: { softphone, domain, realm, displayName, pool (bool), onSession(data, url), onChange(list), log(text) }
  let phones = [];          // [{ url, ua, state, cause }]
  let password = null;

  const changed = () => opts.onChange(phones.map((p) => ({ url: p.url, state: p.state, cause: p.cause })));

  function set(p, state, cause) {
    p.state = state; p.cause = cause || null;
    changed();
  }

  function fail(p, ua, cause) {
    set(p, "failed", cause);
    try { ua.stop(); } catch (_) { /* gone */ }
  }

  function open(p) {
    const old = p.ua;
    p.ua = null;
    if (old) { try { old.stop(); } catch (_) { /* gone */ } }
    let ua;
    try {
      ua = new JsSIP.UA({
        sockets: [new JsSIP.WebSocketInterface(p.url)],
        uri: `sip:${opts.softphone}@${opts.domain}`,
        authorization_user: opts.softphone,
        password,
        realm: opts.realm,
        display_name: opts.displayName,
        register: true,
        register_expires: 300,
        // one instance id per phone (RFC 5626): registering it again replaces its old binding at that node, even
        // one the node kept across a restart, so a later sign-out leaves nothing behind
        instance_id: p.instance,
        session_timers: true,
        user_agent: "softswitch-agent-page JsSIP",
      });
    } catch (e) {
      set(p, "failed", e.message || String(e));
      return;
    }
    p.ua = ua;
    const mine = () => p.ua === ua;
    ua.on("connecting", () => { if (mine() && p.state !== "failed") set(p, "connecting"); });
    ua.on("connected", () => { if (mine()) { set(p, "registering"); opts.log(`connected to ${p.url}`); } });
    ua.on("disconnected", () => {
      if (!mine() || p.state === "failed" || p.state === "unregistered") return;
      // one node: JsSIP reconnects and registers again by itself; a pool phone waits for the agent's click
      if (opts.pool) { fail(p, ua, "Connection Error"); opts.log(`${p.url}: connection lost`); } else set(p, "disconnected");
    });
    ua.on("registered", () => { if (mine()) { set(p, "registered"); opts.log(`registered ${opts.softphone} at ${p.url}`); } });
    ua.on("unregistered", () => { if (mine() && p.state !== "failed") set(p, "unregistered"); });
    ua.on("registrationFailed", (e) => {
      if (!mine()) return;
      const cause = e.cause || (e.response && e.response.status_code) || "failed";
      opts.log(`registration at ${p.url} failed: ${cause}`);
      fail(p, ua, cause);
    });
    ua.on("newRTCSession", (data) => opts.onSession(data, p.url));
    set(p, "connecting");
    ua.start();
  }

  return {
    start(urls, secret) {
      this.stop();
      password = secret;
      phones = urls.map((url) => ({ url, ua: null, state: "connecting", cause: null, instance: JsSIP.Utils.newUUID() }));
      phones.forEach(open);
    },
    // the agent clicked a phone: register it again (a failed or unregistered one only)
    retry(i) {
      const p = phones[i];
      if (!p || password === null || !(p.state === "failed" || p.state === "unregistered" || p.state === "disconnected")) return false;
      opts.log(`registering again at ${p.url}`);
      open(p);
      return true;
    },
    // unregister every phone at once (REGISTER with expires 0 from each UA) and forget the password
    stop() {
      password = null;
      const was = phones;
      phones = [];
      was.forEach((p) => { const ua = p.ua; p.ua = null; if (ua) { try { ua.stop(); } catch (_) { /* gone */ } } });
      if (was.length) changed();
    },
    // outbound calls go through the first registered phone: { ua, url } or null
    outbound() {
      const p = phones.find((x) => x.state === "registered" && x.ua);
      return p ? { ua: p.ua, url: p.url } : null;
    },
    active() { return phones.length > 0; },
  };
};
