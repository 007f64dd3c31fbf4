// Plan upload with progress: the file goes up with XHR (upload progress), then the load is polled.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest) { return; }
  var box = document.getElementById("upload-progress");
  var stage = document.getElementById("upload-stage");
  var bar = document.getElementById("upload-bar");
  var error = document.getElementById("upload-error");

  function fail(message) {
    error.textContent = stage.dataset.failed + " " + message;
    error.hidden = false;
    document.getElementById("upload-submit").disabled = false;
    document.body.dataset.uploadState = "failed";
  }

  function poll(url) {
    fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (status) {
        if (status.state === "done") {
          document.body.dataset.uploadState = "done";
          window.location.assign(status.report);
        } else if (status.state === "failed") {
          fail(status.message);
        } else {
          stage.textContent = stage.dataset.loading + (status.stage ? " " + status.stage : "");
          if (status.total) { bar.value = Math.round(100 * status.done / status.total); }
          setTimeout(function () { poll(url); }, 400);
        }
      })
      .catch(function (e) { fail(String(e)); });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    error.hidden = true;
    box.hidden = false;
    document.getElementById("upload-submit").disabled = true;
    stage.textContent = stage.dataset.uploading;
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) { bar.value = Math.round(100 * e.loaded / e.total); }
    });
    xhr.onload = function () {
      var answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch (ignore) { answer = {message: xhr.statusText}; }
      if (xhr.status === 202) {
        bar.value = 0;
        stage.textContent = stage.dataset.loading;
        poll(answer.status);
      } else {
        fail(answer.message || xhr.statusText);
      }
    };
    xhr.onerror = function () { fail(xhr.statusText || "network error"); };
    xhr.send(new FormData(form));
  });
}());
