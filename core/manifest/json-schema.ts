// JSON Schema of the manifest, for editors (`"$schema": "./schema/manifest.schema.json"`)
// and for tools outside TypeScript. It is generated from the zod schema so the two
// cannot drift; cross-field rules (overlap < patch, ...) are not expressible in it and
// are enforced only by parseManifest.
import { z } from 'zod';
import { manifestSchema } from './schema.ts';

export type JsonSchema = z.core.JSONSchema.BaseSchema;

export function manifestJsonSchema(): JsonSchema {
  // The input side, so fields with defaults are optional, as a user writes them.
  // Draft-07 because it is the draft editors support most widely.
  const schema = z.toJSONSchema(manifestSchema, {
    io: 'input',
    target: 'draft-07',
    override: ({ jsonSchema }) => tidyIntegerBounds(jsonSchema),
  });
  // The payload carries a non-JSON `~standard` property; a round trip keeps plain JSON.
  const plain: JsonSchema = JSON.parse(JSON.stringify(schema));
  return plain;
}

// zod bounds every integer to the safe-integer range; an editor's hover reads better
// with just the bounds a user cares about (the JSON round trip drops undefined keys).
function tidyIntegerBounds(schema: JsonSchema): void {
  if (schema.type !== 'integer') return;
  if (schema.maximum === Number.MAX_SAFE_INTEGER) schema.maximum = undefined;
  if (schema.minimum === Number.MIN_SAFE_INTEGER) schema.minimum = undefined;
}
