// Telemetry of carried connections, built in one place: Istio's TCP labels, response flags and access log lines from a plan's ends and its outcome.
import type { Logger } from "pino";
import type { StreamEvent } from "../hbone/index.ts";
import { type SpiffeId, formatSpiffeId } from "../identity/index.ts";
import type { TcpLabels } from "../metrics/index.ts";
import type { AuditMatch, ConnectionEnds, InboundAttributes, Refusal, Security } from "./plan.ts";

/** Which side reports a connection (Istio's `reporter`): each agent reports the ends it serves. */
export type Reporter = "source" | "destination";

/** How opening a connection ended: carried, denied by the destination's policy, or failed on the way. */
export type Outcome = "ok" | "denied" | "failed";

/** Istio's TCP response flags: none, DENIED (policy), UF (upstream connection failure). */
export type ResponseFlag = "-" | "DENIED" | "UF";

export const responseFlag = (outcome: Outcome): ResponseFlag => (outcome === "ok" ? "-" : outcome === "denied" ? "DENIED" : "UF");

/** An HBONE answer as an outcome: 200 carried, 401 the destination's policy, anything else a failure. */
export const outcomeOfStatus = (status: number | undefined): Outcome => (status === 200 ? "ok" : status === 401 ? "denied" : "failed");

/** What opening an outbound connection learnt that its plan could not know: whether an HBONE probe met a peer, and which. */
export interface Learned {
  security?: Security;
  peer?: SpiffeId;
}

/** The ends of a plan with what opening the connection learnt added. */
export function withLearned(ends: ConnectionEnds, learned: Learned): ConnectionEnds {
  if (!learned.security) return ends;
  const identity = ends.destination.identity ?? learned.peer;
  return { ...ends, security: learned.security, destination: { ...ends.destination, ...(identity ? { identity } : {}) } };
}

/** Istio's TCP labels for one reporter's view of a connection. */
export function tcpLabels(reporter: Reporter, ends: ConnectionEnds, outcome: Outcome): TcpLabels {
  const { source: s, destination: d } = ends;
  const labels: TcpLabels = { reporter };
  if (s.workload) labels.source_workload = s.workload.workloadName;
  const sourceNamespace = s.identity?.namespace ?? s.workload?.namespace;
  if (sourceNamespace) labels.source_workload_namespace = sourceNamespace;
  if (s.identity) labels.source_principal = formatSpiffeId(s.identity);
  if (d.workload) labels.destination_workload = d.workload.workloadName;
  const destinationNamespace = d.workload?.namespace ?? d.identity?.namespace;
  if (destinationNamespace) labels.destination_workload_namespace = destinationNamespace;
  if (d.identity) labels.destination_principal = formatSpiffeId(d.identity);
  if (d.workload?.labels.app) labels.destination_app = d.workload.labels.app;
  if (ends.security) labels.connection_security_policy = ends.security;
  labels.response_flags = responseFlag(outcome);
  return labels;
}

/** What a connection's series and log lines need until it closes; kept for every open connection, so kept small. */
export interface ConnectionReport {
  labels: TcpLabels;
  /** The local pod the lines are about (namespace/name), when there is one. */
  pod: string | undefined;
  srcIp: string | undefined;
  dst: { ip: string; port: number };
}

export function connectionReport(reporter: Reporter, ends: ConnectionEnds, outcome: Outcome, pod: string | undefined): ConnectionReport {
  return { labels: tcpLabels(reporter, ends, outcome), pod, srcIp: ends.source.ip, dst: { ip: ends.destination.ip, port: ends.destination.port } };
}

/**
 * The fields every access log line carries, whichever side reports it: both ends' workload, namespace, identity
 * and address, and the transport security, so source and destination lines can be read the same way.
 */
export function accessRecord(r: ConnectionReport) {
  const { labels } = r;
  return {
    ...(r.pod === undefined ? {} : { pod: r.pod }),
    event: "connection",
    reporter: labels.reporter,
    src: { workload: labels.source_workload, namespace: labels.source_workload_namespace, identity: labels.source_principal, ip: r.srcIp },
    dst: {
      workload: labels.destination_workload,
      namespace: labels.destination_workload_namespace,
      identity: labels.destination_principal,
      ip: r.dst.ip,
      port: r.dst.port,
    },
    security: labels.connection_security_policy,
  };
}

/** The metrics a data path counts connections in (the agent's `AgentMetrics`, or any proxy's own). */
export interface TcpMetricsSink {
  connectionOpened(labels: TcpLabels): void;
  /** Bytes as Istio counts them: sent towards the client, received from it. */
  connectionClosed(labels: TcpLabels, bytes: { sent: number; received: number }): void;
  connectionsRefused: { inc(labels: { direction: "inbound" | "outbound"; reason: Refusal }): void };
}

