// Manifest v1: defaults, every rejection naming its field, URL rules the AWS side
// relies on, robustness against arbitrary JSON, and the committed JSON Schema.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkManifestAgainstVolume,
  InvalidUrlError,
  isS3Url,
  ManifestError,
  type ManifestIssue,
  manifestJsonSchema,
  parseManifest,
  parseManifestText,
  parseS3Url,
  s3UrlIsUnder,
  safeParseManifest,
} from '../../core/manifest/index.ts';

const minimal = {
  version: 1,
  name: 'mito-seg',
  input: { url: 'data/raw.zarr' },
  output: { url: 'data/pred.zarr', dtype: 'float32' },
  model: { url: 'models/unet.onnx', patchShape: [32, 128, 128], outputChannels: 1 },
  overlap: [8, 32, 32],
  chunkShape: [128, 512, 512],
};

const full = {
  $schema: '../schema/manifest.schema.json',
  version: 1,
  name: 'fib-sem-membranes-v2',
  input: {
    url: 's3://lab-volumes/fib25/raw.zarr',
    array: 'volumes/raw',
    scale: 0.00392156862745098,
    offset: -0.5,
    skipBelow: 1,
  },
  output: {
    url: 's3://lab-results/fib25/membranes.zarr/',
    dtype: 'uint8',
    blockShape: [128, 256, 256],
  },
  model: {
    url: 's3://lab-models/membranes/unet-3d.onnx',
    sha256: 'a'.repeat(64),
    patchShape: [64, 256, 256],
    outputChannels: 3,
  },
  overlap: [16, 64, 64],
  blend: 'gaussian',
  chunkShape: [256, 1024, 1024],
  region: { start: [0, 100, 200], stop: [512, 2148, 4296] },
  compute: { device: 'gpu', maxWorkers: 200, spot: false },
  maxAttempts: 5,
};

/** A copy of `base` with the value at `path` replaced (or removed when `value` is undefined). */
function withField(
  base: object,
  path: readonly (string | number)[],
  value: unknown,
): Record<string, unknown> {
  const copy = structuredClone(base) as Record<string, unknown>;
  let node: Record<string | number, unknown> = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}

function issuesOf(input: unknown): readonly ManifestIssue[] {
  const result = safeParseManifest(input);
  if (result.ok) throw new Error('expected the manifest to be rejected');
  return result.error.issues;
}

function pathsOf(input: unknown): string[] {
  return issuesOf(input).map((issue) => issue.path);
}

describe('valid manifests', () => {
  it('parses a minimal manifest and applies the defaults', () => {
    const m = parseManifest(minimal);
    expect(m.blend).toBe('bump');
    expect(m.maxAttempts).toBe(3);
    expect(m.compute).toEqual({ device: 'cpu', maxWorkers: 1, spot: true });
    expect(m.output.blockShape).toBeUndefined();
    expect(m.region).toBeUndefined();
    expect(m.model.sha256).toBeUndefined();
    expect(m.overlap).toEqual([8, 32, 32]);
  });

  it('parses a full manifest, keeping every given value', () => {
    const m = parseManifest(full);
    expect(m.input).toEqual(full.input);
    expect(m.output.blockShape).toEqual([128, 256, 256]);
    expect(m.region).toEqual(full.region);
    expect(m.compute).toEqual({ device: 'gpu', maxWorkers: 200, spot: false });
    expect(m.blend).toBe('gaussian');
    expect(m.maxAttempts).toBe(5);
  });

  it('fills compute defaults field by field', () => {
    expect(parseManifest({ ...minimal, compute: { device: 'gpu' } }).compute).toEqual({
      device: 'gpu',
      maxWorkers: 1,
      spot: true,
    });
  });

  it('returns a deeply frozen manifest', () => {
    const m = parseManifest(full);
    expect(Object.isFrozen(m)).toBe(true);
    expect(Object.isFrozen(m.model.patchShape)).toBe(true);
    expect(Object.isFrozen(m.compute)).toBe(true);
  });

  it('normalises sha256 to lower case', () => {
    const m = parseManifest(withField(minimal, ['model', 'sha256'], 'AB'.repeat(32)));
    expect(m.model.sha256).toBe('ab'.repeat(32));
  });

  it('accepts the largest overlap and the smallest chunk the patch allows', () => {
    const edge = { ...minimal, overlap: [31, 127, 127], chunkShape: [1, 1, 1] };
    expect(parseManifest(edge).chunkShape).toEqual([1, 1, 1]);
  });

  it('accepts file:// and plain paths', () => {
    const m = parseManifest(withField(minimal, ['input', 'url'], 'file:///data/raw.zarr'));
    expect(m.input.url).toBe('file:///data/raw.zarr');
  });

  it('parses manifest text, tolerating a byte-order mark', () => {
    expect(parseManifestText(`\uFEFF${JSON.stringify(minimal)}`).name).toBe('mito-seg');
  });
});

