// Watches for an EC2 Spot interruption notice (IMDSv2 `spot/instance-action`, which
// appears two minutes before reclaim). Polled every 5 s; a 404 means no notice. Off EC2
// (Fargate, a lab workstation) the token request fails and watching stops quietly.

export interface SpotWatchOptions {
  /** IMDS base URL; default AWS_EC2_METADATA_SERVICE_ENDPOINT or http://169.254.169.254. */
  endpoint?: string;
  intervalMs?: number;
  onNotice: (action: { action?: string; time?: string }) => void;
  log?: (line: string) => void;
}

export function watchSpotInterruption(o: SpotWatchOptions): () => void {
  if (process.env.AWS_EC2_METADATA_DISABLED === 'true') return () => {};
  const base = (
    o.endpoint ??
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT ??
    'http://169.254.169.254'
  ).replace(/\/$/, '');
  let stopped = false;
  let token: string | undefined;
  let timer: NodeJS.Timeout | undefined;

  const getToken = async (): Promise<string | undefined> => {
    const r = await fetch(`${base}/latest/api/token`, {
      method: 'PUT',
      headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '21600' },
      signal: AbortSignal.timeout(1000),
    });
    return r.ok ? await r.text() : undefined;
  };

  const poll = async (): Promise<void> => {
    try {
      token ??= await getToken();
      if (!token) {
        o.log?.('no instance metadata service: spot interruption notices are not watched');
        return;
      }
      const r = await fetch(`${base}/latest/meta-data/spot/instance-action`, {
        headers: { 'X-aws-ec2-metadata-token': token },
        signal: AbortSignal.timeout(1000),
      });
      if (r.status === 401) token = undefined; // expired token: fetch a new one next time
      if (r.ok) {
        const body = await r.text();
        stopped = true;
        o.onNotice(parseAction(body));
        return;
      }
    } catch (e) {
      if (token === undefined) {
        o.log?.(
          `instance metadata service unreachable (${(e as Error).message}): spot notices are not watched`,
        );
        return;
      }
      // A transient failure with a token in hand: keep polling.
    }
    if (!stopped) {
      timer = setTimeout(() => void poll(), o.intervalMs ?? 5000);
      timer.unref();
    }
  };
  void poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function parseAction(body: string): { action?: string; time?: string } {
  try {
    return JSON.parse(body) as { action?: string; time?: string };
  } catch (e) {
    if (e instanceof SyntaxError) return {};
    throw e;
  }
}
