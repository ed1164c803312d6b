// `tessera convert`: HDF5 and TIFF volumes into OME-Zarr, streamed band by band.
export {
  type ConvertProgress,
  type ConvertResult,
  convertToOmeZarr,
  DEFAULT_CONVERT_CHUNK,
  DEFAULT_MAX_BAND_BYTES,
  openConvertSource,
} from './convert.ts';
export * from './errors.ts';
export type { ConvertSource } from './source.ts';
