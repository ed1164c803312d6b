// File names in the order people number them: slice_2.tif before slice_10.tif. Runs of
// digits compare by value, the rest by code point, so the order is the same on every
// machine (Intl collation depends on the ICU data a Node build carries).

export function naturalCompare(a: string, b: string): number {
  const pa = a.match(PARTS) ?? [];
  const pb = b.match(PARTS) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    if (x === y) continue;
    const nx = DIGITS.test(x);
    const ny = DIGITS.test(y);
    if (nx && ny) {
      const d = BigInt(x) - BigInt(y);
      if (d !== 0n) return d < 0n ? -1 : 1;
      // Equal values written differently ("01", "1"): the shorter first, then as text.
    }
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}

const PARTS = /\d+|\D+/g;
const DIGITS = /^\d/;
