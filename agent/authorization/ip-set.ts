// Address membership for policy IP blocks: CIDRs merged once into sorted disjoint ranges, looked up by binary search.
import net from "node:net";

/** One address family's ranges: parallel arrays of inclusive bounds, sorted and non-overlapping. */
interface Ranges<T extends number | bigint> {
  lo: T[];
  hi: T[];
}

function v4ToNumber(ip: string): number {
  const p = ip.split(".");
  return ((Number(p[0]) << 24) >>> 0) + (Number(p[1]) << 16) + (Number(p[2]) << 8) + Number(p[3]);
}

/** IPv6 text (any of its forms, including an embedded IPv4 tail) as a 128-bit integer. */
function v6ToBigInt(ip: string): bigint {
  let text = ip;
  const v4Tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4Tail) {
    const n = v4ToNumber(v4Tail[1]!);
    text = `${text.slice(0, -v4Tail[1]!.length)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const headParts = head ? head.split(":") : [];
  const tailParts = tail ? tail.split(":") : [];
  const groups = tail === undefined ? headParts : [...headParts, ...Array<string>(8 - headParts.length - tailParts.length).fill("0"), ...tailParts];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** `::ffff:a.b.c.d` is an IPv4 client seen by a dual-stack socket: matched against IPv4 blocks, as node's BlockList does. */
function mappedV4(ip: string): string | undefined {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m?.[1];
}

function merge<T extends number | bigint>(pairs: Array<[T, T]>, successor: (x: T) => T): Ranges<T> {
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const lo: T[] = [];
  const hi: T[] = [];
  for (const [l, h] of pairs) {
    const last = hi.length - 1;
    // Adjacent ranges merge too (last hi + 1 === l), so a list of /32s becomes one range per contiguous run.
    if (last >= 0 && l <= successor(hi[last]!)) {
      if (h > hi[last]!) hi[last] = h;
    } else {
      lo.push(l);
      hi.push(h);
    }
  }
  return { lo, hi };
}

function contains<T extends number | bigint>(r: Ranges<T>, x: T): boolean {
  let a = 0;
  let b = r.lo.length - 1;
  while (a <= b) {
    const mid = (a + b) >> 1;
    if (x < r.lo[mid]!) b = mid - 1;
    else if (x > r.hi[mid]!) a = mid + 1;
    else return true;
  }
  return false;
}

/**
 * A set of IP addresses and CIDR blocks (IPv4 and IPv6), built once per config version: a lookup costs
 * O(log ranges) whatever the number of blocks, where node's BlockList checks every rule in turn.
 * Blocks must be valid (the controller validates them); an invalid one throws.
 */
export class IpSet {
  readonly #v4: Ranges<number>;
  readonly #v6: Ranges<bigint>;

  constructor(blocks: readonly string[]) {
    const v4: Array<[number, number]> = [];
    const v6: Array<[bigint, bigint]> = [];
    for (const block of blocks) {
      const [addr = "", bitsText, extra] = block.split("/");
      const family = net.isIP(addr);
      const bits = bitsText === undefined ? (family === 6 ? 128 : 32) : Number(bitsText);
      if (
        !family ||
        extra !== undefined ||
        !Number.isInteger(bits) ||
        bits < 0 ||
        bits > (family === 6 ? 128 : 32) ||
        (bitsText !== undefined && !/^\d+$/.test(bitsText))
      ) {
        throw new Error(`"${block}" is not an IP address or CIDR block`);
      }
      const v4Of = family === 4 ? addr : mappedV4(addr);
      if (v4Of !== undefined && (family === 4 || bits >= 96)) {
        const b = family === 4 ? bits : bits - 96;
        const size = 2 ** (32 - b);
        const lo = Math.floor(v4ToNumber(v4Of) / size) * size;
        v4.push([lo, lo + size - 1]);
        if (family === 4) continue;
      }
      const host = 128n - BigInt(bits);
      const lo = (v6ToBigInt(addr) >> host) << host;
      v6.push([lo, lo + (1n << host) - 1n]);
    }
    this.#v4 = merge(v4, (x) => x + 1);
    this.#v6 = merge(v6, (x) => x + 1n);
  }

  has(ip: string | undefined): boolean {
    if (!ip) return false;
    const family = net.isIP(ip);
    if (family === 4) return contains(this.#v4, v4ToNumber(ip));
    if (family !== 6) return false;
    const v4 = mappedV4(ip);
    if (v4 !== undefined && contains(this.#v4, v4ToNumber(v4))) return true;
    return contains(this.#v6, v6ToBigInt(ip));
  }
}
