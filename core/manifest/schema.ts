// The manifest v1 schema: what a user writes to describe one inference job. Field
// names are a public contract (users' files, the JSON Schema, the docs); add fields,
// never rename them. Per-field rules live on the fields, so the JSON Schema export
// carries them to editors; rules that relate fields live in `crossFieldChecks`.
//
//   patchShape  |<-------- patch -------->|
//   overlap                     |<------->|
//   stride      |<-- stride --->|            stride = patchShape - overlap
//   chunkShape  |<---------- >= one stride ---------->|
import { z } from 'zod';
import { sameStorageLocation, splitFormatPrefix, storageUrlProblem } from './url.ts';

const AXES = ['z', 'y', 'x'] as const;

// min(1) rather than positive(): the JSON Schema then says `minimum: 1`, which reads plainer.
const positiveInt = z.int().min(1);
const triple = (item: z.ZodInt) => z.tuple([item, item, item]);

const positiveTriple = (description: string) => triple(positiveInt).describe(description);

// Refinements (not regexes) so that each message can say what exactly is wrong.
const storageUrl = (what: string) =>
  z
    .string()
    .superRefine((url, ctx) => {
      const problem = storageUrlProblem(url);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    })
    .describe(
      `${what}. A local path (relative to the working directory), file:///absolute/path, ` +
        'or s3://bucket/key.',
    );

const NAME_PATTERN = /^[a-z0-9]+(-[a-z0-9]+)*$/;

const nameSchema = z
  .string()
  .max(63, { error: 'must be at most 63 characters (it is used in AWS resource names)' })
  .regex(NAME_PATTERN, {
    error:
      'must be lower-case letters and digits in words joined by single dashes, e.g. "mito-seg-v2"',
  })
  .regex(/^(?!.*-[0-9a-f]{10}$)/, {
    error:
      'must not end in a dash and 10 hex digits: that shape is reserved for job ids (<name>-<10 hex>); rename it, e.g. "cells-v2"',
  })
  .describe(
    'Job name: lower-case letters and digits in words joined by single dashes ' +
      '(e.g. "mito-seg-v2"), at most 63 characters. Used in job ids and AWS resource names.',
  );

