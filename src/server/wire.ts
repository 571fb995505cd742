import { createHash } from 'node:crypto';
import { gzip } from 'node:zlib';
import type { Instance } from '../registry/types.js';
import type { InstanceJson } from '../wire-types.js';

/** What the registry knows of an instance beyond the store: whether forwards find it down. */
export interface Reachability {
  isDown(instance: Instance): boolean;
}

export type { InstanceJson };

/** The wire shape of an instance: snake_case and ISO times, like the seed's API. */
export function instanceJson(instance: Instance, reachability?: Reachability): InstanceJson {
  const json: InstanceJson = {
    url: instance.url,
    registered_at: isoTime(instance.registeredAt),
    last_heartbeat: isoTime(instance.lastHeartbeat),
    expires_at: isoTime(instance.expiresAt),
    metadata: instance.metadata,
  };
  if (reachability?.isDown(instance)) json.down = true;
  return json;
}

/**
 * `JSON.stringify(instanceJson(instance))`, written straight as text: at 100 000 instances the
 * objects and Dates in between cost a `/catalog` two thirds of its time.
 */
export function instanceText(instance: Instance, reachability?: Reachability): string {
  return (
    `{"url":${JSON.stringify(instance.url)},"registered_at":"${isoTime(instance.registeredAt)}",` +
    `"last_heartbeat":"${isoTime(instance.lastHeartbeat)}","expires_at":"${isoTime(instance.expiresAt)}",` +
    `"metadata":${metadataText(instance.metadata)}${reachability?.isDown(instance) ? ',"down":true' : ''}}`
  );
}

/** Most instances share one empty metadata object, and an instance's own is never changed in place. */
const metadataTexts = new WeakMap<object, string>();
function metadataText(metadata: Readonly<Record<string, unknown>>): string {
  let text = metadataTexts.get(metadata);
  if (text === undefined) {
    text = JSON.stringify(metadata);
    metadataTexts.set(metadata, text);
  }
  return text;
}

/**
 * Every instance, grouped by service name, as the JSON text of an object: `/catalog` is
 * `{"services": this}`, the events' snapshot carries it too. With the down marks, so a watcher
 * that (re)connects after a `down` event still sees it.
 */
export function servicesText(all: ReadonlyMap<string, readonly Instance[]>, reachability?: Reachability): string {
  // Pieces joined once: appending to one string made a rope of 100 000 pieces that cost more
  // to flatten than the objects and JSON.stringify it replaces.
  const names: string[] = [];
  for (const [name, instances] of all) {
    const texts = new Array<string>(instances.length);
    for (let index = 0; index < instances.length; index += 1) texts[index] = instanceText(instances[index]!, reachability);
    names.push(`${JSON.stringify(name)}:[${texts.join(',')}]`);
  }
  return `{${names.join(',')}}`;
}

const DAY_MS = 86_400_000;
/** 9999-12-31T23:59:59.999Z: past it, toISOString writes a six-digit year. */
const LAST_FOUR_DIGIT_YEAR_MS = 253_402_300_799_999;
let formattedDay = Number.NaN;
let formattedDayText = '';

/**
 * `new Date(time).toISOString()` without the Date: the day's part is kept from the last call
 * (instances' times fall on few days) and the time of day is arithmetic.
 */
export function isoTime(time: number): string {
  if (!(time >= 0 && time <= LAST_FOUR_DIGIT_YEAR_MS) || !Number.isInteger(time)) return new Date(time).toISOString();
  const day = Math.floor(time / DAY_MS);
  if (day !== formattedDay) {
    formattedDayText = new Date(day * DAY_MS).toISOString().slice(0, 11);
    formattedDay = day;
  }
  let rest = time - day * DAY_MS;
  const milliseconds = rest % 1000;
  rest = (rest - milliseconds) / 1000;
  const seconds = rest % 60;
  rest = (rest - seconds) / 60;
  const minutes = rest % 60;
  const hours = (rest - minutes) / 60;
  return `${formattedDayText}${twoDigits(hours)}:${twoDigits(minutes)}:${twoDigits(seconds)}.${milliseconds < 10 ? '00' : milliseconds < 100 ? '0' : ''}${milliseconds}Z`;
}

