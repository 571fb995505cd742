import { constants } from 'node:os';

export interface ShutdownOptions {
  /** Printed (on stderr) when a second signal cuts the stop short: what was left unfinished. */
  cut?: (signal: NodeJS.Signals) => string;
}

/**
 * Runs `stop` once on the first SIGINT or SIGTERM, then exits with the code it resolves to (0 when
 * none; a stop that left something undone says so with 1), or 1 if stopping failed. A second
 * signal while stopping quits at once, as `ollama serve` and most servers do on a second Ctrl-C:
 * 128 + the signal's number (130 for SIGINT). The commands using this never load conf, whose exit
 * hook re-raises the signal it saw and would read as that second signal.
 */
export function onShutdownSignal(stop: (signal: NodeJS.Signals) => Promise<void | number>, options: ShutdownOptions = {}): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) {
      if (options.cut) console.error(options.cut(signal));
      process.exit(128 + (constants.signals[signal] ?? 0));
    }
    stopping = true;
    stop(signal).then(
      (code) => process.exit(code ?? 0),
      (error: Error) => {
        console.error(`svcmesh: stopping failed: ${error.message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handle);
  process.on('SIGTERM', handle);
}
