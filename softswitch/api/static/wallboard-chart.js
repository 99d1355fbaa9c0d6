// The wallboard's 60-minute trend chart of one queue, as inline SVG built with DOM calls (no inline script, no
// library): per minute, answered and abandoned calls as stacked bars and the most calls waiting as a line on the
// left axis (calls), the minute's service level as a line on the right axis (0-100%) with the goal dashed.
"use strict";
(() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 600, H = 150, L = 30, R = 40, T = 10, B = 22;
  const PW = W - L - R, PH = H - T - B;

  function svgEl(tag, attrs = {}, text = null) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text != null) e.textContent = text;
    return e;
  }

  // A round, even axis top at or above n (its half is a whole number too): 2, 4, 6, 8, 10, 20, 40, 60, 100, ...
  function niceMax(n) {
    if (n <= 10) return Math.max(2, 2 * Math.ceil(n / 2));
    const p = 10 ** Math.floor(Math.log10(n));
    for (const m of [1, 2, 4, 6, 8, 10]) if (m * p >= n) return m * p;
    return 10 * p;
  }

  function path(points) {
    // breaks the line where a minute has no value (nobody observed it, or no call ended waiting in it)
    let d = "", pen = false;
    for (const p of points) {
      if (p == null) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${p[0].toFixed(1)},${p[1].toFixed(1)}`;
      pen = true;
    }
    return d;
  }

  // series: [{t, waiting_max, answered, abandoned, service_level}], oldest first; opts: {now, period, minutes, goal}
  function draw(svg, series, opts) {
    const { now, period, minutes, goal } = opts;
    while (svg.firstChild) svg.firstChild.remove();
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("role", "img");
    const current = now - (now % period);
    const start = current - (minutes - 1) * period;
    const slot = PW / minutes;
    const x = (t) => L + ((t - start) / period) * slot + slot / 2;
    const top = niceMax(Math.max(1, ...series.map((m) => Math.max(m.waiting_max || 0, m.answered + m.abandoned))));
    const yCount = (n) => T + PH - (n / top) * PH;
    const ySl = (s) => T + PH - s * PH;

    // grid and axes
    for (const f of [0, 0.5, 1]) {
      const y = T + PH - f * PH;
      svg.append(svgEl("line", { x1: L, x2: L + PW, y1: y, y2: y, class: f === 0 ? "axis" : "grid" }));
      svg.append(svgEl("text", { x: L - 5, y: y + 4, "text-anchor": "end" }, String(Math.round(f * top))));
      svg.append(svgEl("text", { x: L + PW + 5, y: y + 4 }, `${Math.round(100 * f)}%`));
    }
    for (const ago of [60, 45, 30, 15, 0]) {
      const t = current - Math.min(ago, minutes - 1) * period;
      svg.append(svgEl("text", { x: x(t), y: H - 6, "text-anchor": ago === 60 ? "start" : ago === 0 ? "end" : "middle" },
        ago === 0 ? "now" : `−${ago} min`));
    }
    if (goal != null) {
      svg.append(svgEl("line", { x1: L, x2: L + PW, y1: ySl(goal), y2: ySl(goal), class: "goal-line" }));
    }

    // bars: answered below, abandoned on top
    const bw = Math.max(1.5, slot * 0.7);
    for (const m of series) {
      if (m.t < start) continue;
      const x0 = x(m.t) - bw / 2;
      if (m.answered) {
        svg.append(svgEl("rect", { x: x0, y: yCount(m.answered), width: bw, height: PH - (yCount(m.answered) - T),
                                   class: "bar-answered", "data-minute": m.t }));
      }
      if (m.abandoned) {
        const y1 = yCount(m.answered + m.abandoned);
        svg.append(svgEl("rect", { x: x0, y: y1, width: bw, height: yCount(m.answered) - y1, class: "bar-abandoned",
                                   "data-minute": m.t }));
      }
    }

    // lines and their points
    const inWindow = series.filter((m) => m.t >= start);
    const waits = inWindow.map((m) => (m.waiting_max == null ? null : [x(m.t), yCount(m.waiting_max)]));
    const sls = inWindow.map((m) => (m.service_level == null ? null : [x(m.t), ySl(m.service_level)]));
    svg.append(svgEl("path", { d: path(waits), class: "line-waiting" }));
    svg.append(svgEl("path", { d: path(sls), class: "line-sl" }));
    let points = 0;
    for (const [cls, pts] of [["pt-waiting", waits], ["pt-sl", sls]]) {
      for (const p of pts) {
        if (p == null) continue;
        svg.append(svgEl("circle", { cx: p[0].toFixed(1), cy: p[1].toFixed(1), r: 2.6, class: cls }));
        points += 1;
      }
    }
    svg.dataset.points = String(points);
    svg.dataset.minutes = String(inWindow.length);
    const last = inWindow[inWindow.length - 1];
    svg.setAttribute("aria-label", `Last ${minutes} minutes: ${inWindow.length} minutes of samples` +
      (last ? `, now ${last.waiting ?? 0} waiting` : ""));
  }

  window.WallboardChart = Object.freeze({ draw });
})();
