// `ambit dev ...`: the local sandbox commands.
import type { Argv } from "yargs";
import type * as Sandbox from "../sandbox/index.ts";

// Loaded when a dev command runs: the sandbox is most of the CLI's code, and the operator commands never need it.
const loadSandbox = (): Promise<typeof Sandbox> => import("../sandbox/index.ts");

function printStatus(s: Sandbox.SandboxStatus): void {
  if (!s.running) {
    console.log("The sandbox is not running. Start it with `npx ambit dev up`.");
    return;
  }
  console.log(`API server: ${s.apiUrl}   kubeconfig: ${s.kubeconfig}\n`);
  const table = (rows: string[][]) => {
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
    for (const r of rows)
      console.log(
        r
          .map((c, i) => c.padEnd(widths[i]!))
          .join("   ")
          .trimEnd(),
      );
  };
  table([["NODE", "IP", "INTERFACE", "POD CIDR", "NETNS"], ...s.nodes.map((n) => [n.name, n.ip, n.interface, n.podCidr, n.netns])]);
  console.log();
  table([
    ["NAMESPACE", "POD", "NODE", "IP", "PHASE", "READY", "NETNS"],
    ...s.pods.map((p) => [p.namespace, p.name, p.node, p.ip, p.phase, String(p.ready), p.netns]),
  ]);
}

export function devCommands(yargs: Argv, execCommand: string[]): Argv {
  return yargs
    .command(
      "up",
      "start a real multi-node cluster on this machine (network namespaces, CNI, iptables) with the demo application",
      (y) =>
        y
          .option("nodes", { type: "number", default: 2, describe: "number of nodes" })
          .option("demo", { type: "boolean", default: true, describe: "deploy the demo application (--no-demo to skip)" })
          .option("mesh", { type: "boolean", default: false, describe: "deploy the Ambit agent and enroll the demo namespace" }),
      async (argv) => {
        const sandbox = await loadSandbox();
        if (!Number.isInteger(argv.nodes) || argv.nodes < 1 || argv.nodes > 50)
          throw new sandbox.SandboxError("AMBIT_E_USAGE", "--nodes must be an integer from 1 to 50");
        await sandbox.up({ nodes: argv.nodes, demo: argv.demo, mesh: argv.mesh });
      },
    )
    .command("down", "remove every namespace, process, interface, rule and file of the sandbox", {}, async () => {
      await (await loadSandbox()).down();
    })
    .command(
      "status",
      "show nodes and pods of the sandbox",
      (y) => y.option("output", { alias: "o", choices: ["table", "json"] as const, default: "table" as const }),
      async (argv) => {
        const s = await (await loadSandbox()).status();
        if (argv.output === "json") console.log(JSON.stringify(s, null, 2));
        else printStatus(s);
      },
    )
    .command(
      "exec <pod>",
      "run a command inside a pod's netns and environment: ambit dev exec <pod> -- <command...>",
      (y) => y.positional("pod", { type: "string", demandOption: true, describe: "<namespace>/<pod>, or <namespace>/<deployment>" }),
      async (argv) => {
        const sandbox = await loadSandbox();
        const command = execCommand;
        if (command.length === 0)
          throw new sandbox.SandboxError("AMBIT_E_USAGE", "no command given; e.g. ambit dev exec demo/client -- curl -s http://orders.demo/");
        process.exitCode = await sandbox.exec(argv.pod, command);
      },
    )
    .command(
      "logs <pod>",
      "print a pod's container log",
      (y) =>
        y
          .positional("pod", { type: "string", demandOption: true })
          .option("container", { alias: "c", type: "string" })
          .option("follow", { alias: "f", type: "boolean", default: false }),
      async (argv) => {
        await (await loadSandbox()).logs(argv.pod, { ...(argv.container ? { container: argv.container } : {}), follow: argv.follow });
      },
    )
    .command("kubeconfig", "print the path of the sandbox's kubeconfig", {}, async () => {
      console.log((await loadSandbox()).kubeconfigPath());
    })
    .demandCommand(1, "name a dev command: up, down, status, exec, logs, kubeconfig");
}
