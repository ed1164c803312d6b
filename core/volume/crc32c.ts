// CRC-32C (Castagnoli), the checksum Zarr v3's `crc32c` codec appends to a shard index
// (RFC 3720: polynomial 0x1EDC6F41, reflected, initial value and final xor 0xFFFFFFFF; check
// values in its appendix B.4).
//
// Why not zarrita's: its crc32c codec only strips the four bytes on decode (it neither
// computes nor checks them), and a dependency is not worth it for a shard index of a few
// KiB. One 256-entry table, a byte at a time: ~290 MB/s here, and an index of 64 inner
// chunks is 1 KiB.

const REFLECTED_POLYNOMIAL = 0x82f63b78;

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ REFLECTED_POLYNOMIAL : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** The CRC-32C of `bytes`, as an unsigned 32-bit integer. */
export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = TABLE[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
