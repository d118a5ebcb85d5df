// The controller's BackendTrafficPolicy state: recompiled from the caches on every relevant change, its status written by the leader one pass at a time.
import type { Logger } from "pino";
import type { CompiledTrafficPolicy } from "../../contract/traffic-policy.ts";
import type { KubeClient, KubeObject } from "../../kube/client.ts";
import { type CompiledTrafficPolicies, type TargetExists, compileTrafficPolicies } from "./attach.ts";
import { writeTrafficPolicyStatuses } from "./status.ts";

export interface TrafficPolicySources {
  /** Every BackendTrafficPolicy (empty when the CRD is not served). */
  policies(): readonly KubeObject[];
  exists: TargetExists;
  isLeader(): boolean;
}

/** What main.ts wires: `recompile()` on policy, Service and route events, `writeStatus()` then and on becoming leader. */
export class TrafficPolicyState {
  readonly #client: KubeClient;
  readonly #log: Logger;
  readonly #src: TrafficPolicySources;
  #compiled: CompiledTrafficPolicies = { policies: [], results: [] };
  /** One status pass at a time (two would send the same conditional write twice, one failing); a change meanwhile asks for one more. */
  #pass: Promise<unknown> | undefined;
  #again = false;

  constructor(client: KubeClient, sources: TrafficPolicySources, log: Logger) {
    this.#client = client;
    this.#src = sources;
    this.#log = log;
  }

  /** The policies in effect, for waypoint views: a new array after each recompilation. */
  policies(): readonly CompiledTrafficPolicy[] {
    return this.#compiled.policies;
  }

  recompile(): void {
    this.#compiled = compileTrafficPolicies(this.#src.policies(), this.#src.exists);
  }

  writeStatus(): void {
    if (!this.#src.isLeader()) return;
    if (this.#pass) {
      this.#again = true;
      return;
    }
    this.#pass = writeTrafficPolicyStatuses(this.#client, this.#compiled.results, this.#log).finally(() => {
      this.#pass = undefined;
      if (this.#again) {
        this.#again = false;
        this.writeStatus();
      }
    });
  }
}
