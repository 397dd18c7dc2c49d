// Charts: the four uPlot charts (CPU, memory, network, disk), their axes and legends,
// redrawn from the kept rows. uPlot is the global of vendor/uplot/uPlot.iife.min.js,
// a classic deferred script that the page runs before its modules.

import { formatClock, formatPercent, formatRate, formatRateTicks } from "./formatting.js";

// Tick steps for rate axes: 1, 2, 5, 10, 25... of each binary unit, so ticks read
// "256 KiB/s", "1 MiB/s" rather than "195.3 KiB/s".
const RATE_STEPS = [1, 2, 5, 10, 25, 50, 100, 250, 500].flatMap((step) =>
  [0, 1, 2, 3, 4].map((power) => step * 1024 ** power),
).sort((a, b) => a - b);

const percentAxis = { kind: "percent", format: (v) => formatPercent(v) };
const rateAxis = { kind: "rate", format: (v) => formatRate(v) };

/** What each chart draws: its series (colours are CSS variables) and their values. */
function chartSpecs(cores) {
  const coreIndexes = [...Array(cores).keys()];
  return {
    cpu: {
      axis: percentAxis,
      series: [
        { label: "Total", color: "--series-cpu", width: 2 },
        ...coreIndexes.map((i) => ({ label: `Core ${i}`, color: "--series-core", width: 1 })),
      ],
      columns: (rows) => [
        rows.map((r) => r.cpu),
        ...coreIndexes.map((i) => rows.map((r) => r.cores[i] ?? null)),
      ],
    },
    memory: {
      axis: percentAxis,
      series: [
        { label: "Memory", color: "--series-memory", width: 2 },
        { label: "Swap", color: "--series-swap", width: 2 },
      ],
      columns: (rows) => [rows.map((r) => r.memory), rows.map((r) => r.swap)],
    },
    network: {
      axis: rateAxis,
      series: [
        { label: "Sent", color: "--series-sent", width: 2 },
        { label: "Received", color: "--series-recv", width: 2 },
      ],
      columns: (rows) => [rows.map((r) => r.sent), rows.map((r) => r.recv)],
    },
    disk: {
      axis: rateAxis,
      series: [
        { label: "Read", color: "--series-read", width: 2 },
        { label: "Write", color: "--series-write", width: 2 },
      ],
      columns: (rows) => [rows.map((r) => r.read), rows.map((r) => r.write)],
    },
  };
}

function chartHeight(width) {
  return Math.round(Math.min(220, Math.max(140, width * 0.42)));
}

/** Indexes of values with no neighbour to draw a line to: they get a dot instead. */
function isolatedPoints(plot, seriesIndex) {
  const values = plot.data[seriesIndex];
  const found = [];
  values.forEach((value, i) => {
    if (value != null && values[i - 1] == null && values[i + 1] == null) found.push(i);
  });
  return found;
}

/** Out of the chart, its legend shows the latest values (over it, the hovered ones). */
function showLatestWhenIdle(plot) {
  const last = plot.data[0].length - 1;
  if (plot.cursor.idx == null && last >= 0) plot.setLegend({ idx: last }, false);
}

/**
 * The time axis: the points' span, or a minute around a lone point (for one point
 * uPlot spans a thousand days, every label reading "00:00").
 */
function timeRange(u, min, max) {
  const times = u.data[0];
  if (!times?.length || times[times.length - 1] - times[0] >= 1) return [min, max];
  return [times[0] - 30, times[0] + 30];
}

function chartOptions(spec, width) {
  // The colours come from the stylesheet, so the charts follow the light or dark theme.
  const style = getComputedStyle(document.documentElement);
  const color = (name) => style.getPropertyValue(name).trim();
  const axisLines = { stroke: color("--grid"), width: 1 };
  const timeAxis = {
    stroke: color("--muted"),
    grid: axisLines,
    ticks: axisLines,
    space: 70,
    values: (u, splits, axis, space, step) =>
      splits.map((t) => formatClock(t, { withSeconds: step < 60 })),
  };
  const valueAxis = {
    stroke: color("--muted"),
    grid: axisLines,
    ticks: axisLines,
    size: spec.axis.kind === "rate" ? 80 : 50,
    // One unit per rate axis: "1000 B/s" beside "1.46 KiB/s" reads as a jump.
    values: (u, splits, axis, space, step) =>
      spec.axis.kind === "rate" ? formatRateTicks(splits, step) : splits.map((v) => `${v}%`),
  };
  if (spec.axis.kind === "rate") valueAxis.incrs = RATE_STEPS;
  const yScale =
    spec.axis.kind === "percent"
      ? { range: [0, 100] }
      : { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1024] };
  return {
    width,
    height: chartHeight(width),
    cursor: { drag: { x: false, y: false, setScale: false } },
    legend: { live: true },
    scales: { x: { time: true, range: timeRange }, y: yScale },
    axes: [timeAxis, valueAxis],
    series: [
      { label: "Time", value: (u, t) => formatClock(t) },
      ...spec.series.map((s) => ({
        label: s.label,
        stroke: color(s.color),
        width: s.width,
        points: { show: true, filter: isolatedPoints, fill: color(s.color) },
        value: (u, v) => spec.axis.format(v),
      })),
    ],
    hooks: { setCursor: [showLatestWhenIdle], setData: [showLatestWhenIdle] },
  };
}

const EMPTY_ROW = {
  cpu: null,
  cores: [],
  memory: null,
  swap: null,
  sent: null,
  recv: null,
  read: null,
  write: null,
};

/** Rows with an empty one wherever snapshots are missing, so lines break there. */
function withGaps(rows, interval) {
  const points = [];
  rows.forEach((row, index) => {
    const previous = rows[index - 1];
    if (previous && row.t - previous.t > 2 * interval) {
      points.push({ ...EMPTY_ROW, t: previous.t + interval });
    }
    points.push(row);
  });
  return points;
}

export const charts = {
  plots: {}, // chart name -> uPlot
  cores: -1,
  observer: null,

  /** Draw `rows` (snapshots `interval` seconds apart), building the charts if needed. */
  update(rows, interval) {
    const cores = rows.length ? rows[rows.length - 1].cores.length : 0;
    if (cores !== this.cores || !Object.keys(this.plots).length) this.build(cores);
    const points = withGaps(rows, interval);
    const times = points.map((r) => r.t);
    for (const [name, spec] of Object.entries(chartSpecs(cores))) {
      this.plots[name].setData([times, ...spec.columns(points)]);
    }
  },

  build(cores) {
    this.destroy();
    this.cores = cores;
    this.observer = new ResizeObserver(() => this.resize());
    for (const [name, spec] of Object.entries(chartSpecs(cores))) {
      const mount = document.querySelector(`#chart-${name} .plot`);
      const width = Math.max(200, mount.clientWidth);
      this.plots[name] = new uPlot(chartOptions(spec, width), null, mount);
      this.observer.observe(mount);
    }
  },

  resize() {
    for (const plot of Object.values(this.plots)) {
      const width = Math.max(200, plot.root.parentElement.clientWidth);
      if (width !== plot.width) plot.setSize({ width, height: chartHeight(width) });
    }
  },

  destroy() {
    this.observer?.disconnect();
    for (const plot of Object.values(this.plots)) plot.destroy();
    this.plots = {};
    this.cores = -1;
  },

  /** Build the charts again (their colours follow the theme), if there are any. */
  rebuild(rows, interval) {
    if (Object.keys(this.plots).length) {
      this.destroy();
      this.update(rows, interval);
    }
  },
};
