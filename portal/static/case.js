// Case view: visits as WAI-ARIA tabs (automatic activation). Arrow keys, Home and End move between
// tabs; the open visit is kept in the URL (?visit=). Without this script every panel stays
// visible and each tab is a plain link to its visit.
"use strict";

(function () {
  function setup(root) {
    var tabs = Array.prototype.slice.call(root.querySelectorAll('[role="tab"]'));
    if (!tabs.length) return;

    function panelOf(tab) {
      return document.getElementById(tab.getAttribute("aria-controls"));
    }

    function select(tab, focus) {
      tabs.forEach(function (t) {
        var on = t === tab;
        t.setAttribute("aria-selected", on ? "true" : "false");
        t.tabIndex = on ? 0 : -1;
        panelOf(t).hidden = !on;
      });
      if (focus) tab.focus();
      var url = new URL(window.location.href);
      url.searchParams.set("visit", tab.dataset.visit);
      window.history.replaceState(null, "", url);
    }

    tabs.forEach(function (tab, i) {
      tab.addEventListener("click", function (ev) {
        ev.preventDefault();
        select(tab, true);
      });
      tab.addEventListener("keydown", function (ev) {
        var next = null;
        if (ev.key === "ArrowRight" || ev.key === "ArrowDown") next = tabs[(i + 1) % tabs.length];
        else if (ev.key === "ArrowLeft" || ev.key === "ArrowUp")
          next = tabs[(i - 1 + tabs.length) % tabs.length];
        else if (ev.key === "Home") next = tabs[0];
        else if (ev.key === "End") next = tabs[tabs.length - 1];
        else if (ev.key === " ") next = tab;
        if (next) {
          ev.preventDefault();
          select(next, true);
        }
      });
    });

    var current = tabs.filter(function (t) {
      return t.getAttribute("aria-selected") === "true";
    })[0] || tabs[0];
    tabs.forEach(function (t) { panelOf(t).hidden = t !== current; });
    root.classList.add("tabs-ready");
  }

  document.querySelectorAll("[data-tabs]").forEach(setup);
})();
