// Checks that need the input volume's shape, which is only known once the input has
// been opened (after the manifest itself validated).
import { ManifestError, type ManifestIssue } from './errors.ts';
import type { Manifest } from './schema.ts';

/**
 * Throws ManifestError when `region` reaches outside a volume of shape `volumeShape`
 * ([z, y, x]). An absent region means the whole volume, which always fits.
 */
export function checkManifestAgainstVolume(
  manifest: Manifest,
  volumeShape: readonly [number, number, number],
  source?: string,
): void {
  const region = manifest.region;
  if (region === undefined) return;
  const shape = `[${volumeShape.join(', ')}]`;
  const issues: ManifestIssue[] = [];
  volumeShape.forEach((size, i) => {
    const stop = region.stop[i]!;
    if (stop > size) {
      issues.push({
        path: `region.stop[${i}]`,
        message:
          `region.stop[${i}] = ${stop} is outside the input volume of shape ${shape} ` +
          `([z, y, x]); it may be at most ${size}`,
      });
    }
  });
  if (issues.length > 0) throw new ManifestError(issues, { source });
}
