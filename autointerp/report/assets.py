"""The site's stylesheet, icon and the index's script: hand-written, small, no third-party code.

Kept as Python strings so that they ship inside the package with no package-data rule. The
script builds every element with `textContent` / `setAttribute`, never `innerHTML`, so no data
it loads can become markup; the pages' Content-Security-Policy allows only these files.
"""

from __future__ import annotations

CSS = """\
:root {
  --fg: #1d232b; --muted: #5d6773; --line: #dde2e8; --bg: #fff; --soft: #f5f7fa;
  --accent: #1f5fbf; --fire: #c2410c; --row: 30px;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
  color: var(--fg); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
header.top { display: flex; gap: 1rem; align-items: baseline; padding: .6rem 1.2rem;
  border-bottom: 1px solid var(--line); background: var(--soft); }
header.top .brand { font-weight: 700; color: var(--fg); }
header.top .run { color: var(--muted); font-family: ui-monospace, monospace; }
header.top nav { margin-left: auto; display: flex; gap: 1rem; }
main { padding: 1rem 1.2rem 3rem; max-width: 1400px; }
h1 { font-size: 1.3rem; margin: .2rem 0 .8rem; font-weight: 600; }
h2 { font-size: 1.05rem; margin: 1.6rem 0 .5rem; border-bottom: 1px solid var(--line);
  padding-bottom: .2rem; }
h3 { font-size: .95rem; margin: 1rem 0 .4rem; }
code, pre, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace;
  font-size: .86rem; }
pre { white-space: pre-wrap; word-break: break-word; background: var(--soft);
  border: 1px solid var(--line); padding: .6rem; border-radius: 4px; max-height: 40rem;
  overflow: auto; }
.muted { color: var(--muted); }
.note { color: var(--muted); font-size: .9rem; }
table.data { border-collapse: collapse; margin: .3rem 0 1rem; }
table.data th, table.data td { text-align: left; padding: .2rem .7rem .2rem 0;
  border-bottom: 1px solid var(--line); vertical-align: top; }
table.data th { font-weight: 600; color: var(--muted); font-size: .85rem; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem;
  margin: .4rem 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.chip { display: inline-block; padding: 0 .5rem; border-radius: 999px; font-size: .8rem;
  border: 1px solid var(--line); background: var(--soft); }
.chip.high { background: #dcfce7; border-color: #86efac; }
.chip.medium { background: #fef9c3; border-color: #fde047; }
.chip.low { background: #fee2e2; border-color: #fca5a5; }
.label-big { font-size: 1.25rem; font-weight: 600; margin: .2rem 0 .4rem;
  white-space: pre-wrap; word-break: break-word; }
.reasoning { white-space: pre-wrap; word-break: break-word; max-width: 60rem; }
.pager { display: flex; gap: 1rem; font-size: .9rem; margin-bottom: .4rem; }
/* activation windows: each token shaded by its CI, the firing token outlined */
ol.windows { padding-left: 0; list-style: none; margin: .3rem 0; }
ol.windows li { display: flex; gap: .6rem; padding: .15rem 0;
  border-bottom: 1px dotted var(--line); }
ol.windows .ci { flex: 0 0 4.2rem; text-align: right; color: var(--muted);
  font-variant-numeric: tabular-nums; font-size: .85rem; padding-top: .1rem; }
.window { white-space: pre-wrap; word-break: break-word; font-family: ui-monospace,
  "DejaVu Sans Mono", Menlo, monospace; font-size: .86rem; }
.window i { font-style: normal; border-radius: 2px; }
.window .fire { outline: 2px solid var(--fire); font-weight: 700; }
.window .pad { color: #b7bec7; }
.c1 { background: rgba(234, 88, 12, .10); } .c2 { background: rgba(234, 88, 12, .18); }
.c3 { background: rgba(234, 88, 12, .26); } .c4 { background: rgba(234, 88, 12, .34); }
.c5 { background: rgba(234, 88, 12, .42); } .c6 { background: rgba(234, 88, 12, .50); }
.c7 { background: rgba(234, 88, 12, .58); } .c8 { background: rgba(234, 88, 12, .66); }
.c9 { background: rgba(234, 88, 12, .76); } .c10 { background: rgba(234, 88, 12, .88); }
.legend span { display: inline-block; width: 1.4rem; text-align: center; font-size: .75rem; }
code.tok { white-space: pre; background: var(--soft); border: 1px solid var(--line);
  border-radius: 3px; padding: 0 .2rem; }
.cols { display: flex; flex-wrap: wrap; gap: 2rem; }
details { margin: .6rem 0; }
details > summary { cursor: pointer; font-weight: 600; }
svg.plot { display: block; }
svg.plot text { font: 10px system-ui, sans-serif; fill: var(--muted); }
svg.plot .bar { fill: #5b8def; }
svg.plot .bar.alt { fill: #f59e0b; }
svg.plot .axis { stroke: #9aa3ad; stroke-width: 1; }
svg.plot .whisker { stroke: var(--fg); stroke-width: 1.5; }
svg.plot .dot { fill: var(--fg); }
.modules { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 1rem; }
.module { border: 1px solid var(--line); border-radius: 6px; padding: .6rem .8rem; }
.module h3 { margin: 0 0 .3rem; font-family: ui-monospace, monospace; font-size: .85rem;
  word-break: break-all; }
.module .figs { display: flex; flex-wrap: wrap; gap: 0 .8rem; }
.module figure { margin: .4rem 0; }
.module figcaption { font-size: .8rem; color: var(--muted); }
/* index */
.summary { margin: 0 0 .6rem; color: var(--muted); }
.controls { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center;
  margin-bottom: .6rem; }
.controls input[type=search] { width: 24rem; max-width: 100%; padding: .35rem .5rem; font: inherit;
  border: 1px solid #b9c2cc; border-radius: 4px; }
.controls select, .controls input[type=number], .controls button { font: inherit;
  padding: .2rem .3rem; }
.controls input[type=number] { width: 5rem; }
.table { border: 1px solid var(--line); border-radius: 4px; }
.head, .row { display: grid; grid-template-columns: var(--cols); align-items: center;
  column-gap: .6rem; padding: 0 .6rem; }
.head { background: var(--soft); border-bottom: 1px solid var(--line); height: 34px;
  overflow: hidden; scrollbar-gutter: stable; }
.head button { all: unset; cursor: pointer; font-weight: 600; font-size: .85rem;
  color: var(--muted);
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.head button.num { text-align: right; }
.head button[aria-sort=ascending]::after { content: " \\25B2"; }
.head button[aria-sort=descending]::after { content: " \\25BC"; }
.scroller { height: calc(100vh - 15rem); min-height: 16rem; overflow-y: auto; position: relative;
  scrollbar-gutter: stable; }
.rows { position: relative; }
.row { position: absolute; left: 0; right: 0; height: var(--row);
  border-bottom: 1px solid #eef1f4; }
.row > * { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.row .num { text-align: right; font-variant-numeric: tabular-nums; }
.row .mod { font-family: ui-monospace, monospace; font-size: .8rem; color: var(--muted); }
.row:hover { background: #f0f5ff; }
.empty { padding: 1rem; color: var(--muted); }
"""

