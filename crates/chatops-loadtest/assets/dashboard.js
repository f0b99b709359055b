// chatops loadtest --dashboard: shows each Server-Sent Event the dashboard sends (one JSON
// object a second; see src/dashboard/update.rs). It computes nothing: numbers arrive with
// their text, charts as SVG markup drawn by the report's own code. Every string from an
// event goes in through textContent, except the chart markup, whose text the chart code has
// escaped. Static: no data is ever written into this script.
(function () {
  "use strict";
  var points = [];
  var lastSeq = -1;
  var done = false;
  function $(id) { return document.getElementById(id); }
  function setText(id, t) { var el = $(id); if (el) { el.textContent = t; } }
  function conn(text, cls) { var el = $("conn"); el.textContent = text; el.className = cls; }
  function clock(ms) {
    var s = Math.floor(ms / 1000);
    return Math.floor(s / 60) + ":" + ("0" + (s % 60)).slice(-2);
  }
  function card(c) {
    var id = "card-" + c.id, el = $(id);
    if (!el) {
      el = document.createElement("div");
      el.id = id;
      el.appendChild(document.createElement("div")).className = "k";
      el.appendChild(document.createElement("div")).className = "v";
      $(c.latency ? "cards-latency" : "cards-load").appendChild(el);
    }
    el.className = "stat" + (c.bad ? " bad" : "") + (c.latency ? " hl" : "");
    el.firstChild.textContent = c.label;
    el.lastChild.textContent = c.text;
    el.setAttribute("data-value", String(c.value));
  }
  function chart(key, svg) {
    var fig = $("fig-" + key), slot = $("slot-" + key);
    if (svg) {
      slot.innerHTML = svg;
      fig.hidden = false;
    } else if (key === "server") {
      fig.hidden = true;
    }
  }
  function verdict(v, notes) {
    var badge = $("verdict-badge");
    badge.textContent = v.passed ? "PASSED" : "FAILED";
    badge.className = "badge " + (v.passed ? "pass" : "fail");
    var body = $("thresholds").tBodies[0];
    body.textContent = "";
    v.thresholds.forEach(function (t) {
      var tr = body.insertRow();
      [t.condition, t.limit, t.measured].forEach(function (s) { tr.insertCell().textContent = s; });
      var r = tr.insertCell();
      r.textContent = t.passed ? "ok" : (t.strict ? "FAILED" : "failed (not strict)");
      r.className = t.passed ? "ok" : "bad";
    });
    $("thresholds").hidden = v.thresholds.length === 0;
    $("no-thresholds").hidden = v.thresholds.length !== 0;
    setText("results-path", v.resultsPath);
    $("results-link").setAttribute("href", v.resultsUrl);
    $("report-link").setAttribute("href", v.reportUrl);
    setText("report-command", v.reportCommand);
    setText("analyze-command", v.analyzeCommand);
    var box = $("notes");
    box.textContent = "";
    notes.forEach(function (n) { box.appendChild(document.createElement("p")).textContent = n; box.lastChild.className = "note"; });
    $("verdict").hidden = false;
  }
  function render(d) {
    if (d.seq < lastSeq) { return; }
    lastSeq = d.seq;
    points = points.slice(0, d.points.from).concat(d.points.items);
    setText("profile", d.profile || "…");
    setText("target", d.target ? "target " + d.target : "");
    setText("phase", d.phase);
    setText("clock", clock(d.elapsedMs) + " / " + clock(d.durationMs));
    var pct = d.durationMs > 0 ? Math.min(100, 100 * d.elapsedMs / d.durationMs) : 0;
    if (d.kind === "final") { pct = 100; }
    $("progress-fill").style.width = pct.toFixed(1) + "%";
    $("progress").setAttribute("aria-valuenow", pct.toFixed(0));
    var status = $("status");
    if (d.kind === "final") {
      status.textContent = d.verdict.passed ? "PASSED" : "FAILED";
      status.className = "badge " + (d.verdict.passed ? "pass" : "fail");
    } else if (d.kind === "error") {
      status.textContent = "FAILED TO RUN";
      status.className = "badge fail";
    } else {
      status.textContent = d.kind === "waiting" ? "WAITING" : "RUNNING";
      status.className = "badge live";
    }
    d.cards.forEach(card);
    ["rate", "ack", "e2e", "server"].forEach(function (k) { chart(k, d.charts[k]); });
    setText("points-note", points.length + " intervals of " + d.intervalMs / 1000 + " s" +
      (d.kind === "final" ? ", as in the results file." : " (" + d.points.nFinal + " closed; the others may still get answers)."));
    if (d.verdict) { verdict(d.verdict, d.notes); }
    if (d.error) { setText("failure-text", d.error); $("failure").hidden = false; }
    document.body.setAttribute("data-kind", d.kind);
    document.body.setAttribute("data-seq", String(d.seq));
    document.body.setAttribute("data-points", String(points.length));
  }
  var es = new EventSource("events");
  ["waiting", "progress", "final", "error"].forEach(function (kind) {
    es.addEventListener(kind, function (ev) {
      render(JSON.parse(ev.data));
      if (kind === "final" || kind === "error") {
        done = true;
        es.close();
        conn(kind === "final" ? "finished" : "failed", "");
      }
    });
  });
  es.onopen = function () { conn("live", "live"); };
  es.onerror = function () {
    if (!done) { conn(es.readyState === 2 ? "disconnected" : "reconnecting…", "lost"); }
  };
})();