describe('rejections name their field', () => {
  it('rejects an unknown top-level key, naming it', () => {
    const issues = issuesOf({ ...minimal, chunk_shape: [1, 1, 1] });
    expect(issues).toHaveLength(1);
    expect(issues[0]!.path).toBe('chunk_shape');
    expect(issues[0]!.message).toContain('"chunk_shape"');
    expect(issues[0]!.message).toContain('did you mean "chunkShape"');
  });

  it('rejects unknown nested keys, one issue per key', () => {
    const input = withField(withField(minimal, ['model', 'device'], 'gpu'), ['compute'], {
      gpus: 2,
    });
    expect(pathsOf(input).sort()).toEqual(['compute.gpus', 'model.device']);
  });

  it('rejects overlap >= patchShape on that axis', () => {
    const issues = issuesOf({ ...minimal, overlap: [8, 128, 32] });
    expect(issues).toEqual([
      {
        path: 'overlap[1]',
        message:
          'overlap[1] = 128 must be smaller than model.patchShape[1] = 128; lower the overlap',
      },
    ]);
  });

  it('rejects a chunkShape smaller than one patch stride, saying the minimum', () => {
    const issues = issuesOf({ ...minimal, chunkShape: [128, 512, 95] });
    expect(issues.map((i) => i.path)).toEqual(['chunkShape[2]']);
    expect(issues[0]!.message).toContain('at least one patch stride');
    expect(issues[0]!.message).toContain('use at least 96');
  });

  it('rejects non-integer, negative, zero and wrongly sized shapes', () => {
    expect(pathsOf(withField(minimal, ['model', 'patchShape'], [32, 128, 12.5]))).toEqual([
      'model.patchShape[2]',
    ]);
    expect(pathsOf({ ...minimal, overlap: [8, -1, 32] })).toEqual(['overlap[1]']);
    expect(pathsOf({ ...minimal, chunkShape: [0, 512, 512] })).toEqual(['chunkShape[0]']);
    expect(pathsOf(withField(minimal, ['output', 'blockShape'], [64, 64]))).toEqual([
      'output.blockShape',
    ]);
    expect(pathsOf({ ...minimal, overlap: '8,32,32' })).toEqual(['overlap']);
  });

  it('rejects bad names', () => {
    for (const name of ['Mito', 'mito_seg', '-mito', 'mito-', 'mito--seg', '', 'a'.repeat(64)]) {
      expect(pathsOf({ ...minimal, name }), name).toEqual(['name']);
    }
    expect(parseManifest({ ...minimal, name: 'a'.repeat(63) }).name).toHaveLength(63);
  });

  it("refuses a name shaped like a job id (<name>-<10 hex>), so no status document can be a job's", () => {
    const issues = issuesOf({ ...minimal, name: 'cells-0123456789' });
    expect(issues.map((i) => i.path)).toEqual(['name']);
    expect(issues[0]!.message).toMatch(/reserved for job ids/);
    // Nine or eleven hex digits, or non-hex letters, are ordinary names.
    for (const name of ['cells-012345678', 'cells-0123456789a', 'cells-v123456789', 'run-2026'])
      expect(parseManifest({ ...minimal, name }).name).toBe(name);
  });

  it('rejects a bad dtype, blend, device and version', () => {
    expect(pathsOf(withField(minimal, ['output', 'dtype'], 'float64'))).toEqual(['output.dtype']);
    const blend = issuesOf({ ...minimal, blend: 'linear' });
    expect(blend.map((i) => i.path)).toEqual(['blend']);
    expect(blend[0]!.message).toContain('"bump", "gaussian", "constant"');
    expect(pathsOf({ ...minimal, compute: { device: 'tpu' } })).toEqual(['compute.device']);
    expect(pathsOf({ ...minimal, version: 2 })).toEqual(['version']);
  });

  it('rejects out-of-range counts', () => {
    expect(pathsOf({ ...minimal, maxAttempts: 0 })).toEqual(['maxAttempts']);
    expect(pathsOf({ ...minimal, maxAttempts: 101 })).toEqual(['maxAttempts']);
    expect(pathsOf({ ...minimal, compute: { maxWorkers: 10_001 } })).toEqual([
      'compute.maxWorkers',
    ]);
    expect(pathsOf(withField(minimal, ['model', 'outputChannels'], 0))).toEqual([
      'model.outputChannels',
    ]);
  });

  it('reports missing required fields', () => {
    expect(pathsOf(withField(minimal, ['model', 'patchShape'], undefined))).toEqual([
      'model.patchShape',
    ]);
    expect(pathsOf(withField(minimal, ['overlap'], undefined))).toEqual(['overlap']);
  });

  it('rejects a bad sha256', () => {
    for (const sha256 of ['abc', 'g'.repeat(64), 'a'.repeat(65)]) {
      expect(pathsOf(withField(minimal, ['model', 'sha256'], sha256))).toEqual(['model.sha256']);
    }
  });

  it('rejects bad S3 buckets and keys in any URL', () => {
    const urls = [
      's3://My_Bucket/raw.zarr',
      's3://ab/raw.zarr',
      's3://-bucket/raw.zarr',
      's3://my..bucket/raw.zarr',
      's3://192.168.0.1/raw.zarr',
      's3:///raw.zarr',
      's3://my-bucket/a/../b',
      's3://my-bucket//raw.zarr',
    ];
    for (const url of urls) {
      expect(pathsOf(withField(minimal, ['input', 'url'], url)), url).toEqual(['input.url']);
    }
  });

  it('rejects unsupported and malformed URLs', () => {
    for (const url of ['', '   ', ' data/raw.zarr', 'http://host/raw.zarr', 's3:bucket/raw.zarr']) {
      expect(pathsOf(withField(minimal, ['input', 'url'], url)), url).toEqual(['input.url']);
    }
    expect(pathsOf(withField(minimal, ['model', 'url'], 'models/unet.pt'))).toEqual(['model.url']);
  });

  it('rejects an output that overwrites the input, however it is spelled', () => {
    const same = {
      input: { url: 'file:///data/raw.zarr' },
      output: { url: '/data/raw.zarr/', dtype: 'uint8' },
    };
    expect(pathsOf({ ...minimal, ...same })).toEqual(['output.url']);
    const s3 = {
      input: { url: 's3://bkt/raw.zarr' },
      output: { url: 's3://bkt/raw.zarr/', dtype: 'uint8' },
    };
    expect(pathsOf({ ...minimal, ...s3 })).toEqual(['output.url']);
  });

  it('rejects an empty or inverted region and negative starts', () => {
    expect(pathsOf({ ...minimal, region: { start: [0, 10, 0], stop: [5, 10, 5] } })).toEqual([
      'region.stop[1]',
    ]);
    expect(pathsOf({ ...minimal, region: { start: [0, 0, -1], stop: [5, 5, 5] } })).toEqual([
      'region.start[2]',
    ]);
  });

  it('reports every problem at once, cross-field ones included', () => {
    const paths = pathsOf({ ...minimal, name: 'Bad', overlap: [32, 32, 32], blend: 'x' });
    expect(paths.sort()).toEqual(['blend', 'name', 'overlap[0]']);
  });

  it('rejects documents that are not objects', () => {
    for (const value of [null, 42, 'manifest', [], true]) expect(pathsOf(value)).toEqual(['']);
  });
});

