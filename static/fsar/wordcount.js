/* Live word and character count under a textarea with data-min-words / data-min-chars
   (the vote's rationale). Progressive enhancement: without JavaScript the rule is
   still written beside the field and the server checks it. Counts words as the
   server does (runs of non-space characters, after trimming). */
(function () {
  "use strict";

  function counter(textarea) {
    var ids = (textarea.getAttribute("aria-describedby") || "").split(/\s+/);
    for (var i = 0; i < ids.length; i++) {
      var el = ids[i] && document.getElementById(ids[i]);
      if (el && el.classList.contains("word-count")) return el;
    }
    return null;
  }

  function update(textarea) {
    var out = counter(textarea);
    if (!out) return;
    var text = textarea.value.trim();
    var words = text ? text.split(/\s+/).length : 0;
    var chars = text.length;
    var minWords = parseInt(textarea.dataset.minWords, 10) || 0;
    var minChars = parseInt(textarea.dataset.minChars, 10) || 0;
    var enough = words >= minWords && chars >= minChars;
    out.hidden = false;
    out.textContent = words + (words === 1 ? " word" : " words") + ", " + chars +
      (chars === 1 ? " character" : " characters") + (enough ? ": enough." : ": not enough yet.");
    out.classList.toggle("good", enough);
  }

  function all() {
    var fields = document.querySelectorAll("textarea[data-min-words]");
    for (var i = 0; i < fields.length; i++) update(fields[i]);
  }

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("textarea[data-min-words]")) update(event.target);
  });
  document.addEventListener("DOMContentLoaded", all);
  document.addEventListener("htmx:afterSettle", all);
  if (document.readyState !== "loading") all();
})();
