// OME-Zarr (NGFF) multiscales metadata: written on the output so napari, neuroglancer
// and webknossos open it with the right voxel size, read on the input for the same.
//
// Written as OME-Zarr 0.5: in the root group's zarr.json, under attributes.ome:
//   { version: "0.5", multiscales: [{ name, axes: [c, z, y, x], datasets: [
//       { path: "0", coordinateTransformations: [{scale}, {translation}?] }, ...] }],
//     omero: { channels: [{ label, ... }] },
//     "image-label": { properties: [{ "label-value", name }] }? }
// A label output (output.transform argmax or threshold) is itself a label image: NGFF
// 0.5's `image-label` sits beside its multiscales (napari-ome-zarr opens such a group as
// a labels layer). It has no `source`: the image it was computed from lives elsewhere.
// Read from 0.5 (attributes.ome.multiscales) and 0.4 (attributes.multiscales, in
// .zattrs for Zarr v2 groups; zarrita presents both as group attributes).

import type { Vec3 } from '../geometry/index.ts';
import type { AbsolutePath, Store } from '../store/index.ts';
import { describeStore } from '../store/index.ts';
import { OutputMismatchError } from './errors.ts';
import { isNumberArray, isObject, type JsonObject, readJson, writeJson } from './json.ts';

export type SpaceUnit = 'nanometer' | 'micrometer' | 'millimeter' | 'angstrom';

export interface OmeOptions {
  readonly name: string;
  /** Channel labels, or just the channel count (labels become "channel 0", ...). */
  readonly channels: readonly string[] | number;
  /** Physical size of one level-0 voxel, (z, y, x). */
  readonly voxelSize?: Vec3;
  /** Physical position of voxel (0, 0, 0), (z, y, x). */
  readonly translation?: Vec3;
  /** Unit of voxelSize and translation; omitted from the axes when not given. */
  readonly unit?: SpaceUnit;
  /** Resolution levels stored at paths "0", "1", ...; each halves z, y and x. Default 1. */
  readonly levels?: number;
  /**
   * The stored levels with their downsampling per axis (z, y, x) relative to level 0;
   * overrides `levels` (a pyramid that keeps z on anisotropic data halves only y, x).
   */
  readonly datasets?: readonly { readonly path: string; readonly factor: Vec3 }[];
  /** Marks the output as a label image; `names[v]` names label value v (argmax). */
  readonly imageLabel?: { readonly names?: readonly string[] } | undefined;
}

const ROOT: AbsolutePath = '/zarr.json';

/** Writes `attributes.ome` into the root group, keeping every other attribute. */
export async function writeOmeMetadata(store: Store, o: OmeOptions): Promise<void> {
  const location = describeStore(store);
  const existing = await readJson(store, ROOT);
  if (existing !== undefined && !(isObject(existing) && existing.node_type === 'group'))
    throw new OutputMismatchError(location, 'root node_type', 'group', nodeType(existing));
  const group: JsonObject = isObject(existing)
    ? existing
    : { zarr_format: 3, node_type: 'group', attributes: {} };
  const attributes = isObject(group.attributes) ? group.attributes : {};

  const level0 = await readJson(store, '/0/zarr.json');
  const shape = isObject(level0) && isNumberArray(level0.shape) ? level0.shape : undefined;
  const labels =
    typeof o.channels === 'number'
      ? Array.from({ length: o.channels }, (_, i) => `channel ${i}`)
      : [...o.channels];
  if (shape !== undefined && shape[0] !== labels.length)
    throw new OutputMismatchError(location, 'channel count', labels.length, shape[0]);
  const dtype = isObject(level0) ? level0.data_type : undefined;

  const { 'image-label': _previousLabel, ...previousOme } = isObject(attributes.ome)
    ? attributes.ome
    : {};
  const ome: JsonObject = {
    ...previousOme,
    version: '0.5',
    multiscales: [multiscale(o)],
    omero: { channels: labels.map((label) => channel(label, dtype)) },
    ...(o.imageLabel ? { 'image-label': imageLabel(o.imageLabel) } : {}),
  };
  await writeJson(store, ROOT, { ...group, attributes: { ...attributes, ome } });
}

