// fieldsync console: the approvals inbox refreshes its rows and the pending count while
// open, keeping its filters (they are in the address the rows come from). Everything else
// works without this script.
(function () {
  "use strict";
  var body = document.querySelector("[data-refresh]");
  if (!body) return;
  var url = body.getAttribute("data-refresh");
  var every = 3000;
  function refresh() {
    if (document.hidden) return;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (!r.ok) throw new Error(r.status);
        var count = r.headers.get("X-Pending-Count");
        var badge = document.getElementById("pending-count");
        if (count !== null && badge) badge.textContent = count;
        return r.text();
      })
      .then(function (html) {
        if (body.innerHTML !== html) body.innerHTML = html;
      })
      .catch(function () { /* offline or signed out: try again next time */ });
  }
  setInterval(refresh, every);
})();
