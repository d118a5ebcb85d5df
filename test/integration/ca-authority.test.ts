// The CA's signing root: plug-in CA checks, the self-made root kept in a Secret, and rotation with overlapping trust.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { X509Certificate } from "node:crypto";
import { execa } from "execa";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CA_SECRET, MeshCa, PLUGIN_CA_SECRET } from "../../controller/identity/index.ts";
import { generateP256 } from "../../pki/index.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

const log = pino({ level: "silent" });
const URI = "spiffe://cluster.local/ns/demo/sa/orders";
const spki = () => generateP256().publicKey.export({ type: "spki", format: "der" });

describe("mesh CA root", () => {
  let t: TestApiServer;
  let dir: string;
  const openssl = (args: string[]) => execa("openssl", args, { cwd: dir });
  const b64 = async (file: string) => (await fs.readFile(path.join(dir, file))).toString("base64");
  const verify = async (bundle: string[], chain: string[]) => {
    await fs.writeFile(path.join(dir, "bundle.pem"), bundle.join(""));
    await fs.writeFile(path.join(dir, "leaf.pem"), chain[0]!);
    await fs.writeFile(path.join(dir, "untrusted.pem"), chain.slice(1).join("") || chain[0]!);
    return (await execa("openssl", ["verify", "-CAfile", "bundle.pem", "-untrusted", "untrusted.pem", "leaf.pem"], { cwd: dir, reject: false })).exitCode === 0;
  };

  beforeAll(async () => {
    t = await startTestApiServer();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-ca-root-"));
    await t.client.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "ambit-system" } });
    // A user's CA: root -> intermediate, made with openssl as an operator would.
    await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "root.key"]);
    await openssl([
      "req",
      "-x509",
      "-new",
      "-key",
      "root.key",
      "-subj",
      "/O=corp/CN=corp-root",
      "-days",
      "30",
      "-out",
      "root.pem",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign",
    ]);
    await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "int.key"]);
    await openssl(["pkcs8", "-topk8", "-nocrypt", "-in", "int.key", "-out", "int.pk8"]);
    await openssl(["req", "-new", "-key", "int.key", "-subj", "/O=corp/CN=mesh-intermediate", "-out", "int.csr"]);
    // A subject key identifier of the operator's choosing (RFC 5280 allows any): leaves must name exactly it.
    await fs.writeFile(
      path.join(dir, "ext.cnf"),
      "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign\nsubjectKeyIdentifier=0102030405060708090a0b0c0d0e0f1011121314\n",
    );
    await openssl([
      "x509",
      "-req",
      "-in",
      "int.csr",
      "-CA",
      "root.pem",
      "-CAkey",
      "root.key",
      "-CAcreateserial",
      "-days",
      "30",
      "-extfile",
      "ext.cnf",
      "-out",
      "int.pem",
    ]);
    await openssl([
      "req",
      "-x509",
      "-new",
      "-key",
      "int.key",
      "-subj",
      "/CN=not-a-ca",
      "-days",
      "1",
      "-out",
      "leafish.pem",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
    ]);
  });
  afterAll(async () => {
    await t?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  const pluginSecret = async (data: Record<string, string>) => {
    await t.client.delete(`/api/v1/namespaces/ambit-system/secrets/${PLUGIN_CA_SECRET}`).catch(() => {});
    await t.client.create("/api/v1/namespaces/ambit-system/secrets", { apiVersion: "v1", kind: "Secret", metadata: { name: PLUGIN_CA_SECRET }, data });
  };

  it("refuses plug-in material that does not hold together, saying what is wrong", async () => {
    const ca = new MeshCa({ client: t.client, namespace: "ambit-system", trustDomain: "cluster.local", log, mayWrite: () => true, maxCertTtlSeconds: 3600 });
    await pluginSecret({ "ca-cert.pem": await b64("int.pem"), "ca-key.pem": await b64("root.key"), "root-cert.pem": await b64("root.pem") });
    await expect(ca.refresh()).rejects.toMatchObject({ code: "AMBIT_E_CA_PLUGIN", message: "ca-key.pem is not the key of ca-cert.pem" });
    await pluginSecret({ "ca-cert.pem": await b64("leafish.pem"), "ca-key.pem": await b64("int.pk8"), "root-cert.pem": await b64("root.pem") });
    await expect(ca.refresh()).rejects.toMatchObject({ message: expect.stringContaining("not a CA certificate") });
    await pluginSecret({ "ca-cert.pem": await b64("int.pem"), "ca-key.pem": await b64("int.pk8"), "root-cert.pem": await b64("int.pem") });
    await expect(ca.refresh()).rejects.toMatchObject({ message: expect.stringContaining("does not chain to root-cert.pem") });
    await pluginSecret({ "ca-cert.pem": await b64("int.pem") });
    await expect(ca.refresh()).rejects.toMatchObject({ message: expect.stringContaining("lacks ca-key.pem, root-cert.pem") });
    expect(ca.ready).toBe(false);
  });

  it("signs with a valid plug-in intermediate and hands out the chain up to the user's root", async () => {
    await pluginSecret({ "ca-cert.pem": await b64("int.pem"), "ca-key.pem": await b64("int.pk8"), "root-cert.pem": await b64("root.pem") });
    const ca = new MeshCa({ client: t.client, namespace: "ambit-system", trustDomain: "cluster.local", log, mayWrite: () => true, maxCertTtlSeconds: 3600 });
    await ca.refresh();
    expect(ca.source).toBe("plug-in");
    const issued = ca.issueWorkload(spki(), URI, 3600);
    expect(issued.certChainPem).toHaveLength(2);
    expect(new X509Certificate(issued.certChainPem[0]!).issuer).toContain("mesh-intermediate");
    expect(await verify(ca.trustBundle(), issued.certChainPem)).toBe(true);
    await t.client.delete(`/api/v1/namespaces/ambit-system/secrets/${PLUGIN_CA_SECRET}`);
  });

  it("creates its own root only when allowed to write, and a rotation keeps the old root trusted until its certificates expire", async () => {
    let now = Date.now();
    const follower = new MeshCa({
      client: t.client,
      namespace: "ambit-system",
      trustDomain: "cluster.local",
      log,
      mayWrite: () => false,
      maxCertTtlSeconds: 3600,
      now: () => new Date(now),
    });
    await follower.refresh();
    expect(follower.ready).toBe(false);
    const leader = new MeshCa({
      client: t.client,
      namespace: "ambit-system",
      trustDomain: "cluster.local",
      log,
      mayWrite: () => true,
      maxCertTtlSeconds: 3600,
      now: () => new Date(now),
    });
    await leader.refresh();
    await follower.refresh();
    expect(follower.trustBundle()).toEqual(leader.trustBundle());
    const secret = await t.client.get(`/api/v1/namespaces/ambit-system/secrets/${CA_SECRET}`);
    expect(Object.keys(secret.data as object).sort()).toEqual(["ca.crt", "ca.key", "retired-roots.json"]);

    const before = leader.issueWorkload(spki(), URI, 3600);
    await leader.rotateRoot();
    await follower.refresh();
    expect(leader.trustBundle()).toHaveLength(2);
    expect(follower.trustBundle()).toEqual(leader.trustBundle());
    const after = follower.issueWorkload(spki(), URI, 3600);
    // Both generations verify against the overlapping bundle; the new one is signed by the new root only.
    expect(await verify(leader.trustBundle(), before.certChainPem)).toBe(true);
    expect(await verify(leader.trustBundle(), after.certChainPem)).toBe(true);
    expect(await verify([leader.trustBundle()[1]!], after.certChainPem)).toBe(false);
    // Once every certificate of the old root has expired, the old root leaves the bundle.
    now += (3600 + 301) * 1000;
    await leader.refresh();
    expect(leader.trustBundle()).toHaveLength(1);
    expect(await verify(leader.trustBundle(), after.certChainPem)).toBe(true);
  });
});
