// Public surface of the sandbox kube-proxy: Service rules per node and the /etc/hosts that stands in for cluster DNS.
export { type HostsEntry, renderHostsFile } from "./hosts.ts";
export { KubeProxy } from "./proxy.ts";
export { type ProxyRuleOptions, type ServiceEndpoint, type ServicePortRule, renderProxyRules, servicePortRules } from "./rules.ts";
export type { KubeEndpoint, KubeEndpointPort, KubeEndpointSlice, KubeService, KubeServicePort } from "./types.ts";
