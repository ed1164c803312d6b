// The deployed definition, changed only where aws-local-stepfunctions cannot run it.
// Each rewrite is listed (with its reason) in REWRITES, which the test prints.

import {
  type AslDefinition,
  type AslState,
  allStates,
} from '../helpers/state-machine-definition.ts';

/** aws-local-stepfunctions fails a Task after 60 s unless it sets a timeout; AWS waits. */
export const LOCAL_TASK_TIMEOUT_S = 900;

export const REWRITES = [
  'ItemReader (a Distributed Map reading its items from S3) → a Task state "<Map> ItemReader" ' +
    'before the Map, with the ItemReader’s Parameters, whose handler reads that very object ' +
    '(s3:GetObject as the state machine’s role, through its recording proxy) and an ItemsPath ' +
    'over the result: aws-local-stepfunctions has no ItemReader.',
  'ResultWriter removed: aws-local-stepfunctions has no ResultWriter; the results stay in ' +
    'the state (the Map’s ResultPath discards them); the writes the service would make are ' +
    'checked against the state machine role by the service-side IAM checks.',
  'ProcessorConfig Mode DISTRIBUTED → INLINE (and Label dropped): the child executions run ' +
    'inline; their service-side permissions are checked by the IAM evaluation.',
  `Task states without TimeoutSeconds get ${LOCAL_TASK_TIMEOUT_S} s: aws-local-stepfunctions ` +
    'times a Task out after 60 s by default, AWS does not (the job definitions’ attempt ' +
    'timeout bounds a worker).',
] as const;

export const itemReaderState = (map: string) => `${map} ItemReader`;
const itemsPath = (map: string) => `$.twinItems.${map.replace(/[^A-Za-z0-9_]/g, '_')}`;

/** Where each rewritten Map's items are read from: the reader state's name → the ItemReader. */
export interface Readers {
  [readerState: string]: { map: string; reader: Record<string, unknown> };
}

export function runnableDefinition(def: AslDefinition): {
  definition: AslDefinition;
  readers: Readers;
} {
  const copy = structuredClone(def);
  const readers: Readers = {};
  rewrite(copy, readers);
  for (const state of allStates(copy).values()) {
    if (state.Type === 'Task' && state.TimeoutSeconds === undefined && !state.TimeoutSecondsPath)
      state.TimeoutSeconds = LOCAL_TASK_TIMEOUT_S;
  }
  return { definition: copy, readers };
}

function rewrite(def: AslDefinition, readers: Readers): void {
  for (const [name, state] of Object.entries(def.States)) {
    if (state.Type !== 'Map') continue;
    if (state.ItemProcessor) rewrite(state.ItemProcessor, readers);
    const mode = state.ItemProcessor?.ProcessorConfig?.Mode;
    if (mode === 'DISTRIBUTED') {
      state.ItemProcessor = { ...state.ItemProcessor!, ProcessorConfig: { Mode: 'INLINE' } };
      delete state.Label;
    }
    delete state.ResultWriter;
    if (state.ItemBatcher)
      throw new Error(`${name}: ItemBatcher is not rewritten by the twin; add a rewrite for it`);
    const reader = state.ItemReader as
      | {
          Resource?: string;
          ReaderConfig?: { InputType?: string };
          Parameters?: Record<string, unknown>;
        }
      | undefined;
    if (!reader) continue;
    if (
      !String(reader.Resource).endsWith(':states:::s3:getObject') ||
      reader.ReaderConfig?.InputType !== 'JSON'
    )
      throw new Error(
        `${name}: the twin rewrites ItemReader s3:getObject JSON only, not ${JSON.stringify(reader)}`,
      );
    delete state.ItemReader;
    state.ItemsPath = itemsPath(name);
    const readerName = itemReaderState(name);
    readers[readerName] = { map: name, reader: reader as Record<string, unknown> };
    const task: AslState = {
      Type: 'Task',
      Resource: String(reader.Resource),
      Parameters: reader.Parameters ?? {},
      ResultPath: itemsPath(name),
      Next: name,
      // The Map's own Catch covers a failed read, as it covers the ItemReader's.
      ...(state.Catch ? { Catch: state.Catch } : {}),
    };
    // Every transition into the Map now enters its reader.
    for (const s of Object.values(def.States)) {
      if (s.Next === name) s.Next = readerName;
      if (s.Default === name) s.Default = readerName;
      for (const c of s.Choices ?? []) if (c.Next === name) c.Next = readerName;
      for (const c of s.Catch ?? []) if (c.Next === name) c.Next = readerName;
    }
    if (def.StartAt === name) def.StartAt = readerName;
    def.States[readerName] = task;
  }
}
