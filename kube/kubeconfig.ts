// Kubeconfig files (the sandbox, its tools and tests, a controller run outside a cluster): read by client-node.
// Programs in a cluster use ./credentials.ts instead, and the agent's bundle stays free of client-node.
import { KubeConfig } from "@kubernetes/client-node";
import { KubeClient } from "./client.ts";

export function loadKubeconfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

export const kubeClientFromFile = (path: string): KubeClient<KubeConfig> => new KubeClient(loadKubeconfig(path));
