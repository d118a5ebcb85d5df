// Every AMBIT_E_* code, one table per domain, with what it means and what to do: docs/errors.md is generated from here.
import { type CodeOf, errorDomain } from "./errors.ts";

export const CONFIG_ERRORS = errorDomain("config", "Environment variables of the agent, the controller and the CNI installer, checked at start.", {
  invalid: {
    code: "AMBIT_E_CONFIG",
    meaning: "One or more environment variables are out of range or malformed; the message names every one with its valid range.",
    action: "Fix the named variables (Helm values or the Deployment/DaemonSet env) and restart the program.",
  },
});

export const CLI_ERRORS = errorDomain("cli", "The `ambit` and `kubectl ambit` commands (exit status 1 unless said otherwise).", {
  usage: {
    code: "AMBIT_E_USAGE",
    meaning: "Bad arguments, e.g. `--workload` not `ns/pod` (exit status 2).",
    action: "Run the command with `--help` and correct the arguments.",
  },
  kubeconfig: {
    code: "AMBIT_E_KUBECONFIG",
    meaning: "The kubeconfig is unreadable, names an unknown `--context`, or has no current cluster.",
    action: "Check `KUBECONFIG`/`--kubeconfig` and `kubectl config get-contexts`.",
  },
  apiUnreachable: {
    code: "AMBIT_E_API_UNREACHABLE",
    meaning: "The Kubernetes API server does not answer.",
    action: "Check the cluster address in the kubeconfig and that `kubectl get nodes` works from here.",
  },
  forbidden: {
    code: "AMBIT_E_FORBIDDEN",
    meaning: "The API server answered 401 or 403.",
    action: "Check the credentials and RBAC: pods, pods/portforward, namespaces patch, leases, the CRDs.",
  },
  noMesh: {
    code: "AMBIT_E_NO_MESH",
    meaning: "No agent pod was found: the mesh is not installed, or no agent is scheduled on that node.",
    action: "Install the chart (`daemonset/`) and check the agent DaemonSet's pods.",
  },
  unknownNode: { code: "AMBIT_E_UNKNOWN_NODE", meaning: "No node has the name given.", action: "`kubectl get nodes` lists them." },
  unknownPod: {
    code: "AMBIT_E_UNKNOWN_POD",
    meaning: "No pod, and no running pod of a workload, has the name given.",
    action: "`kubectl get pods -n <namespace>` lists them.",
  },
  unknownNamespace: { code: "AMBIT_E_UNKNOWN_NAMESPACE", meaning: "No namespace has the name given.", action: "`kubectl get namespaces` lists them." },
  agentUnreachable: {
    code: "AMBIT_E_AGENT_UNREACHABLE",
    meaning: "The agent pod exists but its admin API (localhost:15000) did not answer through the port-forward.",
    action: "Check the agent pod's readiness and logs; the port-forward needs pods/portforward permission.",
  },
  agentBadAnswer: {
    code: "AMBIT_E_AGENT_BAD_ANSWER",
    meaning: "The agent's `/config_dump` is not what this CLI reads (no policies): not an Ambit agent of this version.",
    action: "Use the CLI of the same release as the installed mesh.",
  },
  timeout: {
    code: "AMBIT_E_TIMEOUT",
    meaning: "`enroll`/`unenroll`: pods were still not captured or released at `--timeout` (they are named).",
    action: "Look at the named pods' agent logs and `ambit.dev/redirection` annotation; retry with a longer `--timeout`.",
  },
  unhealthy: {
    code: "AMBIT_E_UNHEALTHY",
    meaning: "`status`/`check` found problems, listed above the error (exit status 3).",
    action: "Fix the problems listed, then run the check again.",
  },
  internal: { code: "AMBIT_E_INTERNAL", meaning: "A bug: an error without a code; the stack trace follows.", action: "Report it with the stack trace." },
});

export const DATAPLANE_ERRORS = errorDomain("dataplane", "Connections the agent refuses or fails to carry (logged with the code, counted in Istio metrics).", {
  agentPort: {
    code: "AMBIT_E_AGENT_PORT",
    meaning: "The destination port is the agent's own inside captured pods (15001, 15006, 15008); delivering it would loop.",
    action: "Address the application's port instead; nothing may be sent to the agent's in-pod ports.",
  },
  selfConnect: {
    code: "AMBIT_E_SELF_CONNECT",
    meaning: "A pod connected to the agent's outbound listener itself (e.g. 127.0.0.1:15001) rather than being redirected to it.",
    action: "Fix the application's destination; the agent's listeners are not a proxy to dial.",
  },
  noEndpoint: {
    code: "AMBIT_E_NO_ENDPOINT",
    meaning: "The Service has no such port, or no ready endpoint pod for it.",
    action: "Check `kubectl get endpointslices -l kubernetes.io/service-name=<service>` and the pods' readiness.",
  },
  noWaypoint: {
    code: "AMBIT_E_NO_WAYPOINT",
    meaning:
      "The destination is bound to a waypoint (ambit.dev/use-waypoint) that does not exist or has no ready pod: the connection is refused rather than sent around it.",
    action: "Create the waypoint Gateway (class ambit-waypoint) or fix its pods (`kubectl get gateway -n <ns>`), or remove the label (`none` opts out).",
  },
  policyDenied: {
    code: "AMBIT_E_POLICY_DENIED",
    meaning: "The destination's AuthorizationPolicy or PeerAuthentication denied the connection (response_flags DENIED).",
    action: "`ambit explain` shows which policy decided; change the policy if the connection should be allowed.",
  },
});

