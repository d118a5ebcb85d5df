// Public surface of the CNI side: the agent's event server and the request/answer protocol it speaks.
export { type CniEventServer, type CniRequest, type CniResponse, CniProtocolError, parseCniRequest, sendCniRequest, startCniEventServer } from "./protocol.ts";