function multiscale(o: OmeOptions): JsonObject {
  const space = (name: string): JsonObject =>
    o.unit === undefined ? { name, type: 'space' } : { name, type: 'space', unit: o.unit };
  const voxel = o.voxelSize ?? [1, 1, 1];
  const levels =
    o.datasets ??
    Array.from({ length: Math.max(1, o.levels ?? 1) }, (_, level) => ({
      path: String(level),
      factor: [2 ** level, 2 ** level, 2 ** level] as Vec3,
    }));
  const datasets = levels.map(({ path, factor: f }) => {
    const transforms: JsonObject[] = [
      { type: 'scale', scale: [1, voxel[0] * f[0], voxel[1] * f[1], voxel[2] * f[2]] },
    ];
    // A level downsampled by f has its first voxel centred (f - 1) / 2 level-0 voxels in.
    const t = o.translation ?? [0, 0, 0];
    const shift = voxel.map((v, a) => t[a]! + ((f[a]! - 1) / 2) * v);
    if (o.translation !== undefined || f.some((v) => v !== 1))
      transforms.push({ type: 'translation', translation: [0, ...shift] });
    return { path, coordinateTransformations: transforms };
  });
  return {
    name: o.name,
    axes: [{ name: 'c', type: 'channel' }, space('z'), space('y'), space('x')],
    datasets,
  };
}

function imageLabel(o: NonNullable<OmeOptions['imageLabel']>): JsonObject {
  return o.names
    ? { properties: o.names.map((name, value) => ({ 'label-value': value, name })) }
    : {};
}

/** The `image-label` attributes of a group (OME-Zarr 0.5 or 0.4), when it is a label image. */
export function imageLabelOf(attributes: JsonObject): JsonObject | undefined {
  const label = isObject(attributes.ome)
    ? attributes.ome['image-label']
    : attributes['image-label'];
  return isObject(label) ? label : undefined;
}

function channel(label: string, dtype: unknown): JsonObject {
  const max = dtype === 'uint8' ? 255 : 1;
  return {
    label,
    active: true,
    color: 'FFFFFF',
    family: 'linear',
    window: { min: 0, max, start: 0, end: max },
  };
}

function nodeType(doc: unknown): unknown {
  return isObject(doc) ? (doc.node_type ?? `zarr_format ${String(doc.zarr_format)}`) : doc;
}

/** The multiscales list of a group's attributes (OME-Zarr 0.5 or 0.4), or []. */
export function multiscalesOf(attributes: JsonObject): JsonObject[] {
  const list = isObject(attributes.ome) ? attributes.ome.multiscales : attributes.multiscales;
  return Array.isArray(list) ? list.filter(isObject) : [];
}

/**
 * The axes of a group's first multiscale, each by its type ('time', 'channel', 'space')
 * or, in OME-Zarr 0.3 (axes as bare names), by the type its name means. Undefined when
 * the multiscale lists no axes.
 */
export function axisKindsOf(attributes: JsonObject): string[] | undefined {
  const axes = multiscalesOf(attributes)[0]?.axes;
  if (!Array.isArray(axes)) return undefined;
  const byName: Record<string, string> = {
    t: 'time',
    c: 'channel',
    z: 'space',
    y: 'space',
    x: 'space',
  };
  return axes.map((a) => {
    if (isObject(a) && typeof a.type === 'string') return a.type;
    const name = isObject(a) ? a.name : a;
    return typeof name === 'string' ? (byName[name] ?? name) : String(name);
  });
}

/** Dataset paths of a group's first multiscale, level 0 first. */
export function datasetPaths(attributes: JsonObject): string[] {
  const datasets = multiscalesOf(attributes)[0]?.datasets;
  if (!Array.isArray(datasets)) return [];
  return datasets.filter(isObject).flatMap((d) => (typeof d.path === 'string' ? [d.path] : []));
}

/**
 * The (z, y, x) voxel size of dataset `path` in a group's multiscales: its scale
 * transform times the multiscale-wide one, last three axes. Undefined when absent or
 * malformed: a missing voxel size is never worth failing a run over.
 */