export const HBONE_ERRORS = errorDomain("hbone", "The agent's HBONE client: mTLS HTTP/2 CONNECT tunnels to other agents on port 15008.", {
  connect: {
    code: "AMBIT_E_HBONE_CONNECT",
    meaning: "The tunnel to the destination's port 15008 could not be opened or broke (TCP, TLS or HTTP/2).",
    action: "Check that nothing (a NetworkPolicy, a firewall) blocks port 15008 between nodes, and the destination agent's logs.",
  },
  identity: {
    code: "AMBIT_E_HBONE_IDENTITY",
    meaning: "The peer's certificate is not the identity expected for the destination.",
    action: "Check that the destination pod's agent holds the identity of that pod's service account, and the trust bundle.",
  },
  rejected: {
    code: "AMBIT_E_HBONE_REJECTED",
    meaning: "The destination agent answered the CONNECT with an error status (400, 401 policy, 503 upstream).",
    action: "The destination agent's log line for the stream says why.",
  },
});

export const NATIVE_ERRORS = errorDomain("native", "The agent's native addon: listeners in pod network namespaces, SO_ORIGINAL_DST, SO_MARK.", {
  missing: {
    code: "AMBIT_E_NATIVE_MISSING",
    meaning: "The native addon is not built or cannot be loaded.",
    action: "Run `npm ci` (it builds `agent/native`) on a Linux machine with a C toolchain.",
  },
  argument: { code: "AMBIT_E_NATIVE_ARGUMENT", meaning: "The addon was called with a bad argument.", action: "A bug: report it." },
  netns: {
    code: "AMBIT_E_NATIVE_NETNS",
    meaning: "A pod's network namespace could not be opened or entered.",
    action: "Check that the path exists (the pod may be gone) and that the agent runs privileged.",
  },
  notNetns: {
    code: "AMBIT_E_NATIVE_NOT_NETNS",
    meaning: "The path given as a pod's network namespace is not one.",
    action: "Check the netns path the runtime reported for the pod.",
  },
  addrInUse: {
    code: "AMBIT_E_NATIVE_ADDRINUSE",
    meaning: "A capture port (15001, 15006, 15008) is taken inside the pod by something other than an agent.",
    action: "Free the port in the pod: the application may not listen on the agent's ports.",
  },
  socket: {
    code: "AMBIT_E_NATIVE_SOCKET",
    meaning: "A socket call failed (the syscall and errno are on the error).",
    action: "Check the agent's capabilities (CAP_NET_ADMIN) and the errno.",
  },
  originalDst: {
    code: "AMBIT_E_NATIVE_ORIGINAL_DST",
    meaning: "SO_ORIGINAL_DST gave no original destination: the connection was not redirected by the capture rules.",
    action: "Check the pod's iptables rules (`ambit check`), which the agent repairs every 30 s.",
  },
  noFd: {
    code: "AMBIT_E_NATIVE_NO_FD",
    meaning: "The socket has no file descriptor (closed, or not a TCP socket).",
    action: "Usually a connection that closed meanwhile; report it if it repeats.",
  },
});

export const AGENT_ERRORS = errorDomain("agent", "The node agent's configuration from the controller, its policy store and identities.", {
  configInvalid: {
    code: "AMBIT_E_CONFIG_INVALID",
    meaning: "A config version from the controller is malformed; the agent refuses it whole (nack) and keeps the last one.",
    action: "Run agent and controller of the same release; the controller's log names the version refused.",
  },
  policyInvalid: {
    code: "AMBIT_E_POLICY_INVALID",
    meaning: "A compiled policy from the controller cannot be used; the config version is refused.",
    action: "Check the policy's status condition and the controller's log.",
  },
  identityMissing: {
    code: "AMBIT_E_IDENTITY_MISSING",
    meaning: "The agent holds no certificate for an identity a connection needs.",
    action: "Check the agent's log for CA errors (AMBIT_E_CA_*) and `ambit_certificate_expiration_timestamp_seconds`.",
  },
});

export const IDENTITY_ERRORS = errorDomain("identity", "SPIFFE IDs, parsed the same way by every component.", {
  invalid: {
    code: "AMBIT_E_IDENTITY_INVALID",
    meaning: "A SPIFFE ID is malformed (the reason uses go-spiffe's words).",
    action: "Use `spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>`.",
  },
});

