// rl4qe pull REPO: download a model's config, tokenizer files and weights from the Hugging Face
// Hub into the local cache (resumable, checksummed). Token from HF_TOKEN, endpoint HF_ENDPOINT.
import type { Command } from 'commander';
import { DEFAULT_INCLUDE, pullModel, stderrProgress } from '../../io/hub/index.js';

export function registerPull(program: Command): void {
  program
    .command('pull')
    .description(
      'download a Hugging Face model (config, tokenizer, safetensors weights) into the cache; ' +
        'resumable and checksummed; token from HF_TOKEN, endpoint from HF_ENDPOINT',
    )
    .argument('<repo>', 'repository id, e.g. Qwen/Qwen2.5-Coder-0.5B-Instruct')
    .option('-r, --revision <rev>', 'branch, tag or commit', 'main')
    .option('-i, --include <glob...>', `files to fetch (default: ${DEFAULT_INCLUDE.join(' ')})`)
    .option('--cache-dir <dir>', 'cache root (default: $RL4QE_HOME/models)')
    .option('--json', 'print the result as JSON on stdout')
    .action(
      async (
        repo: string,
        opts: { revision: string; include?: string[]; cacheDir?: string; json?: boolean },
      ) => {
        const r = await pullModel({
          repo,
          revision: opts.revision,
          include: opts.include,
          cacheDir: opts.cacheDir,
          onProgress: stderrProgress(),
        });
        if (opts.json) process.stdout.write(JSON.stringify(r) + '\n');
        else {
          const fresh = r.files.filter((f) => !f.cached).length;
          process.stdout.write(
            `${r.repo}@${r.revision}${r.commit ? ` (${r.commit})` : ''}: ${r.files.length} files ` +
              `(${fresh} downloaded, ${r.files.length - fresh} cached) in ${r.dir}\n`,
          );
        }
      },
    );
}
