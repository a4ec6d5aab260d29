import { isIP } from 'node:net';
import { ConfigError } from '@cohort/core';
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';

/**
 * Turns `host:port` (IPv4, `[IPv6]` or a DNS name) or a multiaddr string into
 * a TCP multiaddr. `field` names the setting in the error message.
 */
export function toMultiaddr(address: string, field: string): Multiaddr {
  if (address.startsWith('/')) {
    try {
      return multiaddr(address);
    } catch (err) {
      throw new ConfigError(`${field}: '${address}' is not a valid multiaddr (${(err as Error).message})`);
    }
  }
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (match === null || host === undefined || !Number.isInteger(port) || port > 65535) {
    throw new ConfigError(`${field}: '${address}' is not host:port; use for example 127.0.0.1:7000 or [::1]:7000`);
  }
  const family = isIP(host);
  const proto = family === 4 ? 'ip4' : family === 6 ? 'ip6' : 'dns';
  return multiaddr(`/${proto}/${host}/tcp/${port}`);
}

/** `host:port` of a TCP multiaddr, for logs and for {@link toMultiaddr}'s inverse. */
export function toHostPort(addr: Multiaddr): string {
  const components = addr.getComponents();
  const host = components.find((c) => ['ip4', 'ip6', 'dns', 'dns4', 'dns6'].includes(c.name));
  const port = components.find((c) => c.name === 'tcp');
  if (host?.value === undefined || port?.value === undefined) return addr.toString();
  return host.name === 'ip6' ? `[${host.value}]:${port.value}` : `${host.value}:${port.value}`;
}
