// Usage charts, drawn by the vendored Chart.js from the figures the page carries.
"use strict";
(function () {
  const holder = document.getElementById("charts");
  if (!holder || typeof Chart === "undefined") return;
  const data = JSON.parse(holder.dataset.json);
  const accent = "#2f5bd3";

  function bars(id, labels, values, label) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, {
      type: "bar",
      data: { labels: labels, datasets: [{ label: label, data: values, backgroundColor: accent }] },
      options: { animation: false, responsive: true, plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true } } },
    });
  }

  if (data.day) {
    bars("chart-seconds", data.day.labels, data.day.seconds, "seconds");
    bars("chart-spend", data.day.labels, data.day.spend_usd, "USD");
  }
  if (data.minutes) {
    const canvas = document.getElementById("chart-minutes");
    if (canvas) {
      new Chart(canvas, {
        type: "line",
        data: {
          labels: data.minutes.labels,
          datasets: [
            { label: "created", data: data.minutes.creates, borderColor: accent, backgroundColor: accent },
            { label: "ended", data: data.minutes.completions, borderColor: "#1e7b3a", backgroundColor: "#1e7b3a" },
          ],
        },
        options: { animation: false, responsive: true, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
      });
    }
  }
  if (data.model) bars("chart-models", data.model.labels, data.model.spend_usd, "USD");
})();
