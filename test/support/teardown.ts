// Test helper: kill by PID the processes a test started, ignoring those already gone.
export function killAll(pids: Iterable<number>, signal: NodeJS.Signals = "SIGKILL"): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone, e.g. with its netns
    }
  }
}
