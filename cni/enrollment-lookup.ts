// When the node agent is unreachable, asks the Kubernetes API whether a pod must be captured, so only enrolled pods are held back.
import fs from "node:fs/promises";
import https from "node:https";
import { parse } from "yaml";
import type { KubeObject } from "../kube/client.ts";
import { captureIntent, type CaptureIntent } from "../contract/capture-intent.ts";

interface KubeconfigFile {
  "current-context"?: string;
  contexts?: Array<{ name: string; context: { cluster: string; user: string } }>;
  clusters?: Array<{ name: string; cluster: { server: string; "certificate-authority-data"?: string; "certificate-authority"?: string } }>;
  users?: Array<{ name: string; user: { token?: string; tokenFile?: string; "client-certificate-data"?: string; "client-key-data"?: string } }>;
}

interface ApiTarget {
  server: URL;
  ca?: Buffer;
  token?: string;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * A deliberately small kubeconfig reader (current context; CA, token or client certificate): the plugin runs once
 * per pod and loading @kubernetes/client-node costs ~0.5 s, which every pod start would pay.
 */
async function readKubeconfig(file: string): Promise<ApiTarget> {
  const doc = parse(await fs.readFile(file, "utf8")) as KubeconfigFile;
  const ctx = doc.contexts?.find((c) => c.name === doc["current-context"]) ?? doc.contexts?.[0];
  const cluster = doc.clusters?.find((c) => c.name === ctx?.context.cluster)?.cluster;
  const user = doc.users?.find((u) => u.name === ctx?.context.user)?.user ?? {};
  if (!cluster?.server) throw new Error(`kubeconfig ${file} has no cluster server for its current context`);
  const b64 = (v: string | undefined): Buffer | undefined => (v ? Buffer.from(v, "base64") : undefined);
  return {
    server: new URL(cluster.server),
    ca: b64(cluster["certificate-authority-data"]) ?? (cluster["certificate-authority"] ? await fs.readFile(cluster["certificate-authority"]) : undefined),
    token: user.token ?? (user.tokenFile ? (await fs.readFile(user.tokenFile, "utf8")).trim() : undefined),
    cert: b64(user["client-certificate-data"]),
    key: b64(user["client-key-data"]),
  };
}

function get(target: ApiTarget, path: string, timeoutMs: number): Promise<KubeObject | undefined> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      new URL(path, target.server),
      {
        method: "GET",
        ca: target.ca,
        cert: target.cert,
        key: target.key,
        headers: { accept: "application/json", ...(target.token ? { authorization: `Bearer ${target.token}` } : {}) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          if (res.statusCode === 404) return resolve(undefined);
          if (res.statusCode !== 200) return reject(new Error(`GET ${path}: HTTP ${res.statusCode}`));
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as KubeObject);
          } catch (err) {
            reject(err as Error);
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`GET ${path}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/** Whether the pod must be captured, decided from the API exactly as the agent decides it. Throws when the API cannot tell. */
export async function lookupCaptureIntent(kubeconfig: string, namespace: string, name: string, timeoutMs: number): Promise<CaptureIntent> {
  const target = await readKubeconfig(kubeconfig);
  const [ns, pod] = await Promise.all([
    get(target, `/api/v1/namespaces/${encodeURIComponent(namespace)}`, timeoutMs),
    get(target, `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`, timeoutMs),
  ]);
  if (!ns) throw new Error(`namespace ${namespace} not found`);
  // The pod object may lag the runtime; its namespace alone then decides (labels of a missing pod cannot opt out).
  return captureIntent(ns, pod ?? { apiVersion: "v1", kind: "Pod", metadata: { name, namespace } });
}
