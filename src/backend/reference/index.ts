// The reference backend: plain TypeScript loops, float32 and float64. It is the definition of
// every kernel (native must agree with it) and the fallback when the native addon is missing.
import type { FullBackend } from '../backend.js';
import { affine, argmax, binary, reduce, unary, unaryBackward } from './elementwise.js';
import { bf16Fast, bf16Matmul, bf16MatmulT, bf16Pack } from './bf16.js';
import { matmul } from './matmul.js';
import { alloc, copyStrided, fill, liveBytes, release } from './memory.js';
import { qembedding, qmatmul, qmatmulT, qsupports } from './quant.js';
import { logsumexp, rmsnorm, rmsnormBackward, softmax, softmaxBackward } from './rows.js';
import {
  adamw,
  attention,
  attentionBackward,
  embedding,
  embeddingBackward,
  rope,
} from './transformer.js';

export const referenceBackend: FullBackend = {
  name: 'reference',
  supports: () => true,
  alloc,
  allocUninit: alloc,
  release,
  liveBytes,
  // No pool: released reference buffers are the garbage collector's.
  trimPool: () => 0,
  // No pool: nothing to cap.
  setPoolCapMb: () => 0,
  copyStrided,
  fill,
  matmul,
  binary,
  unary,
  unaryBackward,
  affine,
  reduce,
  argmax,
  softmax,
  softmaxBackward,
  logsumexp,
  rmsnorm,
  rmsnormBackward,
  rope,
  attention,
  attentionBackward,
  embedding,
  embeddingBackward,
  adamw,
  qsupports,
  qmatmul,
  qmatmulT,
  qembedding,
  bf16Pack,
  bf16Matmul,
  bf16MatmulT,
  bf16Fast,
};
