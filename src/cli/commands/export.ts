// rl4qe export RUN_DIR: a trained checkpoint as a PEFT adapter, a llama.cpp GGUF LoRA, or a
// merged Hugging Face model (src/train/export.ts does the work; this file maps flags to options).
import type { Command } from 'commander';
import { ConfigError } from '../../util/errors.js';
import { EXPORT_FORMATS, exportRun, type ExportFormat } from '../../train/export.js';
import { addDeprecatedAliases } from '../aliases.js';

interface ExportFlags {
  checkpoint: string;
  format?: string;
  out?: string;
  /** The run's refiner base model, when it moved. */
  refinerModel?: string;
  verifyBase?: boolean;
  dtype?: string;
  force?: boolean;
  json?: boolean;
}

const DTYPES = ['F32', 'F16', 'BF16'] as const;

/** The action of `rl4qe export` (exported for tests and for the command table). */
export function runExport(runDir: string, f: ExportFlags): void {
  if (f.format === undefined || !(EXPORT_FORMATS as readonly string[]).includes(f.format)) {
    throw new ConfigError(f.format === undefined ? '--format is required' : 'unknown --format', {
      where: '--format',
      expected: EXPORT_FORMATS.join(' | '),
      found: f.format ?? 'nothing',
      hint: 'peft for PEFT/transformers, gguf-lora for llama.cpp, merged for a standalone model',
    });
  }
  const dtype = f.dtype?.toUpperCase();
  if (dtype !== undefined && !(DTYPES as readonly string[]).includes(dtype)) {
    throw new ConfigError('unknown --dtype', {
      where: '--dtype',
      expected: DTYPES.join(' | '),
      found: f.dtype,
    });
  }
  const r = exportRun({
    runDir,
    checkpoint: f.checkpoint,
    format: f.format as ExportFormat,
    ...(f.out !== undefined ? { out: f.out } : {}),
    ...(f.refinerModel !== undefined ? { baseModel: f.refinerModel } : {}),
    ...(dtype !== undefined ? { dtype: dtype as (typeof DTYPES)[number] } : {}),
    overwrite: f.force === true,
    verifyBase: f.verifyBase,
  });
  if (f.json) {
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  process.stdout.write(`${r.format} export of ${r.checkpoint}: ${r.out}\n`);
  process.stdout.write(`  files: ${r.files.join(', ')}\n`);
  for (const n of r.notes) process.stdout.write(`  note: ${n}\n`);
}

export function registerExport(program: Command): void {
  const cmd = program
    .command('export')
    .description(
      'export a checkpoint of a training run: a PEFT adapter (peft), a llama.cpp LoRA GGUF ' +
        '(gguf-lora) or a merged Hugging Face model (merged)',
    )
    .argument('<run-dir>', 'the run directory `rl4qe train` wrote')
    .option('--format <format>', EXPORT_FORMATS.join(' | '))
    .option('--checkpoint <name>', 'latest, best or a checkpoint name (step-000010)', 'latest')
    .option(
      '--out <path>',
      'output directory (peft, merged) or .gguf file (gguf-lora); default RUN_DIR/export/<checkpoint>-<format>',
    )
    .option(
      '--refiner-model <path>',
      "the run's refiner base model, when it moved from the path in its config",
    )
    .option(
      '--no-verify-base',
      'accept a base model whose digest differs from run.json (same architecture and size)',
    )
    .option(
      '--dtype <dtype>',
      'merged: F32, F16 or BF16 for the weights it computes (GGUF base: all of them, default F32; HF base: the merged ones, default the base dtype)',
    )
    .option('--force', 'replace an existing output')
    .option('--json', 'print the result as one JSON line on stdout')
    .action((runDir: string, f: ExportFlags) => runExport(runDir, f));
  addDeprecatedAliases(cmd, [
    { flags: '--base <path>', use: '--refiner-model <path>', to: (v) => ({ refinerModel: v }) },
  ]);
}
