// The manifest's precomputed fields: `precomputed://` on input.url (and output.url),
// input.mip, output.format, and the rules around them (the cloud's bucket rules see
// through the prefix; a precomputed output has no pyramid and no shards).

import { describe, expect, it } from 'vitest';
import {
  cloudPolicyIssues,
  type ManifestInput,
  parseManifest,
  safeParseManifest,
} from '../../core/manifest/index.ts';
import { localPathOf, sameStorageLocation, splitFormatPrefix } from '../../core/manifest/url.ts';
import { LocalStore, openStoreForUrl } from '../../core/store/index.ts';

const base = {
  version: 1,
  name: 'em-membranes',
  input: { url: 'precomputed://data/em' },
  output: { url: 'data/pred.zarr', dtype: 'float32' },
  model: { url: 'models/unet.onnx', patchShape: [16, 64, 64], outputChannels: 1 },
  overlap: [4, 16, 16],
  chunkShape: [64, 256, 256],
} as const;

const issues = (doc: unknown) => {
  const r = safeParseManifest(doc);
  return r.ok ? [] : r.error.issues.map((i) => `${i.path}: ${i.message}`);
};
const withOutput = (output: Record<string, unknown>) => ({
  ...base,
  output: { ...base.output, ...output },
});

describe('precomputed in the manifest', () => {
  it('takes precomputed:// before a path or an s3:// URL, and input.mip as index or key', () => {
    expect(
      parseManifest({ ...base, input: { url: 'precomputed://s3://lab-em/fib25', mip: 2 } }).input
        .mip,
    ).toBe(2);
    expect(
      parseManifest({ ...base, input: { url: 'precomputed://data/em', mip: '8_8_40' } }).input.mip,
    ).toBe('8_8_40');
    expect(issues({ ...base, input: { url: 'precomputed://' } }).join()).toContain(
      'nothing after precomputed://',
    );
    expect(issues({ ...base, input: { url: 'precomputed://precomputed://x' } }).join()).toContain(
      'twice',
    );
    expect(issues({ ...base, input: { url: 'precomputed://s3:bucket/x' } }).join()).toContain(
      'two slashes',
    );
    expect(issues({ ...base, input: { url: 'data/em', mip: -1 } }).length).toBeGreaterThan(0);
  });

  it('tells the prefix from the place: same place, same local path, store opened without it', () => {
    expect(splitFormatPrefix('precomputed://s3://b/k')).toEqual({
      format: 'precomputed',
      url: 's3://b/k',
    });
    expect(splitFormatPrefix('data/x.zarr')).toEqual({ url: 'data/x.zarr' });
    expect(sameStorageLocation('precomputed://data/em', 'data/em/')).toBe(true);
    expect(localPathOf('precomputed://em', '/base')).toBe('/base/em');
    const store = openStoreForUrl('precomputed://em', { baseDir: '/base' });
    expect(store).toBeInstanceOf(LocalStore);
    expect(store.location).toBe('/base/em');
    // The input may not be written over even when spelled with the prefix.
    expect(issues(withOutput({ url: 'data/em' })).join()).toContain('must differ from input.url');
  });

  it('output.format: precomputed without pyramid or shards; a zarr format contradicting the prefix is refused', () => {
    expect(parseManifest(withOutput({ format: 'precomputed' })).output.format).toBe('precomputed');
    expect(issues(withOutput({ format: 'precomputed', pyramid: 2 })).join()).toContain(
      'output.pyramid',
    );
    expect(issues(withOutput({ url: 'precomputed://data/pred', pyramid: 1 })).join()).toContain(
      'output.pyramid',
    );
    expect(issues(withOutput({ url: 'precomputed://data/pred', format: 'zarr' })).join()).toContain(
      'output.format',
    );
    expect(issues(withOutput({ format: 'precomputed', pyramid: 0 }))).toEqual([]);
    expect(issues(withOutput({ format: 'tiff' })).length).toBeGreaterThan(0);
  });

  it('the cloud checks the bucket inside precomputed://, for input and output', () => {
    const policy = { stackBucket: 'tessera-stack', allowedBuckets: ['lab-em'] };
    const m = (input: string, output: string): ManifestInput =>
      ({
        ...base,
        input: { url: input },
        output: { url: output, dtype: 'float32' },
        model: { ...base.model, url: 's3://tessera-stack/models/u.onnx' },
      }) as ManifestInput;
    expect(
      cloudPolicyIssues(
        parseManifest(m('precomputed://s3://lab-em/fib25', 's3://lab-em/outputs/a')),
        policy,
      ),
    ).toEqual([]);
    const foreign = cloudPolicyIssues(
      parseManifest(m('precomputed://s3://evil-bucket/x', 's3://lab-em/outputs/a')),
      policy,
    );
    expect(foreign.map((i) => i.path)).toEqual(['input.url']);
    const outside = cloudPolicyIssues(
      parseManifest(m('s3://lab-em/x', 'precomputed://s3://lab-em/results/a')),
      policy,
    );
    expect(outside.map((i) => i.path)).toEqual(['output.url']);
    const local = cloudPolicyIssues(
      parseManifest(m('precomputed://data/em', 's3://lab-em/outputs/a')),
      policy,
    );
    expect(local[0]?.message).toContain('must be an s3:// URL');
  });
});

describe('neuroglancer links to precomputed volumes', () => {
  it('names a precomputed input and output as precomputed:// sources', async () => {
    const { neuroglancerLink } = await import('../../core/pipeline/viewer.ts');
    const state = (link: string | undefined) =>
      JSON.parse(decodeURIComponent(link!.slice(link!.indexOf('#!') + 2)));
    const both = state(
      neuroglancerLink({
        name: 'seg',
        inputUrl: 'precomputed://s3://lab-em/fib25/',
        outputUrl: 'precomputed://s3://lab-em/outputs/seg',
      }),
    );
    expect(both.layers.map((l: { source: string }) => l.source)).toEqual([
      'precomputed://s3://lab-em/fib25',
      'precomputed://s3://lab-em/outputs/seg',
    ]);
    const byFormat = state(
      neuroglancerLink({
        name: 'seg',
        outputUrl: 's3://lab-em/outputs/seg',
        outputFormat: 'precomputed',
      }),
    );
    expect(byFormat.layers[0].source).toBe('precomputed://s3://lab-em/outputs/seg');
    const zarr = state(
      neuroglancerLink({ name: 'seg', outputUrl: 's3://lab-em/outputs/seg.zarr' }),
    );
    expect(zarr.layers[0].source).toBe('zarr3://s3://lab-em/outputs/seg.zarr');
  });
});
