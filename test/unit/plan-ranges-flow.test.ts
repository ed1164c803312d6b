// The synthesized state machine's path for a plan too large for the Plan task alone:
// PlanInRanges? → RangeStarts → PlanRanges (Map of PlanRange) → CompletePlan → StartRounds,
// run in aws-local-stepfunctions with stub handlers. The Plan stub reports rangeRows as the
// Plan task does (rangeRowsFor); the expected range items are written out here from
// PLAN_RANGE_ROWS, not taken from the definition.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { StateMachine } from 'aws-local-stepfunctions';
import { beforeAll, describe, expect, it } from 'vitest';
import { STATES } from '../../cdk/constructs/pipeline.ts';
import { type Knobs, knobContextKey, parseKnobs } from '../../cdk/knobs.ts';
import { REPO_ROOT } from '../../cdk/paths.ts';
import { TesseraStack } from '../../cdk/stack.ts';
import { PLAN_RANGE_ROWS, PLAN_RANGES_IN_FLIGHT } from '../../contracts/cloud.ts';
import { planRangeItems, plansInRanges, rangeRowsFor } from '../../core/cloud/plan-ranges.ts';
import {
  type AslDefinition,
  localDefinition,
  parseDefinition,
  polyfillWithResolvers,
} from '../helpers/state-machine-definition.ts';

let definition: AslDefinition;
beforeAll(() => {
  const context = JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')).context;
  const app = new App({ context: { ...context, 'aws:cdk:bundling-stacks': [] } });
  const knobs = parseKnobs((name: keyof Knobs) => app.node.tryGetContext(knobContextKey(name)));
  const stack = new TesseraStack(app, 'Tessera', { knobs });
  const template = app.synth().getStackByName(stack.stackName).template as {
    Resources: Record<string, { Type: string; Properties: { DefinitionString: unknown } }>;
  };
  const sm = Object.values(template.Resources).find(
    (r) => r.Type === 'AWS::StepFunctions::StateMachine',
  );
  definition = parseDefinition(sm!.Properties.DefinitionString);
}, 120_000);

/** Runs from Plan to StartRounds (made a Succeed state), recording every task's input. */
async function runPlan(
  chunks: number,
  fail?: string,
  rangeRows = rangeRowsFor(chunks),
): Promise<{ calls: [string, unknown][]; error?: string }> {
  polyfillWithResolvers();
  const def = structuredClone(localDefinition(definition));
  def.States[STATES.startRounds] = { Type: 'Succeed' };
  def.States[STATES.stepFailed] = { Type: 'Fail', Error: 'StepFailed' };
  const calls: [string, unknown][] = [];
  const handler = (name: string, out: (i: never) => unknown) => async (i: unknown) => {
    calls.push([name, i]);
    if (name === fail)
      throw Object.assign(new Error('range refused'), { name: 'PlanIncompleteError' });
    return out(i as never);
  };
  const machine = new StateMachine(def as never, { validationOptions: { checkArn: false } });
  const run = machine.run(
    { manifest: { bucket: 'b', key: 'manifests/m.json' } },
    {
      overrides: {
        taskResourceLocalHandlers: {
          [STATES.plan]: handler(STATES.plan, () => ({
            jobId: 'big',
            arraySize: 10,
            chunks,
            seamBlocks: 0,
            blendItemsKey: 'k',
            blendItemCount: 0,
            device: 'gpu',
            blendItems: [],
            rangeRows,
          })),
          [STATES.planRange]: handler(STATES.planRange, (e: { from: number }) => ({
            written: 1,
            from: e.from,
          })),
          [STATES.completePlan]: handler(STATES.completePlan, () => ({
            jobId: 'big',
            created: true,
          })),
        } as never,
      },
    },
  );
  try {
    await run.result;
    return { calls };
  } catch (e) {
    return {
      calls,
      error:
        (e as Error).name === 'ExecutionError'
          ? String((e as { cause?: unknown }).cause ?? (e as Error).message)
          : (e as Error).name,
    };
  }
}

describe('the PlanRanges path of the state machine', () => {
  it('a job of PLAN_RANGE_ROWS chunks is planned by the Plan task alone', async () => {
    expect(plansInRanges(PLAN_RANGE_ROWS)).toBe(false);
    const { calls, error } = await runPlan(PLAN_RANGE_ROWS);
    expect(error).toBeUndefined();
    expect(calls.map(([s]) => s)).toEqual([STATES.plan]);
  });

  it('a larger job gets one PlanRange per 250,000 chunks, then CompletePlan, then the rounds', async () => {
    const chunks = 2 * 250_000 + 1;
    expect(plansInRanges(chunks)).toBe(true);
    const { calls, error } = await runPlan(chunks);
    expect(error).toBeUndefined();
    const ranges = calls.filter(([s]) => s === STATES.planRange).map(([, i]) => i);
    expect(ranges).toHaveLength(3);
    expect(new Set(ranges.map((r) => JSON.stringify(r)))).toEqual(
      new Set(
        [0, 250_000, 500_000].map((from) =>
          JSON.stringify({ step: 'range', jobId: 'big', from, rows: 250_000 }),
        ),
      ),
    );
    // The Lambda's ranges, clamped to the job, are the same three.
    expect(planRangeItems(chunks)).toEqual([
      { from: 0, to: 250_000 },
      { from: 250_000, to: 500_000 },
      { from: 500_000, to: 500_001 },
    ]);
    expect(calls.at(-1)).toEqual([STATES.completePlan, { step: 'complete', jobId: 'big' }]);
    expect(calls.findIndex(([s]) => s === STATES.completePlan)).toBe(calls.length - 1);
  });

  it("follows the Plan task's rangeRows, not a number of its own", async () => {
    // 7 chunks in ranges of 3 (a lowered planRangeRows): items 0, 3, 6 of 3 rows each.
    const { calls, error } = await runPlan(7, undefined, 3);
    expect(error).toBeUndefined();
    const ranges = calls.filter(([s]) => s === STATES.planRange).map(([, i]) => i);
    expect(new Set(ranges.map((r) => JSON.stringify(r)))).toEqual(
      new Set(
        [0, 3, 6].map((from) => JSON.stringify({ step: 'range', jobId: 'big', from, rows: 3 })),
      ),
    );
    expect(calls.at(-1)).toEqual([STATES.completePlan, { step: 'complete', jobId: 'big' }]);
    // And a job past PLAN_RANGE_ROWS that the Plan task wrote itself (rangeRows 0) goes on.
    const whole = await runPlan(2 * PLAN_RANGE_ROWS, undefined, 0);
    expect(whole.calls.map(([s]) => s)).toEqual([STATES.plan]);
  });

  it('a failed range fails the job before any round starts, and CompletePlan is not called', async () => {
    const { calls, error } = await runPlan(600_000, STATES.planRange);
    expect(error).toMatch(/^StepFailed/);
    expect(calls.some(([s]) => s === STATES.completePlan)).toBe(false);
  });

  it('runs at most PLAN_RANGES_IN_FLIGHT ranges at once', () => {
    const map = definition.States[STATES.planRanges] as { MaxConcurrency?: number };
    expect(map.MaxConcurrency).toBe(PLAN_RANGES_IN_FLIGHT);
    expect(PLAN_RANGES_IN_FLIGHT).toBe(16);
  });
});
