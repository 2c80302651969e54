// The no-training baseline of paired evaluation: the best of a few fixed rewrite instructions for
// the untrained refiner. The instruction is chosen on a sample of the TRAINING split only (never
// the evaluation split), so the baseline gets the same kind of selection a trained refiner gets
// from its validation set, and none of the evaluation problems' information. If RL cannot beat
// this, the training budget would be better spent on a prompt.
import {
  PAPER_REFINER_MARKER,
  REFINER_SYSTEM,
  REFINER_SYSTEM_DS1000,
  refinerPrompt,
  type RefinerFormat,
} from '../data/prompts.js';
import type { GenerationRequest, GeneratorParams } from '../generators/types.js';

export interface PromptCandidate {
  name: string;
  /** The instruction: the system message of chat formats, the template's head in 'paper'. */
  instruction: string;
}

/**
 * The fixed candidates: the paper's instruction, rl4qe's DS-1000-aware one (data/prompts.ts), and
 * three rewrites in different directions (clarify the contract, list requirements, be brief).
 */
export const PROMPT_CANDIDATES: readonly PromptCandidate[] = [
  { name: 'paper', instruction: REFINER_SYSTEM },
  { name: 'ds1000-aware', instruction: REFINER_SYSTEM_DS1000 },
  {
    name: 'clarify',
    instruction:
      'Rewrite the programming question so that it is complete and unambiguous: state the inputs, ' +
      'the exact expected output (type, shape, order), the library to use and the edge cases. ' +
      'Keep every variable name and every line of code of the question unchanged. Do not write ' +
      'the solution.',
  },
  {
    name: 'requirements',
    instruction:
      'Restate the task as a short numbered list of concrete requirements a Python programmer ' +
      'must meet, keeping the exact variable, function and column names of the question. Do not ' +
      'solve it and do not write code.',
  },
  {
    name: 'concise',
    instruction:
      'Rewrite the request as one or two precise sentences that say what the code must compute ' +
      'and return, using the exact names from the question. Do not write code.',
  },
];

/**
 * The refiner request for a query: the format's prompt (data/prompts.ts refinerPrompt), with the
 * instruction replaced when a candidate is given (system message in chat formats; the head of the
 * paper template in 'paper'/'paper-chat', which keep their "Original query / Enhanced query:" cue).
 */
export function refinerRequest(
  id: string,
  query: string,
  opts: { format: RefinerFormat; template?: string; instruction?: string; params: GeneratorParams },
): GenerationRequest {
  let template = opts.template;
  if (opts.instruction !== undefined && (opts.format === 'paper' || opts.format === 'paper-chat'))
    template = `${opts.instruction}\nOriginal query: {query}\n${PAPER_REFINER_MARKER}`;
  const p = refinerPrompt(query, {
    format: opts.format,
    ...(template !== undefined ? { template } : {}),
  });
  if (p.kind === 'completion') return { id, prompt: p.prompt, params: opts.params };
  const messages = p.messages.map((m) =>
    m.role === 'system' && opts.instruction !== undefined
      ? { role: m.role, content: opts.instruction }
      : { role: m.role, content: m.content },
  );
  return { id, messages, params: opts.params };
}

export interface CandidateScore {
  name: string;
  instruction: string;
  /** Mean of the selection metric over the search problems the candidate could score. */
  score: number | null;
  /**
   * Mean CSS over the same problems: breaks ties of the score (pass@1 on a few problems is often
   * 0 for every candidate with a small generator), null when not computed.
   */
  tiebreak: number | null;
  n: number;
  failures: number;
}

/** The best candidate: highest score, then highest tiebreak, then the earlier; null scores lose. */
export function chooseCandidate(scores: readonly CandidateScore[]): CandidateScore | undefined {
  let best: CandidateScore | undefined;
  for (const s of scores) {
    if (s.score === null) continue;
    if (
      !best ||
      s.score > best.score! ||
      (s.score === best.score && (s.tiebreak ?? -Infinity) > (best.tiebreak ?? -Infinity))
    )
      best = s;
  }
  return best ?? scores[0];
}
