// Every CLI command registers itself here: one line per command file.
import type { Command } from 'commander';
import { registerBench } from './bench.js';
import { registerDoctor } from './doctor.js';
import { registerPull } from './pull.js';

export type RegisterCommand = (program: Command) => void;

export const commands: RegisterCommand[] = [registerDoctor, registerBench, registerPull];
import { registerData } from './data.js';

export type RegisterCommand = (program: Command) => void;

export const commands: RegisterCommand[] = [registerDoctor, registerBench, registerData];
import { registerDs1000 } from './ds1000.js';
import { registerSetupExec } from './setup-exec.js';

export type RegisterCommand = (program: Command) => void;

export const commands: RegisterCommand[] = [
  registerDoctor,
  registerBench,
  registerDs1000,
  registerSetupExec,
import { registerGenerate } from './generate.js';
import { registerServe } from './serve.js';

export type RegisterCommand = (program: Command) => void;

export const commands: RegisterCommand[] = [
  registerDoctor,
  registerBench,
  registerServe,
  registerGenerate,
];
