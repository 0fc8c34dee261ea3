// Follows a calibration run on its status page: polls its status as JSON every 2 seconds,
// updates the status, message and progress bar (a live region announces the changes), and when
// the run ends offers a link to the results instead of reloading the page under the reader.
(function () {
  "use strict";
  var box = document.getElementById("run-progress");
  if (!box || box.dataset.finished === "true") { return; }
  var label = document.getElementById("run-status-label");
  var message = document.getElementById("run-message");
  var bar = document.getElementById("run-progress-bar");
  var done = document.getElementById("run-done");
  var lastStatus = null;

  function poll() {
    fetch(box.dataset.statusUrl, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { setTimeout(poll, 5000); return; }
        if (data.status !== lastStatus) {
          label.textContent = data.label;
          label.className = "run-status run-" + data.status;
          lastStatus = data.status;
        }
        if (message.textContent !== data.message) { message.textContent = data.message; }
        bar.value = data.progress;
        if (data.finished) {
          message.textContent = box.dataset.doneText + " " + (data.error || data.message);
          done.hidden = false;
          return;
        }
        setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 1000);
}());
