// Runs inside a pod's network namespace for the kubelet: connects to the pod's localhost ports and hands each socket back over IPC.
import net from "node:net";

interface Request {
  id: number;
  port: number;
}

/** localhost as a kubelet dials it for port-forward: IPv4 first, then IPv6; the message names both failures. */
function connect(port: number): Promise<net.Socket> {
  const attempt = (host: string) =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host, port });
      // Paused before it connects, so it never starts reading: bytes this process read would be lost to the kubelet
      // (a sent socket's handle is closed here only once the kubelet acknowledged it, reading meanwhile).
      s.pause();
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    });
  return attempt("127.0.0.1").catch((v4: Error) =>
    attempt("::1").catch((v6: Error) => {
      throw new Error(`failed to connect to localhost:${port} inside the pod's network namespace, IPv4: ${v4.message} IPv6: ${v6.message}`);
    }),
  );
}

process.on("message", (msg: Request) => {
  if (!Number.isInteger(msg?.port) || msg.port < 1 || msg.port > 65535) {
    process.send?.({ id: msg?.id, error: `invalid port ${String(msg?.port)}` });
    return;
  }
  connect(msg.port).then(
    // Sent as a handle: the kubelet gets the connected socket itself; this process's copy closes once it is sent.
    (socket) => process.send?.({ id: msg.id }, socket),
    (err: Error) => process.send?.({ id: msg.id, error: err.message }),
  );
});
process.on("disconnect", () => process.exit(0));
process.send?.({ ready: true });
