import type { Context } from 'hono';
import { z } from 'zod';
import { canonicalFormOf, parsedHttpUrl } from '../http-url.js';
import { metadataProblem, protoKeyProblem, serviceUrlProblem } from '../registry/instance-rules.js';
import { SERVICE_NAME_RULE, isServiceName } from '../service-name.js';
import { ApiError } from './errors.js';

/** Service names end up in URLs and store keys, so they stay plain (the rule: src/service-name.ts). */
export const serviceName = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
  .refine(isServiceName, { error: `must be ${SERVICE_NAME_RULE}` });

export const httpUrl = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
  // One parse of the URL per request: a heartbeat carries one, and heartbeats are most of the load.
  .transform((value, context) => {
    const url = parsedHttpUrl(value);
    const problem = serviceUrlProblem(url);
    if (problem) {
      context.addIssue({ code: 'custom', message: problem });
      return z.NEVER;
    }
    return canonicalFormOf(url!);
  });

/** An optional field sent as null (Python's None) is taken as left out. */
export const optional = <T extends z.ZodType>(schema: T) => z.preprocess((value) => (value === null ? undefined : value), schema.optional());

/**
 * What a service says of itself (its model, its version): a JSON object, kept small. A
 * "__proto__" key is refused before zod copies the object, since the copy would drop it.
 */
export const metadata = z.preprocess(
  (value, context) => {
    const problem = typeof value === 'object' && value !== null ? protoKeyProblem(value) : undefined;
    if (problem) context.addIssue({ code: 'custom', message: problem });
    return value;
  },
  z.record(z.string(), z.unknown(), { error: 'must be a JSON object' }).superRefine((value, context) => {
    const problem = metadataProblem(value);
    if (problem) context.addIssue({ code: 'custom', message: problem });
  }),
);

export const message = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
  .min(1, { error: 'must not be empty' });

/**
 * The conversation so far, oldest first, for a service that answers in context (the Ollama
 * service does; others may ignore it). The 1 MiB body limit bounds it.
 */
export const history = optional(
  z.array(
    z.object({
      role: z.enum(['user', 'assistant'], { error: 'must be "user" or "assistant"' }),
      content: z.string({ error: 'must be a string' }),
    }),
    { error: 'must be a list of {"role": "user" or "assistant", "content": text}' },
  ),
);

/** Who sends a message: any text, or left out (or null). */
export const sender = optional(z.string({ error: 'must be a string naming the sender' }));

export const streamFlag = optional(z.boolean({ error: 'must be true or false' }));

export type History = NonNullable<z.infer<typeof history>>;

export const forwardBody = z.object({
  from: sender.transform((from) => from ?? 'anonymous'),
  to: serviceName,
  message,
  stream: streamFlag,
  history,
});

function describe(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const field = issue.path.join('.');
      if (issue.code === 'unrecognized_keys') return issue.message;
      return field ? `\`${field}\` ${issue.message}` : issue.message;
    })
    .join('; ');
}

export const MAX_BODY_BYTES = 1024 * 1024;
export const tooLarge = () => new ApiError(413, 'Request body is larger than 1 MiB');

/**
 * A compressed body (Content-Encoding: gzip…) read as text is bytes, not JSON: say so with 415,
 * rather than call it malformed JSON.
 */
export function refuseEncodedBody(contentEncoding: string | undefined): void {
  if (contentEncoding === undefined || contentEncoding.trim() === '' || contentEncoding.trim().toLowerCase() === 'identity') return;
  throw new ApiError(415, `Request bodies with Content-Encoding: ${contentEncoding} are not read here: send the JSON uncompressed`, { 'accept-encoding': 'identity' });
}

/**
 * The body as text, refused with 413 past 1 MiB. The declared length is checked before anything
 * is read; a body sent without one (chunked) is counted as it arrives. Only this reads bodies,
 * so GETs never pay for a limit check (touching the raw body builds a whole web Request).
 */
async function readLimitedText(c: Context): Promise<string> {
  refuseEncodedBody(c.req.header('content-encoding'));
  const declared = c.req.header('content-length');
  if (declared !== undefined) {
    if (Number(declared) > MAX_BODY_BYTES) throw tooLarge();
    return c.req.text();
  }
  const body = c.req.raw.body;
  if (!body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > MAX_BODY_BYTES) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads and validates a JSON body; anything wrong is a 400 that says what and where. */
export async function parseJsonBody<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  return parseJsonText(await readLimitedText(c), schema);
}

/** Validates a JSON body already read; anything wrong is a 400 that says what and where. */
export function parseJsonText<T extends z.ZodType>(text: string, schema: T): z.infer<T> {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError(400, `Request body must be JSON${text.trim() === '' ? ', got an empty body' : ' and it is malformed'}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError(400, 'Request body must be a JSON object');
  }
  const result = schema.safeParse(body);
  if (!result.success) throw new ApiError(400, `Invalid request: ${describe(result.error)}`);
  return result.data;
}
