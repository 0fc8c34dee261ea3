/* The service worker: keeps the static shell (styles, scripts and the offline page) so a test
   page reopened without a connection still works (offline.js goes on from IndexedDB). Served at
   /sw.js by the app, which puts the shell's version in CACHE, so a new release replaces it.
   Nothing else is cached: pages hold learner data, and they are never stored here. */
"use strict";
var CACHE = "cat-engine-shell-{{version}}";
var SHELL = {{shell}};

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    return cache.addAll(SHELL);
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (key) { return key !== CACHE; })
      .map(function (key) { return caches.delete(key); }));
  }).then(function () { return self.clients.claim(); }));
});

self.addEventListener("fetch", function (event) {
  var request = event.request;
  var url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) { return; }
  if (url.pathname.indexOf("/static/") === 0) {  /* the shell: from the cache, else the network */
    event.respondWith(caches.open(CACHE).then(function (cache) {
      return cache.match(request, { ignoreSearch: true }).then(function (hit) {
        return hit || fetch(request);
      });
    }));
    return;
  }
  if (request.mode === "navigate" && /^\/attempts\/\d+$/.test(url.pathname)) {
    /* A test page: always from the server; without a connection, the offline page. */
    event.respondWith(fetch(request).catch(function () {
      return caches.match(SHELL[0]);
    }));
  }
});
