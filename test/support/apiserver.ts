// Starts a sandbox API server on an ephemeral loopback port for a test, with a kubeconfig and a small JSON client.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { type ApiServer, type ApiServerOptions, startApiServer } from "../../sandbox/apiserver/index.ts";
import { KubeClient } from "../../kube/client.ts";

export interface TestApiServer {
  api: ApiServer;
  dir: string;
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
  client: KubeClient;
  close(): Promise<void>;
}

export async function startTestApiServer(opts: Partial<ApiServerOptions> = {}): Promise<TestApiServer> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-api-"));
  const api = await startApiServer({ host: "127.0.0.1", port: 0, pkiDir: path.join(dir, "pki"), serviceCidr: "10.96.0.0/16", ...opts });
  const kubeconfigPath = path.join(dir, "kubeconfig");
  await api.writeKubeconfig(kubeconfigPath);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfigPath);
  const client = new KubeClient(kubeConfig);
  return {
    api,
    dir,
    kubeconfigPath,
    kubeConfig,
    client,
    close: async () => {
      client.close();
      await api.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