const twoDigits = (value: number) => (value < 10 ? `0${value}` : String(value));

export interface ServicesBody {
  text: string;
  bytes: Uint8Array<ArrayBuffer>;
  /** A strong validator of these bytes, for `If-None-Match`. */
  etag: string;
}

/**
 * The body of GET /services, as text and as bytes. The registry serialises the catalog once per
 * change; the bytes are kept too (one copy per registry, shared by every route that answers it),
 * since encoding a large catalog on every request costs more than the request. The ETag is a hash
 * of the bytes rather than a change counter: registrars sharing one etcd cluster count changes
 * each their own way, and a poller behind a load balancer must not get a 304 for another
 * registrar's catalog.
 */
export function servicesBody(registry: { servicesJson(): string }): ServicesBody {
  const text = registry.servicesJson();
  let cached = servicesBodies.get(registry);
  if (cached?.text !== text) {
    const bytes = new TextEncoder().encode(text);
    cached = { text, bytes, etag: `"${createHash('sha1').update(bytes).digest('base64url')}"` };
    servicesBodies.set(registry, cached);
  }
  return cached;
}

const servicesBodies = new WeakMap<object, ServicesBody>();

/** Whether an `If-None-Match` header names this ETag (or `*`); weak tags compare too, as on a GET. */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  for (const candidate of ifNoneMatch.split(',')) {
    const tag = candidate.trim();
    if (tag === '*' || tag === etag || (tag.startsWith('W/') && tag.slice(2) === etag)) return true;
  }
  return false;
}

/**
 * Below this a catalog goes out as it is: gzip's header and the work of both ends outweigh the
 * bytes saved (a lone instance's catalog is under 100 bytes).
 */
export const GZIP_MIN_BYTES = 1024;

/** One way of sending the catalog: its bytes and their own ETag. */
export interface EncodedBody {
  bytes: Uint8Array;
  etag: string;
}

/**
 * Whether an `Accept-Encoding` header takes gzip (RFC 9110 §12.5.3): `gzip` or `x-gzip`, or `*`
 * when gzip is not named, with a weight above zero. Go's and Python's HTTP clients, browsers and
 * fetch all ask for it; curl and wrk do not unless told.
 */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
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
export function gzipEtag(etag: string): string {
  return `${etag.slice(0, -1)}-gzip"`;
}

/**
 * The catalog gzipped, once per change and in the thread pool: a 100 000-instance catalog takes
 * tens of milliseconds to compress, which the event loop does not wait for. Requests that come
 * while it is being compressed wait for the same result.
 */
export function gzippedBody(body: ServicesBody): EncodedBody | Promise<EncodedBody> {
  let gzipped = gzippedBodies.get(body);
  if (!gzipped) {
    const pending = new Promise<EncodedBody>((resolve, reject) => {
      gzip(body.bytes, (error, bytes) => (error ? reject(error) : resolve({ bytes, etag: gzipEtag(body.etag) })));
    });
    gzippedBodies.set(body, pending);
    pending.then(
      (done) => gzippedBodies.set(body, done),
      () => gzippedBodies.delete(body),
    );
    gzipped = pending;
  }
  return gzipped;
}

const gzippedBodies = new WeakMap<ServicesBody, EncodedBody | Promise<EncodedBody>>();

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
  gzip?: ServicesAnswer;
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

function gzipAnswer(encoded: EncodedBody): ServicesAnswer {
  return Object.freeze({
    status: 200,
    headers: Object.freeze({
      vary: 'accept-encoding',
      'content-type': 'application/json',
      'content-encoding': 'gzip',
      'content-length': encoded.bytes.byteLength,
      etag: encoded.etag,
    }),
    bytes: encoded.bytes,
  });
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
    if (answers.gzip) return answers.gzip;
    const gzipped = gzippedBody(body);
    if (!(gzipped instanceof Promise)) return (answers.gzip = gzipAnswer(gzipped));
    return gzipped.then((encoded) => (answers.gzip ??= gzipAnswer(encoded)));
  }
  return etagMatches(request.ifNoneMatch, body.etag) ? answers.plainNotModified : answers.plain;
}
