// Public surface of the data path: the handlers that move captured connections over HBONE or straight through.
export { Dataplane, type DataplaneOptions } from "./proxy.ts";
