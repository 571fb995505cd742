import { Chalk, type ChalkInstance } from 'chalk';
import { printableLines } from './terminal-text.js';

export { printable } from './terminal-text.js';

/**
 * Colour only for a person at a terminal: never in pipes, never with NO_COLOR set to something
 * (no-color.org: an empty NO_COLOR does not turn colour off), never on a dumb terminal.
 */
export function colourEnabled(isTTY: boolean | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  return isTTY === true && !env.NO_COLOR && env.TERM !== 'dumb';
}

function colourFor(stream: NodeJS.WriteStream): ChalkInstance {
  return new Chalk({ level: colourEnabled(stream.isTTY) ? 1 : 0 });
}

const out = colourFor(process.stdout);
const err = colourFor(process.stderr);

/** Semantic styles for stdout. */
export const style = {
  ok: (text: string) => out.green(text),
  warn: (text: string) => out.yellow(text),
  bad: (text: string) => out.red(text),
  dim: (text: string) => out.dim(text),
  bold: (text: string) => out.bold(text),
  name: (text: string) => out.cyan(text),
};

export const isInteractive = () => process.stdout.isTTY === true;

export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Exactly what the server sent, for scripts: never coloured, one document per line. */
export function printJson(text: string): void {
  process.stdout.write(`${text.trim()}\n`);
}

// Messages quote what servers sent (names, errors): escapes in them are shown, never obeyed.
export function error(message: string): void {
  process.stderr.write(`${err.red('error')} ${printableLines(message)}\n`);
}

export function warn(message: string): void {
  process.stderr.write(`${err.yellow('warning')} ${printableLines(message)}\n`);
}

export function info(message: string): void {
  process.stderr.write(`${err.dim(printableLines(message))}\n`);
}

// biome-ignore lint: the escape character is the point of this pattern
const ANSI = /\u001b\[[0-9;]*m/g;
const width = (text: string) => text.replace(ANSI, '').length;

/** A plain aligned table; cells may carry colour. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, i) => Math.max(width(header), ...rows.map((row) => width(row[i] ?? ''))));
  const render = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell + ' '.repeat((widths[i] ?? 0) - width(cell))))
      .join('  ')
      .trimEnd();
  return [render(headers.map((h) => style.bold(h))), ...rows.map(render)].join('\n');
}

/**
 * "in 4m 12s", "12s ago", "now": how a person reads a time close to now. A time that can only be
 * past (a last heartbeat) never reads "in …": it is "just now" when it is this second, or when
 * the registrar's clock runs a little ahead of this machine's.
 */
export function relative(iso: string, now = Date.now(), { past = false } = {}): string {
  const delta = Math.round((Date.parse(iso) - now) / 1000);
  if (delta === 0 || (past && delta > 0)) return past ? 'just now' : 'now';
  const text = duration(Math.abs(delta));
  return delta > 0 ? `in ${text}` : `${text} ago`;
}

/** "45s", "12m 3s", "5h 2m", "3d 4h": a length of time to the two units a person cares about. */
export function duration(totalSeconds: number): string {
  const s = Math.max(0, Math.round(totalSeconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

/**
 * A spinner on stderr while waiting for an answer's first words (a model loading can take many
 * seconds), as `ollama run` shows one. Only at a terminal, and only past 200 ms, so a quick
 * answer does not flicker; the stop function erases it. Never on stdout, never in a pipe.
 */
export function spinner(text: string): () => void {
  if (process.stderr.isTTY !== true || process.env.TERM === 'dumb') return () => {};
  const frames = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏';
  let frame = 0;
  let drawn = false;
  const draw = () => {
    drawn = true;
    process.stderr.write(`\r${err.dim(`${frames[frame++ % frames.length]} ${text}`)}\x1b[K`);
  };
  let timer: NodeJS.Timeout = setTimeout(() => {
    draw();
    timer = setInterval(draw, 100);
  }, 200);
  return () => {
    clearTimeout(timer);
    clearInterval(timer);
    if (drawn) process.stderr.write('\r\x1b[K');
    drawn = false;
  };
}