/** Bytes of a connection from its client's side: what it asked (client to server) and what was answered. */
export interface ConnectionBytes {
  asked: number;
  answered: number;
}

/** Counts and logs connections from their reports: every series and access log line of the data path goes through here. */
export class ConnectionTelemetry {
  readonly #metrics: TcpMetricsSink;
  readonly #log: Logger;

  constructor(metrics: TcpMetricsSink, log: Logger) {
    this.#metrics = metrics;
    this.#log = log;
  }

  opened(r: ConnectionReport): void {
    this.#metrics.connectionOpened(r.labels);
    this.#log.info(accessRecord(r), "connection opened");
  }

  /**
   * A carried connection closed. Metrics count bytes as Istio does (sent = answered); each log line from its
   * reporter's side, and a destination's line carries the HBONE answer (`status`, 200 for one delivered here).
   */
  closed(r: ConnectionReport, bytes: ConnectionBytes, durationMs: number, error?: string, status = 200): void {
    this.#metrics.connectionClosed(r.labels, { sent: bytes.answered, received: bytes.asked });
    const destination = r.labels.reporter === "destination";
    this.#log.info(
      {
        ...accessRecord(r),
        bytesSent: destination ? bytes.answered : bytes.asked,
        bytesReceived: destination ? bytes.asked : bytes.answered,
        durationMs: Math.round(durationMs),
        ...(destination ? { status } : {}),
        ...(error ? { error } : {}),
      },
      "connection closed",
    );
  }

  /** A connection that never carried a byte still opens and closes its series, as Istio counts refusals. */
  #neverCarried(r: ConnectionReport): void {
    this.#metrics.connectionOpened(r.labels);
    this.#metrics.connectionClosed(r.labels, { sent: 0, received: 0 });
  }

  /** An outbound connection refused before anything was opened, or failing to open. */
  outboundFailed(r: ConnectionReport, err: { message: string; code: string }, refusal: Refusal | undefined): void {
    this.#neverCarried(r);
    if (refusal) this.#metrics.connectionsRefused.inc({ direction: "outbound", reason: refusal });
    this.#log.warn(
      { pod: r.pod, dst: { address: r.dst.ip, port: r.dst.port }, err: err.message, code: err.code },
      refusal ? "outbound connection refused" : "outbound connection failed",
    );
  }

  /** A plaintext inbound connection refused (the agent's own port) or denied by policy. */
  inboundRefused(r: ConnectionReport, reason: string, refusal: Refusal | undefined): void {
    this.#neverCarried(r);
    if (refusal) this.#metrics.connectionsRefused.inc({ direction: "inbound", reason: refusal });
    this.#log.info({ ...accessRecord(r), reason }, refusal ? "connection refused" : "connection denied by policy");
  }

  /** A plaintext inbound connection whose delivery to the app failed. */
  inboundFailed(r: ConnectionReport, err: Error): void {
    this.#neverCarried(r);
    this.#log.warn({ ...accessRecord(r), err: err.message }, "inbound connection failed");
  }

  /** An HBONE stream this agent served, at open and at close (a stream answered with an error only closes). */
  hboneStream(r: ConnectionReport, e: StreamEvent): void {
    if (e.refused) this.#metrics.connectionsRefused.inc({ direction: "inbound", reason: e.refused });
    if (e.phase === "open") return this.opened(r);
    if (e.status !== 200) this.#metrics.connectionOpened(r.labels);
    this.closed(r, { asked: e.bytesReceived, answered: e.bytesSent }, e.durationMs, e.error, e.status);
  }

  /** A new connection matched AUDIT policies: logged, whatever was decided. */
  audit(match: AuditMatch | undefined): void {
    if (!match) return;
    const { attributes } = match;
    this.#log.info(
      {
        event: "audit",
        policies: match.policies,
        allowed: match.allowed,
        src: { identity: attributes.source ? formatSpiffeId(attributes.source) : undefined, ip: attributes.sourceIp },
        dst: {
          workload: attributes.destination.workloadName,
          namespace: attributes.destination.namespace,
          ip: attributes.destinationIp,
          port: attributes.destinationPort,
        },
      },
      "connection matched an AUDIT policy",
    );
  }

  /** A live connection closed because a policy change now denies it. */
  revoked(attributes: Omit<InboundAttributes, "destination">, reason: string): void {
    this.#log.warn(
      {
        event: "connection",
        reporter: "destination",
        src: { identity: attributes.source ? formatSpiffeId(attributes.source) : undefined, ip: attributes.sourceIp },
        dst: { ip: attributes.destinationIp, port: attributes.destinationPort },
        reason,
      },
      "live connection closed: policy now denies it",
    );
  }
}