export const CA_ERRORS = errorDomain("ca", "The controller's CA: its signing root and the CSR endpoint (port 15012) agents ask for certificates.", {
  unauthenticated: {
    code: "AMBIT_E_CA_UNAUTHENTICATED",
    meaning: "The CSR carried no valid token (TokenReview refused it, or its audience is not `ambit-ca`).",
    action: "Mount a projected service-account token with audience `ambit-ca` in the agent (the chart does).",
  },
  notAnAgent: {
    code: "AMBIT_E_CA_NOT_AN_AGENT",
    meaning: "The token is not the agent's service account.",
    action: "Only the agent DaemonSet may ask for workload certificates.",
  },
  noNode: {
    code: "AMBIT_E_CA_NO_NODE",
    meaning: "The agent's token is not bound to a pod on a node.",
    action: "Use a projected (pod-bound) token, not a long-lived Secret token.",
  },
  notOnNode: {
    code: "AMBIT_E_CA_IDENTITY_NOT_ON_NODE",
    meaning: "No pod with that identity runs on the agent's node, so the CA will not sign it.",
    action: "Usually a pod not yet known to the controller; it is retried. If it persists, check the pod's node and service account.",
  },
  notPodBound: {
    code: "AMBIT_E_CA_TOKEN_NOT_POD_BOUND",
    meaning:
      "A caller that is not an agent presented a token without the pod claims (a TokenRequest without boundObjectRef, a Secret token): it proves no pod.",
    action: "Mount a projected service-account token with audience ambit-ca (as the waypoint Deployment does).",
  },
  podNotLive: {
    code: "AMBIT_E_CA_POD_NOT_LIVE",
    meaning: "The token's pod is gone (or replaced by another with the same name), terminating, or finished.",
    action: "Nothing for a pod being replaced; otherwise check that the pod runs (`kubectl get pod`).",
  },
  podServiceAccount: {
    code: "AMBIT_E_CA_POD_SERVICE_ACCOUNT",
    meaning: "The token's service account is not the one its pod runs as.",
    action: "Use the pod's own projected token, not one of another service account.",
  },
  notOwnIdentity: {
    code: "AMBIT_E_CA_NOT_OWN_IDENTITY",
    meaning: "A pod that is not an agent asked for an identity other than its own (spiffe://<td>/ns/<its namespace>/sa/<its service account>).",
    action: "Ask for the pod's own identity; only node agents may obtain identities of other pods, those on their node.",
  },
  trustDomain: {
    code: "AMBIT_E_CA_TRUST_DOMAIN",
    meaning: "The identity asked for is in another trust domain than the CA's.",
    action: "Set the same trust domain for agents and controller.",
  },
  badRequest: {
    code: "AMBIT_E_CA_BAD_REQUEST",
    meaning: "The CSR request is not what the endpoint accepts.",
    action: "Run agent and controller of the same release.",
  },
  badCsr: {
    code: "AMBIT_E_CA_BAD_CSR",
    meaning: "The CSR is malformed, unsigned, or names more than the one SPIFFE URI.",
    action: "Run agent and controller of the same release.",
  },
  tooLarge: { code: "AMBIT_E_CA_TOO_LARGE", meaning: "The request body is larger than the endpoint accepts.", action: "A bug or a foreign client: report it." },
  notFound: { code: "AMBIT_E_CA_NOT_FOUND", meaning: "No such path on the CSR endpoint.", action: "Point the agent at the controller's CSR port (15012)." },
  notReady: {
    code: "AMBIT_E_CA_NOT_READY",
    meaning: "The CA has no signing root yet (the leader has not created or loaded it).",
    action: "Wait for a controller replica to lead; check the controller's log and the `ambit-ca` Secret.",
  },
  internal: { code: "AMBIT_E_CA_INTERNAL", meaning: "The CA failed to sign.", action: "Check the controller's log." },
  plugin: {
    code: "AMBIT_E_CA_PLUGIN",
    meaning: "The plugged-in CA (Secret `cacerts`) is incomplete or inconsistent.",
    action: "Provide ca-cert.pem, ca-key.pem, root-cert.pem and cert-chain.pem as Istio's plug-in CA expects, key matching certificate.",
  },
  secret: {
    code: "AMBIT_E_CA_SECRET",
    meaning: "The controller's own root Secret (`ambit-ca`) is unreadable or malformed.",
    action: "Delete the Secret to have a new root created (workloads get new certificates), or restore it.",
  },
  refused: {
    code: "AMBIT_E_CA_REFUSED",
    meaning: "The CA refused a CSR with an answer that carried no code.",
    action: "Run agent and controller of the same release; the message has the CA's status.",
  },
  badAnswer: {
    code: "AMBIT_E_CA_BAD_ANSWER",
    meaning: "The CA answered 200 without a certificate chain, trust bundle and expiry.",
    action: "Run agent and controller of the same release.",
  },
  token: {
    code: "AMBIT_E_CA_TOKEN",
    meaning: "The agent cannot read its CA token file.",
    action: "Mount a projected serviceAccountToken with audience `ambit-ca` at the path AMBIT_CA_TOKEN_FILE names.",
  },
  unreachable: {
    code: "AMBIT_E_CA_UNREACHABLE",
    meaning: "The agent cannot reach the controller's CSR endpoint.",
    action: "Check the `ambit-controller` Service and its pods; pods needing a new identity cannot be captured meanwhile.",
  },
});

export const CONFIG_STREAM_ERRORS = errorDomain("config-stream", "The config stream between agents and the controller (port 15010).", {
  protocol: {
    code: "AMBIT_E_CONFIG_STREAM_PROTOCOL",
    meaning: "A message on the stream is not what the protocol allows.",
    action: "Run agent and controller of the same release.",
  },
  unauthenticated: {
    code: "AMBIT_E_CONFIG_STREAM_UNAUTHENTICATED",
    meaning: "The controller could not authenticate the agent (certificate or token).",
    action: "Check the agent's certificate and its projected token.",
  },
  forbidden: {
    code: "AMBIT_E_CONFIG_STREAM_FORBIDDEN",
    meaning: "The agent may not ask for that node's config.",
    action: "An agent asks only for its own node; check the node name it runs with.",
  },
  helloTimeout: {
    code: "AMBIT_E_CONFIG_STREAM_HELLO_TIMEOUT",
    meaning: "The agent opened the stream but did not say hello in time.",
    action: "Check the agent's log; it reconnects on its own.",
  },
  notFound: { code: "AMBIT_E_CONFIG_STREAM_NOT_FOUND", meaning: "No such path on the config stream port.", action: "Point the agent at port 15010." },
  connect: {
    code: "AMBIT_E_CONFIG_STREAM_CONNECT",
    meaning: "The agent cannot reach the controller; it keeps serving from the last config and reconnects with backoff.",
    action: "Check the `ambit-controller` Service and pods; `ambit_config_stale_seconds` says for how long.",
  },
  rejected: {
    code: "AMBIT_E_CONFIG_STREAM_REJECTED",
    meaning: "The controller refused the stream with a status that carried no known code.",
    action: "The message has the status; run agent and controller of the same release.",
  },
  closed: { code: "AMBIT_E_CONFIG_STREAM_CLOSED", meaning: "The stream closed.", action: "None: the agent reconnects and resumes by version." },
  idle: {
    code: "AMBIT_E_CONFIG_STREAM_IDLE",
    meaning: "Nothing arrived on the stream for longer than its keep-alive allows.",
    action: "None: the agent reconnects; if it repeats, check the network between agent and controller.",
  },
  outOfOrder: {
    code: "AMBIT_E_CONFIG_STREAM_OUT_OF_ORDER",
    meaning: "A delta did not follow the version the agent holds.",
    action: "None: the agent reconnects and gets a snapshot.",
  },
  updateFailed: {
    code: "AMBIT_E_CONFIG_STREAM_UPDATE_FAILED",
    meaning: "Applying a config version failed in the agent; it was refused (nack).",
    action: "The agent's log has the reason and the version.",
  },
});

