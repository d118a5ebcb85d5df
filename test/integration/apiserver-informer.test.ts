// The informers' list+watch (kube/informers.ts) against the sandbox API server: events, resumption, and relist on 410 Gone.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { KubeObject } from "../../kube/client.ts";
import { ListWatch } from "../../kube/informers.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

const pod = (name: string, labels: Record<string, string>) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace: "default", labels },
  spec: { containers: [{ name: "c", image: "ambit.dev/toolbox:0.1" }] },
});

describe("list+watch informer", () => {
  let t: TestApiServer;
  let lists = 0;
  let informer: ListWatch;
  const events: string[] = [];

  beforeEach(async () => {
    t = await startTestApiServer();
    lists = 0;
    events.length = 0;
    const path = "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb";
    informer = new ListWatch(t.client, path, () => {
      lists++;
      return t.client.request<{ items: KubeObject[] }>("GET", path);
    });
    for (const verb of ["add", "update", "delete"] as const) informer.on(verb, (obj) => events.push(`${verb} ${obj.metadata.name}`));
    // An informer stops on error; its owner starts it again (SharedInformers, with backoff).
    informer.on("error", () => setTimeout(() => void informer.start(), 100));
  });

  afterEach(async () => {
    await informer.stop();
    await t.close();
  });

  it("sees add, update and delete of matching objects only", async () => {
    await informer.start();
    await t.client.create("/api/v1/namespaces/default/pods", pod("a", { app: "web" }));
    await t.client.create("/api/v1/namespaces/default/pods", pod("other", { app: "db" }));
    await t.client.mergePatch("/api/v1/namespaces/default/pods/a", { metadata: { annotations: { note: "x" } } });
    await t.client.delete("/api/v1/namespaces/default/pods/a");
    await expect.poll(() => events.join(","), { timeout: 5000 }).toBe("add a,update a,delete a");
    // An object that stops matching the selector leaves the cache as a delete.
    await t.client.create("/api/v1/namespaces/default/pods", pod("b", { app: "web" }));
    await t.client.mergePatch("/api/v1/namespaces/default/pods/b", { metadata: { labels: { app: "db" } } });
    await expect.poll(() => events.slice(3).join(","), { timeout: 5000 }).toBe("add b,delete b");
    expect(informer.list().map((p) => p.metadata.name)).toEqual([]);
  });

  it("resumes from its resourceVersion after a dropped watch without relisting", async () => {
    await informer.start();
    expect(lists).toBe(1);
    const release = t.api.holdWatches();
    t.api.dropWatches();
    await t.client.create("/api/v1/namespaces/default/pods", pod("c", { app: "web" }));
    release();
    await expect.poll(() => events.join(","), { timeout: 5000 }).toBe("add c");
    expect(lists).toBe(1);
  });

  it("relists after 410 Gone and converges on the current state", async () => {
    await informer.start();
    await t.client.create("/api/v1/namespaces/default/pods", pod("d", { app: "web" }));
    await expect.poll(() => events.join(","), { timeout: 5000 }).toBe("add d");
    // Changes while the watch is down, then the history the informer would need to resume is forgotten.
    const release = t.api.holdWatches();
    t.api.dropWatches();
    await t.client.delete("/api/v1/namespaces/default/pods/d");
    await t.client.create("/api/v1/namespaces/default/pods", pod("e", { app: "web" }));
    t.api.compactHistory();
    release();
    await expect
      .poll(
        () =>
          informer
            .list()
            .map((p) => p.metadata.name)
            .join(","),
        { timeout: 8000 },
      )
      .toBe("e");
    expect(lists).toBeGreaterThan(1);
    expect(events).toContain("delete d");
  });

  it("answers a watch from a forgotten resourceVersion with a 410 Expired event", async () => {
    await t.client.create("/api/v1/namespaces/default/pods", pod("f", { app: "web" }));
    t.api.compactHistory();
    await t.client.create("/api/v1/namespaces/default/pods", pod("g", { app: "web" }));
    const lines = await t.client.request<string>("GET", "/api/v1/namespaces/default/pods?watch=1&resourceVersion=1").catch((e: unknown) => String(e));
    expect(lines).toMatchObject({ type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired" } });
  });
});
