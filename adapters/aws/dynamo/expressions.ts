// Condition and update expressions built from named parts. Each command gets one Expr,
// which hands out its #names and :values; a Cond is a part that writes itself into it, so
// a condition reads as the rule it checks (`allOf(statusIs('RUNNING'), …)`) and no
// placeholder is spelled by hand.

import type { NativeAttributeValue } from '@aws-sdk/lib-dynamodb';

export type Item = Record<string, NativeAttributeValue>;

/** Collects the #names and :values of one command's expressions. */
export class Expr {
  readonly names: Record<string, string> = {};
  readonly values: Record<string, NativeAttributeValue> = {};
  private n = 0;
  name(attr: string): string {
    const k = `#${attr}`;
    this.names[k] = attr;
    return k;
  }
  value(v: NativeAttributeValue): string {
    const k = `:v${this.n++}`;
    this.values[k] = v;
    return k;
  }
}

export type Cond = (x: Expr) => string;

export const allOf =
  (...parts: Cond[]): Cond =>
  (x) =>
    parts.map((p) => `(${p(x)})`).join(' AND ');
export const equals =
  (attr: string, v: NativeAttributeValue): Cond =>
  (x) =>
    `${x.name(attr)} = ${x.value(v)}`;
export const below =
  (attr: string, v: number): Cond =>
  (x) =>
    `${x.name(attr)} < ${x.value(v)}`;
export const atLeast =
  (attr: string, v: number): Cond =>
  (x) =>
    `${x.name(attr)} >= ${x.value(v)}`;
export const absent =
  (attr: string): Cond =>
  (x) =>
    `attribute_not_exists(${x.name(attr)})`;
export const anyOf =
  (...parts: Cond[]): Cond =>
  (x) =>
    parts.map((p) => `(${p(x)})`).join(' OR ');

export interface Change {
  set?: Item;
  /** `attr = attr - 1` (release hands back the attempt it counted). */
  decrement?: string[];
  remove?: string[];
}

export function updateExpression(c: Change, x: Expr): string {
  const sets = Object.entries(c.set ?? {}).map(([k, v]) => `${x.name(k)} = ${x.value(v)}`);
  for (const k of c.decrement ?? []) sets.push(`${x.name(k)} = ${x.name(k)} - ${x.value(1)}`);
  const parts: string[] = [];
  if (sets.length > 0) parts.push(`SET ${sets.join(', ')}`);
  if (c.remove && c.remove.length > 0)
    parts.push(`REMOVE ${c.remove.map((k) => x.name(k)).join(', ')}`);
  return parts.join(' ');
}
