/*
 * Catalogue and access-request forms of the exchange module (no inline script: CSP).
 *
 * Entry form (#exc-entry-form): add, remove and reorder information-item rows (each row is a
 * <tbody class="exc-item">, posted as parallel item_<field> lists in page order), and for a
 * registry-backed entry a picker of the registry's columns that fills code + name.
 * Request forms ([data-exc-items]): a plain-text box is usable only when its item is ticked;
 * "select all" for the item boxes.
 */
(function () {
  "use strict";

  // --- entry form: item rows ------------------------------------------------------------

  function setupItems(form) {
    var table = document.getElementById("exc-items");
    var template = document.getElementById("exc-item-template");
    if (!table || !template) {
      return;
    }

    function rows() {
      return Array.prototype.slice.call(table.querySelectorAll("tbody.exc-item"));
    }

    function renumber() {
      rows().forEach(function (row, index) {
        var cell = row.querySelector(".exc-item-no");
        if (cell) {
          cell.textContent = String(index + 1);
        }
        var up = row.querySelector(".exc-item-up");
        var down = row.querySelector(".exc-item-down");
        if (up) {
          up.disabled = index === 0;
        }
        if (down) {
          down.disabled = index === rows().length - 1;
        }
      });
    }

    function addRow(code, name) {
      var fragment = template.content.cloneNode(true);
      var row = fragment.querySelector("tbody.exc-item");
      showTools(row);
      // reuse a trailing blank row rather than growing the table
      var blank = rows().filter(function (r) {
        return !r.querySelector(".exc-item-code").value && !r.querySelector(".exc-item-name").value;
      })[0];
      if (blank && code) {
        row = blank;
      } else {
        table.appendChild(fragment);
        row = rows()[rows().length - 1];
      }
      if (code) {
        row.querySelector(".exc-item-code").value = code;
        row.querySelector(".exc-item-name").value = name || "";
      }
      renumber();
      return row;
    }

    function showTools(row) {
      row.querySelectorAll(".exc-item-tools button").forEach(function (b) {
        b.hidden = false;
      });
    }

    rows().forEach(showTools);
    var addButton = document.getElementById("exc-item-add");
    if (addButton) {
      addButton.hidden = false;
      addButton.addEventListener("click", function () {
        var row = addRow();
        row.querySelector(".exc-item-code").focus();
      });
    }

    table.addEventListener("click", function (event) {
      var button = event.target.closest("button");
      if (!button) {
        return;
      }
      var row = button.closest("tbody.exc-item");
      if (button.classList.contains("exc-item-remove")) {
        row.remove();
      } else if (button.classList.contains("exc-item-up") && row.previousElementSibling &&
                 row.previousElementSibling.matches("tbody.exc-item")) {
        table.insertBefore(row, row.previousElementSibling);
      } else if (button.classList.contains("exc-item-down") && row.nextElementSibling &&
                 row.nextElementSibling.matches("tbody.exc-item")) {
        table.insertBefore(row.nextElementSibling, row);
      } else {
        return;
      }
      renumber();
      button.focus();
    });
    renumber();

    // --- the registry's columns -----------------------------------------------------------
    var data = document.getElementById("exc-registry-columns");
    var registry = form.querySelector("[name=registry]");
    var picker = document.getElementById("exc-column-picker");
    var select = document.getElementById("exc-column-select");
    var add = document.getElementById("exc-column-add");
    if (!data || !registry || !picker || !select || !add) {
      return;
    }
    var columns = JSON.parse(data.textContent);

    function used() {
      return rows().map(function (r) {
        return r.querySelector(".exc-item-code").value;
      });
    }

    function fillPicker() {
      var list = columns[registry.value] || [];
      var taken = used();
      while (select.options.length > 1) {
        select.remove(1);
      }
      list.forEach(function (pair) {
        var option = new Option(pair[1] + "（" + pair[0] + "）", pair[0]);
        option.disabled = taken.indexOf(pair[0]) >= 0;
        option.setAttribute("data-label", pair[1]);
        select.add(option);
      });
      picker.hidden = list.length === 0;
    }

    registry.addEventListener("change", fillPicker);
    select.addEventListener("focus", fillPicker);
    add.addEventListener("click", function () {
      var option = select.options[select.selectedIndex];
      if (!option || !option.value) {
        return;
      }
      addRow(option.value, option.getAttribute("data-label"));
      fillPicker();
    });
    fillPicker();
  }

  // --- request and decision forms: items and plain text -----------------------------------

  function setupRequestItems(box) {
    function sync() {
      box.querySelectorAll("input[data-exc-plain-for]").forEach(function (plain) {
        var item = box.querySelector("input[data-exc-item='" + plain.getAttribute("data-exc-plain-for") + "']");
        plain.disabled = !item || !item.checked;
        if (plain.disabled) {
          plain.checked = false;
        }
      });
    }
    box.addEventListener("change", sync);
    var all = box.querySelector("[data-exc-select-all]");
    if (all) {
      all.hidden = false;
      all.addEventListener("click", function () {
        var boxes = box.querySelectorAll("input[data-exc-item]:not(:disabled)");
        var every = Array.prototype.every.call(boxes, function (b) {
          return b.checked;
        });
        boxes.forEach(function (b) {
          b.checked = !every;
        });
        sync();
      });
    }
    sync();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("exc-entry-form");
    if (form) {
      setupItems(form);
    }
    document.querySelectorAll("[data-exc-items]").forEach(setupRequestItems);
  });
})();
