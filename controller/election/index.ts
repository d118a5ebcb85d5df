// Public surface of leader election: which controller replica writes (status, CA root).
export { LeaderElector, type LeaderElectorOptions } from "./lease.ts";
