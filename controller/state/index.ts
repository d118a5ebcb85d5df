// Public surface of the controller's cluster state: the informer cache and the records agents receive.
export { meshRecords, podNetworkOf, serviceSpecOf } from "./workloads.ts";
export { workloadFromPod, workloadNameOf } from "../../contract/pods.ts";
