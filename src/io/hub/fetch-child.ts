// The download process behind the synchronous model resolver (resolve.ts): downloads one model
// revision into the Hugging Face cache and prints one JSON line on stdout, `{ok, dir, commit}` or
// `{ok: false, error}`; progress goes to stderr, which the parent shares.
// Usage: node fetch-child.js '{"repo": "...", "revision": "...", "include": [...]}'
import { Rl4qeError } from '../../util/errors.js';
import { downloadSnapshot } from './download.js';
import { stderrProgress } from './progress.js';
import { rawMessage, type ChildReply, type ChildRequest } from './resolve.js';

async function run(): Promise<ChildReply> {
  try {
    const req = JSON.parse(process.argv[2] ?? '') as ChildRequest;
    const snap = await downloadSnapshot({
      repo: req.repo,
      revision: req.revision,
      include: req.include,
      ...(req.cacheDir !== undefined ? { cacheDir: req.cacheDir } : {}),
      onProgress: stderrProgress(),
    });
    return { ok: true, dir: snap.dir, commit: snap.commit };
  } catch (e) {
    if (e instanceof Rl4qeError) {
      return {
        ok: false,
        error: {
          cls: e.constructor.name,
          message: rawMessage(e),
          ...(e.where !== undefined ? { where: e.where } : {}),
          ...(e.expected !== undefined ? { expected: e.expected } : {}),
          ...(e.found !== undefined ? { found: e.found } : {}),
          ...(e.hint !== undefined ? { hint: e.hint } : {}),
        },
      };
    }
    return {
      ok: false,
      error: { cls: 'NetworkError', message: e instanceof Error ? e.message : String(e) },
    };
  }
}

const reply = await run();
process.stdout.write(JSON.stringify(reply) + '\n');
process.exitCode = reply.ok ? 0 : 1;
