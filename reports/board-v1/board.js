/* capeval board-v1: sortable tables, the per-sample browser of a submission, the compare page.
   Every caption, reference, name and note is inserted with textContent (never as HTML). */
(function () {
  "use strict";
  var DATA = window.CAPEVAL_DATA || {}, REFS = window.CAPEVAL_REFS || {};
  var SLUG = /^[a-z0-9-]+$/, PAGE = 20;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    return Math.abs(v) < 10 ? v.toFixed(4) : v.toFixed(2);
  }

  // sortable tables: click a header; numbers compare numerically (missing last), text by locale
  function sortable(table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      if (!th.hasAttribute("data-sort")) return;
      th.tabIndex = 0;
      th.addEventListener("click", function () {
        var num = th.getAttribute("data-sort") === "num";
        var desc = th.getAttribute("data-dir") !== "desc";
        if (th.getAttribute("data-dir") === null) desc = num && col > 1;  // metric columns: best first
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("data-dir"); });
        th.setAttribute("data-dir", desc ? "desc" : "asc");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
          var r;
          if (num) {
            var fx = parseFloat(x), fy = parseFloat(y);
            if (isNaN(fx) && isNaN(fy)) r = 0; else if (isNaN(fx)) return 1; else if (isNaN(fy)) return -1;
            else r = fx - fy;
          } else r = String(x).localeCompare(String(y));
          return desc ? -r : r;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }

  function pager(root, total, state, render) {
    var pages = Math.max(1, Math.ceil(total / PAGE));
    if (state.page >= pages) state.page = pages - 1;
    root.querySelector(".pager .page").textContent = "page " + (state.page + 1) + " of " + pages;
    root.querySelector(".pager .prev").disabled = state.page === 0;
    root.querySelector(".pager .next").disabled = state.page >= pages - 1;
    if (!state.wired) {
      state.wired = true;
      root.querySelector(".pager .prev").addEventListener("click", function () { state.page--; render(); });
      root.querySelector(".pager .next").addEventListener("click", function () { state.page++; render(); });
    }
  }

  // the per-sample browser of one submission
  function browser(root) {
    var slug = root.getAttribute("data-slug"), refs = REFS[root.getAttribute("data-refs")], data = DATA[slug];
    if (!data || !refs) { root.appendChild(el("p", "error", "sample data missing")); return; }
    var search = root.querySelector("input[type=search]"), order = root.querySelector("select.order");
    var state = {page: 0};
    var all = [];
    for (var i = 0; i < refs.ids.length; i++) if (data.caps[i] !== null) all.push(i);
    function matches(i, q) {
      if (!q) return true;
      if (refs.ids[i].toLowerCase().indexOf(q) >= 0 || data.caps[i].toLowerCase().indexOf(q) >= 0) return true;
      return refs.refs[i].some(function (r) { return r.toLowerCase().indexOf(q) >= 0; });
    }
    function render() {
      var q = search.value.trim().toLowerCase();
      var list = all.filter(function (i) { return matches(i, q); });
      var o = order.value;
      if (o) {
        var k = Math.abs(parseInt(o, 10)), down = o.charAt(0) === "-";
        list.sort(function (a, b) {
          var x = data.scores[a][k], y = data.scores[b][k];
          if (x === null) return 1; if (y === null) return -1;
          return down ? y - x : x - y;
        });
      }
      pager(root, list.length, state, render);
      var box = root.querySelector(".samples");
      box.textContent = "";
      var shown = list.slice(state.page * PAGE, state.page * PAGE + PAGE);
      shown.forEach(function (i) {
        var art = el("article", "sample");
        art.appendChild(el("div", "sid", "id " + refs.ids[i]));
        art.appendChild(el("p", "caption", data.caps[i]));
        var sc = el("p", "scores");
        data.metrics.forEach(function (m, k) {
          sc.appendChild(el("span", "score", m + " " + fmt(data.scores[i][k])));
        });
        art.appendChild(sc);
        var ul = el("ul", "refs");
        refs.refs[i].forEach(function (r) { ul.appendChild(el("li", null, r)); });
        art.appendChild(ul);
        box.appendChild(art);
      });
      root.querySelector(".status").textContent = list.length.toLocaleString("en") + " of " +
        all.length.toLocaleString("en") + " samples";
      root.setAttribute("data-rendered", String(shown.length));
    }
    search.addEventListener("input", function () { state.page = 0; render(); });
    order.addEventListener("change", function () { state.page = 0; render(); });
    render();
  }

  function loadData(slug, done) {
    if (DATA[slug]) { done(); return; }
    if (!SLUG.test(slug)) return;
    var s = document.createElement("script");
    s.src = "data/" + slug + ".js";
    s.onload = function () { DATA = window.CAPEVAL_DATA || {}; done(); };
    document.head.appendChild(s);
  }

  // the compare page: any two submissions of one track
  function compare(root) {
    var index = JSON.parse(document.getElementById("board-index").textContent);
    var selA = root.querySelector(".pick-a"), selB = root.querySelector(".pick-b");
    var selM = root.querySelector(".pick-metric");
    var subs = {}, state = {page: 0}, diffs = [];
    index.tracks.forEach(function (t) {
      var g = el("optgroup");
      g.label = "track " + t.name;
      t.subs.forEach(function (s) {
        subs[s.slug] = {sub: s, track: t};
        var o = el("option", null, s.name + (s.version > 1 ? " v" + s.version : ""));
        o.value = s.slug;
        g.appendChild(o);
      });
      selA.appendChild(g);
    });
    var params = new URLSearchParams(window.location.search);
    if (subs[params.get("a")]) selA.value = params.get("a");
    function fillB() {
      var t = subs[selA.value] ? subs[selA.value].track : null, keep = selB.value || params.get("b");
      selB.textContent = "";
      selM.textContent = "";
      if (!t) return;
      t.subs.forEach(function (s) {
        if (s.slug === selA.value) return;
        var o = el("option", null, s.name + (s.version > 1 ? " v" + s.version : ""));
        o.value = s.slug;
        selB.appendChild(o);
      });
      if (keep && subs[keep] && subs[keep].track === t && keep !== selA.value) selB.value = keep;
      t.metrics.forEach(function (m, k) { var o = el("option", null, m.key); o.value = String(k); selM.appendChild(o); });
    }
    function row(i, d, a, b, refs, metric) {
      var art = el("article", "sample");
      art.appendChild(el("div", "sid", "id " + refs.ids[i] + " · " + metric + " A − B = " + fmt(d)));
      var t = el("table", "pair");
      var r1 = t.insertRow(), r2 = t.insertRow();
      r1.appendChild(el("th", null, "A")); r1.appendChild(el("td", "caption", a.caps[i]));
      r2.appendChild(el("th", null, "B")); r2.appendChild(el("td", "caption", b.caps[i]));
      art.appendChild(t);
      return art;
    }
    function render() {
      var sa = selA.value, sb = selB.value;
      if (!subs[sa] || !subs[sb]) { root.querySelector(".summary").textContent = "pick two submissions"; return; }
      loadData(sa, function () { loadData(sb, function () {
        var a = DATA[sa], b = DATA[sb], t = subs[sa].track, refs = REFS[t.slug];
        var k = parseInt(selM.value || "0", 10), m = t.metrics[k], sign = m.hib ? 1 : -1;
        diffs = [];
        var wins = 0, losses = 0, ties = 0, total = 0;
        for (var i = 0; i < refs.ids.length; i++) {
          var x = a.caps[i] === null ? null : a.scores[i][k], y = b.caps[i] === null ? null : b.scores[i][k];
          if (x === null || y === null) continue;
          var d = x - y;
          diffs.push([i, d]);
          total += d;
          if (sign * d > 0) wins++; else if (sign * d < 0) losses++; else ties++;
        }
        root.querySelector(".summary").textContent = subs[sa].sub.name + " vs " + subs[sb].sub.name + " on " +
          m.key + ": " + diffs.length + " shared samples; A better on " + wins + ", B better on " + losses +
          ", equal on " + ties + "; mean per-sample difference " + fmt(diffs.length ? total / diffs.length : null) +
          ". Significance and tiers: see the board.";
        var best = diffs.slice().sort(function (p, q) { return sign * (q[1] - p[1]); });
        ["wins", "losses"].forEach(function (cls) {
          var box = root.querySelector("." + cls), list = cls === "wins" ? best.slice(0, 10) :
            best.slice(-10).reverse();
          box.textContent = "";
          list.forEach(function (p) {
            if ((cls === "wins" && sign * p[1] > 0) || (cls === "losses" && sign * p[1] < 0))
              box.appendChild(row(p[0], p[1], a, b, refs, m.key));
          });
        });
        diffs.sort(function (p, q) { return Math.abs(q[1]) - Math.abs(p[1]); });
        renderPage(a, b, refs, m.key);
        root.setAttribute("data-rendered", String(diffs.length));
        document.body.setAttribute("data-ready", "1");
      }); });
    }
    function renderPage(a, b, refs, key) {
      var again = function () { renderPage(a, b, refs, key); };
      pager(root, diffs.length, state, again);
      var box = root.querySelector(".diffs");
      box.textContent = "";
      diffs.slice(state.page * PAGE, state.page * PAGE + PAGE).forEach(function (p) {
        box.appendChild(row(p[0], p[1], a, b, refs, key));
      });
    }
    selA.addEventListener("change", function () { fillB(); state.page = 0; render(); });
    selB.addEventListener("change", function () { state.page = 0; render(); });
    selM.addEventListener("change", function () { state.page = 0; render(); });
    fillB();
    if (!selB.value) { document.body.setAttribute("data-ready", "1"); return false; }
    render();
    return true;
  }

  document.querySelectorAll("table.sortable").forEach(sortable);
  document.querySelectorAll(".browser").forEach(browser);
  var pending = false;
  document.querySelectorAll(".compare").forEach(function (c) { pending = compare(c) || pending; });
  if (!pending) document.body.setAttribute("data-ready", "1");
})();
