import type { Context } from 'hono';
import { z } from 'zod';
import { isHttpUrl } from '../http-url.js';
import { ApiError } from './errors.js';

/** Service names end up in URLs and store keys, so they stay plain. */
export const serviceName = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, {
    error: 'must be 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit',
  });

export const httpUrl = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
  .refine(isHttpUrl, { error: 'must be an http(s) URL such as http://127.0.0.1:5000' })
  // Credentials in a service URL would be listed by /services and written to the logs.
  .refine((url) => !isHttpUrl(url) || !/^[a-z]+:\/\/[^/?#]*@/i.test(url), { error: 'must not carry a user name or password' });


export const message = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
  .min(1, { error: 'must not be empty' });

function describe(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const field = issue.path.join('.');
      if (issue.code === 'unrecognized_keys') return issue.message;
      return field ? `\`${field}\` ${issue.message}` : issue.message;
    })
    .join('; ');
}

/** Reads and validates a JSON body; anything wrong is a 400 that says what and where. */
export async function parseJsonBody<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  const text = await c.req.text();
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
