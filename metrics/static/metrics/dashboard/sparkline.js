// Sparkline: a series of percentages as the `d` of an SVG path, 0 to 100% from bottom
// to top over a time window; broken where a value is missing or a gap is longer than
// `maxGap` seconds (the host was away), so that no line is drawn across it. A point
// with no neighbour is a dot (a zero-length line, drawn with round caps).

export const WIDTH = 120;
export const HEIGHT = 32;

/** The path of `points` [{t (s), value}] over [start, end], or "" for none. */
export function sparklinePath(points, { start, end, maxGap }) {
  const span = Math.max(1, end - start);
  const x = (t) => (((t - start) / span) * WIDTH).toFixed(1);
  const y = (value) => (HEIGHT - (Math.min(100, Math.max(0, value)) / 100) * HEIGHT).toFixed(1);
  const segments = [];
  let previous = null;
  for (const { t, value } of points) {
    if (value == null || t < start) {
      previous = null;
      continue;
    }
    const at = `${x(t)} ${y(value)}`;
    if (previous !== null && t - previous <= maxGap) segments.at(-1).push(at);
    else segments.push([at]);
    previous = t;
  }
  return segments
    .map(([first, ...rest]) => `M${first}${rest.length ? `L${rest.join("L")}` : "h0"}`)
    .join("");
}
