/* On a narrow screen the main navigation folds into a Menu button. Without
   JavaScript the button stays hidden and the links wrap onto several lines. */
(function () {
  "use strict";
  function setUp() {
    var bar = document.querySelector(".topbar");
    var button = bar && bar.querySelector(".menu-toggle");
    if (!button || bar.classList.contains("collapsible")) return;
    bar.classList.add("collapsible");
    button.hidden = false;
    button.addEventListener("click", function () {
      var open = bar.classList.toggle("open");
      button.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUp);
  else setUp();
  document.addEventListener("htmx:afterSettle", setUp);
})();
