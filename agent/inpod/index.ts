// Public surface of in-pod capture: the driver enrollment uses to capture and release pods, and how running pods are found.
export { type CapturedConnection, InPodCaptureDriver, type InPodDriverOptions, type InPodHandlers } from "./driver.ts";
export { PodNetnsFinder, type PodNetnsFinderOptions } from "./netns-finder.ts";
