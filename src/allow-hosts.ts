import { BlockList, isIP } from 'node:net';

/**
 * Which hosts service URLs may point at: names matched literally (case-insensitive), IP
 * addresses by CIDR or exact address. Without this, anyone who can register could make the
 * registrar forward into any address it can reach.
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
  const blocks = new BlockList();
  for (const raw of entries.flatMap((entry) => entry.split(',')).map((e) => e.trim()).filter(Boolean)) {
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
      names.add(raw.toLowerCase());
    }
  }
  return {
    description: entries.join(','),
    allows(hostname: string) {
      const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
      const family = isIP(host);
      if (family === 0) return names.has(host);
      return blocks.check(host, family === 6 ? 'ipv6' : 'ipv4');
    },
  };
}
