// rl4qe serve: refine-then-generate over HTTP.
export {
  SERVE_APP_DEFAULTS,
  createServeApp,
  jsonStderrLog,
  type ServeApp,
  type ServeAppOptions,
  type ServeLog,
} from './app.js';
export {
  DEFAULT_SERVE_PORT,
  startServer,
  type RunningServer,
  type StartServerOptions,
} from './server.js';
export { parseChatRequest, MAX_CHOICES, type ChatCall } from './chat-request.js';
export {
  DEFAULT_REFINE_SYSTEM_PROMPT,
  PromptedRefiner,
  type PromptedRefinerOptions,
  type RefineMetadata,
  type RefineResult,
  type Refiner,
} from './refiner.js';
export { buildServeStack, type ServeStack, type ServeStackOptions } from './stack.js';
