#!/usr/bin/env node
// The `ambit` executable (runs on the project's pinned Node 24, which strips TypeScript types natively).
import { main } from "../cli/main.ts";

await main();