export const CONTROLLER_ERRORS = errorDomain("controller", "The controller's leader election and its debug endpoint.", {
  leaderConfig: {
    code: "AMBIT_E_LEADER_CONFIG",
    meaning: "The leader election timings are inconsistent (e.g. renew deadline not above the retry period times its factor).",
    action: "Fix AMBIT_LEASE_DURATION_MS, AMBIT_RENEW_DEADLINE_MS, AMBIT_RETRY_PERIOD_MS as the message says.",
  },
  leaderLease: {
    code: "AMBIT_E_LEADER_LEASE",
    meaning: "The Lease could not be read or written, or leadership was lost.",
    action: "Check RBAC for coordination.k8s.io leases and the API server; another replica takes over.",
  },
  leaderTimeout: {
    code: "AMBIT_E_LEADER_TIMEOUT",
    meaning: "A Lease request got no answer in time.",
    action: "Check the API server's health; the elector retries.",
  },
  leaderRelease: {
    code: "AMBIT_E_LEADER_RELEASE",
    meaning: "Releasing the Lease at shutdown failed; the next leader waits for it to expire.",
    action: "None needed; check the API server if it repeats.",
  },
  leaderCallback: {
    code: "AMBIT_E_LEADER_CALLBACK",
    meaning: "Work started on becoming leader (root CA, trust bundle, policy status) failed.",
    action: "The controller's log has the callback and the error.",
  },
  debugLocalOnly: {
    code: "AMBIT_E_DEBUG_LOCAL_ONLY",
    meaning: "`/debug/status` answers only on localhost.",
    action: "`kubectl port-forward` to the controller pod and ask http://127.0.0.1:15014/debug/status.",
  },
});

export const PKI_ERRORS = errorDomain("pki", "Certificates and CSRs, encoded and read as DER.", {
  der: { code: "AMBIT_E_DER", meaning: "DER input is truncated or malformed.", action: "Check the certificate or CSR given; a bug if Ambit made it." },
  csrMalformed: { code: "AMBIT_E_CSR_MALFORMED", meaning: "The CSR is not a PKCS#10 request.", action: "Send a PKCS#10 CSR in DER or PEM." },
  csrKey: { code: "AMBIT_E_CSR_KEY", meaning: "The CSR's key is not ECDSA P-256.", action: "Workload keys are ECDSA P-256." },
  csrSignature: { code: "AMBIT_E_CSR_SIGNATURE", meaning: "The CSR's signature does not verify.", action: "Sign the CSR with the key it carries." },
  csrSan: {
    code: "AMBIT_E_CSR_SAN",
    meaning: "The CSR does not carry exactly one URI SAN.",
    action: "A workload CSR names one SPIFFE URI and nothing else.",
  },
  leafRequest: {
    code: "AMBIT_E_LEAF_REQUEST",
    meaning: "A certificate was asked for with no name, or with a SAN that is not what its type says.",
    action: "A bug in the caller: report it.",
  },
});

export const CNI_ERRORS = errorDomain("cni", "The `ambit-cni` plugin, its socket protocol with the agent, and its installer.", {
  protocol: {
    code: "AMBIT_E_CNI_PROTOCOL",
    meaning: "A message on the agent's CNI socket is malformed or too large.",
    action: "Run plugin and agent of the same release (the installer keeps them together).",
  },
  badRequest: {
    code: "AMBIT_E_CNI_BAD_REQUEST",
    meaning: "A CNI request lacks fields or has mistyped ones; every one is named.",
    action: "Run plugin and agent of the same release.",
  },
  timeout: {
    code: "AMBIT_E_CNI_TIMEOUT",
    meaning: "The agent did not answer the plugin in time; the runtime retries the pod.",
    action: "Check the agent on that node (ready, not overloaded); `timeoutMs` in the chain entry sets the wait.",
  },
  agentUnreachable: {
    code: "AMBIT_E_CNI_AGENT_UNREACHABLE",
    meaning: "No agent listens on the node's CNI socket. Pods of enrolled namespaces then fail ADD (the runtime retries); others start.",
    action: "Check the agent DaemonSet's pod on that node.",
  },
  handler: {
    code: "AMBIT_E_CNI_HANDLER",
    meaning: "The agent failed to handle a CNI request with an error that carried no code.",
    action: "The agent's log has the error.",
  },
  check: {
    code: "AMBIT_E_CNI_CHECK",
    meaning: "CNI CHECK: a pod that should be captured is not, or its capture rules are missing.",
    action: "The agent repairs capture every 30 s; if it persists, read the agent's log for that pod.",
  },
  config: {
    code: "AMBIT_E_CNI_CONFIG",
    meaning: "The installer cannot chain Ambit into the node's CNI network configuration (not JSON, no plugins list).",
    action: "Check the primary CNI's conflist in the node's CNI conf dir.",
  },
  incompatibleVersion: {
    code: "AMBIT_E_CNI_INCOMPATIBLE_VERSION",
    meaning: "The runtime asked for a CNI version the plugin does not support (CNI error 1).",
    action: "Use a runtime speaking CNI 0.4.0 to 1.1.0.",
  },
  invalidEnvironment: {
    code: "AMBIT_E_CNI_INVALID_ENVIRONMENT",
    meaning: "A CNI_* variable is missing or unknown (CNI error 4).",
    action: "The plugin runs only under a container runtime, which sets CNI_COMMAND and the others.",
  },
  decode: {
    code: "AMBIT_E_CNI_DECODE",
    meaning: "The network configuration on stdin is not a JSON object (CNI error 6).",
    action: "Check the conflist the installer wrote.",
  },
  invalidConfig: {
    code: "AMBIT_E_CNI_INVALID_CONFIG",
    meaning: "The network configuration has a bad field, named in the message (CNI error 7).",
    action: "Check Ambit's entry in the conflist; the installer writes it from the chart's values.",
  },
  tryAgain: {
    code: "AMBIT_E_CNI_TRY_AGAIN",
    meaning: "The pod cannot be set up for the mesh yet (CNI error 11); the runtime retries.",
    action: "Usually the agent starting or the CA unreachable; read the details and the agent's log.",
  },
  agentUnavailable: {
    code: "AMBIT_E_CNI_AGENT_UNAVAILABLE",
    meaning: "The agent is not ready or not available (CNI error 50).",
    action: "Check the agent DaemonSet's pod on that node.",
  },
  agentRefused: {
    code: "AMBIT_E_CNI_AGENT_REFUSED",
    meaning: "The agent could not set the pod up; its own code is in the details (CNI error 100).",
    action: "Look up the code in the details, and the agent's log for the pod.",
  },
});

