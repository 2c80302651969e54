// The `backend` section of `rl4qe doctor`: the active backend and why, the native addon's
// status, CPU features, kernel set and threads.
import { backendInfo } from './index.js';

export interface BackendDoctorSection {
  title: string;
  rows: [string, string][];
}

export function backendDoctorSection(): BackendDoctorSection {
  try {
    const b = backendInfo();
    return {
      title: 'backend',
      rows: [
        ['active', b.name],
        ['why', b.reason],
        ['native addon', b.nativeAvailable ? 'loaded' : 'not loaded'],
        ['native status', b.nativeReason],
        ['cpu features', b.features.length > 0 ? b.features.join(' ') : 'unknown'],
        ['kernel', b.kernel],
        ['threads', String(b.threads)],
        ['debug compare', b.debugCompare ? 'on (RL4QE_DEBUG_COMPARE=1)' : 'off'],
        ['nan check', process.env.RL4QE_CHECK_NAN === '1' ? 'on (RL4QE_CHECK_NAN=1)' : 'off'],
      ],
    };
  } catch (e) {
    return { title: 'backend', rows: [['error', (e as Error).message.split('\n')[0]]] };
  }
}
