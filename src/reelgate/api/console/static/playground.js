// The playground: builds the create body from the form, asks the gateway what it would
// reserve for it (its own pricing, as the form changes), creates the task, and follows its
// event stream until the video plays. The session cookie authenticates every request; the
// API key is never in the page.
"use strict";
(function () {
  const form = document.getElementById("playground");
  if (!form) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const choices = JSON.parse(document.getElementById("choices").dataset.json);
  const price = document.getElementById("price");
  const formError = document.getElementById("form-error");
  const generate = document.getElementById("generate");
  const model = document.getElementById("f-model");
  const resolution = document.getElementById("f-resolution");

  function body() {
    const out = {};
    for (const el of form.querySelectorAll("[data-kind]")) {
      const kind = el.dataset.kind;
      if (kind === "boolean") {
        if (el.checked) out[el.name] = true;
      } else if (kind === "integer") {
        if (el.value !== "") out[el.name] = Number(el.value);
      } else if (kind === "array") {
        const items = el.value.split("\n").map((s) => s.trim()).filter((s) => s);
        if (items.length) out[el.name] = items;
      } else if (el.value !== "") {
        out[el.name] = el.value;
      }
    }
    return out;
  }

  async function post(url, payload) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(payload),
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { ok: response.ok, status: response.status, data: data };
  }

  function showError(message) {
    formError.textContent = message || "";
    formError.hidden = !message;
  }

  let asked = 0;
  async function requote() {
    const mine = ++asked;
    // "false" until the price shown is the price of the form as it stands.
    form.dataset.priced = "false";
    const payload = body();
    // The prompt does not change the price: a placeholder lets a price show before it is typed.
    if (!payload.prompt || payload.prompt.trim().length < 3) payload.prompt = "price check";
    const answer = await post("/console/api/quote", payload);
    if (mine !== asked) return; // a newer change was priced meanwhile
    form.dataset.priced = "true";
    if (answer.ok) {
      price.textContent = answer.data.cost_usd + " USD";
      price.dataset.micro = String(answer.data.cost_micro_usdc);
      price.dataset.tier = answer.data.tier;
      showError("");
    } else {
      price.textContent = "—";
      price.dataset.micro = "";
      showError(answer.data ? answer.data.message : "The price could not be worked out.");
    }
  }

  function offerResolutions() {
    const offered = choices.resolutions[model.value] || [];
    const kept = resolution.value;
    resolution.replaceChildren();
    for (const value of offered) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = value;
      resolution.append(option);
    }
    resolution.value = offered.includes(kept) ? kept : (offered.includes("720p") ? "720p" : offered[0]);
  }

  const channel = document.getElementById("f-channel_id");
  const channelField = document.getElementById("channel-field");

  // A choice of channel only when more than one serves the model: with one, the gateway's
  // choice is the only one.
  function offerChannels() {
    const serving = choices.channels[model.value] || [];
    const kept = channel.value;
    channel.replaceChildren(channel.options[0] || new Option("any (the gateway chooses)", ""));
    for (const c of serving) {
      channel.append(new Option(c.name === c.id ? c.id : c.name + " (" + c.id + ")", c.id));
    }
    channel.value = serving.some((c) => c.id === kept) ? kept : "";
    channelField.hidden = serving.length < 2;
  }

  model.addEventListener("change", offerResolutions);
  model.addEventListener("change", offerChannels);
  offerChannels();
  // Priced once typing pauses, not on every keystroke: each quote is a request of the key,
  // which counts against its rate limit when it has one.
  let pause = null;
  function requoteSoon() {
    form.dataset.priced = "false";
    clearTimeout(pause);
    pause = setTimeout(requote, 200);
  }
  form.addEventListener("input", requoteSoon);
  form.addEventListener("change", requoteSoon);
  requote();

  const run = document.getElementById("run");
  const state = document.getElementById("task-state");
  const progress = document.getElementById("progress");
  const progressText = document.getElementById("progress-text");
  const taskError = document.getElementById("task-error");
  const result = document.getElementById("result");
  const video = document.getElementById("video");

  function relative(url) {
    const parsed = new URL(url, window.location.href);
    return parsed.pathname + parsed.search;
  }

  function follow(taskId) {
    const stream = new EventSource("/console/api/tasks/" + encodeURIComponent(taskId) + "/events");
    stream.addEventListener("task", function (event) {
      const task = JSON.parse(event.data);
      state.textContent = task.state;
      progress.value = task.progress;
      progressText.textContent = String(task.progress);
      if (task.state === "success" || task.state === "fail") {
        stream.close();
        generate.disabled = false;
        if (task.state === "success" && task.result.data && task.result.data.length) {
          const src = relative(task.result.data[0].url);
          video.src = src;
          document.getElementById("download").href = src;
          document.getElementById("charge").textContent =
            (task.billing.actual_amount_micro_usdc / 1e6).toFixed(6) + " USD";
          result.hidden = false;
        } else if (task.state === "fail") {
          taskError.textContent = (task.error.code || "failed") + ": " + (task.error.message || "");
          taskError.hidden = false;
        }
      }
    });
    stream.onerror = function () {
      // The browser reconnects by itself while the stream can go on; once the task has
      // ended the gateway answers 204 and it stops.
    };
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    generate.disabled = true;
    showError("");
    const answer = await post("/console/api/tasks", body());
    if (!answer.ok) {
      generate.disabled = false;
      showError(answer.data ? answer.data.message : "The task was not created (" + answer.status + ").");
      return;
    }
    const taskId = answer.data.task_id;
    document.getElementById("task-id").textContent = taskId;
    document.getElementById("task-link").href = "/console/tasks/" + encodeURIComponent(taskId);
    state.textContent = answer.data.state;
    progress.value = 0;
    progressText.textContent = "0";
    taskError.hidden = true;
    result.hidden = true;
    run.hidden = false;
    follow(taskId);
  });
})();
