// Eager blending: a seam block is blended as soon as every chunk that touches it is
// finished, while the rest of the job still infers, instead of all at the end. Each
// block is blended by this one scheduler exactly once per run (one writer), only after
// all its partials are durable (a chunk is reported finished after its writes), and a
// re-run rewrites identical bytes, so a block blended by a killed run is simply redone.

import type { BlockDescriptor } from '../geometry/index.ts';
import type { OutputVolume } from '../volume/index.ts';
import { type BlendScratch, blendSeamBlock } from './blend-seams.ts';
import type { JobContext } from './context.ts';

export class EagerBlender {
  private readonly finished = new Set<string>();
  private readonly blended = new Set<string>();
  private queue: Promise<void> = Promise.resolve();
  private failure: unknown;
  /** Blends run one at a time (the queue), so one scratch serves them all. */
  private readonly scratch: BlendScratch = {};
  /** Seconds spent blending so far (overlapped with inference). */
  seconds = 0;

  /** The seam blocks this blender may blend (keys); undefined: all of the plan's. */
  private readonly only: ReadonlySet<string> | undefined;

  /**
   * With `only` (a repair: tessera verify, or a rerun that found damage), only those seam
   * blocks are blended and awaited: the other seam blocks are final already and their
   * partials were deleted, so they must never be read.
   */
  constructor(
    private readonly ctx: JobContext,
    private readonly output: OutputVolume,
    o: { only?: Iterable<string> } = {},
  ) {
    this.only = o.only === undefined ? undefined : new Set(o.only);
  }

  /** Records a finished (DONE or SKIPPED) chunk and schedules the seam blocks it completes. */
  chunkFinished(chunkId: string): void {
    if (this.finished.has(chunkId)) return;
    this.finished.add(chunkId);
    const { plan } = this.ctx;
    for (const block of plan.seamBlocks(plan.describeChunk(chunkId))) {
      if (this.blended.has(block.key)) continue;
      if (this.only !== undefined && !this.only.has(block.key)) continue;
      if (![...plan.contributors(block)].every((c) => this.finished.has(c.id))) continue;
      this.blended.add(block.key);
      this.schedule(block);
    }
  }

  private schedule(block: BlockDescriptor): void {
    this.queue = this.queue.then(async () => {
      if (this.failure !== undefined) {
        // Not blended: the final pass (drain's list) must do it.
        this.blended.delete(block.key);
        return;
      }
      const t0 = performance.now();
      try {
        await blendSeamBlock(this.ctx, this.output, block, this.scratch);
      } catch (error) {
        // Surfaced by drain(); the final blend pass retries the block.
        this.failure = error;
        this.blended.delete(block.key);
      } finally {
        this.seconds += (performance.now() - t0) / 1000;
      }
    });
  }

  /** Waits for scheduled blends; returns the seam blocks not blended yet (for the final pass). */
  async drain(): Promise<BlockDescriptor[]> {
    await this.queue;
    const { plan } = this.ctx;
    if (this.only !== undefined)
      return [...this.only]
        .filter((key) => !this.blended.has(key))
        .map((key) => plan.describeBlock(key))
        .filter((b) => b.seam);
    return [...plan.seamBlockList()].filter((b) => !this.blended.has(b.key));
  }
}
