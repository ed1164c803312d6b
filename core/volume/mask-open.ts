// Opens input.mask for a job: the store, the array, its factor checked against the input.

import type { Manifest } from '../manifest/schema.ts';
import { openStoreForUrl } from '../store/index.ts';
import type { OpenStoreOptions } from '../store/resolve.ts';
import { type InputVolume, openInputVolume } from './input.ts';
import { MaskVolume, maskFactor } from './mask.ts';

export async function openMask(
  spec: NonNullable<Manifest['input']['mask']>,
  input: Pick<InputVolume, 'shape' | 'voxelSize'>,
  storeOpts: OpenStoreOptions,
): Promise<MaskVolume> {
  const store = await openStoreForUrl(spec.url, storeOpts);
  const volume = await openInputVolume(store, spec.array);
  const factor = maskFactor(input, volume, spec.factor);
  return new MaskVolume(volume, { factor, threshold: spec.threshold ?? 0 });
}