export const KUBE_ERRORS = errorDomain("kube", "Requests to the Kubernetes API.", {
  request: {
    code: "AMBIT_E_KUBE_REQUEST",
    meaning: "The API server answered with an error status; the status and reason are on the error.",
    action: "Read the reason: RBAC (403), a missing object (404), a conflict (409) retried by the caller.",
  },
});

export const CHART_ERRORS = errorDomain("chart", "Rendering the Helm chart (`helm/`): values, schema and Go templates.", {
  valuesInvalid: {
    code: "AMBIT_E_VALUES_INVALID",
    meaning: "The values break the chart's values.schema.json; each violation is named by its `--set` path.",
    action: "Fix the named values.",
  },
  valuesSchema: { code: "AMBIT_E_VALUES_SCHEMA", meaning: "The chart's values.schema.json cannot be used.", action: "A mistake in the chart: fix the schema." },
  templateParse: { code: "AMBIT_E_TEMPLATE_PARSE", meaning: "A template does not parse.", action: "Fix the template at the position named." },
  templateExec: {
    code: "AMBIT_E_TEMPLATE_EXEC",
    meaning: "A template failed while rendering (`required`, `fail`, a bad call).",
    action: "Read the message: usually a value the chart requires.",
  },
  unsupported: {
    code: "AMBIT_E_CHART_UNSUPPORTED",
    meaning: "The chart uses a Helm feature this renderer does not support.",
    action: "Remove the feature from the chart, or render it with Helm.",
  },
});

export const SANDBOX_ERRORS = errorDomain("sandbox", "`ambit dev`: the local sandbox cluster, its kubelets and host commands.", {
  prereq: {
    code: "AMBIT_E_SANDBOX_PREREQ",
    meaning: "Something `ambit dev up` needs is missing (root, a command, a kernel feature); the message says how to fix it (exit status 2).",
    action: "Do what the message says, e.g. install the Debian package it names.",
  },
  running: { code: "AMBIT_E_SANDBOX_RUNNING", meaning: "The sandbox is already running.", action: "Run `ambit dev down` first." },
  notRunning: { code: "AMBIT_E_SANDBOX_NOT_RUNNING", meaning: "The sandbox is not running.", action: "Start it with `npx ambit dev up`." },
  start: {
    code: "AMBIT_E_SANDBOX_START",
    meaning: "The sandbox supervisor failed while starting.",
    action: "Read the supervisor log named in the message; `ambit dev down` cleans up.",
  },
  timeout: {
    code: "AMBIT_E_SANDBOX_TIMEOUT",
    meaning: "The sandbox did not become ready in time.",
    action: "Read the supervisor and kubelet logs in the sandbox's log directory (`ambit dev logs` shows a pod's).",
  },
  demo: {
    code: "AMBIT_E_SANDBOX_DEMO",
    meaning: "The demo chain does not answer correctly.",
    action: "Check the demo pods' logs (`ambit dev logs`) and the agents'.",
  },
  podRef: { code: "AMBIT_E_SANDBOX_POD_REF", meaning: "Not a pod reference.", action: "Use <namespace>/<pod>, e.g. demo/client." },
  podNotFound: { code: "AMBIT_E_SANDBOX_POD_NOT_FOUND", meaning: "No such pod in the sandbox.", action: "`kubectl get pods -A` lists them." },
  podNotReady: { code: "AMBIT_E_SANDBOX_POD_NOT_READY", meaning: "The pod has not started yet.", action: "Try again in a moment." },
  noLogs: { code: "AMBIT_E_SANDBOX_NO_LOGS", meaning: "The pod has no log yet.", action: "Try again once it has run." },
  command: {
    code: "AMBIT_E_SANDBOX_COMMAND",
    meaning: "A host command (iptables-restore, ip, a CNI plugin) could not start, exited non-zero or timed out.",
    action: "The message has the command and its stderr.",
  },
  env: {
    code: "AMBIT_E_SANDBOX_ENV",
    meaning: "A container's environment cannot be built (a missing ConfigMap, Secret or key).",
    action: "Create what the message names, or mark the reference optional.",
  },
  image: {
    code: "AMBIT_E_SANDBOX_IMAGE",
    meaning: "The image is not one the sandbox can run.",
    action: "Use one of the images listed, or set the container's command to a program installed on this machine.",
  },
  volume: {
    code: "AMBIT_E_SANDBOX_VOLUME",
    meaning: "A pod volume cannot be set up (kind not supported, or its source is missing).",
    action: "Read the message; create the ConfigMap or Secret it names.",
  },
  cni: {
    code: "AMBIT_E_CNI",
    meaning: "A CNI plugin run by the sandbox kubelet failed; the plugin and its CNI error are on the error.",
    action: "Read the plugin's message; `ambit dev down` and `up` start clean.",
  },
  tokenKey: {
    code: "AMBIT_E_TOKEN_KEY",
    meaning: "The sandbox API server's token signing key is unusable.",
    action: "`ambit dev down` and `up` make a new one.",
  },
  tokenClaims: { code: "AMBIT_E_TOKEN_CLAIMS", meaning: "A token was asked for with claims the API server cannot sign.", action: "A bug: report it." },
});

