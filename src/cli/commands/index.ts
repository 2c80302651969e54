// Every CLI command registers itself here: one line per command file.
import type { Command } from 'commander';
import { registerBench } from './bench.js';
import { registerDoctor } from './doctor.js';
import { registerGenerate } from './generate.js';
import { registerServe } from './serve.js';

export type RegisterCommand = (program: Command) => void;

export const commands: RegisterCommand[] = [
  registerDoctor,
  registerBench,
  registerServe,
  registerGenerate,
];
