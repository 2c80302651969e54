// Local ESLint rule: the import arrows of docs/architecture.md ("who may import whom").
// A file in src/<layer>/ may import from its own layer and from the layers listed here.
// Tests (*.test.ts) follow the same arrows as the code beside them; test/ may import anything.
import path from 'node:path';

/** layer -> layers it may import (besides itself). The single source of truth, mirrored in docs/architecture.md. */
export const ALLOWED = {
  util: [],
  backend: ['util'],
  tensor: ['backend', 'util'],
  nn: ['tensor', 'backend', 'util'],
  io: ['tensor', 'backend', 'util'],
  tokenizer: ['io', 'util'],
  models: ['nn', 'io', 'tensor', 'backend', 'tokenizer', 'util'],
  sampling: ['models', 'nn', 'tensor', 'backend', 'tokenizer', 'util'],
  generators: ['sampling', 'models', 'io', 'tokenizer', 'tensor', 'backend', 'util'],
  data: ['util'],
  sandbox: ['util'],
  rewards: ['sandbox', 'data', 'util'],
  train: [
    'rewards',
    'sandbox',
    'data',
    'generators',
    'sampling',
    'models',
    'tokenizer',
    'io',
    'nn',
    'tensor',
    'backend',
    'util',
  ],
  eval: [
    'train',
    'rewards',
    'sandbox',
    'data',
    'generators',
    'sampling',
    'models',
    'tokenizer',
    'io',
    'nn',
    'tensor',
    'backend',
    'util',
  ],
  serve: [
    'eval',
    'train',
    'rewards',
    'sandbox',
    'data',
    'generators',
    'sampling',
    'models',
    'tokenizer',
    'io',
    'nn',
    'tensor',
    'backend',
    'util',
  ],
  cli: ['*'],
  index: ['*-but-cli'],
};

function layerOf(absFile, srcRoot) {
  const rel = path.relative(srcRoot, absFile);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return null;
  const parts = rel.split(path.sep);
  if (parts.length === 1) return parts[0] === 'index.ts' ? 'index' : null;
  return parts[0];
}

export const layersRule = {
  meta: {
    type: 'problem',
    docs: { description: 'enforce the import arrows between src/ layers (docs/architecture.md)' },
    schema: [],
  },
  create(context) {
    const file = context.filename ?? context.getFilename();
    const srcRoot = path.resolve(context.cwd ?? process.cwd(), 'src');
    const from = layerOf(path.resolve(file), srcRoot);
    if (from === null) return {};
    function check(node, spec) {
      if (typeof spec !== 'string' || !spec.startsWith('.')) return;
      const target = path.resolve(path.dirname(file), spec);
      const to = layerOf(target.replace(/\.js$/, '.ts'), srcRoot);
      if (to === null || to === from) return;
      const allowed = ALLOWED[from];
      if (allowed === undefined) {
        context.report({
          node,
          message: `src/${from}/ is not a known layer: add it to scripts/eslint-layers.js and docs/architecture.md first.`,
        });
        return;
      }
      if (allowed.includes('*')) return;
      if (allowed.includes('*-but-cli') && to !== 'cli') return;
      if (!allowed.includes(to)) {
        context.report({
          node,
          message: `src/${from}/ may not import src/${to}/ (allowed: ${allowed.join(', ') || 'nothing of ours'}). See docs/architecture.md.`,
        });
      }
    }
    return {
      ImportDeclaration(node) {
        check(node, node.source.value);
      },
      ExportNamedDeclaration(node) {
        if (node.source) check(node, node.source.value);
      },
      ExportAllDeclaration(node) {
        check(node, node.source.value);
      },
      ImportExpression(node) {
        if (node.source.type === 'Literal') check(node, node.source.value);
      },
    };
  },
};
