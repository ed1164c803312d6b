// Half-open boxes [start, stop) in voxel coordinates, (z, y, x). Immutable: every
// operation returns a new Box.

import { add, all, equals, format, max3, min3, product, sub, type Vec3 } from './vec3.ts';

export class Box {
  readonly start: Vec3;
  readonly stop: Vec3;

  constructor(start: Vec3, stop: Vec3) {
    // Copies, frozen: a Box never aliases the caller's arrays (cloud-volume's Bbox bug).
    this.start = Object.freeze([start[0], start[1], start[2]] as const);
    this.stop = Object.freeze([stop[0], stop[1], stop[2]] as const);
    Object.freeze(this);
  }

  static ofShape(shape: Vec3, start: Vec3 = [0, 0, 0]): Box {
    return new Box(start, add(start, shape));
  }

  get shape(): Vec3 {
    return max3(sub(this.stop, this.start), [0, 0, 0]);
  }

  get size(): number {
    return product(this.shape);
  }

  isEmpty(): boolean {
    return !all(this.shape, (v) => v > 0);
  }

  /** The overlap of two boxes; empty boxes are normalised to start === stop. */
  intersect(other: Box): Box {
    const start = max3(this.start, other.start);
    const stop = max3(start, min3(this.stop, other.stop));
    return new Box(start, stop);
  }

  intersects(other: Box): boolean {
    return !this.intersect(other).isEmpty();
  }

  contains(other: Box): boolean {
    return (
      all(this.start, (v, a) => v <= other.start[a]!) &&
      all(this.stop, (v, a) => v >= other.stop[a]!)
    );
  }

  containsPoint(p: Vec3): boolean {
    return all(p, (v, a) => v >= this.start[a]! && v < this.stop[a]!);
  }

  /** Grows by `lo` before the start and `hi` after the stop (negative shrinks). */
  grow(lo: Vec3, hi: Vec3 = lo): Box {
    return new Box(sub(this.start, lo), add(this.stop, hi));
  }

  shift(offset: Vec3): Box {
    return new Box(add(this.start, offset), add(this.stop, offset));
  }

  /** The smallest box holding both. */
  union(other: Box): Box {
    return new Box(min3(this.start, other.start), max3(this.stop, other.stop));
  }

  equals(other: Box): boolean {
    return equals(this.start, other.start) && equals(this.stop, other.stop);
  }

  toJSON(): { start: Vec3; stop: Vec3 } {
    return { start: this.start, stop: this.stop };
  }

  toString(): string {
    return `${format(this.start)}..${format(this.stop)}`;
  }
}

/** Every integer point of `box`, x fastest. Lazy. */
export function* points(box: Box): Generator<Vec3> {
  for (let z = box.start[0]; z < box.stop[0]; z++)
    for (let y = box.start[1]; y < box.stop[1]; y++)
      for (let x = box.start[2]; x < box.stop[2]; x++) yield [z, y, x];
}
