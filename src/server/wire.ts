import { createHash } from 'node:crypto';
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
  for (const [name, instances] of inObjectKeyOrder(all)) {
    const texts = new Array<string>(instances.length);
    for (let index = 0; index < instances.length; index += 1) texts[index] = instanceText(instances[index]!, reachability);
    names.push(`${JSON.stringify(name)}:[${texts.join(',')}]`);
  }
  return `{${names.join(',')}}`;
}

/** A name JavaScript orders as an array index among an object's keys: `0`, `7`, `42`, not `007`. */
const ARRAY_INDEX = /^(?:0|[1-9]\d{0,9})$/;
const MAX_ARRAY_INDEX = 2 ** 32 - 2;

/**
 * The entries in the order JSON.stringify of an object with these keys writes them (and
 * GET /services does): names that are array indexes first, ascending, then the others in order.
 */
function inObjectKeyOrder<T>(all: ReadonlyMap<string, T>): Iterable<[string, T]> {
  const indexes: Array<[string, T]> = [];
  for (const entry of all) if (ARRAY_INDEX.test(entry[0]) && Number(entry[0]) <= MAX_ARRAY_INDEX) indexes.push(entry);
  if (indexes.length === 0) return all;
  indexes.sort((a, b) => Number(a[0]) - Number(b[0]));
  const others = [...all].filter(([name]) => !(ARRAY_INDEX.test(name) && Number(name) <= MAX_ARRAY_INDEX));
  return [...indexes, ...others];
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
