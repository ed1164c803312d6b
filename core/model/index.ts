export {
  ModelChecksumError,
  ModelInputError,
  type ModelIssue,
  ModelLoadError,
  ModelOutputError,
  ModelRunError,
  ModelSignatureError,
} from './errors.ts';
export { fromFloat16Bits, toFloat16Bits } from './float16.ts';
export {
  type Device,
  type GpuOptions,
  ModelRunner,
  type ModelRunnerOptions,
  type ModelSource,
  type Patch,
  readModelSignature,
} from './runner.ts';
export {
  checkModelAgainstManifest,
  type ModelExpectation,
  type ModelIo,
  type ModelSignature,
  modelExpectation,
  type ReadSignature,
  resolveModelIo,
  signatureOf,
  type TensorFloat,
  type TensorSignature,
} from './signature.ts';
export * from './threaded.ts';
