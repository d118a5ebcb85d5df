// Public surface of enrollment: which pods of this node the mesh captures, and the labels that decide it.
export { type CaptureDriver, type CniDeleteOutcome, EnrollmentController, type EnrollmentOptions, type PodEnrollment, type PodRef } from "./controller.ts";
export {
  type CaptureIntent,
  DATAPLANE_MODE_AMBIENT,
  DATAPLANE_MODE_LABEL,
  DATAPLANE_MODE_NONE,
  REDIRECTION_ANNOTATION,
  captureIntent,
} from "../../contract/capture-intent.ts";
