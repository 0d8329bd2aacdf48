// Tocsin console: ticking SLA countdowns and the live timeline. Every page also works without this file.
(() => {
  "use strict";

  const WARN_SHARE = 0.25; // as tocsin/web/deadlines.py: under a quarter of the window left is urgent
  const serverNow = Date.parse(document.body.dataset.serverNow || "");
  // Count from the server's clock, not the browser's, so a skewed laptop clock does not lie about SLAs.
  const skew = Number.isNaN(serverNow) ? 0 : serverNow - Date.now();

  const pad = (n) => String(n).padStart(2, "0");

  function short(seconds) {
    const s = Math.floor(Math.abs(seconds));
    if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  function tick() {
    const now = Date.now() + skew;
    for (const el of document.querySelectorAll("[data-deadline]")) {
      const due = Date.parse(el.dataset.deadline);
      const start = Date.parse(el.dataset.start);
      if (Number.isNaN(due)) continue;
      const left = (due - now) / 1000;
      const span = Math.max((due - start) / 1000, 1);
      let state = "ok";
      let text = `${short(left)} left`;
      if (left <= 0) {
        state = "breached";
        text = `✕ overdue ${short(left)}`;
      } else if (left < span * WARN_SHARE) {
        state = "warn";
        text = `⚠ ${short(left)} left`;
      }
      if (el.textContent !== text) el.textContent = text;
      el.className = `cd cd-${state}`;
      const box = el.closest(".deadline");
      if (box) {
        box.className = `deadline deadline-${state}`;
        const flag = box.querySelector(".flag");
        if (flag) flag.hidden = state !== "breached";
      }
    }
  }

  function fragment(html) {
    const template = document.createElement("template");
    template.innerHTML = html; // rendered and escaped by the server's templates
    return template.content.firstElementChild;
  }

  function live() {
    const list = document.getElementById("timeline");
    if (!list || !list.dataset.eventsUrl || !("EventSource" in window)) return;
    const badge = document.querySelector("[data-live-status]");
    const announce = document.querySelector("[data-live-announce]");
    const stale = document.querySelector("[data-stale-note]");
    const url = `${list.dataset.eventsUrl}?after=${encodeURIComponent(list.dataset.after || "0")}`;
    const source = new EventSource(url);

    const setLive = (on) => {
      if (!badge) return;
      badge.hidden = false;
      badge.dataset.state = on ? "on" : "off";
      badge.textContent = on ? "Live" : "Reconnecting…";
    };
    source.addEventListener("open", () => setLive(true));
    source.addEventListener("error", () => setLive(false));

    source.addEventListener("timeline", (e) => {
      const item = fragment(e.data);
      if (!item || document.getElementById(item.id)) return;
      item.classList.add("fresh");
      list.appendChild(item);
      list.dataset.after = item.dataset.seq || list.dataset.after;
      window.setTimeout(() => item.classList.remove("fresh"), 4000);
      if (announce) {
        const head = item.querySelector(".event-head");
        announce.textContent = `New on the timeline: ${head ? head.textContent.replace(/\s+/g, " ").trim() : ""}`;
      }
    });

    source.addEventListener("summary", (e) => {
      const next = fragment(e.data);
      const current = document.getElementById("incident-summary");
      if (!next || !current) return;
      const before = current.dataset.status;
      current.replaceWith(next);
      if (stale && next.dataset.status !== before && next.dataset.status !== stale.dataset.status) {
        stale.hidden = false; // the action forms were built for the old status
      }
      tick();
    });

    window.addEventListener("pagehide", () => source.close());
  }

  tick();
  window.setInterval(tick, 1000);
  live();
})();
