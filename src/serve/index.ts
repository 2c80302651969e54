// rl4qe serve: refine-then-generate over HTTP.
export {
  createServeApp,
  jsonStderrLog,
  type ServeApp,
  type ServeAppOptions,
  type ServeLog,
} from './app.js';
export { startServer, type RunningServer, type StartServerOptions } from './server.js';
export {
  DEFAULT_REFINE_SYSTEM_PROMPT,
  PromptedRefiner,
  type PromptedRefinerOptions,
  type RefineMetadata,
  type RefineResult,
  type Refiner,
} from './refiner.js';
export { buildServeStack, type ServeStack, type ServeStackOptions } from './stack.js';
