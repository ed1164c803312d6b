// Volume IO: the input Zarr read box by box (zero-padded), its normalisation, and the
// output Zarr written block by block, with OME-Zarr metadata.
export { OUTPUT_CODECS, ZSTD_LEVEL } from './block-codec.ts';
export * from './dtype.ts';
export * from './errors.ts';
export * from './input.ts';
export * from './normalize.ts';
export { type OmeOptions, type SpaceUnit, voxelSizeOf, writeOmeMetadata } from './ome.ts';
export * from './output.ts';
export { defaultShardShape, type ShardShapeSource } from './output-layout.ts';
export { isShardedOutput, type ShardBlock, type ShardedOutput } from './sharded-output.ts';