/** Kubernetes Status reasons the sandbox API server answers with, each its own code (`NotFound` -> AMBIT_E_API_NOT_FOUND). */
export const API_ERRORS = errorDomain("sandbox-api", "The sandbox API server's answers, by Kubernetes Status reason.", {
  BadRequest: {
    code: "AMBIT_E_API_BAD_REQUEST",
    meaning: "The request is malformed (400).",
    action: "Read the message; the client sent something the API does not accept.",
  },
  Unauthorized: { code: "AMBIT_E_API_UNAUTHORIZED", meaning: "No valid credentials (401).", action: "Use the sandbox's kubeconfig or a valid token." },
  Forbidden: { code: "AMBIT_E_API_FORBIDDEN", meaning: "The credentials may not do this (403).", action: "Check the RBAC of the service account used." },
  NotFound: { code: "AMBIT_E_API_NOT_FOUND", meaning: "No such object or resource (404).", action: "Check the name, namespace and resource type." },
  MethodNotAllowed: {
    code: "AMBIT_E_API_METHOD_NOT_ALLOWED",
    meaning: "The resource does not support that verb (405).",
    action: "Use a verb the resource supports.",
  },
  AlreadyExists: { code: "AMBIT_E_API_ALREADY_EXISTS", meaning: "An object with that name exists (409).", action: "Update it, or delete it first." },
  Conflict: { code: "AMBIT_E_API_CONFLICT", meaning: "The object changed since it was read (409).", action: "Read it again and retry." },
  Invalid: { code: "AMBIT_E_API_INVALID", meaning: "The object fails validation (422); the causes name the fields.", action: "Fix the fields named." },
  UnsupportedMediaType: {
    code: "AMBIT_E_API_UNSUPPORTED_MEDIA_TYPE",
    meaning: "The request's content type is not one the API server reads (415).",
    action: "Send JSON, or a patch type the resource supports.",
  },
  RequestEntityTooLarge: { code: "AMBIT_E_API_REQUEST_ENTITY_TOO_LARGE", meaning: "The request body is too large (413).", action: "Send a smaller object." },
  InternalError: { code: "AMBIT_E_API_INTERNAL_ERROR", meaning: "The API server failed (500).", action: "Read the supervisor log." },
});
export type ApiReason = keyof typeof API_ERRORS.entries;

/** Every domain's table, in the order docs/errors.md lists them. */
export const POLICY_ERRORS = errorDomain(
  "policy",
  "AuthorizationPolicy and PeerAuthentication the controller finds Invalid; the policy's status names the field path, and it fails closed.",
  {
    unknownField: {
      code: "AMBIT_E_POLICY_UNKNOWN_FIELD",
      meaning: "A field the security.istio.io/v1 schema does not have (a typo that would otherwise be ignored).",
      action: "Correct or remove the named field.",
    },
    badValue: {
      code: "AMBIT_E_POLICY_BAD_VALUE",
      meaning: "A value of the wrong shape: not a list, not a port, not a CIDR block, a principal with the spiffe:// scheme.",
      action: "Write the value as the message says (Istio's forms: principals without spiffe://, ports as numbers).",
    },
    selector: { code: "AMBIT_E_POLICY_SELECTOR", meaning: "`spec.selector` cannot be read.", action: "Write `selector: {matchLabels: {key: value}}`." },
    unsupportedAction: {
      code: "AMBIT_E_POLICY_UNSUPPORTED_ACTION",
      meaning: "CUSTOM, `provider`, or an action that is not ALLOW, DENY or AUDIT.",
      action: "Use ALLOW, DENY or AUDIT; Ambit has no external authorization provider.",
    },
    unsupportedAttribute: {
      code: "AMBIT_E_POLICY_UNSUPPORTED_ATTRIBUTE",
      meaning: "A `when` key Ambit does not evaluate where the policy is enforced.",
      action: "Use the keys listed in docs/l7-authorization.md (L4 keys for selector policies).",
    },
    tooLarge: {
      code: "AMBIT_E_POLICY_TOO_LARGE",
      meaning: "More values than an enforcer accepts in one policy.",
      action: "Split the policy, or use CIDR blocks and namespaces instead of long lists.",
    },
    forWaypoint: {
      code: "AMBIT_E_POLICY_FOR_WAYPOINT",
      meaning: "A policy bound by targetRefs was read for the node agents: it belongs to a waypoint.",
      action: "Nothing, if a waypoint enforces it; for node enforcement use `spec.selector` instead of targetRefs.",
    },
    selectorAndTargetRefs: {
      code: "AMBIT_E_POLICY_SELECTOR_AND_TARGET_REFS",
      meaning: "Both `selector` and `targetRef(s)`, or both `targetRef` and `targetRefs` (Istio refuses them too).",
      action: "Keep one: selector for the node agents, targetRefs for a waypoint.",
    },
    targetRef: {
      code: "AMBIT_E_POLICY_TARGET_REF",
      meaning: "A targetRef that is not a Gateway (gateway.networking.k8s.io) or a Service (core) of the policy's namespace.",
      action: "Point targetRefs at the waypoint Gateway or a Service in the policy's namespace.",
    },
    jwtUnsupported: {
      code: "AMBIT_E_POLICY_JWT_UNSUPPORTED",
      meaning: "`requestPrincipals`, `notRequestPrincipals` or `request.auth.*`: they need JWT validation, which Ambit does not do.",
      action: "Remove the JWT conditions; authenticate requests in the application.",
    },
    pattern: {
      code: "AMBIT_E_POLICY_PATTERN",
      meaning: "A host, path or method pattern that could never match as meant: `*` inside, a path without `/`, a path template.",
      action: "Use exact, prefix (`/api/*`), suffix (`*.txt`) or `*` patterns.",
    },
    method: {
      code: "AMBIT_E_POLICY_METHOD",
      meaning: "A method that is not an upper-case HTTP token (methods are matched case-sensitively).",
      action: "Write methods in upper case, e.g. GET.",
    },
    header: {
      code: "AMBIT_E_POLICY_HEADER",
      meaning: "`request.headers[<name>]` without a valid header name.",
      action: "Name the header, e.g. `request.headers[x-user]`.",
    },
  },
);

