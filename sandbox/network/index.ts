// Public surface of the sandbox network: underlay, nodes, pod attachments through real CNI plugins, teardown.
export { type RunOptions, type RunResult, SandboxCommandError, run } from "../../host/exec.ts";
export { type NetnsNaming, createPodNetns, defaultNetnsNaming, deleteNetns, listSandboxNetns, netnsNamingWithPrefix, pidsInNetns } from "./netns.ts";
export { type NodeNetwork, createNodeNetwork, createUnderlay, routeBetweenNodes } from "./topology.ts";
export { type CniPluginConfig, type CniResult, CniError } from "./cni.ts";
export {
  type PodNetworkOptions,
  type PodNetworkRequest,
  addPodNetwork,
  checkPodNetwork,
  nodeCniBinDir,
  nodeCniConfDir,
  nodeConflistPath,
  removePodNetwork,
  writeNodeConflist,
} from "./pods.ts";
export { teardownAllNetworks } from "./teardown.ts";
