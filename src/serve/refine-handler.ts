// POST /v1/refine: {query} → {original_query, refined_query, metadata}; the refinement only.
import { z } from 'zod';
import { headerValue } from './chat-handler.js';
import { failureError, invalidField, isHttpError, sendError } from './errors.js';
import { readJson, type ServeContext } from './middleware.js';
import type { Refiner } from './refiner.js';

const refineBodySchema = z.object({ query: z.string().min(1) }).strict();

export async function handleRefine(c: ServeContext, refiner: Refiner): Promise<Response> {
  const raw = await readJson(c);
  if (isHttpError(raw)) return sendError(c, raw);
  const parsed = refineBodySchema.safeParse(raw.body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || '(body)';
    return sendError(c, invalidField(field, issue?.message ?? 'invalid'));
  }
  const { query } = parsed.data;
  const d = c.get('deadline');
  const r = await refiner.refine(query, { signal: d.signal });
  c.set('logExtra', { refineMs: Math.round(r.metadata.latencyMs), refineOk: r.ok });
  if (!r.ok)
    return sendError(c, failureError(r.failure, 'refiner', { timedOut: d.timedOut(), ms: d.ms }));
  c.header('x-rl4qe-refined-query', headerValue(r.refined));
  return c.json({ original_query: query, refined_query: r.refined, metadata: r.metadata });
}
