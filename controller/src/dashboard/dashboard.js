// Refreshes the live part of the dashboard every two seconds, keeping the page's query
// (the instance page shown). The server renders; this only swaps the fragment in.
(function () {
  "use strict";
  const live = document.getElementById("live");
  const stamp = document.getElementById("refreshed");
  async function refresh() {
    try {
      // From the origin: a relative URL would carry the page URL's credentials, if it has
      // any (http://user:password@host/…), and fetch refuses those; the browser sends the
      // credentials it already holds for the page either way.
      const url = window.location.origin + "/dashboard/live" + window.location.search;
      const response = await fetch(url, {
        credentials: "same-origin",
        cache: "no-store",
      });
      if (!response.ok) throw new Error(String(response.status));
      live.innerHTML = await response.text();
      stamp.textContent = "live, " + new Date().toLocaleTimeString();
      stamp.className = "";
    } catch (err) {
      stamp.textContent = "not refreshing (" + err.message + ")";
      stamp.className = "stale";
    }
  }
  setInterval(refresh, 2000);
})();
