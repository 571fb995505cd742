import type { InstanceJson } from '../wire-types.js';
import { BadAnswerError, quoted } from './bad-answer.js';

/** Every instance of every service, by name: what `/catalog` and the events' snapshot carry. */
export type Catalog = Record<string, InstanceJson[]>;

export const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** A time as the registrar writes it (ISO 8601): the table counts from it, so `NaN` must never get that far. */
const isTime = (value: unknown): value is string => typeof value === 'string' && !Number.isNaN(Date.parse(value));

/** What the table reads of an instance; other fields may come and go. */
export function isInstance(value: unknown): value is InstanceJson {
  return (
    isObject(value) &&
    typeof value.url === 'string' &&
    isTime(value.last_heartbeat) &&
    isTime(value.expires_at) &&
    (value.metadata === undefined || isObject(value.metadata))
  );
}

const isInstances = (value: unknown): value is InstanceJson[] => Array.isArray(value) && value.every(isInstance);

function notACatalog(url: string, text: string): BadAnswerError {
  return new BadAnswerError(`${url} answered something that is not an svcmesh catalog: ${quoted(text)}`);
}

/**
 * The services of a `/catalog` answer (or a snapshot), checked before a table is drawn from it:
 * something else at the registrar's URL must say so, not fail deep in the drawing.
 */
export function catalogIn(answer: { json: unknown; text: string }, url: string): Catalog {
  const services = isObject(answer.json) ? answer.json.services : undefined;
  if (!isObject(services) || !Object.values(services).every(isInstances)) throw notACatalog(url, answer.text);
  return services as Catalog;
}

/** The instances of a `/services/NAME` answer, checked as `catalogIn` checks a catalog. */
export function instancesIn(answer: { json: unknown; text: string }, url: string): InstanceJson[] {
  const instances = isObject(answer.json) ? answer.json.instances : undefined;
  if (!isInstances(instances)) throw notACatalog(url, answer.text);
  return instances;
}