const inputSchema = z
  .strictObject({
    url: storageUrl('The input volume (a Zarr v2/v3 array or group)'),
    mip: z
      .union([z.int().min(0), z.string().min(1)])
      .optional()
      .describe(
        'For a Neuroglancer precomputed input (input.url "precomputed://<url>", or a ' +
          'directory or prefix holding its info file): the scale to read, as an index into ' +
          'the info\'s scales (0 is full resolution) or a scale\'s key (e.g. "8_8_40"). Default 0.',
      ),
    array: z
      .string()
      .regex(/^[^/]+(\/[^/]+)*$/, {
        error:
          'must be a path inside the Zarr group such as "volumes/raw" (no leading, trailing or double "/")',
      })
      .refine((path) => !path.split('/').some((part) => part === '.' || part === '..'), {
        error: 'must not contain "." or ".." segments',
      })
      .optional()
      .describe(
        'Path of the array inside the Zarr group at `url` (e.g. "volumes/raw" or "0" for the ' +
          'full-resolution OME-Zarr level). Omit when `url` points at the array itself.',
      ),
    scale: z
      .number()
      .optional()
      .describe(
        'Multiplies every input voxel before inference: x * scale + offset. Default: with ' +
          "neither scale, offset nor normalize, integer inputs map their dtype's range onto " +
          '[0, 1] (uint8 v / 255, uint16 v / 65535, int16 (v + 32768) / 65535, ...) and floats ' +
          'are passed as they are; with offset alone, 1.',
      ),
    offset: z
      .number()
      .optional()
      .describe('Added to every input voxel after scaling: x * scale + offset. Default 0.'),
    normalize: z
      .strictObject({
        percentiles: z
          .tuple([z.number().min(0).max(100), z.number().min(0).max(100)])
          .refine(([low, high]) => low < high, {
            error: 'the first percentile must be below the second, e.g. [0.5, 99.5]',
          })
          .describe(
            'Two input percentiles [low, high] (0..100) mapped to 0 and 1, e.g. [0.5, 99.5]. ' +
              'Computed once at plan time from a fixed sample of the stored chunks and frozen ' +
              'in the job, so every worker applies the same scale and offset.',
          ),
        clip: z
          .boolean()
          .optional()
          .describe('Clip the mapped values to [0, 1]. Default false (values beyond pass on).'),
      })
      .optional()
      .describe(
        "Normalise by the input's own intensities instead of its dtype's range; not " +
          'together with scale or offset.',
      ),
    nan: z
      .enum(['zero', 'fail'])
      .optional()
      .describe(
        "What NaN input voxels (a float input's NaN, or the NaN fill_value of its unwritten " +
          'chunks) become: "zero" feeds them to the model as 0, the value of the padding ' +
          'outside the volume; "fail" fails the chunk before inference, naming it and this field. ' +
          'Default "fail": NaN is no data, and a model fed 0 there would output what looks like a prediction.',
      ),
    skipBelow: z
      .number()
      .optional()
      .describe(
        'Chunks whose input voxels (as stored, before scale and offset) are all below this ' +
          'value are skipped, not inferred. Saves compute on empty background and padding.',
      ),
    mask: z
      .strictObject({
        url: storageUrl('The mask volume (a Zarr array or OME-Zarr image, one channel)'),
        array: z
          .string()
          .regex(/^[^/]+(\/[^/]+)*$/, {
            error: 'must be a path inside the Zarr group such as "mask" or "4"',
          })
          .optional()
          .describe('Path of the mask array inside the Zarr group at `url`.'),
        factor: positiveTriple(
          'Input voxels per mask voxel, [z, y, x], positive integers (e.g. [16, 16, 16] for ' +
            'a mip-4 mask). Default: the ratio of the OME-Zarr voxel sizes of mask and input.',
        ).optional(),
        threshold: z
          .number()
          .optional()
          .describe('Mask voxels above this value are tissue. Default 0.'),
      })
      .optional()
      .describe(
        'A coarse mask: patches whose input box holds no mask voxel above the threshold ' +
          'are not inferred; they contribute 0 with their usual blend weight.',
      ),
    t: z
      .int()
      .min(0)
      .optional()
      .describe(
        'Time point to read from an image with a time axis (OME-Zarr [t, c, z, y, x], e.g. ' +
          "bioformats2raw's output), 0-based. Required when the image has more than one time " +
          'point; an image with one (or none) needs no t.',
      ),
    channels: z
      .array(z.int().min(0))
      .min(1, { error: 'must name at least one channel index; omit it to read every channel' })
      .optional()
      .describe(
        'Channel indices (0-based) to feed the model, in the order it takes them, e.g. [1] or ' +
          '[2, 0]. Works on [c, z, y, x] arrays, OME-Zarr images and 4-D N5 datasets. Default ' +
          'every channel, in order.',
      ),
  })
  .describe('Where the image to run the model on is stored.');

