// Public surface of src/tokenizer: one Tokenizer from tokenizer.json or GGUF vocabulary, chat templates.
export {
  Tokenizer,
  VocabMismatchError,
  checkCompatible,
  type EncodeOptions,
  type DecodeOptions,
  type SpecialToken,
  type TokenizerSource,
} from './tokenizer.js';
export { ChatTemplate, type ChatMessage, type ChatTemplateOptions } from './chat-template.js';
export {
  readGgufVocab,
  ggufVocabToTokenizerJson,
  GGUF_PRE_TOKENIZER_SPLITS,
  GGUF_TOKEN_TYPE,
  type GgufMetadataLike,
  type GgufVocab,
} from './gguf-vocab.js';
export type { TokenizerJson, TokenizerConfig, AddedTokenJson } from './tokenizer-json.js';
