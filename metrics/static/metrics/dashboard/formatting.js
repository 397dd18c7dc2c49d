// Formatting: numbers and times as people read them. Pure functions, no page state.

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/** The binary unit that writes `bytes` with 1 to 1023 before it (0: B, 1: KiB...). */
function byteUnit(bytes) {
  let unit = 0;
  for (let value = Math.abs(bytes); value >= 1024 && unit < BYTE_UNITS.length - 1; ) {
    value /= 1024;
    unit += 1;
  }
  return unit;
}

/** Bytes in binary units for people: "512 B", "9.77 KiB", "16.0 GiB". */
export function formatBytes(bytes, { trim = false } = {}) {
  if (bytes == null || !Number.isFinite(bytes)) return "—";
  const unit = byteUnit(bytes);
  const value = Math.abs(bytes) / 1024 ** unit;
  const digits = unit === 0 ? 0 : value < 10 ? 2 : value < 100 ? 1 : 0;
  let text = (Math.sign(bytes) * value).toFixed(digits);
  if (trim && text.includes(".")) text = text.replace(/\.?0+$/, "");
  return `${text} ${BYTE_UNITS[unit]}`;
}

/**
 * An axis's rates, all in one unit: the unit of the step between them, so that
 * ticks 512 B/s apart read "0 B/s", "512 B/s", "1024 B/s", and ticks 250 KiB/s
 * apart "0 KiB/s", "250 KiB/s", "500 KiB/s".
 */
export function formatRateTicks(values, step) {
  const finite = values.filter(Number.isFinite);
  const largest = Math.max(0, ...finite.map(Math.abs));
  const unit = byteUnit(step > 0 ? step : largest);
  const scale = 1024 ** unit;
  // As many decimals as the step needs (steps are 1, 2, 5, 10, 25... of a unit).
  const fraction = (step > 0 ? step / scale : 1) % 1;
  const digits = fraction === 0 ? 0 : (fraction * 10) % 1 === 0 ? 1 : 2;
  return values.map((value) =>
    Number.isFinite(value) ? `${(value / scale).toFixed(digits)} ${BYTE_UNITS[unit]}/s` : "",
  );
}

/** A rate in bytes per second: "1.50 MiB/s". */
export function formatRate(bytesPerSecond, options) {
  return bytesPerSecond == null ? "—" : `${formatBytes(bytesPerSecond, options)}/s`;
}

/** A percentage with one decimal: "45.2%". */
export function formatPercent(percent, digits = 1) {
  if (percent == null || !Number.isFinite(percent)) return "—";
  return `${percent.toFixed(digits)}%`;
}

/** A Unix time in seconds as the local wall-clock time: "14:30:05" (or "14:30"). */
export function formatClock(seconds, { withSeconds = true } = {}) {
  if (seconds == null) return "—";
  const parts = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  if (withSeconds) parts.second = "2-digit";
  return new Date(seconds * 1000).toLocaleTimeString([], parts);
}

/** How long ago, for people: "just now", "42 s ago", "3 min ago", "5 h ago", "2 d ago". */
export function formatAgo(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "never";
  if (seconds < 1) return "just now";
  const [unit, size] = [
    ["d", 86400],
    ["h", 3600],
    ["min", 60],
    ["s", 1],
  ].find(([, length]) => seconds >= length);
  return `${Math.floor(seconds / size)} ${unit} ago`;
}

/** How full a percentage is, for its colour: "ok", "warn" (75%) or "high" (90%). */
export function usageLevel(percent) {
  return percent >= 90 ? "high" : percent >= 75 ? "warn" : "ok";
}
