// The API server's own TLS: a self-signed CA and a serving certificate (P-256), kept on disk with 0600 keys.
import fs from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { createRootCa, issueLeaf } from "../../pki/index.ts";

export interface ServingPki {
  caPem: string;
  certPem: string;
  keyPem: string;
}

const YEAR_SECONDS = 365 * 24 * 3600;

/** `sans` mixes IPs and DNS names (the kubeconfig's 127.0.0.1, the in-cluster kubernetes.default.svc, ...). */
function generateServingPki(sans: string[]): ServingPki {
  // pathLength 0: this CA signs the serving certificate directly and nothing else.
  const ca = createRootCa({ commonName: "ambit-dev-apiserver-ca", ttlSeconds: YEAR_SECONDS, pathLength: 0 });
  const leaf = issueLeaf(ca, {
    subject: { commonName: "kube-apiserver" },
    dnsNames: sans.filter((s) => net.isIP(s) === 0),
    ips: sans.filter((s) => net.isIP(s) !== 0),
    usage: "server",
    ttlSeconds: YEAR_SECONDS,
  });
  return { caPem: ca.certPem, certPem: leaf.certPem, keyPem: leaf.keyPem };
}

/** Loads the serving PKI from `dir`, or creates it when absent or when the SANs changed. */
export async function loadOrCreateServingPki(dir: string, sans: string[]): Promise<ServingPki> {
  const files = {
    ca: path.join(dir, "ca.crt"),
    cert: path.join(dir, "apiserver.crt"),
    key: path.join(dir, "apiserver.key"),
    sans: path.join(dir, "apiserver.sans"),
  };
  const wanted = [...new Set(sans)].sort().join(",");
  try {
    if ((await fs.readFile(files.sans, "utf8")) === wanted) {
      return { caPem: await fs.readFile(files.ca, "utf8"), certPem: await fs.readFile(files.cert, "utf8"), keyPem: await fs.readFile(files.key, "utf8") };
    }
  } catch {
    // not there yet
  }
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const pki = generateServingPki([...new Set(sans)]);
  await fs.writeFile(files.key, pki.keyPem, { mode: 0o600 });
  await fs.writeFile(files.cert, pki.certPem);
  await fs.writeFile(files.ca, pki.caPem);
  await fs.writeFile(files.sans, wanted);
  return pki;
}
