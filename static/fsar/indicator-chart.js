/* Indicator series as uPlot charts (static/vendor/uplot, MIT), with the formats and
   sizes of the site's other charts (window.fsarCharts, charts.js, loaded first).
   Each element with data-indicator-chart names a json_script block built by
   indicators/views_data.py: x (day starts, epoch seconds), values, unit, and for
   series a drift detector watches: mean, band [low, high] (the quiet band), fire
   (the firing threshold); change (the change point, epoch seconds) on an alert's
   page. data-size="spark" draws a sparkline (no axes), "full" a chart with axes
   and a legend. Nothing runs inline; the numbers are also in the page's tables. */
(function () {
  "use strict";

  var kit = window.fsarCharts;
  if (!kit) return;

  function formatter(unit) {
    if (unit === "ratio") return kit.percent;
    if (unit === "ms") return kit.duration;
    if (unit === "s") return function (v) { return v === null || v === undefined ? "—" : (v >= 10 ? Math.round(v) : v.toFixed(1)) + " s"; };
    if (unit === "micro-units") return function (v) { return v === null || v === undefined ? "—" : (v / 1e6).toFixed(4); };
    return function (v) { return v === null || v === undefined ? "—" : (Math.abs(v) >= 10 ? Math.round(v) : v.toFixed(2)) + ""; };
  }

  function constant(n, value) {
    var out = new Array(n);
    for (var i = 0; i < n; i++) out[i] = value;
    return out;
  }

  /* The change point: a vertical line drawn on the canvas (no DOM, no style attribute). */
  function changeHook(change) {
    return function (u) {
      if (change === null || change === undefined) return;
      var x = Math.round(u.valToPos(change, "x", true));
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
      var ctx = u.ctx;
      ctx.save();
      ctx.strokeStyle = "#7c3aed";
      ctx.lineWidth = 2;
      ctx.setLineDash([4, 3]);
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
      ctx.restore();
    };
  }

  function draw(el, data) {
    var spark = el.dataset.size === "spark";
    var n = data.x.length;
    var format = formatter(data.unit);
    var hasLimits = data.band && data.fire !== undefined && data.fire !== null;
    var columns = [data.x, data.values];
    var series = [
      spark ? {} : { label: "day", value: function (u, v) { return v === null || v === undefined ? "—" : kit.utcLabel(v, "day"); } },
      { label: data.title || "value", stroke: "#1f5fbf", width: spark ? 1.5 : 2, spanGaps: true,
        points: { show: !spark, size: 4 }, value: function (u, v) { return format(v); } }
    ];
    var bands = [];
    if (hasLimits) {
      columns.push(constant(n, data.band[1]), constant(n, data.band[0]), constant(n, data.mean), constant(n, data.fire));
      series.push(
        { label: "band high", stroke: "rgba(21, 128, 61, 0.5)", width: 1, points: { show: false }, value: function (u, v) { return format(v); } },
        { label: "band low", stroke: "rgba(21, 128, 61, 0.5)", width: 1, points: { show: false }, value: function (u, v) { return format(v); } },
        { label: "reference mean", stroke: "#94a3b8", width: 1, points: { show: false }, value: function (u, v) { return format(v); } },
        { label: "fires at", stroke: "#b91c1c", width: 1.5, dash: [6, 4], points: { show: false }, value: function (u, v) { return format(v); } }
      );
      bands.push({ series: [2, 3], fill: "rgba(21, 128, 61, 0.12)" });
    }
    var all = [].concat.apply([], columns.slice(1)).filter(function (v) { return v !== null && v !== undefined; });
    var lo = all.length ? Math.min.apply(null, all) : 0, hi = all.length ? Math.max.apply(null, all) : 1;
    var pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
    var opts = {
      width: spark ? 160 : kit.widthOf(el),
      height: spark ? 40 : 220,
      tzDate: kit.utc,
      bands: bands,
      scales: { x: { time: true }, y: { range: function () { return [lo - pad, hi + pad]; } } },
      legend: { show: !spark, live: true },
      cursor: spark ? { show: false } : { drag: { x: false, y: false } },
      axes: spark ? [{ show: false }, { show: false }] : [
        { label: "day (UTC)", labelSize: 18 },
        { label: data.title || "", labelSize: 18, size: 72, values: function (u, vals) { return vals.map(format); } }
      ],
      series: series,
      hooks: { draw: [changeHook(data.change)] }
    };
    return new uPlot(opts, columns, el);
  }

  var drawn = [];

  function drawAll() {
    if (typeof uPlot === "undefined") return;
    var els = document.querySelectorAll("[data-indicator-chart]:not(.drawn)");
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      var source = document.getElementById(el.dataset.indicatorChart);
      if (!source) continue;
      var data = JSON.parse(source.textContent);
      el.classList.add("drawn");
      if (!data.x.length) { el.classList.add("empty"); el.textContent = "no points yet"; continue; }
      el.uplot = draw(el, data); /* for the browser tests */
      if (el.dataset.size !== "spark") drawn.push(el);
    }
  }

  var pending;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      for (var i = 0; i < drawn.length; i++) drawn[i].uplot.setSize({ width: kit.widthOf(drawn[i]), height: drawn[i].uplot.height });
    }, 150);
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
})();
