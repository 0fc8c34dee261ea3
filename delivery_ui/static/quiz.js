/* The quiz without full page reloads. Every form marked data-quiz is sent with fetch and the
   header X-Quiz-Fragment: 1; the server answers with the page's main content alone, which is
   swapped in; focus moves to its heading (or the answer in error) and a live region announces
   it. The address follows (history.replaceState), so reload and Back show the same page. When
   anything goes wrong the form is sent the ordinary way: its idempotency key makes that safe.
   Also runs the countdown of a time limit, with warnings before the time is up. */
(function () {
  "use strict";
  var main = document.getElementById("main");
  var announcer = document.getElementById("announcer");
  if (!main || !announcer || !window.fetch || !window.DOMParser) { return; }
  var busy = false;
  var clockTimer = null;

  function announce(text) {
    announcer.textContent = "";
    window.setTimeout(function () { announcer.textContent = text; }, 100);
  }

  function textOf(selector) {
    return Array.prototype.map.call(main.querySelectorAll(selector), function (node) {
      return node.textContent.trim();
    }).join(" ");
  }

  function swap(html, url, keep) {
    var fragment = new DOMParser().parseFromString(html, "text/html")
      .getElementById("quiz-fragment");
    if (!fragment) { return false; }
    var chosen = main.querySelector("input[name=response]:checked");
    var itemId = main.querySelector("input[name=item_id]");
    main.innerHTML = fragment.innerHTML;
    var sameItem = main.querySelector("input[name=item_id]");
    if (chosen && itemId && sameItem && itemId.value === sameItem.value) {
      var again = main.querySelector("input[name=response][value='" + chosen.value + "']");
      if (again) { again.checked = true; }  /* a timer button keeps the choice made */
    }
    if (fragment.dataset.title) { document.title = fragment.dataset.title; }
    if (url) {
      window.history.replaceState(null, "", url);
      var next = document.querySelector("footer input[name=next]");
      if (next) { next.value = url; }
    }
    var kept = keep && sameItem && itemId && itemId.value === sameItem.value &&
      document.getElementById(keep);  /* a timer button keeps the focus on the same item */
    var focus = kept || main.querySelector("[data-focus]") || main.querySelector("h1");
    if (focus) { focus.focus(); }
    announce((textOf(".flash p") + (kept ? "" : " " + textOf("[data-announce]"))).trim());
    startClock();
    if (window.catOffline) { window.catOffline.update(); }
    return true;
  }

  main.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-quiz")) { return; }
    event.preventDefault();
    if (busy) { return; }
    busy = true;
    var offline = window.catOffline;  /* offline.js: an answer that cannot be sent is kept */
    if (offline && !navigator.onLine && form.classList.contains("question")) {
      offline.keep(form).then(function (kept) {
        busy = false;
        if (!kept) { form.submit(); }
      });
      return;
    }
    var unreachable = false;
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { "X-Quiz-Fragment": "1" },
      credentials: "same-origin"
    }).catch(function (error) {
      unreachable = true;
      throw error;
    }).then(function (response) {
      var away = response.headers.get("X-Quiz-Location");
      if (away) { window.location.assign(away); return null; }
      if (response.headers.get("X-Quiz-Fragment") !== "1") { throw new Error("no fragment"); }
      return response.text().then(function (html) {
        var button = form.querySelector("button[id]");
        if (!swap(html, response.headers.get("X-Quiz-Url"), button && button.id)) {
          throw new Error("no fragment");
        }
      });
    }).catch(function () {
      if (unreachable && offline && form.classList.contains("question")) {
        return offline.keep(form).then(function (kept) { if (!kept) { form.submit(); } });
      }
      form.submit();
    }).then(function () {
      busy = false;
    });
  });

  function refresh() {  /* the page shown now, fetched as a fragment; reloaded if that fails */
    fetch(window.location.pathname, {
      headers: { "X-Quiz-Fragment": "1" }, credentials: "same-origin"
    }).then(function (response) {
      if (response.headers.get("X-Quiz-Fragment") !== "1") { throw new Error("no fragment"); }
      return response.text().then(function (html) {
        if (!swap(html, null, null)) { throw new Error("no fragment"); }
      });
    }).catch(function () {
      window.location.reload();
    });
  }

  function clockText(seconds) {  /* minutes:seconds, as the server writes it */
    var s = seconds % 60;
    return Math.floor(seconds / 60) + ":" + (s < 10 ? "0" : "") + s;
  }

  function startClock() {
    window.clearInterval(clockTimer);
    window.clearTimeout(clockTimer);
    var clock = document.getElementById("clock");
    var warning = document.getElementById("time-warning");
    if (!clock || !warning) { return; }
    var start = Number(clock.getAttribute("data-seconds"));
    var end = Date.now() + 1000 * start;
    var said = "";
    function warn(kind) {
      if (said === kind) { return; }
      said = kind;
      warning.textContent = warning.getAttribute("data-" + kind);
      warning.hidden = false;
      announce(warning.textContent);
    }
    function tick() {
      var left = Math.max(0, Math.round((end - Date.now()) / 1000));
      clock.textContent = clockText(left);
      if (left === 0) {
        warn("up");
        window.clearInterval(clockTimer);
        /* Nothing can be answered or extended now: take both away at once, then show the
           page as the server now has it (its "See my result"), a moment after the deadline. */
        Array.prototype.forEach.call(main.querySelectorAll("form.question, #more-time, #extensions-left"),
          function (node) { node.hidden = true; });
        clockTimer = window.setTimeout(refresh, 1500);
      } else if (left <= 60 && start > 60) {
        warn("last");
      } else if (left <= 300 && start > 300) {
        warn("warn");
      }
    }
    tick();
    clockTimer = window.setInterval(tick, 1000);
  }

  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { window.location.reload(); }  /* never show a stale question */
  });
  startClock();
}());
