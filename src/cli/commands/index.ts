// Every CLI command registers itself here: one line per command file.
import type { Command } from 'commander';
import { registerBench } from './bench.js';
import { registerData } from './data.js';
import { registerDoctor } from './doctor.js';
import { registerDs1000 } from './ds1000.js';
import { registerGenerate } from './generate.js';
import { registerPull } from './pull.js';
import { registerServe } from './serve.js';
import { registerSetupExec } from './setup-exec.js';
import { registerTrain } from './train.js';
import { registerReport } from './report.js';
import { registerExport } from './export.js';
import { registerEval } from './eval.js';
import { registerDemo } from './demo.js';
import { registerExperiment } from './experiment.js';

export type RegisterCommand = (program: Command) => void;

export const commands: RegisterCommand[] = [
  registerDoctor,
  registerBench,
  registerPull,
  registerData,
  registerDs1000,
  registerSetupExec,
  registerGenerate,
  registerServe,
  registerTrain,
  registerReport,
  registerExport,
  registerEval,
  registerDemo,
  registerExperiment,
];
