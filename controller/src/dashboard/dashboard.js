// Refreshes the live part of the dashboard every two seconds, keeping the page's query
// (the instance page shown). The server renders; this only swaps the fragment in.
(function () {
  "use strict";
  const live = document.getElementById("live");
  const stamp = document.getElementById("refreshed");
  async function refresh() {
    try {
      const response = await fetch("/dashboard/live" + window.location.search, {
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
