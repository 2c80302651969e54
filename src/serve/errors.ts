// Errors in OpenAI's shape, mapped to HTTP in one place: {error: {message, type, param, code}}
// (param and code are null when they do not apply, as OpenAI sends them). The SDKs read `message`
// and `code`; a generator failure keeps its kind as `code`.
import type { Context } from 'hono';
import type { FailureKind, GenerationFailure } from '../generators/index.js';

export type HttpStatus = 400 | 401 | 402 | 404 | 413 | 429 | 500 | 502 | 503 | 504;

export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'refiner_error'
  | 'generator_error';

export interface HttpError {
  status: HttpStatus;
  error: { message: string; type: ErrorType; param: string | null; code: string | null };
}

export function httpError(
  status: HttpStatus,
  message: string,
  type: ErrorType,
  code: string | null,
  param: string | null = null,
): HttpError {
  return { status, error: { message, type, param, code } };
}

/** A 400 naming the field: `param: detail`. */
export function invalidField(param: string, detail: string, code = 'invalid_field'): HttpError {
  return httpError(400, `${param}: ${detail}`, 'invalid_request_error', code, param);
}

export function isHttpError(v: unknown): v is HttpError {
  return typeof v === 'object' && v !== null && 'status' in v && 'error' in v;
}

export function sendError(c: Context, e: HttpError): Response {
  return c.json({ error: e.error }, e.status);
}

function statusFor(kind: FailureKind): HttpStatus {
  switch (kind) {
    case 'rate_limited':
      return 429;
    case 'timeout':
      return 504;
    case 'budget_exceeded':
      return 402;
    case 'aborted':
      return 503;
    case 'bad_request':
      return 400;
    default:
      return 502;
  }
}

/** A refiner or generator failure; past the request deadline it is a 504 whatever the cause. */
export function failureError(
  f: GenerationFailure,
  stage: 'refiner' | 'generator',
  deadline: { timedOut: boolean; ms: number },
): HttpError {
  const type = stage === 'refiner' ? 'refiner_error' : 'generator_error';
  if (deadline.timedOut)
    return httpError(504, `${stage}: no answer within ${deadline.ms} ms`, type, 'timeout');
  return httpError(statusFor(f.kind), `${stage}: ${f.message}`, type, f.kind);
}
