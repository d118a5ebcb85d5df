// Types for spdy-transport (the package ships none): creating a connection; spdy.ts types what it uses of one.
declare module "spdy-transport" {
  import type { EventEmitter } from "node:events";
  import type { Duplex } from "node:stream";

  interface ConnectionOptions {
    protocol: "spdy" | "http2";
    isServer: boolean;
    /** Largest DATA frame; false for no limit. */
    maxChunk?: number | false;
    windowSize?: number;
  }
  const transport: { connection: { create(socket: Duplex, options: ConnectionOptions): EventEmitter } };
  export default transport;
}
