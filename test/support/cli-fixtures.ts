// A CLI environment from recorded agent answers (test/fixtures/cli, real /config_dump and /tunnels of a two-node sandbox).
import fs from "node:fs";
import path from "node:path";
import type { AgentPod, AgentTransport } from "../../cli/agents.ts";
import type { CliEnv } from "../../cli/context.ts";
import type { KubeClient, KubeObject } from "../../kube/client.ts";

const DIR = path.join(import.meta.dirname, "../fixtures/cli");

export const fixture = <T>(name: string): T => JSON.parse(fs.readFileSync(path.join(DIR, name), "utf8")) as T;

/** One minute after node-1's last config update: ages and staleness in goldens stay fixed. */
export const FIXTURE_NOW = Date.parse(fixture<{ controller: { lastUpdateAt: string } }>("config_dump-node-1.json").controller.lastUpdateAt) + 60_000;

/** Agents answering from fixtures; a node listed in `down` answers like an unreachable one. */
export class FixtureTransport implements AgentTransport {
  readonly calls: string[] = [];
  readonly #nodes: string[];
  readonly #down: Set<string>;
  constructor(nodes = ["node-1", "node-2"], down: string[] = []) {
    this.#nodes = nodes;
    this.#down = new Set(down);
  }
  async agents(): Promise<AgentPod[]> {
    return this.#nodes.map((n, i) => ({ node: n, pod: `ambit-agent-${i}`, ready: !this.#down.has(n), phase: "Running", image: "ambit/agent:dev" }));
  }
  async get<T>(node: string, p: string): Promise<T> {
    this.calls.push(`${node}${p}`);
    if (this.#down.has(node)) throw Object.assign(new Error(`agent on ${node} unreachable`), { code: "AMBIT_E_AGENT_UNREACHABLE" });
    return fixture<T>(`${p === "/tunnels" ? "tunnels" : "config_dump"}-${node}.json`);
  }
  close(): void {}
}

/** A KubeClient stand-in answering GETs from a path → object map (404 otherwise) and recording patches. */
export function fakeKube(objects: Record<string, KubeObject | KubeObject[]> = {}) {
  const patches: Array<{ path: string; patch: unknown }> = [];
  const notFound = (p: string) => Object.assign(new Error(`GET ${p}: 404`), { status: 404 });
  const get = async (p: string) => {
    const o = objects[p];
    if (!o || Array.isArray(o)) throw notFound(p);
    return o;
  };
  const kube = {
    get,
    request: async (_method: string, p: string) => get(p),
    list: async (p: string) => {
      const o = objects[p] ?? objects[p.split("?")[0]!];
      return Array.isArray(o) ? o : [];
    },
    mergePatch: async (p: string, patch: unknown) => {
      if (!objects[p]) throw notFound(p);
      patches.push({ path: p, patch });
      return objects[p];
    },
    close: () => {},
  };
  return { kube: kube as unknown as KubeClient, patches };
}

export function fixtureEnv(opts: { agents?: AgentTransport; kube?: KubeClient; now?: number } = {}): CliEnv & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    kube: opts.kube ?? fakeKube().kube,
    agents: opts.agents ?? new FixtureTransport(),
    stdout: (t) => void out.push(t),
    stderr: (t) => void err.push(t),
    now: () => opts.now ?? FIXTURE_NOW,
    out,
    err,
  };
}