const outputSchema = z
  .strictObject({
    url: storageUrl(
      'Where the output Zarr array is written; must differ from input.url. Cloud jobs write ' +
        'only under outputs/ of the stack bucket or an allowed bucket (s3://bucket/outputs/name.zarr)',
    ),
    dtype: z
      .enum(['float32', 'uint8'])
      .describe(
        'Voxel type of the output array: "float32", or "uint8" for a quarter of the storage.',
      ),
    format: z
      .enum(['zarr', 'precomputed'])
      .optional()
      .describe(
        'Output format: "zarr" (OME-Zarr 0.5 on Zarr v3) or "precomputed" (a Neuroglancer ' +
          'precomputed volume: info file plus one raw chunk file per output block, unsharded, ' +
          'for igneous, CloudVolume and neuroglancer). Default "zarr", or "precomputed" when ' +
          'output.url starts with precomputed://.',
      ),
    blockShape: positiveTriple(
      'Storage chunk shape of the output array, [z, y, x], positive integers. Larger blocks ' +
        'mean fewer S3 requests per chunk. Omit to let the planner choose.',
    ).optional(),
    shardShape: positiveTriple(
      'Shard shape of the output array, [z, y, x], a multiple of blockShape per axis: the ' +
        'blocks of one shard are stored as one object (Zarr v3 sharding_indexed), so a chunk ' +
        'writes a few objects instead of one per block. Omit for one object per block.',
    ).optional(),
    pyramid: z
      .int()
      .min(0)
      .max(12)
      .optional()
      .describe(
        'Downsampled levels to add for viewers (0..12): level l halves y and x of level ' +
          'l - 1 (and z while that keeps voxels near isotropic), each voxel the mean of the ' +
          'ones below it. Built by finalize, block by block. Default 0 (none).',
      ),
    transform: z
      .union([
        z.enum(['argmax', 'sigmoid', 'softmax']),
        z.strictObject({ threshold: z.number().finite() }),
      ])
      .optional()
      .describe(
        'Applied to the blended values of each voxel when its block becomes final: "argmax" ' +
          '(one channel of labels, the lowest channel index wins ties; output.dtype "uint8" ' +
          'for up to 256 channels), {"threshold": t} (per channel, 1 where the value > t, ' +
          'else 0), "sigmoid" or "softmax" (across channels). Default none (blended values).',
      ),
  })
  .describe('Where and how the result is written.');

// Test-time augmentation (core/infer/tta.ts applies it): each patch's output is the mean
// of T⁻¹(f(T(x))) over the transforms T, before blending.
const ttaTransformSchema = z
  .strictObject({
    flip: z.array(z.enum(AXES)).optional().describe('Axes to flip, e.g. ["z", "x"]. Default none.'),
    rot90: z
      .int()
      .min(0)
      .max(3)
      .optional()
      .describe(
        'Quarter turns in the yx plane after the flips, as numpy.rot90(patch, k, axes=(y, x)). ' +
          'An odd count needs a square patch in y and x. Default 0.',
      ),
  })
  .describe('One transform: flip the listed axes, then rotate in yx.');

const ttaSchema = z
  .union([
    z.boolean(),
    z
      .array(z.union([z.enum(['flips', 'rot90']), ttaTransformSchema]))
      .min(1, { error: 'must list at least one of "flips", "rot90" or a transform' }),
  ])
  .describe(
    'Test-time augmentation: each patch is inferred under several transforms and the ' +
      'outputs, transformed back, are averaged before blending. true = the 8 flips (z, y, x ' +
      'each flipped or not). A list combines "flips", "rot90" (the 4 quarter turns in yx; ' +
      'needs a square patch in y and x) and explicit transforms {flip, rot90}; "flips" and ' +
      '"rot90" together are the 16 distinct flips and turns. The identity is always included, ' +
      'duplicates count once. Inference costs as many times more as there are transforms. ' +
      'Default false.',
  );

