// Live job status: poll the JSON API once a second (no framework, no CDN).
(function () {
  "use strict";
  function get(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); });
  }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    tr.appendChild(td);
    return td;
  }
  function jobRow(j) {
    var tr = document.createElement("tr");
    var link = document.createElement("a");
    link.href = "/jobs/" + j.id;
    link.textContent = j.id;
    cell(tr, "").appendChild(link);
    cell(tr, j.kind); cell(tr, j.user); cell(tr, j.state, "state-" + j.state);
    var p = document.createElement("progress");
    p.max = 1; p.value = j.progress; p.textContent = Math.round(j.progress * 100) + "%";
    cell(tr, "").appendChild(p);
    cell(tr, j.message); cell(tr, j.submitted);
    return tr;
  }
  var table = document.getElementById("job-table");
  if (table) {
    var body = table.querySelector("tbody");
    setInterval(function () {
      if (document.hidden) { return; }
      get(table.dataset.poll).then(function (jobs) {
        var rows = document.createDocumentFragment();
        jobs.forEach(function (j) { rows.appendChild(jobRow(j)); });
        body.replaceChildren(rows);
      }).catch(function () {});
    }, 1000);
  }
  var status = document.getElementById("job-status");
  if (status && status.dataset.final === "no") {
    var timer = setInterval(function () {
      get(status.dataset.poll).then(function (j) {
        var state = document.getElementById("job-state");
        state.textContent = j.state;
        state.className = "state-" + j.state;
        document.getElementById("job-progress").value = j.progress;
        document.getElementById("job-message").textContent = j.message;
        if (j.final) { clearInterval(timer); window.location.reload(); }
      }).catch(function () {});
    }, 1000);
  }
})();
