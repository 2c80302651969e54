// difflib.SequenceMatcher(None, a, b).ratio() of CPython 3.11, on integer sequences, reproduced
// step by step (the autojunk "popular element" rule and find_longest_match's tie-breaking
// included), because the matched total depends on which longest match is taken first.

/** Total size of SequenceMatcher's matching blocks for a and b (isjunk=None, autojunk=True). */
export function matchingTotal(a: Int32Array, b: Int32Array): number {
  const la = a.length;
  const lb = b.length;
  // b2j: element → increasing positions in b.
  const b2j = new Map<number, number[]>();
  for (let j = 0; j < lb; j++) {
    const e = b[j]!;
    const l = b2j.get(e);
    if (l) l.push(j);
    else b2j.set(e, [j]);
  }
  if (lb >= 200) {
    const ntest = Math.floor(lb / 100) + 1;
    for (const [e, idxs] of b2j) if (idxs.length > ntest) b2j.delete(e);
  }
  // j2len as a dense array with a generation stamp: j2len[j] is valid iff stamp[j] === gen.
  let j2len = new Int32Array(lb + 1);
  let j2stamp = new Int32Array(lb + 1);
  let newlen = new Int32Array(lb + 1);
  let newstamp = new Int32Array(lb + 1);
  let gen = 0;

  const longest = (
    alo: number,
    ahi: number,
    blo: number,
    bhi: number,
  ): [number, number, number] => {
    let besti = alo;
    let bestj = blo;
    let bestsize = 0;
    gen++;
    const start = gen; // stamps of the "current" j2len; nothing valid yet
    let cur = start;
    for (let i = alo; i < ahi; i++) {
      const js = b2j.get(a[i]!);
      gen++;
      const next = gen;
      if (js) {
        for (let t = 0; t < js.length; t++) {
          const j = js[t]!;
          if (j < blo) continue;
          if (j >= bhi) break;
          // j2len.get(j-1, 0) + 1; index j-1 stored at slot j (slot 0 means j-1 = -1).
          const prev = j2stamp[j] === cur ? j2len[j]! : 0;
          const k = prev + 1;
          newlen[j + 1] = k;
          newstamp[j + 1] = next;
          if (k > bestsize) {
            besti = i - k + 1;
            bestj = j - k + 1;
            bestsize = k;
          }
        }
      }
      // swap: the new table becomes current.
      const tl = j2len;
      j2len = newlen;
      newlen = tl;
      const ts = j2stamp;
      j2stamp = newstamp;
      newstamp = ts;
      cur = next;
    }
    // Extend over equal (non-junk; bjunk is empty) elements on both sides: popular elements are
    // absent from b2j but still extend a match here, exactly as in CPython.
    while (besti > alo && bestj > blo && a[besti - 1] === b[bestj - 1]) {
      besti--;
      bestj--;
      bestsize++;
    }
    while (
      besti + bestsize < ahi &&
      bestj + bestsize < bhi &&
      a[besti + bestsize] === b[bestj + bestsize]
    ) {
      bestsize++;
    }
    return [besti, bestj, bestsize];
  };

  let total = 0;
  const queue: [number, number, number, number][] = [[0, la, 0, lb]];
  while (queue.length > 0) {
    const [alo, ahi, blo, bhi] = queue.pop()!;
    const [i, j, k] = longest(alo, ahi, blo, bhi);
    if (k > 0) {
      total += k;
      if (alo < i && blo < j) queue.push([alo, i, blo, j]);
      if (i + k < ahi && j + k < bhi) queue.push([i + k, ahi, j + k, bhi]);
    }
  }
  return total;
}

/** SequenceMatcher.ratio(): 2·M / (len(a) + len(b)), 1.0 for two empty sequences. */
export function sequenceRatio(a: Int32Array, b: Int32Array): number {
  const n = a.length + b.length;
  return n === 0 ? 1.0 : (2.0 * matchingTotal(a, b)) / n;
}
