// Keeps one node's service rules current: renders them and applies them atomically when they change.
import { type NodeNetwork, run } from "../network/index.ts";
import { renderProxyRules } from "./rules.ts";
import type { KubeEndpointSlice, KubeService } from "./types.ts";

/**
 * kube-proxy for one node. It owns the node netns's whole nat and filter tables: anything else that
 * needs rules in a node netns must use another table (pods' own netns are not affected).
 */
export class KubeProxy {
  readonly node: NodeNetwork;
  #applied: string | undefined;
  #last: Promise<unknown> = Promise.resolve();

  constructor(node: NodeNetwork) {
    this.node = node;
  }

  /**
   * Renders the rules and, when they differ from what was last applied, replaces both tables in one
   * `iptables-restore` run. Calls are serialized so a later state never loses to an earlier one.
   * Resolves to whether rules were written.
   */
  sync(services: readonly KubeService[], slices: readonly KubeEndpointSlice[]): Promise<boolean> {
    const next = this.#last.catch(() => {}).then(() => this.#apply(renderProxyRules(services, slices, { nodeName: this.node.name })));
    this.#last = next;
    return next;
  }

  async #apply(rules: string): Promise<boolean> {
    if (rules === this.#applied) return false;
    await run("iptables-restore", [], { netns: this.node.netns, input: rules });
    this.#applied = rules;
    return true;
  }
}
