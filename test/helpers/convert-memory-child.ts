// Converts one input in a process of its own and reports its memory. `dataGrowth` is the
// peak, over the conversion, of the V8 heap plus the memory outside it that holds data
// (array buffers, the WebAssembly heaps of h5wasm and zstd), less the same once the
// source is open: what the file's voxels could occupy. RSS figures are reported too, but
// they also count V8 compiling h5wasm's 4 MB WebAssembly module in background threads,
// hundreds of MB that arrive at no fixed moment and have nothing to do with the file.
// argv: <input> <output.zarr> <Z,Y,X chunk> [dataset]. Prints one JSON line.

import { convertToOmeZarr, openConvertSource } from '../../core/convert/index.ts';
import { LocalStore } from '../../core/store/index.ts';

const [input, output, chunkText, dataset] = process.argv.slice(2);
if (!input || !output || !chunkText)
  throw new Error('usage: convert-memory-child <input> <output> <chunk> [dataset]');
const chunk = chunkText.split(',').map(Number) as [number, number, number];
const data = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};
const source = await openConvertSource(input, dataset);
const dataBefore = data();
const rssBefore = process.memoryUsage().rss;
let dataPeak = dataBefore;
const result = await convertToOmeZarr(source, new LocalStore(output, { fsync: false }), {
  chunk,
  onProgress: () => {
    dataPeak = Math.max(dataPeak, data());
  },
});
await source.close();
process.stdout.write(
  `${JSON.stringify({
    dataGrowth: dataPeak - dataBefore,
    rssBefore,
    rssPeak: process.resourceUsage().maxRSS * 1024,
    bandBytes: result.bandBytes,
    chunks: result.chunks,
  })}\n`,
);