export const ROUTE_ERRORS = errorDomain(
  "routes",
  "HTTPRoute and GRPCRoute rules a waypoint cannot use; the route's status says Accepted=False or PartiallyInvalid with the field path.",
  {
    malformed: {
      code: "AMBIT_E_ROUTE_MALFORMED",
      meaning: "A field has the wrong JSON type or a required field is missing.",
      action: "Correct the named field (Gateway API v1 schema).",
    },
    unsupportedValue: {
      code: "AMBIT_E_ROUTE_UNSUPPORTED_VALUE",
      meaning: "An enum value this waypoint does not know (path type, method, filter type, scheme, status code).",
      action: "Use a value the Gateway API v1 standard channel defines; CORS, ExternalAuth and ExtensionRef filters are not supported.",
    },
    invalidPath: {
      code: "AMBIT_E_ROUTE_INVALID_PATH",
      meaning: "A PathPrefix/Exact path or a path replacement that is not a clean absolute path.",
      action: "Start the path with `/`, without `//`, `/./`, `/../` or a query.",
    },
    invalidRegex: {
      code: "AMBIT_E_ROUTE_INVALID_REGEX",
      meaning: "A RegularExpression match that does not compile.",
      action: "Fix the expression (JavaScript syntax, matched against the whole value).",
    },
    invalidHeader: {
      code: "AMBIT_E_ROUTE_INVALID_HEADER",
      meaning: "A header name or value outside RFC 7230, or one header named twice in one modifier.",
      action: "Use token characters for names and name each header once per modifier.",
    },
    invalidHostname: {
      code: "AMBIT_E_ROUTE_INVALID_HOSTNAME",
      meaning: "A hostname in a redirect or rewrite that is not a lower-case DNS name.",
      action: "Write a lower-case DNS name.",
    },
    incompatibleFilters: {
      code: "AMBIT_E_ROUTE_INCOMPATIBLE_FILTERS",
      meaning: "Filters that cannot go together: redirect with rewrite or with backends, a repeated filter, ReplacePrefixMatch without one PathPrefix match.",
      action: "Keep one of the conflicting filters, or split the rule.",
    },
    invalidDuration: {
      code: "AMBIT_E_ROUTE_INVALID_DURATION",
      meaning: "A timeout or backoff that is not a Gateway API duration, or backendRequest longer than request.",
      action: "Write durations like `500ms` or `10s`, backendRequest at most request.",
    },
    invalidRetry: {
      code: "AMBIT_E_ROUTE_INVALID_RETRY",
      meaning: "Retry codes outside 400-599 or attempts below 1.",
      action: "Use status codes from 400 to 599 and at least one attempt.",
    },
    invalidBackend: {
      code: "AMBIT_E_ROUTE_INVALID_BACKEND",
      meaning: "A backendRef without name or port, or a weight outside 0-1,000,000.",
      action: "Name the Service and its port; keep weights in range.",
    },
    invalidParent: {
      code: "AMBIT_E_ROUTE_INVALID_PARENT",
      meaning: "A Service parentRef that is malformed or repeats another.",
      action: 'Name each parent Service once (group "", kind Service, with an optional port).',
    },
    duplicateRuleName: { code: "AMBIT_E_ROUTE_DUPLICATE_RULE_NAME", meaning: "Two rules with the same name.", action: "Give each rule its own name." },
    tooMany: {
      code: "AMBIT_E_ROUTE_TOO_MANY",
      meaning: "More rules, matches, filters, headers or backends than the API allows.",
      action: "Split the route into several routes.",
    },
    invalidGrpcMethod: {
      code: "AMBIT_E_ROUTE_INVALID_GRPC_METHOD",
      meaning: "A gRPC method match with neither service nor method, or with characters gRPC names cannot have.",
      action: "Name the service and/or method as in the .proto (e.g. `grpc.health.v1.Health`, `Check`).",
    },
  },
);

