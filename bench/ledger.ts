// Ledger figures against DynamoDB Local: batched createJob writes, and claim throughput
// and conflicts with concurrent claimers. Filled in once the DynamoDB adapter lands.

export async function ledgerBench(o: {
  rows: number;
  claimers: number;
  claimChunks: number;
  log: (s: string) => void;
}): Promise<Record<string, unknown>> {
  o.log('ledger bench: DynamoDB adapter not wired yet');
  return { skipped: 'DynamoDB adapter not wired yet', ...o, log: undefined };
}
