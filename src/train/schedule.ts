// Learning-rate schedules with linear warm-up, as Hugging Face transformers'
// get_constant_schedule_with_warmup, get_linear_schedule_with_warmup and
// get_cosine_schedule_with_warmup (num_cycles 0.5), so a run configured like a TRL/transformers
// run gets the same learning rate at every step.
import { ConfigError } from '../util/errors.js';

export type LrSchedule = 'constant' | 'linear' | 'cosine';

export interface LrScheduleOptions {
  /** Peak learning rate (reached at the end of warm-up). */
  lr: number;
  /** Steps of linear warm-up from 0 (0: none). */
  warmupSteps: number;
  schedule: LrSchedule;
  /** Optimiser steps of the whole run (the decay reaches 0 there). */
  totalSteps: number;
}

/**
 * The learning rate of optimiser step `step` (0-based: the step about to be taken).
 *
 * Warm-up: lr · step / warmupSteps for step < warmupSteps, so step 0 of a warm-up has lr 0 exactly
 * like transformers (LambdaLR applies lambda(0) to the first optimizer.step()). After warm-up,
 * with progress = (step − warmup) / max(1, total − warmup):
 *   constant  lr
 *   linear    lr · max(0, (total − step) / max(1, total − warmup))
 *   cosine    lr · ½ (1 + cos(π · progress))
 * One deviation: transformers' cosine rises again after totalSteps (the cosine is not clamped);
 * here progress is clamped to 1, so a run resumed past its planned end keeps lr 0.
 */
export function lrAt(step: number, opts: LrScheduleOptions): number {
  const { lr, warmupSteps, schedule, totalSteps } = opts;
  const where = 'lrAt';
  if (!(Number.isInteger(step) && step >= 0)) {
    throw new ConfigError('step must be a non-negative integer', {
      where: `${where}: step`,
      expected: 'an integer ≥ 0',
      found: String(step),
    });
  }
  if (!(Number.isFinite(lr) && lr >= 0)) {
    throw new ConfigError('learning rate must be ≥ 0', {
      where: `${where}: lr`,
      expected: 'a finite number ≥ 0',
      found: String(lr),
    });
  }
  if (!(Number.isInteger(warmupSteps) && warmupSteps >= 0)) {
    throw new ConfigError('warm-up steps must be a non-negative integer', {
      where: `${where}: warmupSteps`,
      expected: 'an integer ≥ 0',
      found: String(warmupSteps),
    });
  }
  if (!(Number.isInteger(totalSteps) && totalSteps >= 1)) {
    throw new ConfigError('total steps must be a positive integer', {
      where: `${where}: totalSteps`,
      expected: 'an integer ≥ 1',
      found: String(totalSteps),
    });
  }
  if (step < warmupSteps) return (lr * step) / warmupSteps;
  const span = Math.max(1, totalSteps - warmupSteps);
  switch (schedule) {
    case 'constant':
      return lr;
    case 'linear':
      return lr * Math.max(0, (totalSteps - step) / span);
    case 'cosine': {
      const progress = Math.min(1, (step - warmupSteps) / span);
      return lr * 0.5 * (1 + Math.cos(Math.PI * progress));
    }
    default:
      throw new ConfigError('unknown learning-rate schedule', {
        where: `${where}: schedule`,
        expected: "'constant' | 'linear' | 'cosine'",
        found: String(schedule as string),
      });
  }
}