describe('checkManifestAgainstVolume', () => {
  const inRegion = parseManifest({
    ...minimal,
    region: { start: [0, 0, 0], stop: [100, 200, 700] },
  });

  it('accepts a region inside the volume and an absent region', () => {
    expect(() => checkManifestAgainstVolume(inRegion, [100, 200, 700])).not.toThrow();
    expect(() => checkManifestAgainstVolume(parseManifest(minimal), [1, 1, 1])).not.toThrow();
  });

  it('names the axis and the volume shape when the region reaches outside', () => {
    let caught: unknown;
    try {
      checkManifestAgainstVolume(inRegion, [100, 200, 600], 'job.json');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ManifestError);
    const error = caught as ManifestError;
    expect(error.issues.map((i) => i.path)).toEqual(['region.stop[2]']);
    expect(error.issues[0]!.message).toContain('[100, 200, 600]');
    expect(error.message).toContain('job.json: region.stop[2]:');
  });
});

describe('ManifestError', () => {
  it('lists each issue on its own line, prefixed by the source, ending with the README hint', () => {
    const result = safeParseManifest({ ...minimal, name: 'Bad', blend: 'x' }, 'jobs/a.json');
    if (result.ok) throw new Error('expected a rejection');
    const { error } = result;
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('ManifestError');
    expect(error.source).toBe('jobs/a.json');
    const lines = error.message.split('\n');
    expect(lines.filter((l) => l.startsWith('jobs/a.json: name: '))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('jobs/a.json: blend: '))).toHaveLength(1);
    expect(lines.at(-1)).toMatch(/manifest reference in README\.md/);
  });

  it('turns a JSON syntax error into an issue with path ""', () => {
    let caught: unknown;
    try {
      parseManifestText('{ "version": 1, }', 'job.json');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ManifestError);
    const error = caught as ManifestError;
    expect(error.issues).toHaveLength(1);
    expect(error.issues[0]!.path).toBe('');
    expect(error.issues[0]!.message).toMatch(/JSON/);
    expect(error.cause).toBeInstanceOf(SyntaxError);
    expect(error.message).toContain('job.json: ');
  });
});

