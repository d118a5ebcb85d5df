// Runs inside a node's netns: forwards <ip>:<port> to the API server's unix socket, so in-cluster clients reach it.
import net from "node:net";

const [host, portText, socketPath] = process.argv.slice(2);
if (!host || !portText || !socketPath) {
  console.error("usage: forwarder.ts <listen-ip> <listen-port> <unix-socket>");
  process.exit(2);
}

const server = net.createServer((client) => {
  const upstream = net.connect(socketPath);
  client.pipe(upstream).pipe(client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", close);
  upstream.on("error", close);
});
server.listen(Number(portText), host, () => process.send?.({ type: "listening" }));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
