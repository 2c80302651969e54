// Where products on quantised weights may run on int8 activations.
//
// The native avx512vnni kernel set can quantise the rows of x per block to int8 (as llama.cpp's
// q8_0 / q8_K) and multiply them with the weight's quants on int8 dot products (AVX512-VNNI):
// faster decoding, but the results are only within a stated bound of the float path (the
// reference; test/quant-conformance.test.ts). So it is opt-in per region: generate() turns it on
// for its decoding steps when asked (GenerateOptions.int8Decoding, or RL4QE_INT8_DECODING=1 as
// the default; the greedy tokens of the real-model tests still equal transformers'), while
// prefill, scoring, log-probs and every training product stay on the float path. It is off by
// default because the sampler's log-probs must equal scoring's (src/sampling/shared.test.ts);
// RL4QE_INT8_DECODING=0 forces it off even where a caller asks for it.

let depth = 0;

/** Runs fn with int8 activations allowed for the quantised products it makes (nests). */
export function withInt8Decoding<T>(fn: () => T): T {
  depth++;
  try {
    return fn();
  } finally {
    depth--;
  }
}

/** Whether a quantised product made now may use int8 activations. */
export function int8DecodingAllowed(): boolean {
  return depth > 0 && process.env.RL4QE_INT8_DECODING !== '0';
}
