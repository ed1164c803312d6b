// The denominator of efficiency: bare onnxruntime session.run over exactly the patches
// the plan infers, back to back, batches prepared beforehand: no I/O, no blending.

import { availableParallelism } from 'node:os';
import type { Plan } from '../core/geometry/index.ts';
import { ModelRunner } from '../core/model/index.ts';

export async function bareInference(o: {
  plan: Plan;
  volume: Uint8Array;
  model: string;
  batchSize: number;
  device: 'cpu' | 'gpu';
  spinning?: boolean;
}): Promise<{ seconds: number; cpuSeconds: number; patches: number; device: string }> {
  const { plan } = o;
  const [pz, py, px] = plan.patchShape;
  const pv = pz * py * px;
  const [vz, vy, vx] = plan.volumeShape;
  const runner = await ModelRunner.open(
    { path: o.model },
    { device: o.device, intraOpThreads: availableParallelism(), spinning: o.spinning },
  );
  // Prepare every batch first (normalised, zero-padded like the pipeline), then time runs only.
  const boxes = [...plan.chunks()].flatMap((c) => [...plan.patches(c)]);
  const batches: { data: Float32Array; n: number }[] = [];
  for (let i = 0; i < boxes.length; i += o.batchSize) {
    const group = boxes.slice(i, i + o.batchSize);
    const data = new Float32Array(group.length * pv);
    group.forEach((b, k) => {
      for (let z = 0; z < pz; z++)
        for (let y = 0; y < py; y++) {
          const gz = b.start[0] + z;
          const gy = b.start[1] + y;
          if (gz >= vz || gy >= vy) continue;
          for (let x = 0; x < px; x++) {
            const gx = b.start[2] + x;
            if (gx < vx)
              data[k * pv + (z * py + y) * px + x] = o.volume[(gz * vy + gy) * vx + gx]! / 255;
          }
        }
    });
    batches.push({ data, n: group.length });
  }
  await runner.run(batches[0]!.data, batches[0]!.n, plan.patchShape); // warm-up (not counted)
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  for (const b of batches) await runner.run(b.data, b.n, plan.patchShape);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const device = runner.device;
  await runner.close();
  return { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, patches: boxes.length, device };
}
