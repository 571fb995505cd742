import { Command } from 'commander';
import type { InstanceJson } from '../client/registrar-client.js';
import { BadAnswerError, quoted } from './bad-answer.js';
import { type Catalog, catalogIn, instancesIn, isInstance, isObject } from './catalog-shape.js';
import { abortWhenReaderGoes } from '../stdout-reader.js';
import { printable } from '../terminal-text.js';
import { type ClientFlags, clientFrom, hinted, parseServiceName, withClientOptions } from './shared.js';

interface ServicesFlags extends ClientFlags {
  watch?: boolean;
}

export function makeServicesCommand(): Command {
  return withClientOptions(
    new Command('services')
      .description('list registered services (or the instances of one)')
      .argument('[name]', 'show only this service, with every instance', parseServiceName)
      .option('--watch', 'follow changes live (reconnects by itself); with --json, one JSON line per event'),
  ).action(async (name: string | undefined, flags: ServicesFlags) => {
    const client = await clientFrom(flags);
    const output = await import('../output.js');
    if (flags.watch) return watch(client, flags, name);
    if (flags.json) {
      const answer = name ? await client.service(name).catch(hinted(client, name)) : await client.services();
      output.printJson(answer.text);
      return;
    }
    const services = name ? { [name]: await instancesOf(client, name) } : catalogIn(await client.catalog(), `${client.baseUrl}/catalog`);
    output.print(renderCatalog(output, services, client.baseUrl));
  });
}

type Client = Awaited<ReturnType<typeof clientFrom>>;

async function instancesOf(client: Client, name: string): Promise<InstanceJson[]> {
  return instancesIn(await client.service(name).catch(hinted(client, name)), `${client.baseUrl}/services/${encodeURIComponent(name)}`);
}

const naturalOrder = new Intl.Collator('en', { numeric: true });

/**
 * `maxRows`: a live view fits its terminal, as `top` does; the rows past it are counted, not drawn.
 * `only`: the one service shown, whose absence says nothing of the others.
 */
function renderCatalog(output: typeof import('../output.js'), services: Catalog, baseUrl: string, { maxRows = Number.POSITIVE_INFINITY, only }: { maxRows?: number; only?: string } = {}): string {
  // A METADATA column only when something has metadata (the Ollama service's model, say).
  const withMetadata = Object.values(services).some((instances) => instances.some((i) => Object.keys(i.metadata ?? {}).length > 0));
  // Sorted by name, then URL (svc2 before svc10): a table to scan, not a log.
  const byText = naturalOrder.compare;
  const sorted = Object.entries(services).sort(([a], [b]) => byText(a, b));
  const all = sorted.flatMap(([service, instances]) => [...instances].sort((a, b) => byText(a.url, b.url)).map((instance) => [service, instance] as const));
  const shown = all.length > maxRows ? all.slice(0, Math.max(1, maxRows - 1)) : all;
  // Names, URLs and metadata are the registrar's (and whoever registered them): shown, never obeyed.
  const rows = shown.map(([service, instance]) => [
    output.style.name(output.printable(service)),
    // The registrar's last forward to it failed: the first thing to look at when asks fail.
    instance.down ? `${output.printable(instance.url)} ${output.style.bad('unreachable')}` : output.printable(instance.url),
    output.relative(instance.last_heartbeat, Date.now(), { past: true }),
    output.relative(instance.expires_at),
    ...(withMetadata ? [metadataText(instance.metadata)] : []),
  ]);
  if (rows.length === 0) {
    return output.style.dim(only ? `No instance of ${only} is registered at ${baseUrl} yet (waiting)` : `No services registered at ${baseUrl}`);
  }
  const table = output.table(['SERVICE', 'URL', 'LAST HEARTBEAT', 'EXPIRES', ...(withMetadata ? ['METADATA'] : [])], rows);
  const hidden = all.length - shown.length;
  return hidden === 0 ? table : `${table}\n${output.style.dim(`… ${hidden} more instances below the screen: svcmesh services NAME lists one service`)}`;
}

/** `model=llama3.2 zone=eu`: short values as they are, others as JSON, the whole cut at 60 characters. */
function metadataText(metadata: Record<string, unknown> | undefined): string {
  const text = Object.entries(metadata ?? {})
    .map(([key, value]) => `${printable(key)}=${printable(typeof value === 'string' && /^\S+$/.test(value) ? value : JSON.stringify(value))}`)
    .join(' ');
  return cutAt(text, 60);
}

/** How often a live view ticks its relative times. */
const TICK_MS = 1_000;
/**
 * Fresh heartbeat times come from /catalog every 2 s per 500 instances shown (as the dashboard
 * does); past 5000 instances, from the events only: a watcher must never weigh on the registrar.
 */
const REFRESH_MS_PER_500 = 2_000;
const REFRESH_MAX_INSTANCES = 5_000;

