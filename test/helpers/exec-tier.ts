// The test tiers' one rule for the sandbox's exec venv (README "Tests"). A test that needs the
// venv FAILS when it is missing, naming the command that creates it: CI must never pass by
// skipping. Only when the run says the install left the venv out on purpose — RL4QE_NO_EXEC=1,
// which `npm run test:no-exec` sets after `scripts/setup.sh --no-exec` — does it skip, with this
// reason in the report. Where the venv exists the tests run in either tier.
//
// Use: describe('...', { skip: skipWithoutExecVenv() }, () => { ... }), or in a test
// `const why = skipWithoutExecVenv(); if (why) return t.skip(why);`.
import { execVenvPython } from '../../src/sandbox/index.js';

/** True when this run is the no-sandbox test tier (RL4QE_NO_EXEC=1). */
export function isNoExecTier(): boolean {
  return process.env.RL4QE_NO_EXEC === '1';
}

/** The skip reason when the venv is missing in the no-sandbox tier; false where the test runs. */
export function skipWithoutExecVenv(): string | false {
  if (!isNoExecTier() || execVenvPython() !== undefined) return false;
  return (
    'no sandbox venv and RL4QE_NO_EXEC=1 (the install tier without it, scripts/setup.sh ' +
    '--no-exec): `rl4qe setup-exec` creates it, then `npm test` runs this test'
  );
}
