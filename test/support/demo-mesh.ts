// Fixtures of the demo application's mesh shared by several test files: a payments workload and the policies that let only orders reach it.
import type { Workload } from "../../agent/state/index.ts";

/** A captured payments pod on node-2, as the controller streams it. */
export const DEMO_PAYMENTS: Workload = {
  uid: "p",
  namespace: "demo",
  name: "payments-1",
  workloadName: "payments",
  serviceAccount: "payments",
  node: "node-2",
  ip: "10.244.2.3",
  captured: true,
  labels: { app: "payments" },
};

/** Nothing reaches demo workloads except orders -> payments: allow-nothing plus one ALLOW for payments. */
export const ALLOW_ORDERS_TO_PAYMENTS = `
apiVersion: security.ambit.dev/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: demo}
spec: {}
---
apiVersion: security.ambit.dev/v1
kind: AuthorizationPolicy
metadata: {name: payments-from-orders, namespace: demo}
spec:
  selector: {matchLabels: {app: payments}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: [cluster.local/ns/demo/sa/orders]}
`;
