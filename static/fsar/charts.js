/* Task performance and ROI charts drawn with uPlot (static/vendor/uplot, MIT). The data
   comes from <script type="application/json"> blocks (Django's json_script) and
   data-spark attributes; nothing runs inline. Without JavaScript the page shows
   the same numbers as tables, which stay available under "The numbers". */
(function () {
  "use strict";

  var COLORS = ["#1f5fbf", "#b45309", "#15803d", "#7c3aed", "#b91c1c", "#0e7490", "#a16207", "#475569"];

  /* The server's tasks.formatting.duration, in JavaScript. */
  function duration(ms) {
    if (ms === null || ms === undefined) return "—";
    if (ms < 999.5) return Math.round(ms) + " ms";
    if (ms < 59950) return (ms / 1000).toFixed(1) + " s";
    var seconds = Math.round(ms / 1000);
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + String(seconds % 60).padStart(2, "0") + " s";
    var minutes = Math.round(seconds / 60);
    return Math.floor(minutes / 60) + " h " + String(minutes % 60).padStart(2, "0") + " min";
  }

  /* An axis tick: the unit that fits, short. */
  function durationTick(ms) {
    if (ms === null || ms === undefined) return "";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return +(ms / 1000).toFixed(1) + " s";
    if (ms < 3600000) return +(ms / 60000).toFixed(1) + " min";
    return +(ms / 3600000).toFixed(1) + " h";
  }

  function percent(ratio) {
    return ratio === null || ratio === undefined ? "—" : (ratio * 100).toFixed(1) + "%";
  }

  function utcLabel(seconds, bucket) {
    var iso = new Date(seconds * 1000).toISOString();
    return bucket === "hour" ? iso.slice(0, 10) + " " + iso.slice(11, 16) + " UTC" : iso.slice(0, 10);
  }

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var HOUR = 3600, DAY = 86400;
  /* Tick steps that read well: whole hours or days on the time axis, round durations on the value axis. */
  var TIME_STEPS = { hour: [HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY], day: [DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY] };
  var DURATION_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5,
    18e5, 36e5, 72e5, 144e5, 288e5, 864e5];

  function timeTick(seconds, bucket) {
    var d = new Date(seconds * 1000);
    var day = MONTHS[d.getUTCMonth()] + " " + d.getUTCDate();
    if (bucket !== "hour" || (d.getUTCHours() === 0 && d.getUTCMinutes() === 0)) return day;
    return String(d.getUTCHours()).padStart(2, "0") + ":00";
  }

  function utc(ts) {
    return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");
  }

  function widthOf(el) {
    return Math.max(200, Math.floor(el.getBoundingClientRect().width || el.parentNode.clientWidth || 320));
  }

  /* An amount in major units of the currency, with its decimals: 1234.5 → "1,234.50 USD". */
  function money(value, data) {
    if (value === null || value === undefined) return "—";
    return value.toLocaleString("en-US", { minimumFractionDigits: data.decimals, maximumFractionDigits: data.decimals }) +
      " " + data.currency;
  }

  /* Monthly amounts as grouped bars (the ROI page): revenue and AI cost side by side. */
  function moneyChartFor(el, data) {
    var bars = uPlot.paths.bars;
    var opts = {
      width: widthOf(el),
      height: 240,
      tzDate: utc,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(max * 1.1, 1)]; } } },
      axes: [
        {
          label: "month",
          labelSize: 18,
          incrs: [28 * DAY, 2 * 28 * DAY, 3 * 28 * DAY],
          values: function (u, splits) {
            return splits.map(function (s) { var d = new Date(s * 1000); return MONTHS[d.getUTCMonth()] + " " + d.getUTCFullYear(); });
          }
        },
        {
          label: data.currency,
          labelSize: 18,
          size: 72,
          values: function (u, values) { return values.map(function (v) { return v.toLocaleString("en-US"); }); }
        }
      ],
      series: [
        { label: "month", value: function (u, v, s, i) { return i === null || i === undefined ? "—" : data.labels[i]; } }
      ].concat(data.series.map(function (line, i) {
        var color = i === 0 ? "#15803d" : "#b45309";
        return {
          label: line.label,
          stroke: color,
          fill: color,
          width: 0,
          paths: bars({ size: [0.35, 40], align: i === 0 ? -1 : 1 }),
          points: { show: false },
          value: function (u, v) { return money(v, data); }
        };
      })),
      legend: { live: true },
      cursor: { drag: { x: false, y: false } }
    };
    return new uPlot(opts, [data.x].concat(data.series.map(function (line) { return line.values; })), el);
  }

  function chartFor(el, data) {
    if (data.kind === "money") return moneyChartFor(el, data);
    var rate = el.dataset.part === "rate";
    var lines = rate ? [data.rate] : data.series;
    var format = rate ? percent : duration;
    var tick = rate ? percent : durationTick;
    var opts = {
      width: widthOf(el),
      height: rate ? 130 : 220,
      tzDate: utc,
      scales: { x: { time: true }, y: rate ? { range: function (u, min, max) { return [0, Math.max(max, 0.01)]; } } : {} },
      axes: [
        {
          label: data.bucket === "hour" ? "hour (UTC)" : "day (UTC)",
          labelSize: 18,
          incrs: TIME_STEPS[data.bucket] || TIME_STEPS.day,
          values: function (u, splits) { return splits.map(function (s) { return timeTick(s, data.bucket); }); }
        },
        {
          label: rate ? "failed" : "duration",
          labelSize: 18,
          size: 64,
          incrs: rate ? undefined : DURATION_STEPS,
          values: function (u, values) { return values.map(tick); }
        }
      ],
      series: [
        { label: "time", value: function (u, v) { return v === null || v === undefined ? "—" : utcLabel(v, data.bucket); } }
      ].concat(lines.map(function (line, i) {
        return {
          label: line.label,
          stroke: rate ? "#b91c1c" : COLORS[i % COLORS.length],
          fill: rate ? "rgba(185, 28, 28, 0.12)" : undefined,
          width: 1.5,
          spanGaps: false,
          points: { show: true, size: 4 },
          value: function (u, v) { return format(v); }
        };
      })),
      legend: { live: true },
      cursor: { drag: { x: false, y: false } }
    };
    var columns = [data.x].concat(lines.map(function (line) { return line.values; }));
    return new uPlot(opts, columns, el);
  }

  var drawn = [];

  function drawCharts() {
    var canvases = document.querySelectorAll(".chart-canvas[data-chart]:not(.drawn)");
    for (var i = 0; i < canvases.length; i++) {
      var el = canvases[i];
      var source = document.getElementById(el.dataset.chart);
      if (!source) continue;
      var data = JSON.parse(source.textContent);
      el.classList.add("drawn");
      var chart = chartFor(el, data);
      el.uplot = chart; /* for the browser tests, and for a curious operator's console */
      drawn.push({ el: el, chart: chart });
      var card = el.closest(".chart-card");
      var table = card && card.querySelector("details.chart-data");
      if (table && !table.dataset.folded) {
        table.open = false; /* the chart shows it now; the numbers stay one click away */
        table.dataset.folded = "1";
      }
    }
  }

  function drawSparklines() {
    var cells = document.querySelectorAll("[data-spark]:not(.drawn)");
    for (var i = 0; i < cells.length; i++) {
      var cell = cells[i];
      var points = JSON.parse(cell.dataset.spark);
      cell.classList.add("drawn");
      var holder = document.createElement("div");
      holder.className = "sparkline";
      cell.textContent = "";
      cell.appendChild(holder);
      var opts = {
        width: 140,
        height: 36,
        tzDate: utc,
        legend: { show: false },
        cursor: { show: false },
        axes: [{ show: false }, { show: false }],
        scales: { x: { time: true } },
        series: [{}, { stroke: "#1f5fbf", width: 1.5, spanGaps: true, points: { show: false } }]
      };
      new uPlot(opts, [points.map(function (p) { return p[0]; }), points.map(function (p) { return p[1]; })], holder);
      var known = points.filter(function (p) { return p[1] !== null; });
      var last = known.length ? known[known.length - 1][1] : null;
      cell.setAttribute("title", "Hourly mean over the last 24 hours; last hour " + duration(last));
    }
  }

  function resize() {
    for (var i = 0; i < drawn.length; i++) {
      var el = drawn[i].el;
      drawn[i].chart.setSize({ width: widthOf(el), height: drawn[i].chart.height });
    }
  }

  function start() {
    if (typeof uPlot === "undefined") return;
    drawCharts();
    drawSparklines();
  }

  /* For the pages' own charts (rollout-chart.js): the same formats and sizes. */
  window.fsarCharts = { duration: duration, percent: percent, utc: utc, utcLabel: utcLabel, widthOf: widthOf };

  var pending;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(resize, 150);
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
