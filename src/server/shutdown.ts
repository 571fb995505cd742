/**
 * Runs `stop` once on the first SIGINT or SIGTERM, then exits 0 (1 if stopping failed). Later
 * signals are ignored: conf's exit hook re-raises the signal it saw, and stopping is bounded by
 * the drain timeout anyway (SIGKILL remains for the impatient).
 */
export function onShutdownSignal(stop: (signal: NodeJS.Signals) => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    stop(signal).then(
      () => process.exit(0),
      (error: Error) => {
        console.error(`svcmesh: stopping failed: ${error.message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handle);
  process.on('SIGTERM', handle);
}
