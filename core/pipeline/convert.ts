// How a blended float becomes the stored output value.

export type OutputDtype = 'float32' | 'uint8';

const toUint8 = (v: number): number => Math.round(Math.min(1, Math.max(0, v)) * 255);
const identity = (v: number): number => v;

export function outputConverter(dtype: OutputDtype): (v: number) => number {
  return dtype === 'uint8' ? toUint8 : identity;
}
