// Stands in for a mutating admission webhook: pods created in a namespace labelled ambit.dev/dataplane-mode=sidecar get Ambit's sidecar, as `ambit inject` would add it.
import { DATAPLANE_MODE_LABEL } from "../../contract/capture-intent.ts";
import { DATAPLANE_MODE_SIDECAR } from "../../contract/sidecar.ts";
import { defaultInjectionSettings, injectPod } from "../../sidecar/index.ts";
import { ApiError, type KubeObject } from "./types.ts";

export const SANDBOX_SIDECAR_IMAGE = "ambit.dev/sidecar:0.1";

/**
 * The sandbox's cluster has no webhook server, so its API server applies the same injection `ambit inject -f` does
 * (sidecar/inject.ts) at admission: a pod created through the API (a Deployment's or `kubectl run`) is stored with the
 * sidecar. Nothing in the product reads this: the pod the kubelet runs is an ordinary injected pod.
 */
export function admitPod(pod: KubeObject, namespace: KubeObject | undefined): KubeObject {
  if (namespace?.metadata.labels?.[DATAPLANE_MODE_LABEL] !== DATAPLANE_MODE_SIDECAR) return pod;
  try {
    // The sandbox's image name for the same program (its kubelet maps ambit.dev/* images to the bundles in dist/).
    return injectPod(pod, { ...defaultInjectionSettings(), image: SANDBOX_SIDECAR_IMAGE }).object;
  } catch (err) {
    const e = err as Error & { code?: string };
    throw new ApiError(400, "BadRequest", `admission webhook "sidecar-injector.ambit.dev" denied the request: ${e.code ? `[${e.code}] ` : ""}${e.message}`);
  }
}
