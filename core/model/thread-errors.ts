// Model errors across the inference thread's boundary. postMessage clones an Error as a
// plain Error (its class is lost), so the thread sends name, message and the typed
// payload, and the main thread rebuilds the model module's own classes: callers keep
// using instanceof ModelChecksumError & co. whether the runner is threaded or not.

import {
  ModelChecksumError,
  ModelInputError,
  ModelLoadError,
  ModelOutputError,
  ModelRunError,
  ModelSignatureError,
} from './errors.ts';

export interface SerialisedError {
  name: string;
  message: string;
  /** The error's own data fields (model, expected, inputDims, ...), clone-safe. */
  fields?: Record<string, string | number | (string | number)[]>;
}

export function serialiseError(error: unknown): SerialisedError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const fields: NonNullable<SerialisedError['fields']> = {};
  for (const [k, v] of Object.entries(error)) {
    if (typeof v === 'string' || typeof v === 'number') fields[k] = v;
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string' || typeof x === 'number'))
      fields[k] = [...(v as (string | number)[])];
  }
  return { name: error.name, message: error.message, fields };
}

/**
 * An error raised in the inference thread that is not one of the model module's classes
 * (or that the thread itself raised: it exited, or was closed). `remoteName` keeps the
 * original class name.
 */
export class RemoteModelError extends Error {
  override readonly name = 'RemoteModelError';
  readonly remoteName: string;
  constructor(e: SerialisedError) {
    super(e.message);
    this.remoteName = e.name;
  }
}

type Fields = NonNullable<SerialisedError['fields']>;
const str = (f: Fields, k: string): string => (typeof f[k] === 'string' ? (f[k] as string) : '');
const nums = (f: Fields, k: string): number[] => {
  const v = f[k];
  return Array.isArray(v) ? v.filter((x): x is number => typeof x === 'number') : [];
};
const dims = (f: Fields, k: string): (number | string)[] => {
  const v = f[k];
  return Array.isArray(v) ? v : [];
};
const strs = (f: Fields, k: string): string[] =>
  dims(f, k).filter((x): x is string => typeof x === 'string');

const CLASSES: Record<string, (f: Fields) => Error> = {
  ModelChecksumError: (f) =>
    new ModelChecksumError(str(f, 'model'), str(f, 'expected'), str(f, 'actual')),
  ModelLoadError: (f) => new ModelLoadError(str(f, 'model'), str(f, 'detail')),
  ModelInputError: (f) => new ModelInputError(str(f, 'model'), str(f, 'detail')),
  ModelRunError: (f) => new ModelRunError(str(f, 'model'), nums(f, 'inputDims'), str(f, 'detail')),
  ModelOutputError: (f) =>
    new ModelOutputError(
      str(f, 'model'),
      dims(f, 'expectedDims'),
      nums(f, 'actualDims'),
      str(f, 'detail'),
    ),
  ModelSignatureError: (f) => {
    const problems = strs(f, 'problems');
    return new ModelSignatureError(
      str(f, 'model'),
      strs(f, 'fields').map((field, i) => ({ field, message: problems[i] ?? '' })),
    );
  },
};

/** The model module's class for a serialised error, with its message; else RemoteModelError. */
export function rebuildError(e: SerialisedError): Error {
  const make = Object.hasOwn(CLASSES, e.name) ? CLASSES[e.name] : undefined;
  if (!make) return new RemoteModelError(e);
  const error = make(e.fields ?? {});
  // The thread's message is the one that was raised: keep it verbatim.
  error.message = e.message;
  return error;
}
