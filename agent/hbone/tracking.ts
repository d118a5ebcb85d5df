// Per-HBONE-connection bookkeeping for the admin API: which identities a connection joins, its TLS, its streams and their bytes.
import type { X509Certificate } from "node:crypto";
import type tls from "node:tls";
import type { HboneConnectionInfo, HboneStreamInfo } from "../../contract/agent-admin.ts";
import { type SpiffeId, formatSpiffeId, spiffeIdFromCertificate } from "../identity/index.ts";
import type { RelayCounts } from "../relay/index.ts";

/** One CONNECT stream of a tracked connection. Its bytes are the relay's live counts, read only when someone asks. */
export interface TrackedStream {
  source: SpiffeId;
  /** Undefined on the client before the server's identity is known (never once the stream is open). */
  destination: SpiffeId | undefined;
  target: { ip: string; port: number };
  opened: number;
  /** The relay carrying this stream, set once it starts: `a` is the side the tunnel's bytes come in on (see `direction`). */
  counts?: RelayCounts;
}

/** The SPIFFE ID a certificate carries, or undefined (no certificate, or none that parses). */
function identityOf(cert: X509Certificate | undefined): string | undefined {
  if (!cert) return undefined;
  try {
    return formatSpiffeId(spiffeIdFromCertificate(cert));
  } catch {
    return undefined;
  }
}

/**
 * An HBONE connection as the admin API shows it. Costs one object per connection and a set entry per open stream;
 * nothing on the byte path: each stream's relay already counts its bytes, and those counts are added up only when a
 * snapshot is taken (a closing stream folds its final counts into the connection's totals).
 */
export class TrackedConnection {
  readonly direction: "outbound" | "inbound";
  readonly #socket: tls.TLSSocket;
  readonly #opened = Date.now();
  readonly #streams = new Set<TrackedStream>();
  #streamsTotal = 0;
  /** Bytes of streams already closed, from this agent's side: sent into the tunnel, received from it. */
  #bytesSent = 0;
  #bytesReceived = 0;
  /** Read from the certificates on the first snapshot, then kept (they never change for a connection). */
  #identities?: { local: string | undefined; peer: string | undefined };

  constructor(direction: "outbound" | "inbound", socket: tls.TLSSocket) {
    this.direction = direction;
    this.#socket = socket;
  }

  openStream(stream: TrackedStream): void {
    this.#streamsTotal++;
    this.#streams.add(stream);
  }

  closeStream(stream: TrackedStream): void {
    if (!this.#streams.delete(stream)) return;
    const b = this.#bytesOf(stream);
    this.#bytesSent += b.sent;
    this.#bytesReceived += b.received;
  }

  /** Outbound: the relay reads the pod's socket (a) into the tunnel (b). Inbound: the tunnel (a) into the app (b). */
  #bytesOf(s: TrackedStream): { sent: number; received: number } {
    const c = s.counts;
    if (!c) return { sent: 0, received: 0 };
    return this.direction === "outbound" ? { sent: c.aToB, received: c.bToA } : { sent: c.bToA, received: c.aToB };
  }

  snapshot(now = Date.now(), withStreams = true): HboneConnectionInfo {
    const socket = this.#socket;
    this.#identities ??= {
      local: identityOf(socket.getX509Certificate()),
      peer: identityOf(socket.getPeerX509Certificate()),
    };
    let sent = this.#bytesSent;
    let received = this.#bytesReceived;
    const streams: HboneStreamInfo[] = [];
    for (const s of this.#streams) {
      const b = this.#bytesOf(s);
      sent += b.sent;
      received += b.received;
      if (!withStreams) continue;
      streams.push({
        sourceIdentity: formatSpiffeId(s.source),
        ...(s.destination ? { destinationIdentity: formatSpiffeId(s.destination) } : {}),
        destinationAddress: `${s.target.ip}:${s.target.port}`,
        bytesSent: b.sent,
        bytesReceived: b.received,
        ageSeconds: Math.max(0, Math.round((now - s.opened) / 1000)),
      });
    }
    const cipher = socket.getCipher();
    return {
      direction: this.direction,
      localAddress: addressOf(socket.localAddress, socket.localPort),
      peerAddress: addressOf(socket.remoteAddress, socket.remotePort),
      ...(this.#identities.local ? { localIdentity: this.#identities.local } : {}),
      ...(this.#identities.peer ? { peerIdentity: this.#identities.peer } : {}),
      tlsVersion: socket.getProtocol() ?? "unknown",
      cipher: cipher?.standardName ?? cipher?.name ?? "unknown",
      streamsOpen: this.#streams.size,
      streamsTotal: this.#streamsTotal,
      bytesSent: sent,
      bytesReceived: received,
      openedAt: new Date(this.#opened).toISOString(),
      ageSeconds: Math.max(0, Math.round((now - this.#opened) / 1000)),
      ...(withStreams ? { streams } : {}),
    };
  }
}

function addressOf(ip: string | undefined, port: number | undefined): string {
  if (!ip) return "";
  const bare = ip.replace(/^::ffff:/, "");
  return port ? `${bare}:${port}` : bare;
}
