// Container logs as the kubelet keeps and serves them: each run's output appended to <container>.log, with when each part was written.
import fs from "node:fs/promises";
import { closeSync, createWriteStream, openSync, statSync, type WriteStream } from "node:fs";
import { EventEmitter, once } from "node:events";
import { Readable } from "node:stream";
import type { LogOptions } from "../apiserver/index.ts";

/** Time index entries kept per run; past this the index keeps every other entry (coarser `--timestamps`, bounded memory). */
const MAX_INDEX_ENTRIES = 1 << 18;
const READ_CHUNK = 64 * 1024;

/**
 * One run of a container (its first start, or a restart): a byte range of the container's log file, which every run
 * appends to (the file stays what `ambit dev logs` shows: all output, as written). The kubelet serves `kubectl logs`
 * from the latest run and `--previous` from the one before, as a real kubelet does from the containers' own log files;
 * `--timestamps` and `--since` use the time each chunk of output was written, kept in memory.
 */
export class LogRun extends EventEmitter {
  readonly file: string;
  /** Offset of the run's first byte in the file. */
  readonly start: number;
  /** Offset after the last byte written to the file (flushed), the end of what readers may read. */
  end: number;
  /** The process has exited and everything it wrote is in the file. */
  finished = false;
  #queued: number;
  #offsets = new Float64Array(64);
  #times = new Float64Array(64);
  #entries = 0;
  readonly #out: WriteStream;

  constructor(file: string, start: number) {
    super();
    this.setMaxListeners(0);
    this.file = file;
    this.start = start;
    this.end = start;
    this.#queued = start;
    this.#out = createWriteStream(file, { flags: "a" });
    this.#out.on("error", () => {});
  }