describe('S3 URLs', () => {
  it('splits bucket and key', () => {
    expect(parseS3Url('s3://lab-volumes/fib25/raw.zarr')).toEqual({
      bucket: 'lab-volumes',
      key: 'fib25/raw.zarr',
    });
    expect(parseS3Url('s3://lab-volumes')).toEqual({ bucket: 'lab-volumes', key: '' });
    expect(isS3Url('s3://x')).toBe(true);
    expect(isS3Url('/data/s3://x')).toBe(false);
  });

  it('compares buckets whole, never as prefixes', () => {
    expect(parseS3Url('s3://allowed-bucket-evil/x').bucket).not.toBe('allowed-bucket');
    expect(s3UrlIsUnder('s3://allowed-bucket-evil/x', 'allowed-bucket')).toBe(false);
    expect(s3UrlIsUnder('s3://allowed-bucket/x', 'allowed-bucket')).toBe(true);
    expect(s3UrlIsUnder('s3://allowed-bucket/jobs/a.json', 'allowed-bucket', 'jobs/')).toBe(true);
    expect(s3UrlIsUnder('s3://allowed-bucket/jobsx/a.json', 'allowed-bucket', 'jobs')).toBe(false);
    expect(s3UrlIsUnder('s3://allowed-bucket/jobs/../x', 'allowed-bucket', 'jobs')).toBe(false);
  });

  it('refuses traversal segments and says why', () => {
    for (const url of ['s3://bkt/a/../b', 's3://bkt/..', 's3://bkt/./a']) {
      expect(() => parseS3Url(url), url).toThrow(InvalidUrlError);
    }
    expect(() => parseS3Url('s3://Bad/x')).toThrow(/lower case/);
  });
});

