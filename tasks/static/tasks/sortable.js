// Sortable tables: click a column's button to sort by it; click again to reverse.
// Cells carry their raw value in data-sort; empty values always sort last.
(function () {
  "use strict";

  function sortBy(table, column, button) {
    var body = table.tBodies[0];
    var descending = button.getAttribute("aria-sort") !== "descending";
    var numeric = button.dataset.type !== "text";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column].dataset.sort;
      var y = b.cells[column].dataset.sort;
      if (x === "" || x === undefined) return y === "" || y === undefined ? 0 : 1;
      if (y === "" || y === undefined) return -1;
      var order = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    table.querySelectorAll("button.sort").forEach(function (other) {
      other.removeAttribute("aria-sort");
      other.closest("th").removeAttribute("aria-sort");
    });
    var state = descending ? "descending" : "ascending";
    button.setAttribute("aria-sort", state);
    button.closest("th").setAttribute("aria-sort", state);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      table.querySelectorAll("thead button.sort").forEach(function (button) {
        button.addEventListener("click", function () {
          sortBy(table, button.closest("th").cellIndex, button);
        });
      });
    });
  });
})();
