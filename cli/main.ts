// The `tessera` command line.
//
// Each command's module is loaded when it runs: `tessera run` and `tessera demo` work on
// local files and should not load the AWS SDK the cloud commands need (~0.3 s at start).

const USAGE = `tessera — chunked, chunking-invariant ONNX inference over huge 3D volumes

Usage:
  tessera demo [--dir DIR] [--workers N]       synthetic volume + shipped model, run end to end
  tessera run <manifest.json> [--workers N] [--state DIR] [--json]
  tessera plan <manifest.json> [--json] [--throughput V | --calibrate] [--scan-empty]
                                                 counts, savings and a cost estimate, runs nothing
  tessera verify <manifest.json> [--full] [--check-only] [--state DIR] [--json]
                                                 check a finished job's output; repair what is damaged
  tessera status <manifest.json|jobId> [--watch] [--json] [--cloud]
                                                 chunks, rate, ETA, poison chunks, spend so far
  tessera submit <manifest.json> --bucket B [--model-upload]
                                                 validate and hand a manifest to the deployed stack
  tessera retry <jobId> --cloud                  run a FAILED cloud job's failed chunks again, after a fix
  tessera worker --job <jobId>                   join a cloud job as a worker (Batch container command)
  tessera convert <input> <output.zarr> [--dataset /path] [--chunk Z,Y,X]
                                                 HDF5 dataset, multipage TIFF or TIFF stack → OME-Zarr
  tessera view <output.zarr|manifest.json> [--port N]
                                                 serve a local output and print a neuroglancer link
  tessera help | --version

Run 'tessera <command> --help' for a command's options.`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await (await import('./run-command.ts')).runCommand(rest);
      case 'plan':
        return await (await import('./plan-command.ts')).planCommand(rest);
      case 'status':
        return await (await import('./status-command.ts')).statusCommand(rest);
      case 'submit':
        return await (await import('./submit-command.ts')).submitCommand(rest);
      case 'demo':
        return await (await import('./demo.ts')).demoCommand(rest);
      case 'worker':
        return await (await import('./worker-command.ts')).workerCommand(rest);
      case 'verify':
        return await (await import('./verify-command.ts')).verifyCommand(rest);
      case 'retry':
        return await (await import('./retry-command.ts')).retryCommand(rest);
      case 'convert':
        return await (await import('./convert-command.ts')).convertCommand(rest);
      case 'view':
        return await (await import('./view-command.ts')).viewCommand(rest);
      case '--version':
      case '-v':
      case 'version':
        process.stdout.write(`tessera ${await version()}\n`);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        return command === undefined ? 2 : 0;
      default:
        process.stderr.write(`tessera: unknown command "${command}"\n\n${USAGE}\n`);
        return 2;
    }
  } catch (e) {
    process.stderr.write(`tessera ${command}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

/** The version in the package.json beside this file (found from it, not from the cwd). */
async function version(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}
