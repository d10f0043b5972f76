/*
 * yiwang 一网 — base registry pages (基础库). Plain ES2017, no inline script (CSP),
 * data-attributes only:
 *
 *   [data-progress="42"]        a progress bar: its width is set to 42% (a style="" attribute
 *                               would be refused by the CSP; setting it from here is allowed);
 *                               bars swapped in by htmx are set too
 *   input[data-max-bytes]       a file input that refuses a too large file before uploading it;
 *                               the message is the text of [data-file-error-for="<input id>"]
 */
(function () {
  "use strict";

  function setProgress(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var bars = Array.prototype.slice.call(scope.querySelectorAll("[data-progress]"));
    if (scope.matches && scope.matches("[data-progress]")) {
      bars.push(scope);
    }
    bars.forEach(function (bar) {
      var value = parseFloat(bar.getAttribute("data-progress"));
      if (!isNaN(value)) {
        bar.style.width = Math.max(0, Math.min(100, value)) + "%";
      }
    });
  }

  document.addEventListener("htmx:load", function (event) {
    setProgress(event.detail && event.detail.elt);
  });

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("input[type=file][data-max-bytes]")) {
      return;
    }
    var max = parseInt(input.getAttribute("data-max-bytes"), 10);
    var file = input.files && input.files[0];
    var tooBig = Boolean(file && max && file.size > max);
    var note = document.querySelector('[data-file-error-for="' + input.id + '"]');
    input.setCustomValidity(tooBig ? (note ? note.textContent.trim() : "file too large") : "");
    input.classList.toggle("is-invalid", tooBig);
    if (note) {
      note.classList.toggle("is-shown", tooBig);
    }
    if (tooBig) {
      input.value = "";
    }
  });

  function start() {
    setProgress(document);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
