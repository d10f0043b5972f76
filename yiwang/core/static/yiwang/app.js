/*
 * yiwang 一网 — all page behaviour, driven by data-attributes.
 *
 * The Content-Security-Policy allows scripts from 'self' only: no inline script, no
 * on* attributes, no eval. Templates declare behaviour with these attributes:
 *
 *   <div class="chart" data-chart="ID">     ECharts chart; option = JSON in element #ID
 *                                           (made by Django's json_script filter)
 *   <form data-confirm="…">, <button data-confirm="…">
 *                                           ask before submitting / acting
 *   <select data-autosubmit>                submit the form when the choice changes
 *   <button data-copy="ID" [data-copied-label="…"]>
 *                                           copy the text of element #ID
 *
 * htmx requests carry the CSRF token (X-CSRFToken) from <meta name="csrf-token"> or the
 * csrftoken cookie. Plain ES2017, no build step.
 */
(function () {
  "use strict";

  var thisScript = document.currentScript;
  var echartsSrc = thisScript ? thisScript.getAttribute("data-echarts-src") : null;
  var echartsLoading = null;

  // Strings shown by the script, translated by the template that loads it (data-i18n-*).
  function t(key, fallback) {
    var value = thisScript ? thisScript.getAttribute("data-i18n-" + key) : null;
    return value || fallback;
  }

  // --- CSRF ---------------------------------------------------------------------------

  function readCookie(name) {
    var parts = document.cookie ? document.cookie.split(";") : [];
    for (var i = 0; i < parts.length; i++) {
      var item = parts[i].trim();
      if (item.substring(0, name.length + 1) === name + "=") {
        return decodeURIComponent(item.substring(name.length + 1));
      }
    }
    return null;
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    var token = meta ? meta.getAttribute("content") : "";
    if (token && token !== "NOTPROVIDED") {
      return token;
    }
    return readCookie("csrftoken");
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token) {
      event.detail.headers["X-CSRFToken"] = token;
    }
  });

  // --- charts (Apache ECharts, loaded on first use) -----------------------------------

  function loadEcharts() {
    if (window.echarts) {
      return Promise.resolve(window.echarts);
    }
    if (!echartsLoading) {
      echartsLoading = new Promise(function (resolve, reject) {
        if (!echartsSrc) {
          reject(new Error("echarts: no data-echarts-src on app.js"));
          return;
        }
        var script = document.createElement("script");
        script.src = echartsSrc;
        script.async = true;
        script.onload = function () {
          resolve(window.echarts);
        };
        script.onerror = function () {
          echartsLoading = null;
          reject(new Error("echarts: failed to load " + echartsSrc));
        };
        document.head.appendChild(script);
      });
    }
    return echartsLoading;
  }

  // ECharts' HTML tooltips are built with style="" attributes, which the CSP blocks;
  // the rich-text tooltip is drawn on the canvas instead.
  function cspSafeOption(option) {
    var fix = function (tooltip) {
      if (tooltip && typeof tooltip === "object" && !tooltip.renderMode) {
        tooltip.renderMode = "richText";
      }
    };
    if (Array.isArray(option.tooltip)) {
      option.tooltip.forEach(fix);
    } else {
      fix(option.tooltip);
    }
    // Series-level tooltips too.
    var series = Array.isArray(option.series) ? option.series : option.series ? [option.series] : [];
    series.forEach(function (s) {
      if (s) {
        fix(s.tooltip);
      }
    });
    if (option.toolbox && option.toolbox.feature && option.toolbox.feature.dataView) {
      // The data view is an HTML panel with inline styles: not usable under the CSP.
      delete option.toolbox.feature.dataView;
    }
    return option;
  }

  function chartLocale() {
    var lang = (document.documentElement.getAttribute("lang") || "").toLowerCase();
    return lang.indexOf("zh") === 0 ? "ZH" : "EN";
  }

  var observed = typeof ResizeObserver === "function"
    ? new ResizeObserver(function (entries) {
        entries.forEach(function (entry) {
          var chart = window.echarts && window.echarts.getInstanceByDom(entry.target);
          if (chart) {
            chart.resize();
          }
        });
      })
    : null;

  function drawChart(echarts, el) {
    if (!el.isConnected || echarts.getInstanceByDom(el)) {
      return;
    }
    var source = document.getElementById(el.getAttribute("data-chart"));
    if (!source) {
      console.warn("chart: no option element #" + el.getAttribute("data-chart"));
      return;
    }
    var option;
    try {
      option = JSON.parse(source.textContent);
    } catch (err) {
      console.error("chart: bad JSON in #" + source.id, err);
      return;
    }
    var chart = echarts.init(el, null, { renderer: "canvas", locale: chartLocale() });
    chart.setOption(cspSafeOption(option));
    if (observed) {
      observed.observe(el);
    }
  }

  function initCharts(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var elements = Array.prototype.slice.call(scope.querySelectorAll("[data-chart]"));
    if (scope.matches && scope.matches("[data-chart]")) {
      elements.push(scope);
    }
    if (!elements.length) {
      return;
    }
    loadEcharts().then(
      function (echarts) {
        elements.forEach(function (el) {
          drawChart(echarts, el);
        });
      },
      function (err) {
        console.error(err);
      }
    );
  }

  function disposeCharts(root) {
    if (!window.echarts || !root || !root.querySelectorAll) {
      return;
    }
    var elements = Array.prototype.slice.call(root.querySelectorAll("[data-chart]"));
    if (root.matches && root.matches("[data-chart]")) {
      elements.push(root);
    }
    elements.forEach(function (el) {
      var chart = window.echarts.getInstanceByDom(el);
      if (chart) {
        if (observed) {
          observed.unobserve(el);
        }
        chart.dispose();
      }
    });
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      if (!window.echarts) {
        return;
      }
      document.querySelectorAll("[data-chart]").forEach(function (el) {
        var chart = window.echarts.getInstanceByDom(el);
        if (chart) {
          chart.resize();
        }
      });
    }, 150);
  });

  // htmx: draw charts in swapped-in content, free the ones being removed.
  document.addEventListener("htmx:load", function (event) {
    initCharts(event.detail && event.detail.elt);
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    initCharts(event.detail && event.detail.target);
  });
  document.addEventListener("htmx:beforeCleanupElement", function (event) {
    disposeCharts(event.detail && event.detail.elt);
  });

  // --- confirmations ------------------------------------------------------------------

  // Capture phase, so a refusal also stops htmx and Bootstrap handlers on the element.
  document.addEventListener(
    "click",
    function (event) {
      var button = event.target.closest && event.target.closest("button[data-confirm], a[data-confirm], input[type=submit][data-confirm]");
      if (!button || button.disabled) {
        return;
      }
      if (!window.confirm(button.getAttribute("data-confirm"))) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!form.matches || !form.matches("form[data-confirm]")) {
        return;
      }
      // Already asked by the button that submitted it.
      if (event.submitter && event.submitter.hasAttribute("data-confirm")) {
        return;
      }
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  // --- auto-submitting selects --------------------------------------------------------

  document.addEventListener("change", function (event) {
    var select = event.target;
    if (!select.matches || !select.matches("select[data-autosubmit]") || !select.form) {
      return;
    }
    if (typeof select.form.requestSubmit === "function") {
      select.form.requestSubmit(); // fires "submit", so htmx and data-confirm still apply
    } else {
      select.form.submit();
    }
  });

  // --- copy to clipboard --------------------------------------------------------------

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-HTTP intranet pages have no Clipboard API: fall back to a selection copy.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "position-fixed top-0 start-0 opacity-0";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (err) {
        ok = false;
      }
      document.body.removeChild(area);
      if (ok) {
        resolve();
      } else {
        reject(new Error("copy failed"));
      }
    });
  }

  function selectContents(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) {
      return;
    }
    event.preventDefault();
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) {
      return;
    }
    var text = ("value" in source && source.tagName !== "BUTTON" ? source.value : source.textContent).trim();
    var label = button.querySelector("span") || null;
    var original = label ? label.textContent : null;
    copyText(text).then(
      function () {
        button.classList.add("yw-copied");
        if (label) {
          label.textContent = button.getAttribute("data-copied-label") || t("copied", "已复制");
        }
        setTimeout(function () {
          button.classList.remove("yw-copied");
          if (label) {
            label.textContent = original;
          }
        }, 2000);
      },
      function () {
        // Leave the text selected so the user can copy it by hand.
        selectContents(source);
      }
    );
  });

  // --- htmx errors --------------------------------------------------------------------

  // A failed htmx request would otherwise fail silently: show it in the message area.
  function showError(text) {
    var box = document.getElementById("yw-messages");
    if (!box) {
      window.alert(text);
      return;
    }
    var alert = document.createElement("div");
    alert.className = "alert alert-danger alert-dismissible fade show";
    alert.setAttribute("role", "alert");
    alert.textContent = text;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "btn-close";
    close.setAttribute("data-bs-dismiss", "alert");
    close.setAttribute("aria-label", t("close", "关闭"));
    alert.appendChild(close);
    box.appendChild(alert);
  }

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail && event.detail.xhr;
    var status = xhr ? xhr.status : 0;
    if (status === 403) {
      showError(t("forbidden", "没有权限执行此操作（403）。"));
    } else if (status === 404) {
      showError(t("not-found", "请求的内容不存在（404）。"));
    } else {
      showError(t("failed", "操作失败，请稍后重试（%(status)s）。").replace("%(status)s", String(status)));
    }
  });
  document.addEventListener("htmx:sendError", function () {
    showError(t("offline", "无法连接服务器，请检查网络后重试。"));
  });

  // --- start --------------------------------------------------------------------------

  // --- module tabs (.yw-subnav) -------------------------------------------------------

  // On a narrow screen the tab strip scrolls sideways: keep the current tab in view and mark
  // the edges that have more tabs behind them (the CSS draws a fade and an arrow there).
  function initSubnav(nav) {
    var strip = nav.querySelector(".nav");
    if (!strip) {
      return;
    }
    function mark() {
      var more = strip.scrollWidth - strip.clientWidth;
      nav.classList.toggle("yw-more-left", strip.scrollLeft > 2);
      nav.classList.toggle("yw-more-right", more - strip.scrollLeft > 2);
    }
    var active = strip.querySelector(".active");
    if (active && strip.scrollWidth > strip.clientWidth) {
      strip.scrollLeft = Math.max(0, active.offsetLeft - (strip.clientWidth - active.offsetWidth) / 2);
    }
    strip.addEventListener("scroll", mark, { passive: true });
    window.addEventListener("resize", mark);
    mark();
  }

  function start() {
    initCharts(document);
    document.querySelectorAll(".yw-subnav").forEach(initSubnav);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
