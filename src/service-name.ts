/**
 * The one rule for a service name, shared by the registrar (which refuses any other) and the
 * client commands (which refuse it before sending anything: bad usage, exit 2). Plain code with
 * no imports, so a client command checks a name without loading the server's zod schemas.
 * Service names end up in URLs and store keys, so they stay plain.
 */
export const SERVICE_NAME_RULE = '1-128 letters, digits, ".", "_" or "-", starting with a letter or digit';

const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isServiceName(name: string): boolean {
  return SERVICE_NAME.test(name);
}
