// The event S3 sends a Lambda for an upload, built from the bucket's notification
// configuration in the template (Custom::S3BucketNotifications: the configuration CDK's
// handler puts on the bucket) and the object as the store reports it (HeadObject).
// Shape: S3's event message structure, eventVersion 2.1
// (docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html).

import { randomBytes } from 'node:crypto';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { S3Event } from 'aws-lambda';
import type { Template } from './assembly.ts';
import { type CfnContext, resolveCfn } from './cfn.ts';

interface LambdaConfiguration {
  Events: string[];
  Filter?: { Key?: { FilterRules?: { Name: string; Value: string }[] } };
  LambdaFunctionArn: unknown;
}

export interface Subscription {
  /** The logical id of the function the configuration invokes. */
  functionId: string;
  events: string[];
  prefix: string;
  suffix: string;
}

/** The bucket's Lambda notification configurations (for the bucket with logical id `bucketId`). */
export function lambdaSubscriptions(template: Template, bucketId: string): Subscription[] {
  const out: Subscription[] = [];
  for (const r of Object.values(template.Resources)) {
    if (r.Type !== 'Custom::S3BucketNotifications') continue;
    if ((r.Properties?.BucketName as { Ref?: string })?.Ref !== bucketId) continue;
    const config = r.Properties?.NotificationConfiguration as {
      LambdaFunctionConfigurations?: LambdaConfiguration[];
    };
    for (const c of config.LambdaFunctionConfigurations ?? []) {
      const target = (c.LambdaFunctionArn as { 'Fn::GetAtt'?: [string, string] })['Fn::GetAtt'];
      if (!target) throw new Error(`notification target ${JSON.stringify(c.LambdaFunctionArn)}`);
      const rule = (name: string) =>
        c.Filter?.Key?.FilterRules?.find((f) => f.Name.toLowerCase() === name)?.Value ?? '';
      out.push({
        functionId: target[0],
        events: c.Events,
        prefix: rule('prefix'),
        suffix: rule('suffix'),
      });
    }
  }
  return out;
}

/** Whether S3 delivers `eventName` (e.g. "ObjectCreated:Put") for `key` to the subscription. */
export function matches(s: Subscription, eventName: string, key: string): boolean {
  const event = `s3:${eventName}`;
  const typeMatches = s.events.some((e) =>
    e.endsWith(':*') ? event.startsWith(e.slice(0, -1)) : e === event,
  );
  return typeMatches && key.startsWith(s.prefix) && key.endsWith(s.suffix);
}

/** S3's key encoding in event messages: URL-encoded, space as '+'. */
export function encodeEventKey(key: string): string {
  return encodeURIComponent(key)
    .replace(/%2F/g, '/')
    .replace(/%20/g, '+')
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

let sequence = 0;

/** The ObjectCreated:Put record S3 sends for `key`, as the object now stands in the bucket. */
export async function objectCreatedEvent(
  s3: S3Client,
  ctx: CfnContext,
  bucket: string,
  key: string,
): Promise<S3Event> {
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  const partition = String(resolveCfn({ Ref: 'AWS::Partition' }, ctx));
  return {
    Records: [
      {
        eventVersion: '2.1',
        eventSource: 'aws:s3',
        awsRegion: ctx.region,
        eventTime: new Date().toISOString(),
        eventName: 'ObjectCreated:Put',
        userIdentity: { principalId: 'AWS:AIDATWINUPLOADER' },
        requestParameters: { sourceIPAddress: '127.0.0.1' },
        responseElements: {
          'x-amz-request-id': randomBytes(8).toString('hex').toUpperCase(),
          'x-amz-id-2': randomBytes(32).toString('base64'),
        },
        s3: {
          s3SchemaVersion: '1.0',
          configurationId: 'tessera-manifests',
          bucket: {
            name: bucket,
            ownerIdentity: { principalId: 'A3TWINOWNER' },
            arn: `arn:${partition}:s3:::${bucket}`,
          },
          object: {
            key: encodeEventKey(key),
            size: Number(head.ContentLength ?? 0),
            eTag: (head.ETag ?? '').replaceAll('"', ''),
            ...(head.VersionId && head.VersionId !== 'null' ? { versionId: head.VersionId } : {}),
            sequencer: (Date.now() * 1000 + sequence++)
              .toString(16)
              .toUpperCase()
              .padStart(18, '0'),
          },
        },
      },
    ],
  };
}
