// Snapshots: what the page keeps of the stream. One row of chart values per timestamp,
// in time order, bounded to the drawn window; and the latest snapshot in full, for the
// tiles and the partitions table.

export const HISTORY_SECONDS = 600; // drawn on open (the server keeps up to 900)
const MAX_POINTS = 2000; // hard bound on kept points, whatever the interval

const kept = { rows: [], latest: null };

/** The chart values of one snapshot (null where the host reports nothing). */
function rowOf(message) {
  const { cpu, memory, network, disk } = message.data;
  const io = disk.io || {};
  return {
    t: Date.parse(message.timestamp) / 1000,
    cpu: cpu.usage_percent,
    cores: cpu.per_core || [],
    memory: memory.usage_percent,
    swap: memory.swap_percent,
    sent: network.bytes_sent_per_sec,
    recv: network.bytes_recv_per_sec,
    read: io.read_bytes_per_sec ?? null,
    write: io.write_bytes_per_sec ?? null,
  };
}

/**
 * Merge snapshots in time order (one row per timestamp), keep a bounded window.
 * True if there is something to draw.
 */
export function add(messages) {
  const rows = kept.rows;
  for (const message of messages) {
    const row = rowOf(message);
    let index = rows.length;
    while (index > 0 && rows[index - 1].t > row.t) index -= 1;
    if (index > 0 && rows[index - 1].t === row.t) rows[index - 1] = row;
    else rows.splice(index, 0, row);
    if (!kept.latest || row.t >= rowOf(kept.latest).t) kept.latest = message;
  }
  if (!rows.length) return false;
  const oldest = rows[rows.length - 1].t - HISTORY_SECONDS;
  let drop = 0;
  while (drop < rows.length && rows[drop].t < oldest) drop += 1;
  rows.splice(0, Math.max(drop, rows.length - MAX_POINTS));
  return true;
}

export function clear() {
  kept.rows = [];
  kept.latest = null;
}

/** The kept rows, oldest first. */
export function rows() {
  return kept.rows;
}

/** The newest snapshot as the server sent it, or null. */
export function latest() {
  return kept.latest;
}
