// Protocol detection on a fresh CONNECT stream: HTTP/2 prior knowledge, HTTP/1.x, or opaque bytes for L4.
import type { Duplex } from "node:stream";

export type DetectedProtocol = "http2" | "http1" | "tcp";

const H2_PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const H1_REQUEST = /^(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|TRACE|CONNECT) /;

/** The protocol the first bytes announce; a short first read is compared as far as it goes. */
export function classify(first: Buffer): DetectedProtocol {
  const head = first.subarray(0, H2_PREFACE.length).toString("latin1");
  if (head.length > 0 && H2_PREFACE.startsWith(head)) return "http2";
  if (H1_REQUEST.test(first.subarray(0, 16).toString("latin1"))) return "http1";
  return "tcp";
}

/**
 * Reads the client's first bytes and puts them back, so whoever serves the stream sees them. A client that sends
 * nothing within `timeoutMs` speaks a server-first protocol (MySQL, SMTP): it is carried at L4, as Istio does.
 */
export function detectProtocol(stream: Duplex, timeoutMs: number): Promise<DetectedProtocol> {
  return new Promise((resolve) => {
    const done = (protocol: DetectedProtocol) => {
      clearTimeout(timer);
      stream.off("readable", onReadable);
      stream.off("end", onEnd);
      resolve(protocol);
    };
    const onReadable = () => {
      const chunk = stream.read() as Buffer | null;
      if (chunk === null) return;
      stream.unshift(chunk);
      done(classify(chunk));
    };
    const onEnd = () => done("tcp");
    const timer = setTimeout(() => done("tcp"), timeoutMs);
    stream.on("readable", onReadable);
    stream.once("end", onEnd);
  });
}
