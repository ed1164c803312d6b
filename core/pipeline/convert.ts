// How a blended float becomes the stored output value.

export type OutputDtype = 'float32' | 'uint8';

const toUint8 = (v: number): number => Math.round(Math.min(1, Math.max(0, v)) * 255);

/**
 * The conversion for a stored dtype; undefined when values are stored as they are
 * (float32), so the normalising loop makes no call per voxel.
 */
export function outputConverter(dtype: OutputDtype): ((v: number) => number) | undefined {
  return dtype === 'uint8' ? toUint8 : undefined;
}
