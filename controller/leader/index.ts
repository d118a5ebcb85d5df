// Public surface of controller leader election: which replica does the writes (status, CA root) through a Lease.
export {
  LEADER_DEFAULTS,
  LeaderElectionError,
  type LeaderElectionErrorCode,
  LeaderElector,
  type LeaderElectorOptions,
  type LeaderStatus,
  type LeaseClient,
  leaderIdentity,
} from "./elector.ts";
export { type LeaseRecord, microTime, readRecord } from "./record.ts";
