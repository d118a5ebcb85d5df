// Base of every queue-driven controller: informer events enqueue keys, one reconcile per key at a time, retries.
import type { Logger } from "pino";
import { type KubeClient, isNotFound } from "./client.ts";
import type { SharedInformers } from "./informers.ts";
import { WorkQueue } from "./queue.ts";

export abstract class QueueController {
  protected readonly client: KubeClient;
  protected readonly informers: SharedInformers;
  protected readonly log: Logger;
  protected readonly queue: WorkQueue;

  /** `component` names the controller in logs; `subject` names what a key is (e.g. "deployment"). */
  constructor(client: KubeClient, informers: SharedInformers, log: Logger, component: string, subject: string) {
    this.client = client;
    this.informers = informers;
    this.log = log.child({ component });
    this.queue = new WorkQueue((key) => this.reconcile(key), {
      onError: (key, err) => this.log.warn({ [subject]: key, err: String(err) }, "reconcile failed, will retry"),
    });
  }

  protected abstract reconcile(key: string): Promise<void>;

  /** DELETE that treats "already gone" as done. */
  protected async deleteIfPresent(path: string): Promise<void> {
    try {
      await this.client.delete(path);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** True while keys wait or are being reconciled: a caller can tell when the controller has caught up. */
  get busy(): boolean {
    return this.queue.busy;
  }

  stop(): void {
    this.queue.stop();
  }
}