  /** Appends output; false when the file write is backed up (the caller pauses the process's output until "drain"). */
  write(chunk: Buffer): boolean {
    this.#record(this.#queued, Date.now());
    this.#queued += chunk.length;
    return this.#out.write(chunk, () => {
      this.end += chunk.length;
      this.emit("appended");
    });
  }

  /** The process has exited and its output streams ended: readers following the run stop at its end. */
  async finish(): Promise<void> {
    if (!this.#out.writableEnded) this.#out.end();
    if (!this.#out.closed) await once(this.#out, "close").catch(() => {});
    this.finished = true;
    this.emit("appended");
  }

  onceDrained(fn: () => void): void {
    this.#out.once("drain", fn);
  }

  #record(offset: number, time: number): void {
    // Chunks written within one millisecond share an entry.
    if (this.#entries > 0 && this.#times[this.#entries - 1] === time) return;
    if (this.#entries === MAX_INDEX_ENTRIES) {
      for (let i = 0; i < this.#entries / 2; i++) {
        this.#offsets[i] = this.#offsets[2 * i]!;
        this.#times[i] = this.#times[2 * i]!;
      }
      this.#entries /= 2;
    }
    if (this.#entries === this.#offsets.length) {
      const grow = (a: Float64Array) => {
        const b = new Float64Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.#offsets = grow(this.#offsets);
      this.#times = grow(this.#times);
    }
    this.#offsets[this.#entries] = offset;
    this.#times[this.#entries] = time;
    this.#entries++;
  }

  /** When the byte at `offset` was written (the chunk holding it). */
  timeAt(offset: number): number {
    let lo = 0;
    let hi = this.#entries - 1;
    if (hi < 0) return Date.now();
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#offsets[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return this.#times[lo]!;
  }

  /** The offset of the first chunk written at or after `ms`, or the run's end when none is. */
  offsetSince(ms: number): number {
    for (let i = 0; i < this.#entries; i++) if (this.#times[i]! >= ms) return this.#offsets[i]!;
    return this.#queued;
  }
}

/** A container's log file and its last two runs. */
export class ContainerLog {
  readonly file: string;
  #runs: LogRun[] = [];

  constructor(file: string) {
    this.file = file;
  }

  /** A new run, starting where the file ends now. */
  startRun(): LogRun {
    // Created now, not when the run's write stream gets round to opening it: a reader may come first.
    closeSync(openSync(this.file, "a"));
    const run = new LogRun(this.file, statSync(this.file).size);
    this.#runs = [...this.#runs.slice(-1), run];
    return run;
  }

  get latest(): LogRun | undefined {
    return this.#runs.at(-1);
  }

  get previous(): LogRun | undefined {
    return this.#runs.length > 1 ? this.#runs.at(-2) : undefined;
  }
}

/** RFC 3339 with nanoseconds, trailing zeros trimmed, as the kubelet prints log timestamps (Go's RFC3339Nano). */
export function logTimestamp(ms: number): string {
  const iso = new Date(ms).toISOString();
  return iso.replace(/\.(\d{3})Z$/, (_, frac: string) => (frac === "000" ? "Z" : `.${frac.replace(/0+$/, "")}Z`));
}

/** Offset where the last `lines` lines of [from, to) begin. */
async function tailStart(fh: fs.FileHandle, from: number, to: number, lines: number): Promise<number> {
  if (lines === 0) return to;
  let pos = to;
  let seen = 0;
  // A final newline ends the last line; it does not start another.
  let skipLast = true;
  const buf = Buffer.alloc(READ_CHUNK);
  while (pos > from) {
    const len = Math.min(READ_CHUNK, pos - from);
    const { bytesRead } = await fh.read(buf, 0, len, pos - len);
    for (let i = bytesRead - 1; i >= 0; i--) {
      if (skipLast) {
        skipLast = false;
        if (buf[i] === 0x0a) continue;
      }
      if (buf[i] === 0x0a && ++seen === lines) return pos - len + i + 1;
    }
    pos -= len;
  }
  return from;
}

/** `kubectl logs` of one run: what it has, then (follow) what it writes until it ends or the reader goes away. */
export function readRun(run: LogRun, opts: Pick<LogOptions, "follow" | "timestamps" | "tailLines" | "sinceMs" | "limitBytes">): Readable {
  // A reader that goes away while the run is quiet must not wait for the run's next output to notice.
  let stopped = false;
  let wake: (() => void) | undefined;
  async function* lines(): AsyncGenerator<Buffer> {
    const fh = await fs.open(run.file, "r");
    const onAppend = () => wake?.();
    run.on("appended", onAppend);
    try {
      const endNow = run.end;
      let pos = run.start;
      if (opts.sinceMs !== undefined) {
        pos = Math.max(run.start, run.offsetSince(opts.sinceMs));
        // A line belongs to the time of its first byte: one begun earlier and ended in a later chunk is left out.
        if (pos > run.start && (await byteAt(fh, pos - 1)) !== 0x0a) pos = await nextLineStart(fh, pos, run.end);
      }
      if (opts.tailLines !== undefined) pos = await tailStart(fh, pos, endNow, opts.tailLines);
      let budget = opts.limitBytes ?? Infinity;
      let atLineStart = pos === run.start || (await byteAt(fh, pos - 1)) === 0x0a;
      const buf = Buffer.alloc(READ_CHUNK);
      for (;;) {
        const limit = opts.follow ? run.end : endNow;
        if (pos < limit) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(READ_CHUNK, limit - pos), pos);
          if (bytesRead === 0) break;
          let out = Buffer.from(buf.subarray(0, bytesRead));
          if (opts.timestamps) {
            const parts: Buffer[] = [];
            let from = 0;
            for (let i = 0; i < out.length; i++) {
              if (atLineStart) {
                parts.push(out.subarray(from, i), Buffer.from(logTimestamp(run.timeAt(pos + i)) + " "));
                from = i;
                atLineStart = false;
              }
              if (out[i] === 0x0a) atLineStart = true;
            }
            parts.push(out.subarray(from));
            out = Buffer.concat(parts);
          }
          pos += bytesRead;
          if (out.length >= budget) {
            yield out.subarray(0, budget);
            return;
          }
          budget -= out.length;
          yield out;
          continue;
        }
        if (!opts.follow || (run.finished && pos >= run.end) || stopped) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (run.end > pos || run.finished || stopped) resolve();
        });
        wake = undefined;
        if (stopped) return;
      }
    } finally {
      run.off("appended", onAppend);
      await fh.close();
    }
  }
  // Not Readable.from: its destroy waits for the generator to reach a yield, which a quiet run may never let it do.
  const it = lines();
  let reading = false;
  const readable = new Readable({
    read() {
      if (reading) return;
      reading = true;
      void (async () => {
        try {
          for (;;) {
            const { value, done } = await it.next();
            if (done) return void readable.push(null);
            if (!readable.push(value)) return;
          }
        } catch (err) {
          readable.destroy(err as Error);
        } finally {
          reading = false;
        }
      })();
    },
    destroy(err, callback) {
      stopped = true;
      wake?.();
      it.return(undefined).then(
        () => callback(err),
        () => callback(err),
      );
    },
  });
  return readable;
}

/** Offset after the first newline at or after `from` (below `to`), or `to`. */
async function nextLineStart(fh: fs.FileHandle, from: number, to: number): Promise<number> {
  const buf = Buffer.alloc(READ_CHUNK);
  for (let pos = from; pos < to; pos += READ_CHUNK) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(READ_CHUNK, to - pos), pos);
    const nl = buf.subarray(0, bytesRead).indexOf(0x0a);
    if (nl >= 0) return pos + nl + 1;
    if (bytesRead === 0) break;
  }
  return to;
}

async function byteAt(fh: fs.FileHandle, offset: number): Promise<number | undefined> {
  if (offset < 0) return undefined;
  const b = Buffer.alloc(1);
  const { bytesRead } = await fh.read(b, 0, 1, offset);
  return bytesRead === 1 ? b[0] : undefined;
}
