// Streamline dashboard: live refresh and the buttons, in plain JavaScript (no build, no CDN).
// Every change goes through the JSON API with fetch: same-origin, JSON bodies, so the
// server's cross-site checks accept it and a form on another site cannot imitate it.
"use strict";

(function () {
  const base = document.body.dataset.base || "";

  function say(text, isError) {
    const box = document.getElementById("action-message");
    if (!box) { if (isError) { window.alert(text); } return; }
    box.textContent = text; // textContent: messages may quote user data
    box.hidden = false;
    box.classList.toggle("error", Boolean(isError));
  }

  async function post(path, body) {
    const response = await fetch(base + path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Streamline-Request": "dashboard" },
      body: body === undefined ? "{}" : JSON.stringify(body),
    });
    let answer = null;
    try { answer = await response.json(); } catch (e) { answer = null; }
    if (!response.ok) {
      const err = answer && answer.error ? answer.error : { code: String(response.status), message: response.statusText };
      throw new Error(err.code + ": " + err.message);
    }
    return answer;
  }

  // --- run page -------------------------------------------------------------------
  const runBox = document.getElementById("run");
  if (runBox) {
    const runId = runBox.dataset.runId;
    const runPath = "/api/runs/" + encodeURIComponent(runId);
    let busy = false;

    async function act(action, body, confirmText) {
      if (busy) { return; }
      if (confirmText && !window.confirm(confirmText)) { return; }
      busy = true;
      try {
        await post(runPath + "/" + action, body);
        say(action + " done; reloading…", false);
        window.location.reload();
      } catch (e) {
        say(e.message, true);
      } finally {
        busy = false;
      }
    }

    document.querySelectorAll("button.action").forEach(function (button) {
      button.addEventListener("click", function () {
        act(button.dataset.action, undefined, button.dataset.confirm);
      });
    });

    const resume = document.getElementById("resume-form");
    if (resume) {
      resume.addEventListener("submit", function (event) {
        event.preventDefault();
        const text = resume.querySelector("textarea").value.trim();
        let payload = null;
        if (text !== "") {
          try { payload = JSON.parse(text); } catch (e) { say("the payload is not valid JSON: " + e.message, true); return; }
        }
        act("resume", { payload: payload });
      });
    }

    const rewind = document.getElementById("rewind-form");
    if (rewind) {
      rewind.addEventListener("submit", function (event) {
        event.preventDefault();
        act("rewind", { step_id: rewind.querySelector("select").value }, rewind.dataset.confirm);
      });
    }

    // Live refresh: poll the run; reload when it changed, unless someone is typing a payload.
    if (runBox.dataset.active === "true") {
      const seen = runBox.dataset.revision;
      const timer = window.setInterval(async function () {
        const typing = document.activeElement && document.activeElement.tagName === "TEXTAREA";
        if (busy || typing) { return; }
        try {
          const response = await fetch(base + runPath, { credentials: "same-origin" });
          if (!response.ok) { return; }
          const run = await response.json();
          if (String(run.revision) !== seen) { window.clearInterval(timer); window.location.reload(); }
        } catch (e) { /* the server is restarting: try again next tick */ }
      }, 1500);
    }
  }

  // --- schedules page: pause, unpause, trigger ---------------------------------------
  const schedules = document.getElementById("schedules");
  if (schedules) {
    let busy = false;
    schedules.querySelectorAll("button.schedule-action").forEach(function (button) {
      button.addEventListener("click", async function () {
        if (busy) { return; }
        const row = button.closest("tr");
        const name = row.dataset.schedule; // the attribute's value, never parsed as HTML
        const action = button.dataset.action;
        busy = true;
        try {
          await post("/api/schedules/" + encodeURIComponent(name) + "/" + action, undefined);
          say(action + " " + name + " done; reloading…", false);
          window.location.reload();
        } catch (e) {
          say(e.message, true);
        } finally {
          busy = false;
        }
      });
    });
  }

  // --- runs page: refresh the table in place ----------------------------------------
  const live = document.getElementById("runs-live");
  const toggle = document.getElementById("live-refresh");
  if (live && toggle) {
    const every = Number(live.dataset.refresh) || 3000;
    window.setInterval(async function () {
      if (!toggle.checked || document.hidden) { return; }
      try {
        const response = await fetch(window.location.href, { credentials: "same-origin" });
        if (!response.ok) { return; }
        // The server rendered (and escaped) this HTML; parse it, then move its nodes over.
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = doc.getElementById("runs-live");
        if (fresh) { live.replaceChildren(...Array.from(fresh.childNodes)); }
      } catch (e) { /* keep the table we have */ }
    }, every);
  }
})();
