// Public surface of the controller's cluster state: the informer cache and the records agents receive.
export { meshRecords, serviceSpecOf, workloadFromPod, workloadNameOf } from "./workloads.ts";
