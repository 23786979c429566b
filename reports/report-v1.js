/* capeval report v1: sortable tables, figure tabs and the per-sample browser (vanilla JS, no network).
   Every piece of data is inserted with textContent / attributes, never as HTML. */
(function () {
  "use strict";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (Object.prototype.hasOwnProperty.call(attrs, k)) node.setAttribute(k, attrs[k]);
      }
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    return Math.abs(v) < 10 ? v.toFixed(4) : v.toFixed(2);
  }

  /* ---- sortable tables: click a header; the first click puts the best value first ---- */
  function initSortable(table) {
    var heads = table.querySelectorAll("thead th");
    heads.forEach(function (th, col) {
      th.tabIndex = 0;
      th.classList.add("clickable");
      function sort() {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var numeric = th.getAttribute("data-type") !== "text";
        var bestFirst = th.getAttribute("data-hib") === "0" ? 1 : -1;
        var current = th.getAttribute("aria-sort");
        var dir = current ? (current === "ascending" ? -1 : 1) : (numeric ? bestFirst : 1);
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        function key(row) {
          var cell = row.cells[col];
          var raw = cell.getAttribute("data-sort");
          if (raw === null) raw = cell.textContent;
          if (!numeric) return raw.toLowerCase();
          var num = parseFloat(raw);
          return isNaN(num) ? null : num;
        }
        rows.sort(function (a, b) {
          var ka = key(a), kb = key(b);
          if (ka === kb) return 0;
          if (ka === null) return 1;
          if (kb === null) return -1;
          return (ka < kb ? -1 : 1) * dir;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") sort(); });
    });
  }

  /* ---- tabs: buttons with data-show switch which figure of a group is visible ---- */
  function initTabs(bar) {
    var buttons = bar.querySelectorAll("button[data-show]");
    buttons.forEach(function (btn) {
      btn.addEventListener("click", function () {
        buttons.forEach(function (b) {
          var target = document.getElementById(b.getAttribute("data-show"));
          var on = b === btn;
          b.classList.toggle("active", on);
          if (target) target.hidden = !on;
        });
      });
    });
  }

  /* ---- per-sample browser: filters over the JSON blob, one page rendered at a time ---- */
  function Browser(root, data) {
    this.root = root;
    this.d = data;
    this.nc = data.captioners.length;
    this.nm = data.metrics.length;
    this.page = 0;
    this.pageSize = data.pageSize || 20;
    this.haystack = null;
    this.order = null;
    this.build();
    this.refilter();
  }

  Browser.prototype.score = function (s, c, m) {
    return this.d.scores[s][c * this.nm + m];
  };

  Browser.prototype.build = function () {
    var self = this, d = this.d;
    var bar = el("div", { "class": "controls" });
    this.search = el("input", { type: "search", placeholder: "search id, caption, reference, reason…",
      "aria-label": "search samples" });
    this.capSel = el("select", { "aria-label": "captioner" });
    this.capSel.appendChild(el("option", { value: "-1" }, "all captioners"));
    d.captioners.forEach(function (c, i) { self.capSel.appendChild(el("option", { value: String(i) }, c)); });
    this.sortSel = el("select", { "aria-label": "sort samples by" });
    this.sortSel.appendChild(el("option", { value: "" }, "sample order"));
    d.metrics.forEach(function (m, i) {
      self.sortSel.appendChild(el("option", { value: "v" + i }, m));
      if (self.nc > 1) self.sortSel.appendChild(el("option", { value: "s" + i }, m + ": spread between captioners"));
    });
    this.dirSel = el("select", { "aria-label": "sort direction" });
    this.dirSel.appendChild(el("option", { value: "asc" }, "lowest first"));
    this.dirSel.appendChild(el("option", { value: "desc" }, "highest first"));
    this.failBox = el("input", { type: "checkbox", "aria-label": "only samples with a failed score" });
    var failLabel = el("label", { "class": "check" });
    failLabel.appendChild(this.failBox);
    failLabel.appendChild(document.createTextNode(" only failed scores"));
    this.sizeSel = el("select", { "aria-label": "samples per page" });
    [10, 20, 50, 100].forEach(function (n) {
      var o = el("option", { value: String(n) }, n + " per page");
      if (n === self.pageSize) o.selected = true;
      self.sizeSel.appendChild(o);
    });
    [this.search, this.capSel, this.sortSel, this.dirSel, failLabel, this.sizeSel].forEach(function (n) {
      bar.appendChild(n);
    });
    this.status = el("div", { "class": "status", role: "status" });
    this.pagerTop = el("div", { "class": "pager" });
    this.list = el("div", { "class": "samples" });
    this.pagerBottom = el("div", { "class": "pager" });
    [bar, this.status, this.pagerTop, this.list, this.pagerBottom].forEach(function (n) {
      self.root.appendChild(n);
    });
    var timer = null;
    this.search.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { self.refilter(); }, 150);
    });
    [this.capSel, this.sortSel, this.dirSel, this.failBox].forEach(function (n) {
      n.addEventListener("change", function () { self.refilter(); });
    });
    this.sizeSel.addEventListener("change", function () {
      self.pageSize = parseInt(self.sizeSel.value, 10);
      self.page = 0;
      self.render();
    });
  };

  Browser.prototype.text = function (s) {
    if (!this.haystack) {
      var d = this.d;
      this.haystack = d.ids.map(function (id, k) {
        var parts = [String(id)].concat(d.refs[k]);
        d.caps[k].forEach(function (c) { if (c !== null) parts.push(c); });
        if (d.details[k]) d.details[k].forEach(function (t) { parts.push(t[2]); });
        return parts.join("\n").toLowerCase();
      });
    }
    return this.haystack[s];
  };

  Browser.prototype.refilter = function () {
    var d = this.d, self = this, n = d.ids.length;
    var q = this.search.value.trim().toLowerCase();
    var cap = parseInt(this.capSel.value, 10);
    var failedOnly = this.failBox.checked;
    var keep = [];
    for (var s = 0; s < n; s++) {
      if (cap >= 0 && d.caps[s][cap] === null) continue;
      if (q && this.text(s).indexOf(q) < 0) continue;
      if (failedOnly && !this.hasFailure(s, cap)) continue;
      keep.push(s);
    }
    var sort = this.sortSel.value;
    if (sort) {
      var m = parseInt(sort.slice(1), 10);
      var spread = sort.charAt(0) === "s";
      var key = {};
      keep.forEach(function (s) { key[s] = spread ? self.spread(s, m) : self.value(s, m, cap); });
      var dir = this.dirSel.value === "desc" ? -1 : 1;
      keep.sort(function (a, b) {
        var ka = key[a], kb = key[b];
        if (ka === null && kb === null) return a - b;
        if (ka === null) return 1;
        if (kb === null) return -1;
        return ka === kb ? a - b : (ka < kb ? -1 : 1) * dir;
      });
    }
    this.order = keep;
    this.page = 0;
    this.render();
  };

  Browser.prototype.hasFailure = function (s, cap) {
    for (var c = 0; c < this.nc; c++) {
      if ((cap >= 0 && c !== cap) || this.d.caps[s][c] === null) continue;
      for (var m = 0; m < this.nm; m++) if (this.score(s, c, m) === null) return true;
    }
    return false;
  };

  Browser.prototype.value = function (s, m, cap) {
    if (cap >= 0) return this.score(s, cap, m);
    var sum = 0, k = 0;
    for (var c = 0; c < this.nc; c++) {
      var v = this.score(s, c, m);
      if (v !== null) { sum += v; k++; }
    }
    return k ? sum / k : null;
  };

  Browser.prototype.spread = function (s, m) {
    var lo = Infinity, hi = -Infinity;
    for (var c = 0; c < this.nc; c++) {
      var v = this.score(s, c, m);
      if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
    return hi >= lo ? hi - lo : null;
  };

  Browser.prototype.pager = function (box, pages) {
    var self = this;
    box.textContent = "";
    var prev = el("button", { type: "button" }, "‹ previous");
    var next = el("button", { type: "button" }, "next ›");
    prev.disabled = this.page <= 0;
    next.disabled = this.page >= pages - 1;
    var jump = el("input", { type: "number", min: "1", max: String(Math.max(pages, 1)),
      value: String(this.page + 1), "aria-label": "page" });
    prev.addEventListener("click", function () { self.page -= 1; self.render(); });
    next.addEventListener("click", function () { self.page += 1; self.render(); });
    jump.addEventListener("change", function () {
      var p = parseInt(jump.value, 10);
      if (!isNaN(p)) { self.page = Math.min(Math.max(p - 1, 0), Math.max(pages - 1, 0)); self.render(); }
    });
    box.appendChild(prev);
    box.appendChild(document.createTextNode(" page "));
    box.appendChild(jump);
    box.appendChild(document.createTextNode(" of " + Math.max(pages, 1) + " "));
    box.appendChild(next);
  };

  Browser.prototype.render = function () {
    var order = this.order, total = order.length;
    var pages = Math.ceil(total / this.pageSize);
    if (this.page >= pages) this.page = Math.max(pages - 1, 0);
    var start = this.page * this.pageSize, end = Math.min(start + this.pageSize, total);
    this.status.textContent = total
      ? "Samples " + (start + 1).toLocaleString() + "–" + end.toLocaleString() + " of " +
        total.toLocaleString() + " matching (" + this.d.ids.length.toLocaleString() + " in the run)"
      : "No sample matches (" + this.d.ids.length.toLocaleString() + " in the run)";
    this.pager(this.pagerTop, pages);
    this.pager(this.pagerBottom, pages);
    var frag = document.createDocumentFragment();
    var cap = parseInt(this.capSel.value, 10);
    for (var k = start; k < end; k++) frag.appendChild(this.card(order[k], cap));
    this.list.textContent = "";
    this.list.appendChild(frag);
    this.root.setAttribute("data-rendered", String(end - start));
  };

  Browser.prototype.card = function (s, only) {
    var d = this.d, self = this;
    var card = el("article", { "class": "sample" });
    var side = el("div", { "class": "side" });
    var thumb = d.thumbs ? d.thumbs[s] : null;
    if (typeof thumb === "string" && thumb.indexOf("data:image/") === 0) {
      side.appendChild(el("img", { src: thumb, alt: "image of sample " + d.ids[s], loading: "lazy" }));
    } else if (d.thumbs) {
      side.appendChild(el("div", { "class": "noimg" }, "no image"));
    }
    side.appendChild(el("div", { "class": "sid" }, "id " + d.ids[s]));
    var refs = el("ol", { "class": "refs" });
    d.refs[s].forEach(function (r) { refs.appendChild(el("li", null, r)); });
    side.appendChild(el("div", { "class": "label" }, "references"));
    side.appendChild(refs);
    card.appendChild(side);

    var table = el("table", { "class": "caps" });
    var head = el("tr");
    head.appendChild(el("th", null, "captioner"));
    head.appendChild(el("th", null, "caption"));
    d.metrics.forEach(function (m) { head.appendChild(el("th", { "class": "num" }, m)); });
    table.appendChild(el("thead")).appendChild(head);
    var body = el("tbody");
    var best = d.metrics.map(function (m, mi) {
      var vals = [];
      for (var c = 0; c < self.nc; c++) {
        var v = self.score(s, c, mi);
        if (v !== null && d.caps[s][c] !== null) vals.push(v);
      }
      if (vals.length < 2) return null;
      return d.hib[mi] ? Math.max.apply(null, vals) : Math.min.apply(null, vals);
    });
    var reasons = {};
    (d.details[s] || []).forEach(function (t) { (reasons[t[0]] = reasons[t[0]] || []).push(t); });
    for (var c = 0; c < this.nc; c++) {
      if (only >= 0 && c !== only) continue;
      var caption = d.caps[s][c];
      if (caption === null) continue;
      var row = el("tr");
      row.appendChild(el("th", { scope: "row" }, d.captioners[c]));
      var cell = el("td", { "class": "caption" }, caption);
      (reasons[c] || []).forEach(function (t) {
        var why = el("div", { "class": "reason" });
        why.appendChild(el("span", { "class": "label" }, d.detailKeys[t[1]] + ": "));
        why.appendChild(document.createTextNode(t[2]));
        cell.appendChild(why);
      });
      row.appendChild(cell);
      for (var m = 0; m < this.nm; m++) {
        var v = this.score(s, c, m);
        var td = el("td", { "class": "num" }, v === null ? "failed" : fmt(v));
        if (v === null) td.classList.add("failed");
        else if (best[m] !== null && v === best[m]) td.classList.add("best");
        if (d.seedStd && d.seedStd[s][c * this.nm + m] !== null) {
          td.title = "mean over seeds, std " + fmt(d.seedStd[s][c * this.nm + m]);
        }
        row.appendChild(td);
      }
      body.appendChild(row);
    }
    table.appendChild(body);
    var wrap = el("div", { "class": "tablewrap" });
    wrap.appendChild(table);
    card.appendChild(wrap);
    return card;
  };

  function init() {
    document.querySelectorAll("table.sortable").forEach(initSortable);
    document.querySelectorAll(".tabs").forEach(initTabs);
    document.querySelectorAll(".browser[data-src]").forEach(function (root) {
      try {
        var src = document.getElementById(root.getAttribute("data-src"));
        new Browser(root, JSON.parse(src.textContent));
      } catch (err) {
        root.appendChild(el("p", { "class": "warn" }, "The sample browser failed: " + err));
        console.error(err);
      }
    });
    document.body.setAttribute("data-ready", "1");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
