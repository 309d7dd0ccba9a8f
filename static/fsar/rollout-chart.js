/* A rollout's analyses as uPlot charts (static/vendor/uplot, MIT): per analysis
   (x: the end of its window, UTC), the candidate's and the stable's failure rate
   or p95 duration, and the threshold the candidate was held to (dashed). Data
   from a json_script block; without JavaScript the table below shows the same. */
(function () {
  "use strict";

  /* Formats and sizes shared with the other charts (charts.js, loaded first). */
  var kit = window.fsarCharts;
  if (!kit) return;
  var percent = kit.percent, ms = kit.duration, utc = kit.utc, widthOf = kit.widthOf;
  function utcLabel(s) { return s === null || s === undefined ? "—" : kit.utcLabel(s, "hour"); }

  function draw(el, data) {
    var rate = el.dataset.part === "rate";
    var part = rate ? data.rate : data.p95;
    var format = rate ? percent : ms;
    var opts = {
      width: widthOf(el),
      height: 200,
      tzDate: utc,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(max, rate ? 0.01 : 10) * 1.1]; } } },
      axes: [
        { label: "end of the analysis window (UTC)", labelSize: 18 },
        { label: rate ? "failure rate" : "p95 duration", labelSize: 18, size: 64,
          values: function (u, vals) { return vals.map(format); } }
      ],
      series: [
        { label: "window end", value: function (u, v) { return utcLabel(v); } },
        { label: "candidate", stroke: "#b45309", width: 2, points: { show: true, size: 6 }, value: function (u, v) { return format(v); } },
        { label: "stable", stroke: "#1f5fbf", width: 2, points: { show: true, size: 6 }, value: function (u, v) { return format(v); } },
        { label: "threshold", stroke: "#b91c1c", width: 1.5, dash: [6, 4], points: { show: true, size: 4 }, value: function (u, v) { return format(v); } }
      ],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } }
    };
    return new uPlot(opts, [data.x, part.candidate, part.stable, part.limit], el);
  }

  function drawAll() {
    var els = document.querySelectorAll(".chart-canvas[data-rollout-chart]:not(.drawn)");
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      var source = document.getElementById(el.dataset.rolloutChart);
      if (!source || typeof uPlot === "undefined") continue;
      var data = JSON.parse(source.textContent);
      if (!data.x.length) { el.classList.add("drawn"); continue; }
      el.classList.add("drawn");
      el.uplot = draw(el, data);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
})();