async function watch(client: Client, flags: ServicesFlags, only: string | undefined): Promise<void> {
  const [output, { watchEvents }] = await Promise.all([import('../output.js'), import('../client/event-stream.js')]);
  await lookBeforeWatching(client, output, only);
  const controller = new AbortController();
  // `services --watch --json | head -1`: nobody reads the events any more.
  abortWhenReaderGoes(controller);
  // Stopped with Ctrl-C, as a watch always is: 130, as for `ask` and a shell's own Ctrl-C.
  process.once('SIGINT', () => {
    controller.abort();
    process.exitCode = 130;
  });
  const live = output.isInteractive() && !flags.json;
  let catalog: Catalog = {};
  let lastChange = '';
  // Set while the event stream is down, until an event comes again: the table is the last one seen.
  let lost: Lost | undefined;
  const redraw = () => {
    const shown = only ? { [only]: catalog[only] ?? [] } : catalog;
    // The table, the blank line, the two lines under it and the header leave rows - 5 instances.
    // A terminal that reports no size (0 rows, as under `script`) gets the usual 24.
    const fit = Math.max(3, (process.stdout.rows || 24) - 5);
    const state = lost
      ? output.style.warn(oneLine(`${lostLine(lost, Date.now())} — Ctrl-C to stop`, process.stdout.columns))
      : output.style.dim(`watching ${client.baseUrl}/events — Ctrl-C to stop`);
    const screen = `${renderCatalog(output, shown, client.baseUrl, { maxRows: fit, only })}\n\n${state}\n${lastChange}`;
    // Drawn over the last screen line by line (home, each line cleared to its end, the rest
    // cleared), not after clearing it all: a redraw every second must not flicker.
    process.stdout.write(`\x1b[H${screen.split('\n').join('\x1b[K\n')}\x1b[K\n\x1b[J`);
  };
  // Heartbeats are not events: without these, "last heartbeat" would only ever grow on screen.
  const ticker = live ? setInterval(redraw, TICK_MS) : undefined;
  let refresher: NodeJS.Timeout | undefined;
  const refreshLater = () => {
    if (controller.signal.aborted) return;
    refresher = setTimeout(() => void refreshTimes().finally(refreshLater), REFRESH_MS_PER_500 * Math.max(1, Math.ceil(countInstances(catalog) / 500)));
  };
  if (live) refreshLater();
  async function refreshTimes() {
    if (countInstances(catalog) > REFRESH_MAX_INSTANCES) return;
    try {
      const fresh = only
        ? { [only]: instancesIn(await client.service(only), `${client.baseUrl}/services/${encodeURIComponent(only)}`) }
        : catalogIn(await client.catalog(), `${client.baseUrl}/catalog`);
      catalog = withNewerTimes(catalog, fresh);
    } catch {
      // The event stream reports a registrar that is away (or the one service gone); the next round tries again.
    }
  }
  const events = watchEvents({
    url: `${client.baseUrl}/events`,
    headers: client.authHeaders,
    signal: controller.signal,
    onDisconnect: (error, retryMs) => {
      if (live) {
        // Under the table, a warning would be gone with the next redraw, a second later: the
        // screen itself says so, until the registrar is back.
        lost = { url: `${client.baseUrl}/events`, reason: error.message, retryAt: Date.now() + retryMs };
        redraw();
        // Still written where it stays: a log file stderr was sent to.
        if (process.stderr.isTTY) return;
      }
      output.warn(`lost ${client.baseUrl}/events (${error.message}); reconnecting in ${seconds(retryMs)} s`);
    },
  });
  try {
    for await (const event of events) {
      lost = undefined;
      if (flags.json && !only) {
        // As it came, whatever its shape: the script reading it decides.
        output.printJson(event.data);
        continue;
      }
      const data = eventIn(event.data, `${client.baseUrl}/events`, !flags.json);
      if (only && data.name !== undefined && data.name !== only) continue;
      // Watching one service, the snapshot is that service's: the others' instances are noise.
      if (only && data.type === 'snapshot') data.services = { [only]: (isObject(data.services) && data.services[only]) || [] };
      if (flags.json) {
        output.printJson(only && data.type === 'snapshot' ? JSON.stringify(data) : event.data);
        continue;
      }
      if (data.type === 'snapshot') catalog = catalogIn({ json: data, text: event.data }, `${client.baseUrl}/events`);
      else if (data.name && data.instance) catalog = applyChange(catalog, data.type, data.name, data.instance);
      const change =
        data.type !== 'snapshot'
          ? printable(`${data.type}: ${data.name} at ${data.instance?.url}`)
          : only
            ? `snapshot: ${plural(catalog[only]?.length ?? 0, 'instance')} of ${only}`
            : `snapshot: ${plural(Object.keys(catalog).length, 'service')}`;
      if (live) {
        lastChange = output.style.dim(`${new Date().toLocaleTimeString()} ${change}`);
        redraw();
      } else {
        output.print(`${new Date().toISOString()} ${change}`);
      }
    }
  } finally {
    clearInterval(ticker);
    clearTimeout(refresher);
  }
}