export const WAYPOINT_ERRORS = errorDomain(
  "waypoint",
  "The waypoint's data path: CONNECT streams it refuses and requests it cannot carry to a backend (logged with the request's access line).",
  {
    unknownDestination: {
      code: "AMBIT_E_WAYPOINT_UNKNOWN_DESTINATION",
      meaning: "A CONNECT stream named an address that is neither a Service port nor a workload bound to this waypoint; it is answered 400.",
      action: "Check the Service's or pod's `ambit.dev/use-waypoint` binding and that the waypoint's config is current (`/config_dump`).",
    },
    noEndpoint: {
      code: "AMBIT_E_WAYPOINT_NO_ENDPOINT",
      meaning: "The backend Service port has no ready endpoint in the mesh (or its endpoint is not a captured pod); the request is answered 503.",
      action: "Check the backend's pods are ready and enrolled (`kubectl get endpointslices`), and the route's backendRefs.",
    },
    upstream: {
      code: "AMBIT_E_WAYPOINT_UPSTREAM",
      meaning: "The HBONE stream or HTTP exchange with the backend's agent failed before a response; the request is answered 503.",
      action: "Check the destination agent's logs and that port 15008 is reachable from the waypoint.",
    },
    timeout: {
      code: "AMBIT_E_WAYPOINT_TIMEOUT",
      meaning: "The backend did not answer within the route's request or backendRequest timeout; the request is answered 504.",
      action: "Check the backend's latency, or raise the HTTPRoute rule's `timeouts`.",
    },
  },
);

export const TRAFFIC_POLICY_ERRORS = errorDomain(
  "traffic-policy",
  "BackendTrafficPolicy (networking.ambit.dev) fields the controller refuses; the policy's status says Accepted=False, reason Invalid, with the field path, and none of it applies.",
  {
    malformed: {
      code: "AMBIT_E_TRAFFIC_POLICY_MALFORMED",
      meaning: "A field has the wrong JSON type, a required field is missing, or two fields that exclude each other are both set.",
      action: "Correct the named field (docs/traffic-policy.md shows every field).",
    },
    unknownField: {
      code: "AMBIT_E_TRAFFIC_POLICY_UNKNOWN_FIELD",
      meaning: "A field this version does not know, often a misspelling (`maxConnection` for `maxConnections`).",
      action: "Fix the spelling, or remove the field: a policy is refused whole rather than applied without it.",
    },
    outOfRange: {
      code: "AMBIT_E_TRAFFIC_POLICY_OUT_OF_RANGE",
      meaning: "A number outside its range: a negative limit, a percentage over 100, an abort status outside 200-599 or a gRPC status outside 0-16.",
      action: "Use a value in the range the message gives.",
    },
    invalidDuration: {
      code: "AMBIT_E_TRAFFIC_POLICY_INVALID_DURATION",
      meaning: "A duration that is not a Gateway API duration (GEP-2257), or one of zero where time must pass.",
      action: 'Write durations such as "30s", "500ms" or "1m30s".',
    },
    unsupportedValue: {
      code: "AMBIT_E_TRAFFIC_POLICY_UNSUPPORTED_VALUE",
      meaning: "An enum value this version does not implement, such as a load balancer type other than RoundRobin, LeastRequest or Random.",
      action: "Use one of the values the message lists.",
    },
    targetRef: {
      code: "AMBIT_E_TRAFFIC_POLICY_TARGET_REF",
      meaning:
        'A targetRefs entry that is not a Service (group "") or an HTTPRoute/GRPCRoute (group gateway.networking.k8s.io) of the policy\'s namespace, or no entry at all.',
      action: "Target a Service, HTTPRoute or GRPCRoute in the policy's own namespace.",
    },
  },
);

export const INJECT_ERRORS = errorDomain(
  "inject",
  "Sidecar injection (`ambit inject`): objects it cannot read, and pod templates it refuses to add the sidecar to.",
  {
    input: {
      code: "AMBIT_E_INJECT_INPUT",
      meaning:
        "The input cannot be injected: a YAML document does not parse or is not an object, a workload has no pod template or containers, or an `ambit.dev/exclude-inbound-ports` / `ambit.dev/exclude-outbound-cidrs` annotation is malformed; nothing is written.",
      action: "Fix the document, object or annotation the message names (ports 1-65535 and CIDRs such as 10.0.0.0/8, comma-separated), then run it again.",
    },
    conflict: {
      code: "AMBIT_E_INJECT_CONFLICT",
      meaning:
        "The pod template already has a container, init container or volume with a name injection adds (ambit-proxy, ambit-init, ambit-ca-token, ambit-ca-root) but no `ambit.dev/sidecar-status` annotation.",
      action: "Rename the application's container or volume, or remove the remains of an earlier injection before injecting again.",
    },
    portConflict: {
      code: "AMBIT_E_INJECT_PORT_CONFLICT",
      meaning: "An application container declares a containerPort the sidecar uses inside the pod (15000, 15001, 15006, 15008, 15020, 15021).",
      action: 'Move the application to another port, or keep that workload out of the mesh with the pod annotation `ambit.dev/inject: "false"`.',
    },
    output: {
      code: "AMBIT_E_INJECT_OUTPUT",
      meaning: "`ambit inject -o <file>`: the injected manifest could not be written to the file (the reason is in the message).",
      action: "Check that the file's directory exists and is writable, or leave out `-o` to write to stdout.",
    },
  },
);

export const ERROR_DOMAINS = [
  CONFIG_ERRORS,
  CLI_ERRORS,
  DATAPLANE_ERRORS,
  HBONE_ERRORS,
  NATIVE_ERRORS,
  AGENT_ERRORS,
  IDENTITY_ERRORS,
  CA_ERRORS,
  CONFIG_STREAM_ERRORS,
  CONTROLLER_ERRORS,
  PKI_ERRORS,
  CNI_ERRORS,
  KUBE_ERRORS,
  CHART_ERRORS,
  SANDBOX_ERRORS,
  API_ERRORS,
  POLICY_ERRORS,
  ROUTE_ERRORS,
  WAYPOINT_ERRORS,
  TRAFFIC_POLICY_ERRORS,
  INJECT_ERRORS,
] as const;

/** Any code Ambit raises. */
export type AmbitErrorCode = CodeOf<(typeof ERROR_DOMAINS)[number]>;
