/**
 * The JSON shapes the registrar sends and its clients read: one definition for both sides, so
 * neither can drift from the other. Types only: nothing here is loaded at run time.
 */

/** An instance as `/services/:name`, `/catalog` and the events carry it: snake_case, ISO times. */
export interface InstanceJson {
  url: string;
  registered_at: string;
  last_heartbeat: string;
  expires_at: string;
  metadata: Record<string, unknown>;
  /** Present (true) only while this registrar's last forward to it could not reach it. */
  down?: true;
}

/** One turn of a conversation, as `/forward` and `/receive` take it in `history`. */
export interface ChatTurn {
  role: 'user' | 'assistant';
  content: string;
}
