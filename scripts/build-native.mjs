#!/usr/bin/env node
// npm install hook: build the native C++ addon (binding.gyp, native/) with node-gyp.
//
// A failed build NEVER fails the install: rl4qe then runs on the reference backend. This script
// prints one clear warning with the reason and the fix, and records the outcome in
// build/rl4qe-native-build.json so that `rl4qe doctor` and the one-time runtime warning can say
// why native is missing.
//
// node-gyp normally downloads Node's headers; where there is no network we point it at the
// headers installed next to the running node (<prefix>/include/node, e.g. /usr/include/node from
// Debian's nodejs/libnode-dev) with --nodedir.
//
// Environment: RL4QE_SKIP_NATIVE=1 skips the build; RL4QE_NATIVE_JOBS sets make's -j.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const statusFile = path.join(root, 'build', 'rl4qe-native-build.json');
const addonFile = path.join(root, 'build', 'Release', 'rl4qe_native.node');

function record(ok, reason) {
  try {
    mkdirSync(path.dirname(statusFile), { recursive: true });
    writeFileSync(
      statusFile,
      JSON.stringify({ ok, reason, date: new Date().toISOString() }) + '\n',
    );
  } catch {
    // recording is a convenience; never fail the install over it
  }
}

function warn(reason, fix) {
  record(false, reason);
  console.warn(
    `[rl4qe] WARNING: the native addon was not built: ${reason}\n` +
      `[rl4qe]   rl4qe will run on the (slow) reference backend.\n` +
      `[rl4qe]   To fix: ${fix}, then run \`node scripts/build-native.mjs\`.`,
  );
}

function have(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

function main() {
  if (process.env.RL4QE_SKIP_NATIVE === '1') {
    record(false, 'the build was skipped (RL4QE_SKIP_NATIVE=1)');
    console.log(
      '[rl4qe] RL4QE_SKIP_NATIVE=1: native addon not built; using the reference backend.',
    );
    return;
  }
  const require = createRequire(path.join(root, 'package.json'));
  let gyp;
  try {
    gyp = require.resolve('node-gyp/bin/node-gyp.js');
    require.resolve('node-addon-api');
  } catch {
    warn(
      'node-gyp or node-addon-api is not installed',
      'run `npm install` (they are dependencies)',
    );
    return;
  }
  const cxx = process.env.CXX || 'c++';
  if (!have(cxx)) {
    warn(`no C++ compiler (${cxx}) found`, 'install one, e.g. `apt-get install -y g++ make`');
    return;
  }
  if (!have('make')) {
    warn('`make` is not installed', 'install it, e.g. `apt-get install -y make`');
    return;
  }
  if (!have('python3')) {
    warn(
      'python3 (needed by node-gyp) is not installed',
      'install it, e.g. `apt-get install -y python3`',
    );
    return;
  }
  const args = [
    gyp,
    'rebuild',
    '--release',
    `-j`,
    process.env.RL4QE_NATIVE_JOBS || String(os.cpus().length),
  ];
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  let headers = 'downloaded by node-gyp';
  if (existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) {
    args.push(`--nodedir=${prefix}`);
    headers = path.join(prefix, 'include', 'node');
  }
  console.log(`[rl4qe] building the native addon (node-gyp, headers: ${headers}) ...`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0 || !existsSync(addonFile)) {
    const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
    const errLines = out
      .split('\n')
      .filter((l) => /error|not found|ERR!/i.test(l))
      .slice(0, 12);
    console.warn(errLines.map((l) => `[rl4qe]   | ${l}`).join('\n'));
    const offline = /getaddrinfo|ENOTFOUND|ECONNREFUSED|ETIMEDOUT|download/i.test(out);
    const noOmp = /omp\.h|fopenmp|libgomp/i.test(out);
    const reason = r.error
      ? `node-gyp could not run (${r.error.message})`
      : offline
        ? 'node-gyp needs Node headers and could not download them'
        : noOmp
          ? 'the compiler has no OpenMP support'
          : `node-gyp exited with status ${r.status}`;
    const fix = offline
      ? 'install the Node headers (`apt-get install -y libnode-dev`, or set npm_config_nodedir to a Node source/headers folder)'
      : noOmp
        ? 'install GCC with libgomp (`apt-get install -y g++`)'
        : 'read the node-gyp output above (`node scripts/build-native.mjs`)';
    warn(reason, fix);
    return;
  }
  // Load it once in a child process so a broken binary shows up now, not at first use.
  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      `const a=require(${JSON.stringify(addonFile)});const i=a.info();console.log(JSON.stringify(i))`,
    ],
    { encoding: 'utf8' },
  );
  if (probe.status !== 0) {
    warn(
      `the addon was built but does not load: ${(probe.stderr || '').split('\n')[0]}`,
      'check the compiler and the Node version (`node scripts/build-native.mjs`)',
    );
    return;
  }
  const info = JSON.parse(probe.stdout);
  record(true, `built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  console.log(
    `[rl4qe] native addon built in ${((Date.now() - t0) / 1000).toFixed(0)} s: ` +
      `kernels ${info.kernel} (${info.mr}×${info.nr}), ${info.threads} threads, ` +
      `OpenBLAS for benchmarks: ${info.openblas ?? 'not found'}`,
  );
}

try {
  main();
} catch (e) {
  warn(
    `unexpected error in the build script (${e instanceof Error ? e.message : String(e)})`,
    'report it',
  );
}
process.exitCode = 0;