export function voxelSizeOf(attributes: JsonObject, path: string): Vec3 | undefined {
  const wanted = trimSlashes(path);
  for (const m of multiscalesOf(attributes)) {
    if (!Array.isArray(m.datasets)) continue;
    const dataset = m.datasets.find((d) => isObject(d) && trimSlashes(String(d.path)) === wanted);
    if (!isObject(dataset)) continue;
    const own = scaleOf(dataset.coordinateTransformations);
    if (own === undefined || own.length < 3) return undefined;
    const global = scaleOf(m.coordinateTransformations);
    const size = own.slice(-3).map((s, i) => s * (global?.slice(-3)[i] ?? 1));
    return size.every((s) => s > 0) ? [size[0]!, size[1]!, size[2]!] : undefined;
  }
  return undefined;
}

function scaleOf(transforms: unknown): number[] | undefined {
  if (!Array.isArray(transforms)) return undefined;
  const scale = transforms.find((t) => isObject(t) && t.type === 'scale');
  return isObject(scale) && isNumberArray(scale.scale) ? scale.scale : undefined;
}

const trimSlashes = (path: string): string => path.replace(/^\/+|\/+$/g, '');

/**
 * Where dataset `path` sits in space according to a group's multiscales: its
 * translation (the last three axes of its own plus the multiscale-wide one) and the
 * unit of its spatial axes. Absent or malformed parts are left out, as in voxelSizeOf.
 */
export function placementOf(
  attributes: JsonObject,
  path: string,
): { translation?: Vec3; unit?: SpaceUnit } {
  const wanted = trimSlashes(path);
  for (const m of multiscalesOf(attributes)) {
    if (!Array.isArray(m.datasets)) continue;
    const dataset = m.datasets.find((d) => isObject(d) && trimSlashes(String(d.path)) === wanted);
    if (!isObject(dataset)) continue;
    const own = translationOf(dataset.coordinateTransformations);
    const global = translationOf(m.coordinateTransformations);
    const out: { translation?: Vec3; unit?: SpaceUnit } = {};
    if (own !== undefined || global !== undefined) {
      const t = [0, 1, 2].map((i) => (own?.slice(-3)[i] ?? 0) + (global?.slice(-3)[i] ?? 0));
      out.translation = [t[0]!, t[1]!, t[2]!];
    }
    const axes = Array.isArray(m.axes) ? m.axes.filter(isObject) : [];
    const unit = axes.find((a) => a.type === 'space')?.unit;
    if (typeof unit === 'string' && (SPACE_UNITS as readonly string[]).includes(unit))
      out.unit = unit as SpaceUnit;
    return out;
  }
  return {};
}

const SPACE_UNITS = ['nanometer', 'micrometer', 'millimeter', 'angstrom'] as const;

function translationOf(transforms: unknown): number[] | undefined {
  if (!Array.isArray(transforms)) return undefined;
  const t = transforms.find((x) => isObject(x) && x.type === 'translation');
  return isObject(t) && isNumberArray(t.translation) && t.translation.length >= 3
    ? t.translation
    : undefined;
}

/**
 * The attributes of the group that holds array `arrayPath` of `store` (Zarr v3
 * zarr.json or v2 .zattrs), or undefined when there is none: for copying the input's
 * placement onto the output.
 */
export async function parentGroupAttributes(
  store: Store,
  arrayPath: string,
): Promise<{ attributes: JsonObject; name: string } | undefined> {
  const path = trimSlashes(arrayPath);
  // An input URL naming the array itself leaves its group outside the store.
  if (path === '') return undefined;
  const cut = path.lastIndexOf('/');
  const parent = cut < 0 ? '' : path.slice(0, cut);
  const name = path.slice(cut + 1);
  const prefix = parent === '' ? '' : `/${parent}`;
  try {
    const v3 = await readJson(store, `${prefix}/zarr.json` as AbsolutePath);
    if (isObject(v3) && v3.node_type === 'group')
      return { attributes: isObject(v3.attributes) ? v3.attributes : {}, name };
    const v2 = await readJson(store, `${prefix}/.zattrs` as AbsolutePath);
    if (isObject(v2)) return { attributes: v2, name };
  } catch (error) {
    // Unreadable metadata beside the input only costs the output its placement.
    if (!(error instanceof SyntaxError)) throw error;
  }
  return undefined;
}
