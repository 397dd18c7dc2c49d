// Formatting: numbers and times as people read them. Pure functions, no page state.

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/** Bytes in binary units for people: "512 B", "9.77 KiB", "16.0 GiB". */
export function formatBytes(bytes, { trim = false } = {}) {
  if (bytes == null || !Number.isFinite(bytes)) return "—";
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 ? 0 : value < 10 ? 2 : value < 100 ? 1 : 0;
  let text = (Math.sign(bytes) * value).toFixed(digits);
  if (trim && text.includes(".")) text = text.replace(/\.?0+$/, "");
  return `${text} ${BYTE_UNITS[unit]}`;
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
