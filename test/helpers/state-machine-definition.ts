// The synthesized state machine definition as plain ASL JSON. CloudFormation holds it as
// an Fn::Join of string pieces and tokens ({Ref}, {Fn::GetAtt}); the tokens only ever sit
// inside JSON strings, so replacing each with a readable placeholder yields valid JSON:
//   {"Ref": "StorageBucket5CB7C8EA"}                    -> <Ref:StorageBucket5CB7C8EA>
//   {"Fn::GetAtt": ["FunctionsplannerFEECDD18", "Arn"]} -> <GetAtt:FunctionsplannerFEECDD18.Arn>

export interface AslState {
  Type: string;
  Next?: string;
  End?: boolean;
  Default?: string;
  Resource?: string;
  Parameters?: Record<string, unknown>;
  ResultSelector?: Record<string, unknown>;
  ResultPath?: string | null;
  OutputPath?: string;
  Choices?: Array<Record<string, unknown> & { Next: string }>;
  Catch?: Array<{ ErrorEquals: string[]; Next: string; ResultPath?: string }>;
  Retry?: Array<{ ErrorEquals: string[]; MaxAttempts?: number }>;
  ItemReader?: Record<string, unknown>;
  ItemProcessor?: AslDefinition & { ProcessorConfig?: Record<string, unknown> };
  ToleratedFailurePercentage?: number;
  MaxConcurrency?: number;
  Error?: string;
  CausePath?: string;
  [key: string]: unknown;
}

export interface AslDefinition {
  StartAt: string;
  States: Record<string, AslState>;
}

export function tokenPlaceholder(token: unknown): string {
  if (typeof token === 'object' && token !== null) {
    const t = token as Record<string, unknown>;
    if (typeof t.Ref === 'string') return `<Ref:${t.Ref}>`;
    const getAtt = t['Fn::GetAtt'];
    if (Array.isArray(getAtt)) return `<GetAtt:${getAtt.join('.')}>`;
  }
  return `<Token:${JSON.stringify(token).replace(/"/g, "'")}>`;
}

/** Parses a DefinitionString (a literal string or an Fn::Join) into ASL. */
export function parseDefinition(definitionString: unknown): AslDefinition {
  if (typeof definitionString === 'string') return JSON.parse(definitionString) as AslDefinition;
  const join = (definitionString as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (!join) throw new Error(`not a definition: ${JSON.stringify(definitionString).slice(0, 200)}`);
  const [sep, parts] = join;
  const text = parts.map((p) => (typeof p === 'string' ? p : tokenPlaceholder(p))).join(sep);
  return JSON.parse(text) as AslDefinition;
}

/** Every state, including those inside Map item processors, by name. */
export function allStates(def: AslDefinition): Map<string, AslState> {
  const out = new Map<string, AslState>();
  const walk = (d: AslDefinition): void => {
    for (const [name, state] of Object.entries(d.States)) {
      out.set(name, state);
      if (state.ItemProcessor) walk(state.ItemProcessor);
    }
  };
  walk(def);
  return out;
}

/** Names of the states a state can go to next (Next, Default, choices, catches). */
export function successors(state: AslState): string[] {
  return [
    ...(state.Next ? [state.Next] : []),
    ...(state.Default ? [state.Default] : []),
    ...(state.Choices ?? []).map((c) => c.Next),
    ...(state.Catch ?? []).map((c) => c.Next),
  ];
}

/**
 * The definition as aws-local-stepfunctions can run it. It has no ItemReader (a
 * Distributed Map reading S3), so each such Map becomes an inline Map over
 * `$.verify.blendItems`: a local Verify handler returns, beside its result, the items the
 * real Verify writes to jobs/<jobId>/blend-items.json (Verify has no ResultSelector, so
 * they land in $.verify). Token placeholders stay as they are (ARN checks off).
 */
export function localDefinition(def: AslDefinition): AslDefinition {
  const copy = structuredClone(def);
  for (const state of Object.values(copy.States)) {
    if (state.Type !== 'Map' || !state.ItemReader) continue;
    delete state.ItemReader;
    delete state.Label;
    state.ItemsPath = '$.verify.blendItems';
    state.ItemProcessor = {
      ...state.ItemProcessor!,
      ProcessorConfig: { Mode: 'INLINE' },
    };
  }
  return copy;
}

/** aws-local-stepfunctions needs Promise.withResolvers (Node 22); Node 20 lacks it. */
export function polyfillWithResolvers(): void {
  const P = Promise as unknown as { withResolvers?: unknown };
  P.withResolvers ??= <T>() => {
    let resolve!: (v: T) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<T>((a, b) => {
      resolve = a;
      reject = b;
    });
    return { promise, resolve, reject };
  };
}
