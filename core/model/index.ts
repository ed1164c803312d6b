export {
  ModelChecksumError,
  ModelInputError,
  ModelLoadError,
  ModelOutputError,
  ModelRunError,
} from './errors.ts';
export {
  type Device,
  type GpuOptions,
  ModelRunner,
  type ModelRunnerOptions,
  type ModelSource,
  type Patch,
} from './runner.ts';
export * from './threaded.ts';
