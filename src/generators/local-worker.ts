// The worker-thread side of LocalEngineGenerator({worker: true}): an in-process local generator
// living in a worker, so decoding (synchronous, seconds long) never blocks the main thread's event
// loop (HTTP handlers, health checks, timeouts of `rl4qe serve`). Messages:
//   in:  {type: 'generate', call, requests} | {type: 'abort', call} | {type: 'load', call}
//        | {type: 'dispose', call}
//   out: {type: 'done', call, results?} | {type: 'error', call, error: WireError}
// (protocol and error transport: local-worker-client.ts)
import { parentPort, workerData } from 'node:worker_threads';
import { LocalEngineGenerator, type LocalEngineGeneratorOptions } from './local.js';
import { toWireError, type WorkerIn, type WorkerOut } from './local-worker-client.js';

const port = parentPort;
if (port) {
  const g = new LocalEngineGenerator({
    ...(workerData as LocalEngineGeneratorOptions),
    worker: false,
  });
  const aborts = new Map<number, AbortController>();
  const reply = (m: WorkerOut): void => port.postMessage(m);
  const fail = (call: number, e: unknown): void =>
    reply({ type: 'error', call, error: toWireError(e) });
  port.on('message', (m: WorkerIn) => {
    switch (m.type) {
      case 'generate': {
        const ac = new AbortController();
        aborts.set(m.call, ac);
        g.generate(m.requests, { signal: ac.signal })
          .then(
            (results) => reply({ type: 'done', call: m.call, results }),
            (e: unknown) => fail(m.call, e),
          )
          .finally(() => aborts.delete(m.call));
        break;
      }
      case 'abort':
        aborts.get(m.call)?.abort();
        break;
      case 'load':
        g.load().then(
          () => reply({ type: 'done', call: m.call }),
          (e: unknown) => fail(m.call, e),
        );
        break;
      case 'dispose':
        g.dispose().then(
          () => {
            reply({ type: 'done', call: m.call });
            port.close();
          },
          (e: unknown) => fail(m.call, e),
        );
        break;
    }
  });
}
