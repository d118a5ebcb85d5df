// Public surface of agent state: the workload and service index the data path resolves destinations with.
export { type Destination, type ServiceEndpoint, type ServiceEntry, type Workload, WorkloadIndex, resolveDestination } from "./workloads.ts";
