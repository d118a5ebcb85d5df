// Public surface of Ambit's Go text/template implementation (the base of the Helm chart renderer).
export { BUILTINS, sprintf } from "./builtins.ts";
export { type ExecOptions, Executor, Receiver, type TemplateFunc, type Value, execute, formatValue, isMap, truth } from "./exec.ts";
export { type Node, type Parsed, TemplateError, parseTemplate } from "./parse.ts";