const modelSchema = z
  .strictObject({
    url: storageUrl('The ONNX model file (must end in .onnx)').refine(
      (url) => url.toLowerCase().endsWith('.onnx'),
      { error: 'must name an .onnx file' },
    ),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, {
        error: 'must be 64 hexadecimal digits, as printed by `sha256sum model.onnx`',
      })
      .toLowerCase()
      .optional()
      .describe(
        'SHA-256 of the model file (64 hex digits, as printed by sha256sum); when given, the ' +
          'model file is checked against it before use.',
      ),
    patchShape: positiveTriple(
      'Shape of the input patch the model is run on, [z, y, x], positive integers.',
    ),
    outputPatchShape: positiveTriple(
      'For valid-convolution models whose output is smaller than their input: the output ' +
        'patch [z, y, x], centred in the input patch (patchShape - outputPatchShape must be even ' +
        'per axis). Patches are then laid out over the output, and inputs are zero-padded at the ' +
        'volume edge. Omit when the output has the input patch size.',
    ).optional(),
    outputChannels: positiveInt.describe('Number of output channels the model produces (>= 1).'),
    channelNames: z
      .array(z.string().min(1, { error: 'must not be empty' }))
      .optional()
      .describe(
        'Names of the output channels, one per channel (e.g. ["membrane", "mito"]); they ' +
          'label the OME-Zarr channels (omero), the preview and the report. Default ' +
          '"channel 0", "channel 1", ...',
      ),
    output: z
      .string()
      .min(1, { error: 'must name one of the model\'s outputs, e.g. "affinities"' })
      .optional()
      .describe(
        'Name of the model output to use, for a model with more than one output (e.g. ' +
          '"affinities"); `tessera plan` lists the outputs. Required then: Tessera never picks ' +
          'one silently. Omit for a single-output model.',
      ),
    tta: ttaSchema.optional(),
  })
  .describe('The network to run.');

const regionSchema = z
  .strictObject({
    start: triple(z.int().nonnegative()).describe(
      'First voxel of the region (inclusive), [z, y, x], each >= 0.',
    ),
    stop: triple(z.int().nonnegative()).describe(
      'End of the region (exclusive), [z, y, x]; each must be greater than start and at most ' +
        'the volume shape.',
    ),
  })
  .superRefine((region, ctx) => {
    AXES.forEach((_, i) => {
      const start = region.start[i] ?? 0;
      const stop = region.stop[i] ?? 0;
      if (start >= stop) {
        ctx.addIssue({
          code: 'custom',
          path: ['stop', i],
          message: `region.stop[${i}] = ${stop} must be greater than region.start[${i}] = ${start}`,
        });
      }
    });
  })
  .describe('Part of the volume to process (half-open box). Omit to process the whole volume.');

const computeSchema = z
  .strictObject({
    device: z
      .enum(['cpu', 'gpu'])
      .default('cpu')
      .describe('Run the model on CPU or GPU workers. Default "cpu".'),
    maxWorkers: z
      .int()
      .min(1)
      .max(10_000)
      .default(1)
      .describe('Most workers running at once (1..10000; the AWS Batch array limit). Default 1.'),
    spot: z
      .boolean()
      .default(true)
      .describe('Use spot capacity (cheaper, may be reclaimed; work resumes). Default true.'),
  })
  .describe('Where the job runs. Defaults to one CPU worker on spot.');

const manifestObject = z.strictObject({
  $schema: z
    .string()
    .optional()
    .describe('Optional path or URL of this JSON Schema, for editor support. Ignored by Tessera.'),
  version: z
    .literal(1, {
      error: (issue) =>
        issue.input === undefined
          ? 'is required; write "version": 1'
          : 'unsupported manifest version; this Tessera reads "version": 1',
    })
    .describe('Manifest format version. Always 1.'),
  name: nameSchema,
  input: inputSchema,
  output: outputSchema,
  model: modelSchema,
  overlap: triple(z.int().nonnegative()).describe(
    'Overlap between neighbouring patches, in voxels, as [z, y, x]; each >= 0 and smaller ' +
      'than model.patchShape. Patches advance by patchShape - overlap.',
  ),
  blend: z
    .enum(['bump', 'gaussian', 'constant'])
    .default('bump')
    .describe(
      'Weight used to blend overlapping patches: "bump" (smooth, zero-free), "gaussian" ' +
        '(sigma = patch/8) or "constant" (plain average). Default "bump".',
    ),
  chunkShape: positiveTriple(
    'Shape of the unit of work one worker claims, [z, y, x], positive integers; at least one ' +
      'patch stride (model.patchShape - overlap) per axis. Size it to minutes of compute: ' +
      'an interrupted worker loses at most one chunk.',
  ),
  region: regionSchema.optional(),
  compute: computeSchema.prefault({}),
  maxAttempts: z
    .int()
    .min(1)
    .max(100)
    .default(3)
    .describe('Attempts per chunk before it is marked failed and the job stops. Default 3.'),
  next: z
    .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
    .optional()
    .describe(
      'Next stage(s) of a two-stage (recursive) pipeline: the path or URL of a manifest (or ' +
        'a list) run once this job SUCCEEDS, never after a failure. A relative path resolves ' +
        "against this manifest's directory. The next manifest's input is usually this job's output.",
    ),
});

