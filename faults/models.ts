// Broken models for the fault matrix, built in memory (the committed fixtures cover NaN
// output and a shrinking net; these add the other ways a model goes wrong):
//
//   throws.onnx          loads fine, throws inside onnxruntime on every run: a Reshape
//                        to a fixed 2×7×7×7 that no patch's element count matches
//   three-channels.onnx  'same'-padded conv with 3 output channels, declared as such:
//                        a manifest saying outputChannels 2 must not accept it
//   truncated.onnx       the first 100 bytes of a model: onnxruntime cannot load it

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { buildConvNet, heConv, mulberry32 } from '../test/fixtures/models.ts';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

const dims = (d: (number | string)[]): onnxProto.onnx.ITensorShapeProto => ({
  dim: d.map((x) => (typeof x === 'number' ? { dimValue: x } : { dimParam: x })),
});

export function throwingModel(): Uint8Array {
  const shape = new BigInt64Array([-1n, 2n, 7n, 7n, 7n]);
  const model: onnxProto.onnx.IModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'tessera-faults',
    graph: {
      name: 'throws',
      node: [{ name: 'reshape', opType: 'Reshape', input: ['input', 'shape'], output: ['output'] }],
      initializer: [
        { name: 'shape', dims: [5], dataType: INT64, rawData: new Uint8Array(shape.buffer) },
      ],
      input: [
        {
          name: 'input',
          type: { tensorType: { elemType: FLOAT, shape: dims(['batch', 1, 'z', 'y', 'x']) } },
        },
      ],
      output: [
        {
          name: 'output',
          type: { tensorType: { elemType: FLOAT, shape: dims(['batch', 2, 'z', 'y', 'x']) } },
        },
      ],
    },
  };
  return onnx.ModelProto.encode(model).finish();
}

export function threeChannelModel(): Uint8Array {
  const rand = mulberry32(7);
  return buildConvNet({
    name: 'three-channels',
    inChannels: 1,
    layers: [heConv(rand, 1, 3, 3, 1), { op: 'sigmoid' }],
    docString: 'Conv3d 1->3, k3, pad 1, + Sigmoid: right size, one channel too many.',
  });
}

/** Writes them into `dir` (and the first 100 bytes of a good model); returns their paths. */
export function writeBrokenModels(dir: string): {
  throws: string;
  threeChannels: string;
  truncated: string;
} {
  const throws = join(dir, 'throws.onnx');
  const threeChannels = join(dir, 'three-channels.onnx');
  const truncated = join(dir, 'truncated.onnx');
  writeFileSync(throws, throwingModel());
  writeFileSync(threeChannels, threeChannelModel());
  writeFileSync(truncated, threeChannelModel().subarray(0, 100));
  return { throws, threeChannels, truncated };
}
