// rl4qe pull REPO: download a model's (or dataset's) files from the Hugging Face Hub into the
// Hugging Face cache ($HF_HUB_CACHE, shared with Python's huggingface_hub and transformers),
// resumable and checksummed. Endpoint HF_ENDPOINT, token HF_TOKEN or the `hf auth login` one.
import type { Command } from 'commander';
import { DEFAULT_INCLUDE, downloadSnapshot, stderrProgress } from '../../io/hub/index.js';
import { ConfigError } from '../../util/errors.js';

interface PullFlags {
  revision: string;
  include?: string[];
  repoType: string;
  cacheDir?: string;
  json?: boolean;
}

export function registerPull(program: Command): void {
  program
    .command('pull')
    .description(
      'download a Hugging Face model (config, tokenizer, safetensors weights) or dataset into the ' +
        'Hugging Face cache (shared with Python); resumable and checksummed. Endpoint HF_ENDPOINT, ' +
        'token HF_TOKEN or `hf auth login`, HF_HUB_OFFLINE=1 reads the cache only',
    )
    .argument('<repo>', 'repository id, e.g. Qwen/Qwen2.5-Coder-0.5B-Instruct')
    .option('-r, --revision <rev>', 'branch, tag or commit', 'main')
    .option(
      '-i, --include <glob...>',
      `files to fetch (* within a folder, ** across; default for models: ${DEFAULT_INCLUDE.join(' ')}; datasets: every file)`,
    )
    .option('--repo-type <type>', "'model' or 'dataset'", 'model')
    .option('--cache-dir <dir>', 'cache root (default: $HF_HUB_CACHE, else $HF_HOME/hub)')
    .option('--json', 'print the result as one JSON line on stdout')
    .action(async (repo: string, opts: PullFlags) => {
      if (opts.repoType !== 'model' && opts.repoType !== 'dataset') {
        throw new ConfigError("--repo-type must be 'model' or 'dataset'", {
          where: '--repo-type',
          found: opts.repoType,
        });
      }
      const r = await downloadSnapshot({
        repo,
        type: opts.repoType,
        revision: opts.revision,
        include: opts.include?.length
          ? opts.include
          : opts.repoType === 'model'
            ? DEFAULT_INCLUDE
            : undefined,
        ...(opts.cacheDir !== undefined ? { cacheDir: opts.cacheDir } : {}),
        onProgress: stderrProgress(),
      });
      if (opts.json) process.stdout.write(JSON.stringify(r) + '\n');
      else {
        const fresh = r.files.filter((f) => !f.cached).length;
        process.stdout.write(
          `${r.repo}@${r.revision} (${r.commit}): ${r.files.length} files ` +
            `(${fresh} downloaded, ${r.files.length - fresh} cached${r.fromCache ? ', Hub not asked' : ''}) in ${r.dir}\n`,
        );
      }
    });
}