interface Lost {
  url: string;
  reason: string;
  /** When the next attempt starts: the line counts down to it at each redraw. */
  retryAt: number;
}

/** `disconnected from URL: reason; reconnecting in 2.5 s`, or `reconnecting…` once that attempt is under way. */
function lostLine(lost: Lost, now: number): string {
  const wait = lost.retryAt - now;
  // "Cannot reach URL: …" and "URL answered 503: …" name it already.
  const what = lost.reason.includes(lost.url) ? `disconnected: ${lost.reason}` : `disconnected from ${lost.url}: ${lost.reason}`;
  return `${printable(what)}; ${wait > 0 ? `reconnecting in ${seconds(wait)} s` : 'reconnecting…'}`;
}

/** Cut to the terminal's width: a line that wrapped would push the table's top off the screen. */
function oneLine(text: string, columns: number | undefined): string {
  const width = columns || 80;
  return cutAt(text, width - 1);
}

function seconds(ms: number): number {
  return Math.round(ms / 100) / 10;
}

interface WatchEvent {
  type: string;
  services?: unknown;
  name?: string;
  instance?: InstanceJson;
}

/**
 * An event's data, checked before anything is drawn or printed from it: an object with its
 * `type`, and (`whole`) a snapshot's catalog or a change's service name and instance. Something
 * else is no registrar's event stream, and reconnecting will not mend it: exit 1, quoting it.
 */
function eventIn(text: string, url: string, whole: boolean): WatchEvent {
  const bad = () => new BadAnswerError(`${url} sent an event that is not an svcmesh event: ${quoted(text)}`);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw bad();
  }
  if (!isObject(data) || typeof data.type !== 'string') throw bad();
  if (data.name !== undefined && typeof data.name !== 'string') throw bad();
  if (!whole) return data as unknown as WatchEvent;
  if (data.type === 'snapshot') {
    try {
      catalogIn({ json: data, text }, url);
    } catch {
      throw bad();
    }
  } else if (typeof data.name !== 'string' || !isInstance(data.instance)) {
    throw bad();
  }
  return data as unknown as WatchEvent;
}

/**
 * One look before the watch: a registrar that is not there at all (a mistyped --registrar) is an
 * error, as with `kubectl get -w`; once connected, the watch outlives registrar restarts. A
 * service not registered yet is waited for, with a word on stderr in case the name is mistyped.
 */
async function lookBeforeWatching(client: Client, output: typeof import('../output.js'), only: string | undefined): Promise<void> {
  if (!only) {
    await client.health();
    return;
  }
  try {
    await client.service(only);
  } catch (error) {
    if ((error as { status?: number }).status !== 404) throw error;
    const { withServiceHint } = await import('./unknown-service.js');
    const { hint } = (await withServiceHint(error, client, only)) as { hint?: string };
    output.warn(`${only} is not registered at ${client.baseUrl} yet: watching for it${hint ? `. ${hint}` : ''}`);
  }
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

function countInstances(catalog: Catalog): number {
  let count = 0;
  for (const instances of Object.values(catalog)) count += instances.length;
  return count;
}

/** The catalog shown, with the heartbeat and expiry times of `fresh` where those are newer. */
function withNewerTimes(catalog: Catalog, fresh: Catalog): Catalog {
  const next: Catalog = {};
  for (const [name, instances] of Object.entries(catalog)) {
    const byUrl = new Map((fresh[name] ?? []).map((instance) => [instance.url, instance]));
    next[name] = instances.map((instance) => {
      const now = byUrl.get(instance.url);
      return now && now.last_heartbeat > instance.last_heartbeat ? { ...instance, last_heartbeat: now.last_heartbeat, expires_at: now.expires_at } : instance;
    });
  }
  return next;
}

function applyChange(catalog: Catalog, type: string, name: string, instance: InstanceJson): Catalog {
  const others = (catalog[name] ?? []).filter((i) => i.url !== instance.url);
  const next = { ...catalog };
  if (type === 'deregistered' || type === 'evicted') {
    if (others.length > 0) next[name] = others;
    else delete next[name];
  } else if (type === 'registered' || type === 'updated' || type === 'down' || type === 'up') {
    // The event's instance is the registrar's view now, its down mark included.
    next[name] = [...others, instance];
  }
  return next;
}

/**
 * `text` within `max` characters, cut with "…" between what a reader sees as characters (an
 * emoji of several code points, a letter and its accent), never inside one: half of one prints as �.
 */
function cutAt(text: string, max: number): string {
  if (text.length <= max) return text;
  const characters = Array.from(new Intl.Segmenter().segment(text), (part) => part.segment);
  return characters.length <= max ? text : `${characters.slice(0, max - 1).join('')}…`;
}
