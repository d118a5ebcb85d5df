// The agent's logger: pino JSON lines on stdout, written in batches so a busy data path does not pay a write per line.
import pino, { type Logger, type LoggerOptions } from "pino";

/** Longest a line waits before it is written; a full batch is written at once. */
export const LOG_FLUSH_MS = 25;
export const LOG_BATCH_BYTES = 8192;

/**
 * Every connection writes access log lines when it opens and closes (both agents of a tunnel). One `write(2)`
 * per line measured as one of the largest costs of a new connection here (syscalls are dear in this VM, and
 * each wakes the reader of the container's stdout too), so lines are gathered for at most LOG_FLUSH_MS or
 * LOG_BATCH_BYTES. What is buffered is written synchronously on exit, including after an uncaught error;
 * only a SIGKILL can lose it (at most LOG_FLUSH_MS of lines).
 */
export function createLogger(options: LoggerOptions, fd = 1): Logger {
  const buffered = pino.destination({ dest: fd, sync: true, minLength: LOG_BATCH_BYTES });
  process.on("exit", () => buffered.flushSync());
  // The flush timer runs only while lines wait, not as sonic-boom's periodicFlush interval: that one wakes an
  // idle agent 40 times a second, and each wake-up writes an empty buffer (a system call for nothing).
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    buffered.flush();
  };
  const destination = {
    write(line: string): void {
      buffered.write(line);
      timer ??= setTimeout(flush, LOG_FLUSH_MS).unref();
    },
  };
  return pino(options, destination);
}
