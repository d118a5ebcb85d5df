// Public surface of sidecar mode: injection (what `ambit inject` and the sandbox's API server add to pods), the capture rules and the typed configuration.
export { InjectError, type InjectErrorCode, type InjectionReport, type InjectionResult, injectPod, injectSidecar } from "./inject.ts";
export {
  DEFAULT_CONTAINER_ANNOTATION,
  DEFAULT_SIDECAR_OLD_SPACE_MIB,
  DEFAULT_SIDECAR_RESOURCES,
  EXCLUDE_INBOUND_PORTS_ANNOTATION,
  EXCLUDE_OUTBOUND_CIDRS_ANNOTATION,
  INIT_ENV,
  INJECT_ANNOTATION,
  PROMETHEUS_ANNOTATIONS,
  SIDECAR_STATUS,
  SIDECAR_VOLUMES,
  type SidecarInjectionSettings,
  defaultInjectionSettings,
} from "./template.ts";
export { SIDECAR_CHAINS, installSidecarCapture, renderSidecarCapture } from "./capture.ts";
export { type SidecarConfig, SidecarConfigError, type SidecarInitConfig, loadSidecarConfig, loadSidecarInitConfig } from "./config.ts";
