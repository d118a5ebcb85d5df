// Kubernetes RBAC for the sandbox API server: Roles, ClusterRoles and their bindings decide what a caller may do.
import type { KubeObject } from "./types.ts";

/** What the request asks to do, as Kubernetes' authorizer sees it. */
export interface ResourceAttributes {
  verb: string;
  apiGroup: string;
  resource: string;
  subresource?: string | undefined;
  namespace?: string | undefined;
  name?: string | undefined;
}

export interface Caller {
  username: string;
  groups: string[];
}

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

interface Subject {
  kind: string;
  name: string;
  namespace?: string;
}

/** Where bindings and roles are read from: the API server's own store. */
export interface RbacSource {
  clusterRoleBindings(): KubeObject[];
  roleBindings(namespace: string): KubeObject[];
  clusterRole(name: string): KubeObject | undefined;
  role(namespace: string, name: string): KubeObject | undefined;
}

/** The verb of an HTTP request on a resource, as Kubernetes names it. */
export function verbOf(method: string, hasName: boolean, watch: boolean): string {
  switch (method) {
    case "GET":
    case "HEAD":
      return hasName ? "get" : watch ? "watch" : "list";
    case "POST":
      return "create";
    case "PUT":
      return "update";
    case "PATCH":
      return "patch";
    case "DELETE":
      return hasName ? "delete" : "deletecollection";
    default:
      return method.toLowerCase();
  }
}

function subjectMatches(s: Subject, caller: Caller, bindingNamespace: string | undefined): boolean {
  if (s.kind === "ServiceAccount") return caller.username === `system:serviceaccount:${s.namespace ?? bindingNamespace ?? ""}:${s.name}`;
  if (s.kind === "User") return caller.username === s.name;
  if (s.kind === "Group") return caller.groups.includes(s.name);
  return false;
}

function ruleAllows(rule: PolicyRule, a: ResourceAttributes): boolean {
  const has = (list: string[] | undefined, value: string) => (list ?? []).includes("*") || (list ?? []).includes(value);
  if (!has(rule.verbs, a.verb) || !has(rule.apiGroups, a.apiGroup)) return false;
  const full = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const resources = rule.resources ?? [];
  const resourceOk = resources.includes("*") || resources.includes(full) || (a.subresource !== undefined && resources.includes(`*/${a.subresource}`));
  if (!resourceOk) return false;
  // resourceNames narrow to named objects: a request without a name (create, list, watch) cannot match them.
  if (rule.resourceNames && rule.resourceNames.length > 0) return a.name !== undefined && rule.resourceNames.includes(a.name);
  return true;
}

/**
 * Kubernetes' RBAC decision: allowed when any rule of any role bound to the caller allows the request. A
 * ClusterRoleBinding grants its ClusterRole everywhere; a RoleBinding grants its Role, or a ClusterRole, in its own
 * namespace only. Nothing denies; a binding to a role that does not exist grants nothing.
 */
export function rbacAllows(source: RbacSource, caller: Caller, a: ResourceAttributes): boolean {
  const rulesOf = (role: KubeObject | undefined): PolicyRule[] => (role as { rules?: PolicyRule[] } | undefined)?.rules ?? [];
  for (const b of source.clusterRoleBindings()) {
    const subjects = (b as { subjects?: Subject[] }).subjects ?? [];
    const ref = (b as { roleRef?: { kind: string; name: string } }).roleRef;
    if (ref?.kind !== "ClusterRole" || !subjects.some((s) => subjectMatches(s, caller, undefined))) continue;
    if (rulesOf(source.clusterRole(ref.name)).some((r) => ruleAllows(r, a))) return true;
  }
  if (a.namespace === undefined) return false;
  for (const b of source.roleBindings(a.namespace)) {
    const subjects = (b as { subjects?: Subject[] }).subjects ?? [];
    const ref = (b as { roleRef?: { kind: string; name: string } }).roleRef;
    if (!ref || !subjects.some((s) => subjectMatches(s, caller, a.namespace))) continue;
    const role = ref.kind === "ClusterRole" ? source.clusterRole(ref.name) : ref.kind === "Role" ? source.role(a.namespace, ref.name) : undefined;
    if (rulesOf(role).some((r) => ruleAllows(r, a))) return true;
  }
  return false;
}

/** Kubernetes' message for a refusal, which kubectl prints as is. */
export function forbiddenMessage(caller: Caller, a: ResourceAttributes): string {
  const what = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const named = a.name ? ` "${a.name}"` : "";
  const where = a.namespace ? ` in the namespace "${a.namespace}"` : " at the cluster scope";
  return `${what}${named} is forbidden: User "${caller.username}" cannot ${a.verb} resource "${what}" in API group "${a.apiGroup}"${where}`;
}
