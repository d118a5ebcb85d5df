// The kubeconfig the plugin uses while no agent answers: the installer's own service-account token, kept current.
import fs from "node:fs/promises";
import path from "node:path";

/** Where the installer finds its in-cluster credentials (the kubelet's service-account mount). */
export interface InClusterCredentials {
  /** KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT: the API as pods on the host network reach it. */
  host: string;
  port: string;
  tokenFile: string;
  caFile: string;
}

export const PLUGIN_KUBECONFIG_FILE = "ambit-cni.kubeconfig";

/**
 * The kubeconfig text for the plugin: the token inline, since the kubelet keeps the pod's token under a per-pod path
 * the plugin cannot know, and the API's CA inline. Built from what is on disk now; the caller rewrites it when
 * the kubelet rotates the token.
 */
export async function pluginKubeconfig(creds: InClusterCredentials): Promise<string> {
  const [token, ca] = await Promise.all([fs.readFile(creds.tokenFile, "utf8"), fs.readFile(creds.caFile)]);
  const host = creds.host.includes(":") ? `[${creds.host}]` : creds.host;
  const doc = {
    apiVersion: "v1",
    kind: "Config",
    "current-context": "ambit-cni",
    clusters: [{ name: "cluster", cluster: { server: `https://${host}:${creds.port}`, "certificate-authority-data": ca.toString("base64") } }],
    users: [{ name: "ambit-cni", user: { token: token.trim() } }],
    contexts: [{ name: "ambit-cni", context: { cluster: "cluster", user: "ambit-cni" } }],
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** In-cluster credentials from the environment a pod gets, or undefined outside a cluster. */
export function inClusterCredentials(
  env: NodeJS.ProcessEnv,
  serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount",
): InClusterCredentials | undefined {
  if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT) return undefined;
  return {
    host: env.KUBERNETES_SERVICE_HOST,
    port: env.KUBERNETES_SERVICE_PORT,
    tokenFile: path.join(serviceAccountDir, "token"),
    caFile: path.join(serviceAccountDir, "ca.crt"),
  };
}
