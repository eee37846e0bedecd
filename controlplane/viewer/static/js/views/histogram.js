// The latency histogram of a session (buckets computed by the control plane), as SVG.

import { h, s } from "../dom.js";
import { ms } from "../format.js";

const WIDTH = 720;
const HEIGHT = 170;
const PAD = { left: 40, right: 12, top: 18, bottom: 26 };
const SERIES = [
  ["ok", "h-ok", "2xx/3xx"],
  ["client_error", "h-4xx", "4xx"],
  ["server_error", "h-5xx", "5xx / failed"],
];

const total = (bucket) => bucket.ok + bucket.client_error + bucket.server_error;

/** onPick(bucket) is called when a bar is clicked (e.g. to filter the table). */
export function latencyHistogram(histogram, { onPick } = {}) {
  if (!histogram.count) {
    return h("div", { class: "empty-chart" }, "No traces yet: the distribution appears as they arrive.");
  }
  const buckets = histogram.buckets;
  const innerWidth = WIDTH - PAD.left - PAD.right;
  const innerHeight = HEIGHT - PAD.top - PAD.bottom;
  const domain = buckets[buckets.length - 1].high_ms;
  const x = (value) => PAD.left + (innerWidth * value) / domain;
  const tallest = Math.max(1, ...buckets.map(total));
  const y = (count) => (innerHeight * count) / tallest;
  const band = innerWidth / buckets.length;
  const labelEvery = Math.ceil(buckets.length / 8);

  const bars = buckets.map((bucket, index) => {
    let top = PAD.top + innerHeight;
    const parts = SERIES.filter(([key]) => bucket[key] > 0).map(([key, cls]) => {
      const height = y(bucket[key]);
      top -= height;
      return s("rect", { class: cls, x: x(bucket.low_ms) + 1, y: top, width: Math.max(1, band - 2), height });
    });
    return s(
      "g",
      {
        class: ["h-bucket", onPick && total(bucket) && "pickable"],
        dataset: { low: bucket.low_ms, high: bucket.high_ms, count: total(bucket) },
        on: onPick && total(bucket) ? { click: () => onPick(bucket) } : undefined,
      },
      s(
        "title",
        {},
        `${ms(bucket.low_ms)} – ${ms(bucket.high_ms)}: ${total(bucket)} traces (${bucket.ok} ok, ${bucket.client_error} 4xx, ${bucket.server_error} 5xx/failed)`,
      ),
      s("rect", { class: "h-hit", x: x(bucket.low_ms), y: PAD.top, width: band, height: innerHeight }),
      parts,
      index % labelEvery === 0 && x(domain) - x(bucket.low_ms) > 48
        ? s("text", { class: "h-axis-label", x: x(bucket.low_ms), y: HEIGHT - 8, "text-anchor": "middle" }, ms(bucket.low_ms))
        : null,
    );
  });

  // Percentiles close together share one marker ("p95 p99") so their labels stay readable.
  const markers = [];
  for (const [label, value] of [
    ["p50", histogram.p50_ms],
    ["p95", histogram.p95_ms],
    ["p99", histogram.p99_ms],
  ]) {
    const last = markers[markers.length - 1];
    if (last && x(value) - last.at < 36) last.labels.push(label);
    else markers.push({ at: x(value), labels: [label] });
  }
  const markerElements = markers.map(({ at, labels }) =>
    s(
      "g",
      { class: "h-marker" },
      s("line", { x1: at, x2: at, y1: PAD.top - 4, y2: PAD.top + innerHeight }),
      s("text", { x: Math.min(at + 3, WIDTH - 40), y: PAD.top - 6 }, labels.join(" ")),
    ),
  );

  return h(
    "div",
    { class: "histogram" },
    s(
      "svg",
      { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": `Latency distribution of ${histogram.count} traces` },
      s("line", { class: "h-axis", x1: PAD.left, x2: WIDTH - PAD.right, y1: PAD.top + innerHeight, y2: PAD.top + innerHeight }),
      s("text", { class: "h-axis-label", x: PAD.left - 6, y: PAD.top + 4, "text-anchor": "end" }, tallest),
      s("text", { class: "h-axis-label", x: PAD.left - 6, y: PAD.top + innerHeight, "text-anchor": "end" }, 0),
      s("text", { class: "h-axis-label", x: WIDTH - PAD.right, y: HEIGHT - 8, "text-anchor": "end" }, ms(domain)),
      bars,
      markerElements,
    ),
    h(
      "div",
      { class: "legend" },
      SERIES.map(([, cls, label]) => h("span", { class: "legend-item" }, h("span", { class: ["swatch", cls] }), label)),
      h(
        "span",
        { class: "legend-stats", id: "latency-stats" },
        `${histogram.count} traces · p50 ${ms(histogram.p50_ms)} · p95 ${ms(histogram.p95_ms)} · p99 ${ms(histogram.p99_ms)} · max ${ms(histogram.max_ms)}`,
      ),
    ),
  );
}
