import { BlockList, isIP } from 'node:net';

/**
 * Which hosts service URLs may point at: names matched literally (case-insensitive, no DNS) or
 * under a `*.` wildcard, IP addresses by CIDR or exact address. Without this, anyone who can
 * register could make the registrar forward into any address it can reach.
 */
export interface HostPolicy {
  allows(hostname: string): boolean;
  readonly description: string;
}

export class HostPolicyError extends Error {
  override readonly name = 'HostPolicyError';
}

export function parseAllowHosts(entries: string[]): HostPolicy {
  const names = new Set<string>();
  // `*.svc.internal` is kept as `.svc.internal`: any name under it, not svc.internal itself.
  const suffixes: string[] = [];
  const blocks = new BlockList();
  for (const raw of entries.flatMap((entry) => entry.split(',')).map((e) => e.trim()).filter(Boolean)) {
    // Read as a CIDR, a URL's slashes would give a baffling message; unwrapped, `[::1]:5000`
    // would read as the address ::1:5000.
    if (URL_LIKE.test(raw) || /^\[[^\]]*\]:/.test(raw)) throw new HostPolicyError(`--allow-hosts entry "${raw}" ${whatIsWrong(raw)}`);
    // `[::1]` as in a URL is the address ::1, not a name that no hostname could ever equal.
    const [address, prefix, ...extra] = raw.replace(/^\[([^\]]*)\]/, '$1').split('/');
    const family = isIP(address ?? '');
    if (prefix !== undefined) {
      // Digits only: Number('') is 0, which would turn a typo like `10.0.0.0/` into "allow everything".
      const bits = /^\d{1,3}$/.test(prefix) ? Number(prefix) : Number.NaN;
      const max = family === 6 ? 128 : 32;
      if (family === 0 || extra.length > 0 || !Number.isInteger(bits) || bits < 0 || bits > max) {
        throw new HostPolicyError(`--allow-hosts entry "${raw}" is not a valid CIDR (e.g. 10.0.0.0/8 or fd00::/8)`);
      }
      blocks.addSubnet(address!, bits, family === 6 ? 'ipv6' : 'ipv4');
    } else if (family !== 0) {
      blocks.addAddress(address!, family === 6 ? 'ipv6' : 'ipv4');
    } else {
      const name = raw.toLowerCase().replace(/\.$/, '');
      if (name.startsWith('*.') && HOSTNAME.test(name.slice(2))) suffixes.push(name.slice(1));
      else if (HOSTNAME.test(name)) names.add(name);
      else throw new HostPolicyError(`--allow-hosts entry "${raw}" ${whatIsWrong(raw)}`);
    }
  }
  return {
    description: entries.join(','),
    allows(hostname: string) {
      const host = hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
      const family = isIP(host);
      if (family === 0) return names.has(host) || suffixes.some((suffix) => host.endsWith(suffix));
      return blocks.check(host, family === 6 ? 'ipv6' : 'ipv4');
    },
  };
}

const URL_LIKE = /^[a-z][a-z0-9+.-]*:\/\//i;

/** Labels of letters, digits and inner hyphens, as DNS and URLs have them. */
const HOSTNAME = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

// An entry that could never equal a URL's host name would silently refuse every forward to it.
function whatIsWrong(entry: string): string {
  const hint = 'list a host name (svc.internal), a wildcard (*.svc.internal), an address or a CIDR';
  if (URL_LIKE.test(entry)) return `is a URL: ${hint}, without scheme or port`;
  if (/:\d+$/.test(entry)) return `has a port: ports are not checked; ${hint}, without the port`;
  if (entry.includes('*')) return `has a "*" that is not a leading "*.": ${hint}`;
  return `is not a host name: ${hint}`;
}
