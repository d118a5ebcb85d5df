// Public surface of capture: the in-pod iptables rules that send a pod's TCP traffic to the agent.
export { type CaptureState, applyCaptureRules, captureState, removeCaptureRules } from "./apply.ts";
export { CAPTURE_CHAINS, type CaptureOptions, renderCaptureChains } from "./rules.ts";
