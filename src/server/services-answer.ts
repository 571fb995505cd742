/**
 * GET /services: which answer a request gets (the catalog as it is or gzipped, 200 or 304), for
 * the app and the node fast path alike, built once per catalog rather than per request.
 */
import { gzip } from 'node:zlib';
import { etagMatches, type ServicesBody } from './wire.js';

/**
 * Below this a catalog goes out as it is: gzip's header and the work of both ends outweigh the
 * bytes saved (a lone instance's catalog is under 100 bytes).
 */
const GZIP_MIN_BYTES = 1024;

/**
 * Whether an `Accept-Encoding` header takes gzip (RFC 9110 §12.5.3): `gzip` or `x-gzip`, or `*`
 * when gzip is not named, with a weight above zero. Go's and Python's HTTP clients, browsers and
 * fetch all ask for it; curl and wrk do not unless told.
 */
function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false;
  let named: boolean | undefined;
  let any = false;
  for (const item of acceptEncoding.split(',')) {
    const [coding = '', ...parameters] = item.split(';');
    const name = coding.trim().toLowerCase();
    if (name !== 'gzip' && name !== 'x-gzip' && name !== '*') continue;
    const accepted = weightOf(parameters) > 0;
    if (name === '*') any = accepted;
    else named = (named ?? false) || accepted;
  }
  return named ?? any;
}

/** The `q` of a coding's parameters: 1 when absent, 0 when it is not a number RFC 9110 allows. */
function weightOf(parameters: readonly string[]): number {
  for (const parameter of parameters) {
    const [key = '', value = ''] = parameter.split('=');
    if (key.trim().toLowerCase() !== 'q') continue;
    const weight = value.trim();
    return /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(weight) ? Number(weight) : 0;
  }
  return 1;
}

/** A representation's strong ETag differs from the identity one's, as RFC 9110 §8.8.3 asks. */
function gzipEtag(etag: string): string {
  return `${etag.slice(0, -1)}-gzip"`;
}

export type ServicesAnswer =
  | { readonly status: 304; readonly headers: Readonly<Record<string, string>> }
  | {
      readonly status: 200;
      /** Content-Length included. */
      readonly headers: Readonly<Record<string, string | number>>;
      readonly bytes: Uint8Array;
      /** The same body as text, when it is the identity one (a short string can leave with the headers in one write). */
      readonly text?: string;
    };

/**
 * A catalog's answers, built once per change: GET /services is the registrar's most frequent
 * read, and the objects of an answer, made on every request, cost it more than its bytes. They
 * are frozen: every request is handed the same ones.
 */
interface Answers {
  readonly plain: ServicesAnswer;
  readonly plainNotModified: ServicesAnswer;
  /** Only for a catalog of GZIP_MIN_BYTES or more. */
  readonly gzipNotModified?: ServicesAnswer & { status: 304 };
  /**
   * Compressed once, in the thread pool: a 100 000-instance catalog takes tens of milliseconds,
   * which the event loop does not wait for. Requests that come meanwhile wait for the same one.
   */
  gzip?: ServicesAnswer | Promise<ServicesAnswer>;
}

const answersOf = new WeakMap<ServicesBody, Answers>();

function answersFor(body: ServicesBody): Answers {
  let answers = answersOf.get(body);
  if (answers) return answers;
  const compressible = body.bytes.byteLength >= GZIP_MIN_BYTES;
  // Every answer of a compressible catalog says it depends on Accept-Encoding, so a cache in
  // between does not hand the gzipped one to a client that cannot read it.
  const vary: Record<string, string> = compressible ? { vary: 'accept-encoding' } : {};
  answers = {
    plain: Object.freeze({
      status: 200,
      headers: Object.freeze({ ...vary, 'content-type': 'application/json', 'content-length': body.bytes.byteLength, etag: body.etag }),
      bytes: body.bytes,
      text: body.text,
    }),
    plainNotModified: Object.freeze({ status: 304, headers: Object.freeze({ ...vary, etag: body.etag }) }),
    gzipNotModified: compressible ? Object.freeze({ status: 304, headers: Object.freeze({ ...vary, etag: gzipEtag(body.etag) }) }) : undefined,
  };
  answersOf.set(body, answers);
  return answers;
}

function gzipAnswer(body: ServicesBody, bytes: Uint8Array): ServicesAnswer {
  return Object.freeze({
    status: 200,
    headers: Object.freeze({
      vary: 'accept-encoding',
      'content-type': 'application/json',
      'content-encoding': 'gzip',
      'content-length': bytes.byteLength,
      etag: gzipEtag(body.etag),
    }),
    bytes,
  });
}

function compress(body: ServicesBody, answers: Answers): Promise<ServicesAnswer> {
  const pending = new Promise<ServicesAnswer>((resolve, reject) => {
    gzip(body.bytes, (error, bytes) => (error ? reject(error) : resolve(gzipAnswer(body, bytes))));
  });
  pending.then(
    (answer) => (answers.gzip = answer),
    () => (answers.gzip = undefined),
  );
  return pending;
}

/**
 * GET /services, for the app and for the node fast path alike: 304 to a poller that holds this
 * catalog, gzipped to a client that asks (a 1000-instance catalog shrinks from 35 KB to 5 KB),
 * else the bytes as they are. A promise only while the catalog is being compressed.
 */
export function servicesAnswer(body: ServicesBody, request: { acceptEncoding?: string; ifNoneMatch?: string }): ServicesAnswer | Promise<ServicesAnswer> {
  const answers = answersFor(body);
  const { gzipNotModified } = answers;
  if (gzipNotModified && acceptsGzip(request.acceptEncoding)) {
    if (etagMatches(request.ifNoneMatch, gzipNotModified.headers.etag!)) return gzipNotModified;
    return (answers.gzip ??= compress(body, answers));
  }
  return etagMatches(request.ifNoneMatch, body.etag) ? answers.plainNotModified : answers.plain;
}
