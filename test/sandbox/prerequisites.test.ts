// A missing prerequisite stops `ambit dev up` before it changes anything, with a message that says what to do.
import net from "node:net";
import { expect, it } from "vitest";
import { ROOT_REQUIRED, ambit, isRoot, sandboxNetns } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";

describeTier(isRoot, ROOT_REQUIRED)("ambit dev up prerequisites", () => {
  it("names the Debian package when the CNI plugins are missing", async () => {
    const r = await ambit(["dev", "up"], { env: { AMBIT_DEV_CNI_BIN_DIR: "/nonexistent/cni" } });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("error [AMBIT_E_SANDBOX_PREREQ]");
    expect(r.stderr).toContain("apt-get install -y containernetworking-plugins");
    expect(await sandboxNetns()).toEqual([]);
  });

  it("says which port is taken and how to choose another", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const r = await ambit(["dev", "up"], { env: { AMBIT_DEV_API_PORT: String(port) } });
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toContain(`port ${port} on 127.0.0.1 is already in use`);
      expect(r.stderr).toContain("AMBIT_DEV_API_PORT");
    } finally {
      blocker.close();
    }
  });

  it("refuses to run without root", async () => {
    const r = await ambit(["dev", "up"], { uid: 65534, gid: 65534 });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("ambit dev needs root");
  });
});
