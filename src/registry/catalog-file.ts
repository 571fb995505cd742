import { readFile } from 'node:fs/promises';
import { parsedHttpUrl } from '../http-url.js';
import { metadataProblem, serviceNameProblem, serviceUrlProblem } from './instance-rules.js';
import { inOneSpelling } from './instance-shape.js';
import type { Instance } from './types.js';

const FORMAT_VERSION = 1;

/** Thrown at start when the catalog file exists but cannot be trusted. */
/** The latest time a JavaScript Date can hold (year 275760). */
const MAX_TIME_MS = 8.64e15;

export class CatalogFileError extends Error {
  override readonly name = 'CatalogFileError';
}

interface CatalogFile {
  version: number;
  instances: readonly Instance[];
}

export function catalogFileText(instances: readonly Instance[]): string {
  return JSON.stringify({ version: FORMAT_VERSION, instances } satisfies CatalogFile);
}

export interface LoadOptions {
  now: number;
  /** The TTL the registrar runs with now, which may be shorter than the one the file was saved under. */
  ttlMs: number;
}

/**
 * The instances a catalog file holds, as the registrar may serve them: in one spelling per
 * address, and none living longer than `ttlMs` after its last heartbeat (nor after now). No file,
 * or one with nothing in it (made with `touch`), is an empty catalog; anything else that is not an
 * svcmesh catalog, or holds an instance POST /register would refuse, is a CatalogFileError that
 * names it, and the file is left as it is.
 */
export async function loadCatalogFile(path: string, options: LoadOptions): Promise<Instance[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new CatalogFileError(
      `Cannot read the catalog file ${path}: ${(error as Error).message}. Check its permissions, or start with another --store.`,
    );
  }
  if (text.trim() === '') return [];
  const leftUntouched = 'It was left untouched: move it away or fix it, then start again.';
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new CatalogFileError(`The catalog file ${path} is not valid JSON (${(error as Error).message}). ${leftUntouched}`);
  }
  const file = parsed as Partial<CatalogFile> | null;
  if (file?.version !== FORMAT_VERSION || !Array.isArray(file.instances)) {
    throw new CatalogFileError(
      `The catalog file ${path} is not an svcmesh catalog (expected {"version": ${FORMAT_VERSION}, "instances": [...]}). ${leftUntouched}`,
    );
  }
  const instances = file.instances.map((entry: unknown, index) => {
    const read = readInstance(entry);
    if (typeof read === 'string') {
      throw new CatalogFileError(
        `The catalog file ${path} holds an instance the registrar would refuse: ${describeEntry(entry, index)} ${read}. It was left untouched: fix or remove that instance, then start again.`,
      );
    }
    return read;
  });
  return inOneSpelling(instances).map((instance) => withinTtl(instance, options));
}

/** A TTL shortened since the file was saved applies at once: the SPEC's "exactly TTL seconds after its last heartbeat". */
function withinTtl(instance: Instance, { now, ttlMs }: LoadOptions): Instance {
  const expiresAt = Math.min(instance.expiresAt, instance.lastHeartbeat + ttlMs, now + ttlMs);
  return expiresAt === instance.expiresAt ? instance : { ...instance, expiresAt };
}

const describeEntry = (entry: unknown, index: number): string => {
  const e = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>;
  const name = typeof e.name === 'string' ? `"${e.name}"` : undefined;
  const url = typeof e.url === 'string' ? e.url : undefined;
  const which = name && url ? ` (${name} at ${url})` : name ? ` (${name})` : '';
  return `instance ${index + 1}${which}:`;
};

/** The instance an entry of the file describes, or what is wrong with it. */
function readInstance(entry: unknown): Instance | string {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return 'is not an object';
  const e = entry as Record<string, unknown>;
  if (typeof e.name !== 'string') return 'name must be a string';
  const nameProblem = serviceNameProblem(e.name);
  if (nameProblem) return `name ${nameProblem}`;
  if (typeof e.url !== 'string') return 'url must be a string';
  const urlProblem = serviceUrlProblem(parsedHttpUrl(e.url));
  if (urlProblem) return `url ${urlProblem}`;
  for (const field of ['registeredAt', 'lastHeartbeat', 'expiresAt'] as const) {
    if (typeof e[field] !== 'number') return `${field} must be a number (epoch milliseconds)`;
    // Past what a Date holds, every read that shows the time (/catalog, /events) would fail.
    if (!Number.isInteger(e[field]) || Math.abs(e[field] as number) > MAX_TIME_MS) return `${field} must be a time in epoch milliseconds, not ${e[field]}`;
  }
  // POST /register takes metadata left out, or null, as none.
  const metadata = e.metadata ?? {};
  if (typeof metadata !== 'object' || Array.isArray(metadata)) return 'metadata must be a JSON object';
  const problem = metadataProblem(metadata as Record<string, unknown>);
  if (problem) return `metadata ${problem}`;
  return {
    name: e.name,
    url: e.url,
    registeredAt: e.registeredAt as number,
    lastHeartbeat: e.lastHeartbeat as number,
    expiresAt: e.expiresAt as number,
    metadata: metadata as Record<string, unknown>,
  };
}
