// The numeric Zarr data types Tessera reads, and their typed-array constructors.
// 64-bit integers (BigInt arrays), float16, bool and strings are refused up front:
// none of them can feed a float32 model input without a lossy, surprising conversion.

import type { NumericArray } from '../array/dense.ts';

export const VOLUME_DTYPES = [
  'uint8',
  'int8',
  'uint16',
  'int16',
  'uint32',
  'int32',
  'float32',
  'float64',
] as const;

export type VolumeDtype = (typeof VOLUME_DTYPES)[number];

export type NumericArrayConstructor = new (length: number) => NumericArray;

const CONSTRUCTORS: Record<VolumeDtype, NumericArrayConstructor> = {
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  uint32: Uint32Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
};

export const isVolumeDtype = (dtype: string): dtype is VolumeDtype =>
  (VOLUME_DTYPES as readonly string[]).includes(dtype);

export const arrayConstructor = (dtype: VolumeDtype): NumericArrayConstructor =>
  CONSTRUCTORS[dtype];

export function isNumericArray(data: unknown): data is NumericArray {
  return Object.values(CONSTRUCTORS).some((ctor) => data instanceof ctor);
}
