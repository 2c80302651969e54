// Runs fakeHub() in its own process (see fakeHubProcess in fake-hub.ts) and prints its endpoint.
// Usage: node fake-hub-process.js '<FakeHubSpec JSON>'
import fs from 'node:fs';
import { fakeHub, type FakeFile, type FakeHubSpec, type FakeRepo } from './fake-hub.js';

const spec = JSON.parse(process.argv[2] ?? '{"repos":{}}') as FakeHubSpec;
const repos: Record<string, FakeRepo> = {};
for (const [key, r] of Object.entries(spec.repos)) {
  const files: Record<string, FakeFile> = {};
  for (const [name, f] of Object.entries(r.files)) {
    files[name] = {
      data: f.path !== undefined ? fs.readFileSync(f.path) : Buffer.from(f.text ?? ''),
      ...(f.lfs ? { lfs: true } : {}),
    };
  }
  repos[key] = { ...r, files };
}
const hub = await fakeHub(repos);
process.stdout.write(`${hub.endpoint}\n`);
process.on('SIGTERM', () => void hub.close().then(() => process.exit(0)));
