// Demo workload: an HTTP service that calls the next service in its chain and returns a JSON trace of every hop.
import http from "node:http";
import os from "node:os";

const port = Number(process.env.PORT ?? 8080);
const serviceName = process.env.SERVICE_NAME ?? "unnamed";
// Empty for the last hop of the chain.
const nextUrl = process.env.NEXT_URL ?? "";
const callTimeoutMs = Number(process.env.CALL_TIMEOUT_MS ?? 3000);

interface Hop {
  service: string;
  pod: string;
  namespace: string;
  node: string;
  podIP: string;
  serviceAccount: string;
  next?: Hop | { error: string; url: string };
}

function self(): Hop {
  return {
    service: serviceName,
    pod: process.env.POD_NAME ?? os.hostname(),
    namespace: process.env.POD_NAMESPACE ?? "",
    node: process.env.NODE_NAME ?? "",
    podIP: process.env.POD_IP ?? "",
    serviceAccount: process.env.SERVICE_ACCOUNT ?? "",
  };
}

/** Calls the next hop, forwarding the request path so markers in it travel the whole chain. */
function callNext(path: string): Promise<Hop | { error: string; url: string }> {
  const url = new URL(path, nextUrl).toString();
  return new Promise((resolve) => {
    // A new connection per call: connections open before a namespace is enrolled stay outside the mesh
    // (as in Istio ambient), so the demo shows enrollment on the very next request.
    const req = http.get(url, { timeout: callTimeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        try {
          resolve(JSON.parse(text) as Hop);
        } catch {
          resolve({ error: `status ${res.statusCode}: ${text.slice(0, 200)}`, url });
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error(`timed out after ${callTimeoutMs} ms`)));
    req.on("error", (err) => resolve({ error: err.message, url }));
  });
}

const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    return;
  }
  const reply = async () => {
    const hop = self();
    if (nextUrl) hop.next = await callNext(req.url ?? "/");
    const failed = hop.next !== undefined && "error" in hop.next;
    res.writeHead(failed ? 502 : 200, { "content-type": "application/json" }).end(JSON.stringify(hop) + "\n");
  };
  void reply();
});

server.keepAliveTimeout = 65_000;
server.listen(port, () => {
  console.log(JSON.stringify({ level: "info", msg: "listening", service: serviceName, port, next: nextUrl || null }));
});

const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
