// The CNI installer program: a container of the agent's pod that keeps Ambit installed on its node.
import pino from "pino";
import { KubeClient } from "../../kube/client.ts";
import { inClusterConfig } from "../../kube/credentials.ts";
import { ownerDaemonSetStays } from "../../kube/owner.ts";
import { ambitChainEntry, loadInstallerConfig } from "./config.ts";
import { CniInstaller } from "./installer.ts";

const config = loadInstallerConfig();
const log = pino({ level: config.logLevel, base: { component: "cni-installer" } });
const installer = new CniInstaller({
  confDir: config.confDir,
  binDir: config.binDir,
  pluginSource: config.pluginSource,
  ambitConfig: ambitChainEntry(config),
  rescanMs: config.rescanMs,
  pluginCredentials: config.pluginCredentials,
  readyFile: config.readyFile,
  log,
});
const stop = new AbortController();
for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => stop.abort());
await installer.run(stop.signal);

// Leaving: Ambit stays chained through a restart or upgrade (the plugin fails closed while no agent answers, so no
// enrolled pod starts uncaptured meanwhile). Only when no agent will come back, the DaemonSet being gone, is it
// taken off the node; an API that cannot say leaves it installed.
let uninstall = false;
if (config.podName) {
  const client = new KubeClient(inClusterConfig());
  try {
    uninstall = !(await ownerDaemonSetStays(client, config.podNamespace, config.podName));
  } catch (err) {
    log.warn({ err: String(err) }, "cannot tell whether the DaemonSet stays; leaving Ambit installed");
  } finally {
    client.close();
  }
}
if (uninstall) await installer.uninstall();
log.info({ uninstalled: uninstall }, "CNI installer stopped");
