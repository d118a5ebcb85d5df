// The load tools' pieces, for the CLIs (http-load.ts, http-server.ts, bulk-tcp.ts, wrk-check.ts) and for tests running them in-process.
export { EARLY_MS, Fifo, type Released, type ScheduleOptions, type ScheduleResult, dueTime, runSchedule } from "./schedule.ts";
export { type LatencySummary, Samples, Tally, percentileOfSorted, prefixed, round } from "./stats.ts";
export { Http1Connection, type Outcome, type ParsedResponse, ResponseParser, errorKind, httpRequest } from "./http1.ts";
export { Accounting, type OpenLoopReport, type RunResult, openLoopReport } from "./open-loop.ts";
export {
  type ClosedLoopReport,
  type ConnectOptions,
  type Dispatch,
  type HttpTarget,
  type MaxOptions,
  type RateOptions,
  type RateReport,
  type ConnectReport,
  openHeld,
  runConnect,
  runConnectClosed,
  runMax,
  runRate,
} from "./http-modes.ts";
export { type BenchHttpServer, startHttpServer } from "./http-server.ts";
export {
  type BenchGrpcServer,
  GRPC_PATH,
  type GrpcOptions,
  type GrpcReport,
  grpcFrame,
  grpcMessageLengths,
  protoBytesMessage,
  runGrpc,
  startGrpcServer,
} from "./grpc.ts";
export { type BenchBulkServer, type BulkDirection, type BulkOptions, type BulkReport, runBulk, startBulkServer } from "./bulk.ts";
export { type CliArgs, parseCliArgs, parseTarget } from "./cli.ts";
