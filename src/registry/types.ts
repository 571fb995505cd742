/** One registered instance of a service. Times are epoch milliseconds. */
export interface Instance {
  readonly name: string;
  readonly url: string;
  readonly registeredAt: number;
  readonly lastHeartbeat: number;
  readonly expiresAt: number;
  readonly metadata: Readonly<Record<string, unknown>>;
}

/** A change to the catalog. Renewals are not changes: they would flood every watcher. */
export type RegistryEvent =
  | { readonly type: 'registered'; readonly instance: Instance }
  | { readonly type: 'updated'; readonly instance: Instance }
  | { readonly type: 'deregistered'; readonly instance: Instance }
  | { readonly type: 'evicted'; readonly instance: Instance }
  /** A forward could not connect to the instance; it is tried last until it answers again. */
  | { readonly type: 'down'; readonly instance: Instance }
  | { readonly type: 'up'; readonly instance: Instance };

export type RegistryListener = (event: RegistryEvent) => void;

export interface Clock {
  now(): number;
}

export interface RegistrationInput {
  readonly name: string;
  readonly url: string;
  readonly metadata?: Readonly<Record<string, unknown>>;
}

export interface StoreHealth {
  readonly status: 'ok' | 'degraded';
  readonly store: string;
  readonly detail?: string;
}
