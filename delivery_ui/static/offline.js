/* Tests that go on when the connection drops.

   Every item page carries a fallback (script#fallback): the item shown and the few items the
   engine would give next at the current estimate, ready to show. It is kept in IndexedDB, with
   the page's CSRF token. When an answer cannot be sent (the browser is offline, or the request
   fails on the network), it goes into an outbox in IndexedDB, keyed by the idempotency key of
   its form, and the next item of the fallback is shown, with a plain notice that the student is
   offline and that the answers are kept. When the connection returns, the outbox is sent in the
   order the answers were given (POST .../sync); each answer the server recorded (or had
   recorded before) leaves the outbox, and the page is loaded afresh from the server.

   A page reopened while offline is the offline shell the service worker (sw.js) keeps: this
   script finds the attempt in its address and goes on from what IndexedDB holds.
   quiz.js calls window.catOffline.keep(form) when an answer cannot be sent, and
   window.catOffline.update() after each swap. */
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || !window.indexedDB || !window.JSON) { return; }
  var DB_NAME = "cat-engine-offline";
  var dbPromise = null;
  var flushing = false;
  var startedAt = Date.now();

  function openDb() {
    if (dbPromise) { return dbPromise; }
    dbPromise = new Promise(function (resolve, reject) {
      var request = window.indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = function () {
        var db = request.result;
        db.createObjectStore("fallback", { keyPath: "attempt" });
        var outbox = db.createObjectStore("outbox", { keyPath: "key" });
        outbox.createIndex("attempt", "attempt");
      };
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { reject(request.error); };
    });
    return dbPromise;
  }

  function run(store, mode, work) {  /* one transaction; resolves with work's result */
    return openDb().then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx = db.transaction(store, mode);
        var result = work(tx.objectStore(store));
        tx.oncomplete = function () { resolve(result && "result" in result ? result.result : result); };
        tx.onerror = function () { reject(tx.error); };
        tx.onabort = function () { reject(tx.error); };
      });
    });
  }

  function getFallback(attempt) {
    return run("fallback", "readonly", function (store) { return store.get(attempt); });
  }

  function outboxOf(attempt) {
    return run("outbox", "readonly", function (store) {
      return store.index("attempt").getAll(attempt);
    }).then(function (rows) {
      return rows.sort(function (a, b) { return a.seq - b.seq; });
    });
  }

  function attemptOfPage() {
    var match = /^\/attempts\/(\d+)$/.exec(window.location.pathname);
    return match ? Number(match[1]) : null;
  }

  function pageFallback() {
    var node = document.getElementById("fallback");
    if (!node) { return null; }
    try { return JSON.parse(node.textContent); } catch (error) { return null; }
  }

  function csrfOfPage() {
    var field = document.querySelector("input[name=csrf_token]");
    return field ? field.value : null;
  }

  /* Keep the page's fallback, unless what is kept is newer (an outbox waits on it). */
  function update() {
    var data = pageFallback();
    if (!data) { return Promise.resolve(null); }
    data.csrf = csrfOfPage();
    return run("fallback", "readwrite", function (store) { store.put(data); })
      .then(function () { return data; }, function () { return null; });
  }

  function randomKey() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return "offline-" + Array.prototype.map.call(bytes, function (b) {
      return (b < 16 ? "0" : "") + b.toString(16);
    }).join("");
  }

  function notice(text, kind) {
    var box = document.getElementById("offline-notice");
    if (!box) {
      box = document.createElement("p");
      box.id = "offline-notice";
      box.setAttribute("role", "status");
      main.insertBefore(box, main.firstChild);
    }
    box.className = "offline-notice " + (kind || "warning");
    box.textContent = text;
  }

  function element(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  /* Show item `item` of the fallback, as the server's item page shows it. */
  function showItem(data, item) {
    var words = data.words;
    main.innerHTML = "";
    notice(words.offline);
    var heading = element("h1", { id: "question-heading", tabindex: "-1" },
      words.question.replace("0", String(item.position)));
    main.appendChild(heading);
    var form = element("form", { "class": "card question", novalidate: "", "data-offline": "" });
    form.appendChild(element("input", { type: "hidden", name: "item_id", value: String(item.id) }));
    form.appendChild(element("input", { type: "hidden", name: "idempotency_key", value: randomKey() }));
    var fieldset = element("fieldset", { role: "radiogroup", "aria-labelledby": "stem", "aria-required": "true" });
    if (item.language) {  /* the item's text may be in another language than the page's */
      fieldset.setAttribute("lang", item.language);
      fieldset.setAttribute("dir", item.dir || "ltr");
    }
    var stem = element("div", { id: "stem", "class": "stem" });
    stem.innerHTML = item.stem;  /* rendered by the server from the item's safe Markdown */
    fieldset.appendChild(stem);
    item.options.forEach(function (text, index) {
      var label = element("label", { "class": "option" });
      label.appendChild(element("input", { type: "radio", name: "response", value: String(index) }));
      label.appendChild(element("span", {}, text));
      fieldset.appendChild(label);
    });
    form.appendChild(fieldset);
    form.appendChild(element("button", { type: "submit" }, words.submit));
    main.appendChild(form);
    document.title = heading.textContent;
    heading.focus();
  }

  function showWait(data) {
    main.innerHTML = "";
    notice(data.words.wait);
    var heading = element("h1", { tabindex: "-1" }, data.words.offline.split(".")[0] + ".");
    main.insertBefore(heading, main.firstChild);
    heading.focus();
  }

  /* Go on offline: the first item of the fallback not answered yet, or the wait notice. */
  function goOn(data) {
    return outboxOf(data.attempt).then(function (kept) {
      var done = {};
      kept.forEach(function (row) { done[row.item_id] = true; });
      var next = data.items.filter(function (item) { return !done[item.id]; })[0];
      if (next) { showItem(data, next); } else { showWait(data); }
    });
  }

  /* Put the answer of `form` into the outbox and show the next item. Resolves false when the
     form holds no answer (the page then shows its own message). */
  function keep(form) {
    var attempt = attemptOfPage();
    var chosen = form.querySelector("input[name=response]:checked");
    var itemId = Number((form.querySelector("input[name=item_id]") || {}).value);
    var key = (form.querySelector("input[name=idempotency_key]") || {}).value;
    return getFallback(attempt).then(function (data) {
      if (!data) { return false; }
      if (!chosen) {
        notice(data.words.choose, "error");
        return true;
      }
      var item = data.items.filter(function (i) { return i.id === itemId; })[0];
      if (!item) { return false; }
      var row = { key: key, attempt: attempt, item_id: itemId, response: Number(chosen.value),
                  position: item.position, ms: Math.max(0, Date.now() - startedAt),
                  seq: Date.now() * 1000 + item.position };
      return run("outbox", "readwrite", function (store) { store.put(row); }).then(function () {
        startedAt = Date.now();
        return goOn(data).then(function () { return true; });
      });
    }).catch(function () { return false; });
  }

  /* Send the outbox of this page's attempt, in order; then load the page afresh. */
  function flush() {
    var attempt = attemptOfPage();
    if (flushing || attempt === null || !navigator.onLine) { return Promise.resolve(); }
    flushing = true;
    var data = null;
    return getFallback(attempt).then(function (stored) {
      data = stored;
      return outboxOf(attempt);
    }).then(function (rows) {
      if (!rows.length || !data) { return false; }
      notice(data.words.sending, "info");
      var body = new URLSearchParams();
      body.set("csrf_token", data.csrf || csrfOfPage() || "");
      body.set("answers", JSON.stringify(rows.map(function (row) {
        return { item_id: row.item_id, response: row.response, position: row.position,
                 key: row.key, ms: row.ms };
      })));
      return fetch(data.sync, { method: "POST", body: body, credentials: "same-origin",
                                headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("sync " + response.status); }
          return response.json();
        }).then(function (reply) {
          var refused = reply.answers.filter(function (a) { return a.outcome === "refused"; });
          var gone = reply.answers.filter(function (a) { return a.outcome !== "not_sent"; })
            .map(function (a) { return a.key; });
          return run("outbox", "readwrite", function (store) {
            gone.forEach(function (key) { store.delete(key); });
          }).then(function () {
            if (refused.length) {
              window.alert(data.words.refused.replace("%s", refused[0].reason));
            }
            return true;
          });
        });
    }).then(function (sent) {
      flushing = false;
      if (sent) { window.location.replace(data.page); }
    }, function () {
      flushing = false;  /* still offline, or the server is away: the outbox waits */
    });
  }

  main.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-offline")) { return; }
    event.preventDefault();
    if (navigator.onLine) {  /* the connection is back: send what is kept, then go on */
      keep(form).then(flush);
    } else {
      keep(form);
    }
  });

  window.addEventListener("online", function () { flush(); });
  window.setInterval(function () { flush(); }, 15000);  /* "online" is not always told */

  window.catOffline = { keep: keep, update: update, flush: flush };

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () {});
  }

  /* On load: keep this page's fallback; then, if answers wait in the outbox, send them (online)
     or go on from them (offline). The offline shell has no fallback of its own. */
  var finished = /^\/attempts\/(\d+)\/result$/.exec(window.location.pathname);
  if (finished) {  /* the attempt is over: its items leave this device */
    run("fallback", "readwrite", function (store) { store.delete(Number(finished[1])); })
      .catch(function () {});
  }
  var attempt = attemptOfPage();
  if (attempt === null) { return; }
  var own = pageFallback();
  (own ? update() : Promise.resolve(null)).then(function () {
    return Promise.all([getFallback(attempt), outboxOf(attempt)]);
  }).then(function (found) {
    var data = found[0];
    var kept = found[1];
    if (!data) { return; }
    if (kept.length && navigator.onLine) { return flush(); }
    if (kept.length || !own) {  /* the offline shell, or a page reloaded from the cache */
      notice(data.words.offline);
      return goOn(data);
    }
  }).catch(function () {});
}());
