// kube/informers.ts ListWatch against a scripted API: when it lists, resumes, reports errors and says it is connected.
import { describe, expect, it } from "vitest";
import type { KubeClient, KubeObject, WatchEnd, WatchEventType } from "../../kube/client.ts";
import { ListWatch } from "../../kube/informers.ts";

const pod = (name: string, rv: string): KubeObject => ({ apiVersion: "v1", kind: "Pod", metadata: { name, namespace: "default", resourceVersion: rv } });

/** A fake API: lists answer `items` at `rv`; each watch call takes the next scripted outcome. */
function fakeApi() {
  const api = {
    items: [] as KubeObject[],
    rv: "1",
    lists: 0,
    watches: [] as Array<{ rv: string; event: (type: WatchEventType, obj: KubeObject) => void; end: (end: WatchEnd) => void; aborted: boolean }>,
    /** Outcomes of the next watch calls: "ok" accepts, a number rejects with that HTTP status. */
    outcomes: [] as Array<"ok" | number>,
  };
  const client = {
    watch: async (_path: string, rv: string, event: (type: WatchEventType, obj: KubeObject) => void, end: (end: WatchEnd) => void) => {
      await Promise.resolve();
      const outcome = api.outcomes.shift() ?? "ok";
      if (outcome !== "ok") throw Object.assign(new Error(`watch: ${outcome}`), { status: outcome });
      const w = { rv, event, end, aborted: false };
      api.watches.push(w);
      return { abort: () => (w.aborted = true) };
    },
  } as unknown as KubeClient;
  const list = async () => {
    api.lists++;
    await Promise.resolve();
    return { metadata: { resourceVersion: api.rv }, items: api.items };
  };
  return { api, client, list };
}

function record(lw: ListWatch): string[] {
  const seen: string[] = [];
  for (const e of ["add", "update", "delete"] as const) lw.on(e, (obj) => seen.push(`${e} ${obj.metadata.name}`));
  lw.on("connect", () => seen.push("connect"));
  lw.on("error", (err) => seen.push(`error ${(err as Error).message}`));
  return seen;
}

describe("ListWatch", () => {
  it("lists, then watches from the list's resourceVersion; a watch the server closes resumes from the last event without a list", async () => {
    const { api, client, list } = fakeApi();
    api.items = [pod("a", "1")];
    const lw = new ListWatch(client, "/api/v1/pods", list);
    const seen = record(lw);
    await lw.start();
    expect(seen).toEqual(["add a", "connect"]);
    expect(api.watches.map((w) => w.rv)).toEqual(["1"]);
    api.watches[0]!.event("MODIFIED", pod("a", "5"));
    api.watches[0]!.event("MODIFIED", pod("a", "5")); // same resourceVersion: no update
    api.watches[0]!.end(null);
    await expect.poll(() => api.watches.length).toBe(2);
    expect(api.watches[1]!.rv).toBe("5");
    expect(api.lists).toBe(1);
    expect(seen).toEqual(["add a", "connect", "update a", "connect"]);
    await lw.stop();
    expect(api.watches[1]!.aborted).toBe(true);
  });

  it("a refused watch is an error and no connect (the owner's backoff keeps growing); started again, it resumes from its resourceVersion", async () => {
    const { api, client, list } = fakeApi();
    const lw = new ListWatch(client, "/api/v1/pods", list);
    const seen = record(lw);
    api.outcomes = [503];
    await lw.start();
    expect(seen).toEqual(["error watch: 503"]);
    await lw.start();
    expect(seen).toEqual(["error watch: 503", "connect"]);
    expect(api.lists).toBe(1);
  });

  it("410 Gone, as the watch's answer or an ERROR event before the server closes it, lists again and turns the differences into events", async () => {
    const { api, client, list } = fakeApi();
    api.items = [pod("a", "1"), pod("b", "1")];
    const lw = new ListWatch(client, "/api/v1/pods", list);
    const seen = record(lw);
    await lw.start();
    api.items = [pod("b", "7"), pod("c", "7")];
    api.rv = "7";
    api.watches[0]!.event("ERROR", { code: 410 } as unknown as KubeObject);
    api.watches[0]!.end(null);
    await expect.poll(() => api.watches.length).toBe(2);
    expect(api.lists).toBe(2);
    expect(seen).toEqual(["add a", "add b", "connect", "delete a", "update b", "add c", "connect"]);
    expect(lw.list().map((o) => o.metadata.name)).toEqual(["b", "c"]);

    api.outcomes = [410];
    api.items = [];
    api.rv = "9";
    api.watches[1]!.end(new Error("reset"));
    expect(seen.at(-1)).toBe("error reset");
    await lw.start();
    expect(api.lists).toBe(3);
    expect(api.watches.at(-1)!.rv).toBe("9");
    expect(seen.slice(-3)).toEqual(["delete b", "delete c", "connect"]);
  });

  it("stopped while listing, it opens no watch and emits nothing", async () => {
    const { api, client, list } = fakeApi();
    api.items = [pod("a", "1")];
    const lw = new ListWatch(client, "/api/v1/pods", list);
    const seen = record(lw);
    const started = lw.start();
    await lw.stop();
    await started;
    expect(api.watches).toEqual([]);
    expect(seen).toEqual([]);
  });
});
