// Public surface of in-pod capture: the driver enrollment uses to capture and release pods.
export { type CapturedConnection, InPodCaptureDriver, type InPodDriverOptions, type InPodHandlers } from "./driver.ts";