FAVICON = """\
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">\
<rect width="16" height="16" rx="3" fill="#1f5fbf"/>\
<path d="M4 12 8 4l4 8" stroke="#fff" stroke-width="2" fill="none"/></svg>
"""

INDEX_JS = r"""
"use strict";
/* The component index: rows arrive in shards (data/rows-NNNN.js, each a call to
   AUTOINTERP_DATA.rows) so the first ones show before the rest have loaded; only the rows in
   view are in the DOM. Every text goes in through textContent. */
(function () {
  var ROW_H = 30, OVERSCAN = 12;
  var CONF = ["low", "medium", "high"];
  var meta = null, byKey = new Map(), all = [], shown = [], done = 0, failed = [];
  var sortKey = "layout", sortDir = 1, needSort = true, queued = false;
  var f = { q: [], module: -1, conf: -1, scorer: -1, lo: -Infinity, hi: Infinity };
  var $ = function (id) { return document.getElementById(id); };

  function make(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function fmtScore(x) { return x === null || x === undefined ? "\u2013" : x.toFixed(3); }
  function fmtDensity(x) {
    if (!x) return "0";
    var p = x * 100;
    return (p >= 1 ? p.toFixed(1) : p >= 0.01 ? p.toFixed(3) : p.toPrecision(2)) + "%";
  }
  function num(n) { return n.toLocaleString("en-US"); }

  function columns() {
    var cols = [["layout", "Module", false], ["index", "#", true], ["label", "Label", false],
      ["conf", "Confidence", false], ["density", "Firing density", true]];
    meta.scorers.forEach(function (s, i) { cols.push(["s" + i, s, true]); });
    return cols;
  }

  function setup() {
    var cols = columns(), head = $("head");
    var widths = "minmax(9rem, 15rem) 3.5rem minmax(16rem, 1fr) 6rem 7rem" +
      meta.scorers.map(function () { return " 6.5rem"; }).join("");
    $("table").style.setProperty("--cols", widths);
    head.textContent = "";
    cols.forEach(function (c) {
      var b = make("button", c[2] ? "num" : "", c[1]);
      b.type = "button";
      b.setAttribute("data-sort", c[0]);
      b.title = "sort by " + c[1];
      b.addEventListener("click", function () {
        if (sortKey === c[0]) sortDir = -sortDir;
        else {
          sortKey = c[0];
          sortDir = (c[0] === "layout" || c[0] === "index" || c[0] === "label") ? 1 : -1;
        }
        needSort = true; schedule();
      });
      head.appendChild(b);
    });
    var ms = $("f-module");
    meta.modules.forEach(function (m, i) {
      var o = make("option", "", m); o.value = String(i); ms.appendChild(o);
    });
    var ss = $("f-scorer");
    meta.scorers.forEach(function (s, i) {
      var o = make("option", "", s); o.value = String(i); ss.appendChild(o);
    });
    $("f-scorer").disabled = meta.scorers.length === 0;
    $("search").addEventListener("input", function (e) {
      f.q = e.target.value.toLowerCase().split(/\s+/).filter(Boolean); schedule();
    });
    ms.addEventListener("change", function (e) { f.module = Number(e.target.value); schedule(); });
    $("f-conf").addEventListener("change", function (e) {
      f.conf = Number(e.target.value); schedule();
    });
    function range() {
      f.scorer = Number(ss.value);
      var lo = $("f-lo").value, hi = $("f-hi").value;
      f.lo = lo === "" ? -Infinity : Number(lo);
      f.hi = hi === "" ? Infinity : Number(hi);
      $("f-lo").disabled = $("f-hi").disabled = f.scorer < 0;
      schedule();
    }
    ss.addEventListener("change", range);
    $("f-lo").addEventListener("input", range);
    $("f-hi").addEventListener("input", range);
    $("f-clear").addEventListener("click", function () {
      $("search").value = ""; ms.value = "-1"; $("f-conf").value = "-1"; ss.value = "-1";
      $("f-lo").value = ""; $("f-hi").value = "";
      f = { q: [], module: -1, conf: -1, scorer: -1, lo: -Infinity, hi: Infinity };
      $("f-lo").disabled = $("f-hi").disabled = true;
      schedule();
    });
    $("scroller").addEventListener("scroll", draw, { passive: true });
    window.addEventListener("resize", draw);
  }

  function loading() { return meta === null || done < meta.shards; }

  function load(i, then) {
    var s = document.createElement("script");
    var v = meta.live ? "?v=" + meta.version : "";
    s.src = "data/rows-" + String(i).padStart(4, "0") + ".js" + v;
    s.onload = function () { done++; s.remove(); schedule(); if (then) then(); };
    s.onerror = function () { done++; failed.push(s.src); s.remove(); schedule(); };
    document.body.appendChild(s);
  }

  function loadAll(first) {
    done = 0;
    if (!first || meta.shards < 2) {
      for (var i = 0; i < meta.shards; i++) load(i);
      return;
    }
    /* the first shard alone, drawn, then the rest: rows show before 40k have been parsed */
    load(0, function () {
      requestAnimationFrame(function () {
        setTimeout(function () { for (var i = 1; i < meta.shards; i++) load(i); }, 0);
      });
    });
  }

  function compare(a, b) {
    var k = sortKey, x, y;
    if (k === "layout") { x = a.m - b.m || a.i - b.i; return x * sortDir; }
    if (k === "index") { x = a.i - b.i || a.m - b.m; return x * sortDir; }
    if (k === "label") { return (a.low < b.low ? -1 : a.low > b.low ? 1 : 0) * sortDir; }
    if (k === "conf") { x = a.c; y = b.c; }
    else if (k === "density") { x = a.d; y = b.d; }
    else { var j = Number(k.slice(1)); x = a.s[j]; y = b.s[j]; }
    if (x === null || x === undefined) return (y === null || y === undefined) ? 0 : 1;
    if (y === null || y === undefined) return -1;
    return (x - y) * sortDir || (a.m - b.m) || (a.i - b.i);
  }

  function keep(r) {
    if (f.module >= 0 && r.m !== f.module) return false;
    if (f.conf >= 0 && r.c !== f.conf) return false;
    if (f.scorer >= 0) {
      var s = r.s[f.scorer];
      if (s === null || s === undefined || s < f.lo || s > f.hi) return false;
    }
    for (var t = 0; t < f.q.length; t++) if (r.hay.indexOf(f.q[t]) < 0) return false;
    return true;
  }

  function schedule() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(function () { queued = false; update(); });
  }

  function update() {
    if (needSort) { all = Array.from(byKey.values()); all.sort(compare); needSort = false; }
    shown = all.filter(keep);
    var heads = $("head").children;
    for (var h = 0; h < heads.length; h++) {
      var on = heads[h].getAttribute("data-sort") === sortKey;
      if (on) heads[h].setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
      else heads[h].removeAttribute("aria-sort");
    }
    var rows = $("rows");
    rows.style.height = (shown.length * ROW_H) + "px";
    rows.setAttribute("data-total", String(all.length));
    rows.setAttribute("data-shown", String(shown.length));
    rows.setAttribute("data-loading", loading() ? "true" : "false");
    var status = "Showing " + num(shown.length) + " of " + num(all.length) + " labelled components";
    if (loading()) status += " (loading\u2026)";
    if (failed.length) status += " \u2014 could not load " + failed.join(", ");
    $("count").textContent = status;
    draw();
  }

  function row(r, top) {
    var d = make("div", "row");
    d.setAttribute("data-component-key", r.key);
    d.setAttribute("role", "row");
    d.style.top = top + "px";
    d.appendChild(make("span", "mod", meta.modules[r.m]));
    d.appendChild(make("span", "num", String(r.i)));
    var cell = make("span", "lab"), a = make("a", "", r.label || "(empty label)");
    a.href = "components/" + r.page;
    a.title = r.label;
    cell.appendChild(a);
    d.appendChild(cell);
    var conf = make("span", "");
    if (r.c >= 0) conf.appendChild(make("span", "chip " + CONF[r.c], CONF[r.c]));
    d.appendChild(conf);
    d.appendChild(make("span", "num", fmtDensity(r.d)));
    for (var j = 0; j < meta.scorers.length; j++) {
      d.appendChild(make("span", "num", fmtScore(r.s[j])));
    }
    return d;
  }

  function draw() {
    var sc = $("scroller"), rows = $("rows");
    var first = Math.max(0, Math.floor(sc.scrollTop / ROW_H) - OVERSCAN);
    var bottom = Math.ceil((sc.scrollTop + sc.clientHeight) / ROW_H);
    var last = Math.min(shown.length, bottom + OVERSCAN);
    var frag = document.createDocumentFragment();
    for (var n = first; n < last; n++) frag.appendChild(row(shown[n], n * ROW_H));
    rows.textContent = "";
    rows.appendChild(frag);
    $("empty").hidden = shown.length > 0 || loading();
    if (last > first) mark("autointerp:first-rows");
    if (!loading() && all.length > 0) mark("autointerp:all-rows");
  }

  var marked = {};
  function mark(name) {  /* for bench/report_load.py: when the index became usable */
    if (!marked[name] && window.performance && performance.mark) {
      marked[name] = true;
      performance.mark(name);
    }
  }

  function summary() {
    var parts = [num(meta.labelled) + " labelled of " + num(meta.alive) + " alive components",
      num(meta.total) + " in all", num(meta.dead) + " dead (never fired)"];
    if (meta.failed) parts.push(num(meta.failed) + " failed to label");
    if (meta.phase !== "done") parts.push("run phase: " + meta.phase);
    $("summary").textContent = parts.join(" \u00b7 ");
  }

  window.AUTOINTERP_DATA = {
    meta: function (m) {
      var first = meta === null;
      if (!first && (JSON.stringify(m.modules) !== JSON.stringify(meta.modules) ||
                     JSON.stringify(m.scorers) !== JSON.stringify(meta.scorers))) {
        location.reload();
        return;
      }
      var changed = first || m.version !== meta.version;
      meta = m;
      if (first) setup();
      summary();
      if (changed) loadAll(first);
      if (first && m.live) setInterval(poll, 3000);
      schedule();
    },
    rows: function (shard, list) {
      for (var n = 0; n < list.length; n++) {
        var x = list[n];
        byKey.set(x[0], { key: x[0], m: x[1], i: x[2], label: x[3], c: x[4], d: x[5], page: x[6],
          s: x.slice(7), low: x[3].toLowerCase(), hay: (x[0] + "\u0000" + x[3]).toLowerCase() });
      }
      needSort = true;
    }
  };

  function poll() {
    if (loading()) return;
    var s = document.createElement("script");
    s.src = "data/meta.js?t=" + Date.now();
    s.onload = s.onerror = function () { s.remove(); };
    document.body.appendChild(s);
  }
})();
"""