// Cross-field rules read fields that may themselves be invalid (`when` below runs them
// even then, so a user sees every problem in one go), hence each field is re-checked
// with its own schema before it is used.
function crossFieldChecks(raw: unknown, ctx: z.RefinementCtx): void {
  const field = <S extends z.ZodType>(schema: S, value: unknown): z.output<S> | undefined => {
    const result = schema.safeParse(value);
    return result.success ? result.data : undefined;
  };
  const doc = asRecord(raw);
  const model = asRecord(doc.model);
  const input = asRecord(doc.input);
  const output = asRecord(doc.output);
  const inputPatch = field(manifestObject.shape.model.shape.patchShape, model.patchShape);
  const outPatch = field(manifestObject.shape.model.shape.outputPatchShape, model.outputPatchShape);
  const overlap = field(manifestObject.shape.overlap, doc.overlap);
  const chunk = field(manifestObject.shape.chunkShape, doc.chunkShape);

  if (inputPatch && outPatch) {
    AXES.forEach((_, i) => {
      const margin = inputPatch[i]! - outPatch[i]!;
      if (margin < 0 || margin % 2 !== 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['model', 'outputPatchShape', i],
          message:
            `model.outputPatchShape[${i}] = ${outPatch[i]} must be at most model.patchShape[${i}] = ` +
            `${inputPatch[i]} and differ from it by an even number (the output is centred)`,
        });
      }
    });
  }
  // Patches are laid out over the output patch: overlap and stride refer to it.
  const patch = outPatch ?? inputPatch;
  if (patch && overlap) {
    AXES.forEach((_, i) => {
      const stride = patch[i]! - overlap[i]!;
      if (stride <= 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['overlap', i],
          message:
            `overlap[${i}] = ${overlap[i]} must be smaller than model.patchShape[${i}] = ` +
            `${patch[i]}; lower the overlap`,
        });
      } else if (chunk && chunk[i]! < stride) {
        ctx.addIssue({
          code: 'custom',
          path: ['chunkShape', i],
          message:
            `chunkShape[${i}] = ${chunk[i]} must hold at least one patch stride ` +
            `(model.patchShape[${i}] - overlap[${i}] = ${stride}); use at least ${stride}`,
        });
      }
    });
  }

  if (input.normalize !== undefined && (input.scale !== undefined || input.offset !== undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: ['input', 'normalize'],
      message:
        'input.normalize computes its own scale and offset: remove input.scale and input.offset, or input.normalize',
    });
  }
  const names = field(manifestObject.shape.model.shape.channelNames, model.channelNames);
  const outChannels = field(manifestObject.shape.model.shape.outputChannels, model.outputChannels);
  if (names !== undefined && outChannels !== undefined && names.length !== outChannels) {
    ctx.addIssue({
      code: 'custom',
      path: ['model', 'channelNames'],
      message: `model.channelNames has ${names.length} name(s), model.outputChannels is ${outChannels}: give one name per output channel`,
    });
  }

  // A quarter turn maps y onto x: the patch (input and output) must be square in yx.
  const tta = field(manifestObject.shape.model.shape.tta, model.tta);
  const turns =
    Array.isArray(tta) &&
    tta.some((t) => t === 'rot90' || (typeof t === 'object' && (t.rot90 ?? 0) % 2 === 1));
  const notSquare = [inputPatch, outPatch].find((p) => p !== undefined && p[1] !== p[2]);
  if (turns && notSquare)
    ctx.addIssue({
      code: 'custom',
      path: ['model', 'tta'],
      message:
        `quarter turns in yx need a patch square in y and x, but the ${notSquare === outPatch ? 'output ' : ''}patch is ` +
        `[${notSquare.join(', ')}]: make model.patchShape${outPatch ? ' and model.outputPatchShape' : ''} square in y and x, or drop "rot90" and odd rot90 counts from model.tta`,
    });

  const blockShape = field(manifestObject.shape.output.shape.blockShape, output.blockShape);
  const shardShape = field(manifestObject.shape.output.shape.shardShape, output.shardShape);
  if (blockShape && shardShape) {
    AXES.forEach((_, i) => {
      if (shardShape[i]! % blockShape[i]! !== 0)
        ctx.addIssue({
          code: 'custom',
          path: ['output', 'shardShape', i],
          message:
            `output.shardShape[${i}] = ${shardShape[i]} must be a multiple of ` +
            `output.blockShape[${i}] = ${blockShape[i]} (a shard holds whole blocks)`,
        });
    });
  }

  const precomputedOut =
    output.format === 'precomputed' ||
    (typeof output.url === 'string' && splitFormatPrefix(output.url).format === 'precomputed');
  if (
    output.format === 'zarr' &&
    typeof output.url === 'string' &&
    splitFormatPrefix(output.url).format === 'precomputed'
  )
    ctx.addIssue({
      code: 'custom',
      path: ['output', 'format'],
      message:
        'is "zarr" but output.url starts with precomputed://; drop the prefix, or write "precomputed"',
    });
  if (precomputedOut && typeof output.pyramid === 'number' && output.pyramid > 0)
    ctx.addIssue({
      code: 'custom',
      path: ['output', 'pyramid'],
      message:
        'is for OME-Zarr outputs; a precomputed output is written at full resolution only: set ' +
        'output.pyramid to 0 and add scales with igneous (`igneous image downsample`), or write "zarr"',
    });
  if (precomputedOut && output.shardShape !== undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['output', 'shardShape'],
      message:
        'is for Zarr outputs; a precomputed output is written unsharded (one file per block): remove it',
    });
  const transform = field(manifestObject.shape.output.shape.transform, output.transform);
  if (transform === 'argmax' && outChannels !== undefined && outChannels > 256)
    ctx.addIssue({
      code: 'custom',
      path: ['output', 'transform'],
      message:
        `"argmax" over model.outputChannels = ${outChannels} needs labels up to ${outChannels - 1}, ` +
        'more than output.dtype "uint8" holds (0..255) and uint16 outputs are not supported yet: ' +
        'use fewer channels, or drop output.transform',
    });

  const inputUrl = field(manifestObject.shape.input.shape.url, input.url);
  const outputUrl = field(manifestObject.shape.output.shape.url, output.url);
  if (
    inputUrl !== undefined &&
    outputUrl !== undefined &&
    sameStorageLocation(inputUrl, outputUrl)
  ) {
    ctx.addIssue({
      code: 'custom',
      path: ['output', 'url'],
      message: 'must differ from input.url; writing the output over the input would destroy it',
    });
  }
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

export const manifestSchema = manifestObject
  .superRefine(crossFieldChecks, { when: () => true })
  .meta({
    title: 'Tessera manifest (version 1)',
    description:
      'One chunked inference job: run `model` over `input` (or its `region`) in overlapping ' +
      'patches, blend them, and write `output`.',
  });

type DeepReadonly<T> = T extends readonly unknown[]
  ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/** A parsed manifest, defaults applied, deeply frozen. */
export type Manifest = DeepReadonly<z.output<typeof manifestSchema>>;

/** What a user may write (fields with defaults optional). */
export type ManifestInput = z.input<typeof manifestSchema>;
