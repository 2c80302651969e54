// The sandbox's public surface: a warm worker pool, the naive harness for comparison, isolation
// facts for `rl4qe doctor`, and the outcome type rewards map to numbers.
export type { OutcomeStatus, SandboxOutcome, TestResources } from './outcome.js';
export {
  Sandbox,
  DEFAULT_LIMITS,
  execVenvPython,
  type SandboxLimits,
  type SandboxOptions,
  type Ds1000Test,
  type ScriptRun,
  type SimulatedFailure,
} from './pool.js';
export { runNaiveDs1000, ds1000Program, classifyExit, type NaiveOptions } from './naive.js';
export { detectIsolation, type IsolationInfo, type IsolationMode } from './isolation.js';
export { probeSandbox, type SandboxProbe } from './doctor.js';
export { detectCgroups, cgroupSupport, type CgroupSupport, type CgroupVersion } from './cgroup.js';
