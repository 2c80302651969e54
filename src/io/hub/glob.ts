// Glob patterns for repository paths (`rl4qe pull --include`, the resolver's default files).
// Python's huggingface_hub uses fnmatch, where `*` also crosses "/"; rl4qe keeps `*` within one
// path segment and `**` for any depth, so `*.safetensors` does not pull a sub-folder's copies.

/** Glob → RegExp: `**` any characters (also "/"), `*` within a segment, `?` one character. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
      if (glob[i + 1] === '/') {
        re = re.slice(0, -2) + '(?:.*/)?';
        i++;
      }
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c!.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** True when the pattern has no wildcard (a plain file name). */
export function isLiteralPattern(glob: string): boolean {
  return !/[*?]/.test(glob);
}
