#!/usr/bin/env node
// The rl4qe command line. One file per command in src/cli/commands/; this file only wires them
// together and maps errors to exit codes (library code never exits the process).
import { Command, CommanderError } from 'commander';
import { Rl4qeError } from '../util/errors.js';
import { typedFlagFor } from './aliases.js';
import { commands } from './commands/index.js';

/** The whole command tree, every command registered (tests walk it: cli/scheme.test.ts). */
export function buildProgram(): Command {
  const program = new Command('rl4qe')
    .description(
      'Train a query refiner with reinforcement learning so a fixed code generator writes better code.',
    )
    .version('0.1.0')
    .exitOverride()
    .showHelpAfterError();
  for (const register of commands) register(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    return reportError(err);
  }
}

function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    // --help and --version end here too, with exit code 0.
    return err.exitCode;
  }
  if (err instanceof Rl4qeError) {
    // An error about a flag the user spelled by its old name says so (cli/aliases.ts).
    const old = err.where !== undefined ? typedFlagFor(err.where) : undefined;
    const message =
      old !== undefined && err.message.startsWith(`${err.where}:`)
        ? `${err.where} (given as ${old})${err.message.slice(err.where!.length)}`
        : err.message;
    process.stderr.write(`rl4qe: ${message}\n`);
    if (process.env.RL4QE_DEBUG === '1' && err.stack) process.stderr.write(err.stack + '\n');
    return err.exitCode;
  }
  process.stderr.write(
    `rl4qe: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  return 70;
}

const isEntry =
  process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isEntry || process.argv[1]?.endsWith('/rl4qe') === true) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(String(err) + '\n');
      process.exitCode = 70;
    },
  );
}
