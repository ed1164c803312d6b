// IEEE 754 half precision at the model boundary: a float16 model's input is rounded from
// the pipeline's float32 (to nearest, ties to even, as a GPU or numpy rounds), its output
// widened back (exact). onnxruntime-node holds float16 tensor data as the raw bits in a
// Uint16Array (Node 22 has no Float16Array).
//
//   float32  s eeeeeeee mmmmmmmmmmmmmmmmmmmmmmm     bias 127
//   float16  s eeeee    mmmmmmmmmm                  bias 15, max 65504, min subnormal 2^-24

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → float16 bits, rounding to nearest even; beyond 65504 (after rounding) → ±∞. */
export function toFloat16Bits(src: Float32Array, dest = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) {
    f32[0] = src[i]!;
    dest[i] = halfBits(u32[0]!);
  }
  return dest;
}

/** float16 bits → float32 (exact). */
export function fromFloat16Bits(
  src: Uint16Array,
  dest = new Float32Array(src.length),
): Float32Array {
  for (let i = 0; i < src.length; i++) dest[i] = halfValue(src[i]!);
  return dest;
}

function halfBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0); // ∞, NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // too large: ∞
  if (e <= 0) {
    // Subnormal (or zero) in float16: the value is m · 2^-24 with m = full mantissa >> shift.
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    const full = mant | 0x800000;
    const shift = 14 - e;
    return sign | roundShift(full, shift);
  }
  // Normal: keep 10 mantissa bits; a carry out of the mantissa bumps the exponent (to ∞ at most).
  return sign | ((e << 10) + roundShift(mant, 13));
}

/** v >> shift, rounded to nearest, ties to even. */
function roundShift(v: number, shift: number): number {
  const kept = v >>> shift;
  const rest = v & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept;
}

function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