describe('robustness', () => {
  const expectOnlyManifestErrors = (value: unknown) => {
    try {
      parseManifest(value);
    } catch (error) {
      expect(error).toBeInstanceOf(ManifestError);
      const { issues } = error as ManifestError;
      expect(issues.length).toBeGreaterThan(0);
      for (const issue of issues) {
        expect(typeof issue.path).toBe('string');
        expect(issue.message.trim()).not.toBe('');
      }
    }
  };

  it('throws nothing but ManifestError for arbitrary JSON values', () => {
    fc.assert(fc.property(fc.jsonValue(), expectOnlyManifestErrors), { numRuns: 500 });
  });

  it('throws nothing but ManifestError when any field of a valid manifest is replaced', () => {
    const fields: (string | number)[][] = [
      ['name'],
      ['version'],
      ['input'],
      ['input', 'url'],
      ['input', 'array'],
      ['input', 'skipBelow'],
      ['output', 'url'],
      ['output', 'blockShape'],
      ['model'],
      ['model', 'url'],
      ['model', 'sha256'],
      ['model', 'patchShape'],
      ['model', 'patchShape', 1],
      ['overlap'],
      ['overlap', 2],
      ['chunkShape', 0],
      ['region'],
      ['region', 'stop'],
      ['compute'],
      ['compute', 'maxWorkers'],
      ['maxAttempts'],
    ];
    fc.assert(
      fc.property(fc.constantFrom(...fields), fc.jsonValue(), (path, value) =>
        expectOnlyManifestErrors(withField(full, path, value)),
      ),
      { numRuns: 500 },
    );
  });

  it('accepts exactly the chunk shapes that hold one stride', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 0, max: 63 }),
        fc.integer({ min: 1, max: 128 }),
        (patch, overlap, chunk) => {
          fc.pre(overlap < patch);
          const m = { ...minimal, overlap: [0, 0, overlap], chunkShape: [512, 512, chunk] };
          const input = withField(m, ['model', 'patchShape'], [1, 1, patch]);
          const ok = safeParseManifest(input).ok;
          expect(ok).toBe(chunk >= patch - overlap);
        },
      ),
    );
  });
});

describe('JSON Schema', () => {
  it('matches the committed schema/manifest.schema.json (regenerate with export-schema.ts)', () => {
    const committed: unknown = JSON.parse(
      readFileSync(new URL('../../schema/manifest.schema.json', import.meta.url), 'utf8'),
    );
    expect(committed).toEqual(manifestJsonSchema());
  });

  it('is plain JSON that forbids unknown keys and describes every field', () => {
    const schema = manifestJsonSchema();
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema);
    expect(schema.additionalProperties).toBe(false);
    const undescribed: string[] = [];
    const visit = (node: unknown, path: string) => {
      if (typeof node !== 'object' || node === null) return;
      const properties = (node as { properties?: Record<string, unknown> }).properties ?? {};
      for (const [key, child] of Object.entries(properties)) {
        if (typeof (child as { description?: unknown }).description !== 'string') {
          undescribed.push(`${path}${key}`);
        }
        visit(child, `${path}${key}.`);
      }
    };
    visit(schema, '');
    expect(undescribed).toEqual([]);
  });
});
