// What of a higher-dimensional image becomes the [c, z, y, x] volume a job reads: one
// time point (`input.t`) and a list of channels (`input.channels`), checked against
// the image's axes once, at open.

import { InputSelectionError } from './errors.ts';

export interface InputSelection {
  /** Index on the time axis; required when the image has more than one time point. */
  readonly t?: number;
  /** Channel indices, in the order the model takes them; default every channel. */
  readonly channels?: readonly number[];
}

/** The channel indices to read from an image of `count` channels (every one by default). */
export function selectedChannels(
  where: { location: string; arrayPath: string },
  count: number,
  channels: readonly number[] | undefined,
): number[] {
  if (channels === undefined) return Array.from({ length: count }, (_, i) => i);
  if (channels.length === 0)
    throw new InputSelectionError(
      where.location,
      where.arrayPath,
      'input.channels',
      'the list is empty; name at least one channel index, or leave input.channels out to read all',
    );
  const bad = channels.find((c) => !Number.isInteger(c) || c < 0 || c >= count);
  if (bad !== undefined)
    throw new InputSelectionError(
      where.location,
      where.arrayPath,
      'input.channels',
      `channel ${bad} does not exist: the image has ${count} channel(s), indices 0..${count - 1}`,
    );
  return [...channels];
}

/** The time index to read from an image of `count` time points (or undefined: no time axis). */
export function selectedTime(
  where: { location: string; arrayPath: string },
  count: number | undefined,
  t: number | undefined,
): number | undefined {
  if (count === undefined) {
    if (t !== undefined && t !== 0)
      throw new InputSelectionError(
        where.location,
        where.arrayPath,
        'input.t',
        `the image has no time axis, so only t = 0 (or no input.t) fits, not ${t}`,
      );
    return undefined;
  }
  if (t === undefined) {
    if (count === 1) return 0;
    throw new InputSelectionError(
      where.location,
      where.arrayPath,
      'input.t',
      `the image has ${count} time points; choose one with input.t (0..${count - 1})`,
    );
  }
  if (!Number.isInteger(t) || t < 0 || t >= count)
    throw new InputSelectionError(
      where.location,
      where.arrayPath,
      'input.t',
      `time point ${t} does not exist: the image has ${count}, indices 0..${count - 1}`,
    );
  return t;
}
