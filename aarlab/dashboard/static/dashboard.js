/* aarlab dashboard: turns the lab's server-sent events into `lab:<kind>` DOM events on <body>, so that
   htmx fragments declared with hx-trigger="lab:submission from:body" re-fetch themselves. */
(function () {
  "use strict";
  var url = document.body.getAttribute("data-live");
  var dot = document.getElementById("live-dot");
  if (!url || !window.EventSource) return;
  var source = null;
  var timer = null;

  function setLive(on) {
    if (dot) dot.className = on ? "dot live" : "dot";
  }

  function connect() {
    source = new EventSource(url);
    source.onopen = function () { setLive(true); };
    source.addEventListener("lab", function (msg) {
      var event;
      try { event = JSON.parse(msg.data); } catch (e) { return; }
      // Coalesce bursts (a submission is followed by a leaderboard event): fire after 150 ms of quiet.
      pending[event.kind] = event;
      clearTimeout(timer);
      timer = setTimeout(flush, 150);
    });
    source.onerror = function () {
      setLive(false);
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(connect, 3000);
      }
    };
  }

  var pending = {};
  function flush() {
    var kinds = Object.keys(pending);
    var events = pending;
    pending = {};
    kinds.forEach(function (kind) {
      document.body.dispatchEvent(new CustomEvent("lab:" + kind, { detail: events[kind] }));
    });
  }

  window.addEventListener("beforeunload", function () { if (source) source.close(); });
  connect();
})();
