/*
 * 调用统计 — drill-down from the charts to the call records (调用记录).
 *
 * app.js draws every [data-chart] element (ECharts, loaded on first use). This script waits
 * for those charts and makes their bars links: a day opens that day's calls, a resource or a
 * system opens its calls. The codes and ids are in the JSON block #exc-stats-drill, in the
 * order of the bars. Plain ES2017, no inline script (CSP).
 */
(function () {
  "use strict";

  var MAX_WAIT_MS = 15000;

  function drillData() {
    var source = document.getElementById("exc-stats-drill");
    if (!source) {
      return null;
    }
    try {
      return JSON.parse(source.textContent);
    } catch (err) {
      return null;
    }
  }

  function evidenceUrl(params) {
    var holder = document.getElementById("exc-stats");
    var base = holder ? holder.getAttribute("data-evidence-url") : null;
    if (!base) {
      return null;
    }
    var query = Object.keys(params)
      .map(function (name) {
        return encodeURIComponent(name) + "=" + encodeURIComponent(params[name]);
      })
      .join("&");
    return base + (base.indexOf("?") === -1 ? "?" : "&") + query;
  }

  // chart element id → how a clicked bar (dataIndex) becomes evidence filters
  function targets(drill) {
    return {
      "exc-chart-daily": function (index) {
        var day = drill.days[index];
        return day ? { date_from: day, date_to: day } : null;
      },
      "exc-chart-resources": function (index) {
        var code = drill.resources[index];
        return code ? { resource: code } : null;
      },
      "exc-chart-systems": function (index) {
        var id = drill.systems[index];
        return id ? { system: id } : null;
      }
    };
  }

  function attach(chart, toParams) {
    chart.on("click", function (event) {
      var params = toParams(event.dataIndex);
      var url = params ? evidenceUrl(params) : null;
      if (url) {
        window.location.assign(url);
      }
    });
  }

  function start() {
    var drill = drillData();
    if (!drill) {
      return;
    }
    var pending = targets(drill);
    var began = Date.now();

    // The charts appear once app.js has loaded ECharts; look for them until all are wired.
    function poll() {
      Object.keys(pending).forEach(function (id) {
        var el = document.getElementById(id);
        if (!el) {
          delete pending[id]; // no such chart on this page (e.g. no calls in the period)
          return;
        }
        var chart = window.echarts && window.echarts.getInstanceByDom(el);
        if (chart) {
          attach(chart, pending[id]);
          delete pending[id];
        }
      });
      if (Object.keys(pending).length && Date.now() - began < MAX_WAIT_MS) {
        window.setTimeout(poll, 200);
      }
    }
    poll();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
