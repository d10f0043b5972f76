/*
 * yiwang 一网 — workflow pages. Plain ES2017, no inline script (CSP), data-attributes only:
 *
 *   inbox quick action     a refused 同意 (400/403 with X-Workflow-Inline) is swapped in
 *                          place (the row with its error) instead of htmx's generic alert
 *   [data-wf-steps]        the step editor: 添加环节 from <template id="wf-step-template">,
 *                          上移/下移 ([data-wf-move]) renumber the ORDER fields, and each
 *                          row shows only the fields of its assignee rule ([data-wf-rule])
 */
(function () {
  "use strict";

  // --- inbox: errors in place -----------------------------------------------------------

  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (xhr && xhr.status >= 400 && xhr.getResponseHeader("X-Workflow-Inline")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // --- step editor ----------------------------------------------------------------------

  function ruleOf(step) {
    var select = step.querySelector("select[name$='-assignee_type']");
    return select ? select.value : "";
  }

  function showRuleFields(step) {
    var rule = ruleOf(step);
    step.querySelectorAll("[data-wf-rule]").forEach(function (box) {
      var rules = box.getAttribute("data-wf-rule").split(" ");
      box.classList.toggle("d-none", rules.indexOf(rule) === -1);
    });
  }

  var stepWord = "";

  function isBlank(step) {
    var name = step.querySelector("input[name$='-name']");
    return name && !name.value.trim();
  }

  function setTitle(step, number) {
    var title = step.querySelector("[data-wf-step-title]");
    if (title) {
      title.textContent = number ? stepWord + " " + number : title.getAttribute("data-new-label");
    }
  }

  // Number the rows in their page order and write that into the ORDER fields. A blank row
  // keeps an empty ORDER: left untouched, the server ignores it.
  function renumber(container) {
    var n = 0;
    container.querySelectorAll("[data-wf-step]").forEach(function (step) {
      var deleted = step.querySelector("[data-wf-delete]");
      var order = step.querySelector("input[name$='-ORDER']");
      step.classList.toggle("wf-step-deleted", Boolean(deleted && deleted.checked));
      if ((deleted && deleted.checked) || isBlank(step)) {
        if (order && isBlank(step)) {
          order.value = "";
        }
        setTitle(step, "");
        return;
      }
      n += 1;
      if (order) {
        order.value = String(n);
      }
      setTitle(step, String(n));
    });
  }

  // On load only the titles change (a re-shown form keeps the ORDER values it was sent with).
  function labelBlankRows(container) {
    container.querySelectorAll("[data-wf-step]").forEach(function (step) {
      var deleted = step.querySelector("[data-wf-delete]");
      step.classList.toggle("wf-step-deleted", Boolean(deleted && deleted.checked));
      if (isBlank(step)) {
        setTitle(step, "");
      }
    });
  }

  function addStep(container) {
    var template = document.getElementById("wf-step-template");
    var prefix = container.getAttribute("data-wf-prefix");
    var total = document.querySelector("input[name='" + prefix + "-TOTAL_FORMS']");
    var max = document.querySelector("input[name='" + prefix + "-MAX_NUM_FORMS']");
    if (!template || !total) {
      return;
    }
    var index = parseInt(total.value, 10);
    if (max && index >= parseInt(max.value, 10)) {
      return;
    }
    var html = template.innerHTML.replace(/__prefix__/g, String(index));
    var holder = document.createElement("div");
    holder.innerHTML = html.trim();
    var step = holder.firstElementChild;
    container.appendChild(step);
    total.value = String(index + 1);
    showRuleFields(step);
    renumber(container);
    var first = step.querySelector("input[name$='-name']");
    if (first) {
      first.focus();
    }
  }

  function initEditor(container) {
    var template = document.getElementById("wf-step-template");
    var sample = template && template.content.querySelector("[data-wf-step-title]");
    stepWord = sample ? sample.textContent.trim() : "";
    container.querySelectorAll("[data-wf-step]").forEach(showRuleFields);
    labelBlankRows(container);
    var add = document.querySelector("[data-wf-add-step]");
    if (add) {
      add.classList.remove("d-none");
      add.addEventListener("click", function () {
        addStep(container);
      });
    }
    container.addEventListener("change", function (event) {
      var target = event.target;
      var step = target.closest("[data-wf-step]");
      if (!step) {
        return;
      }
      if (target.matches("select[name$='-assignee_type']")) {
        showRuleFields(step);
      } else if (target.matches("[data-wf-delete], input[name$='-name']")) {
        renumber(container);
      }
    });
    container.addEventListener("click", function (event) {
      var button = event.target.closest && event.target.closest("[data-wf-move]");
      if (!button) {
        return;
      }
      var step = button.closest("[data-wf-step]");
      if (button.getAttribute("data-wf-move") === "up") {
        var before = step.previousElementSibling;
        if (before) {
          container.insertBefore(step, before);
        }
      } else {
        var after = step.nextElementSibling;
        if (after) {
          container.insertBefore(after, step);
        }
      }
      renumber(container);
      button.focus();
    });
  }

  function start() {
    document.querySelectorAll("[data-wf-steps]").forEach(initEditor);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
