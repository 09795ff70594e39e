// Load balancers over a cluster's candidate hosts (DR-3): LEAST_REQUEST as Envoy does it
// (power of two random choices on active requests), ROUND_ROBIN, RANDOM, and a ring hash for
// consistentHash. Pure; randomness injected.
import type {HashKeySource, LbPolicy} from './destination-policy.js'
import type {Random} from './util.js'

export interface LbHost {
  key: string
  /** active requests from this proxy to the host */
  active: number
}

export interface LoadBalancer<H extends LbHost> {
  /** `hash` is used by the ring hash only; undefined there means "no key": a random host */
  pick(hosts: readonly H[], hash?: number): H | undefined
}

export class RoundRobinLb<H extends LbHost> implements LoadBalancer<H> {
  private i: number
  constructor(random: Random) {
    this.i = Math.floor(random() * 1024)
  }

  pick(hosts: readonly H[]): H | undefined {
    if (hosts.length === 0) return undefined
    const h = hosts[this.i % hosts.length]
    this.i = (this.i + 1) % 1_000_000_007
    return h
  }
}

export class RandomLb<H extends LbHost> implements LoadBalancer<H> {
  constructor(private random: Random) {}
  pick(hosts: readonly H[]): H | undefined {
    if (hosts.length === 0) return undefined
    return hosts[Math.floor(this.random() * hosts.length)]
  }
}

/** Envoy's LEAST_REQUEST with equal weights: two random picks (with replacement), fewer active wins, ties keep the first. */
export class LeastRequestLb<H extends LbHost> implements LoadBalancer<H> {
  constructor(private random: Random, private choices = 2) {}
  pick(hosts: readonly H[]): H | undefined {
    const n = hosts.length
    if (n <= 1) return hosts[0]
    let best: H | undefined
    for (let i = 0; i < this.choices; i++) {
      const h = hosts[Math.floor(this.random() * n)]
      if (best === undefined || h.active < best.active) best = h
    }
    return best
  }
}

/** 32-bit FNV-1a; enough spread for a ring of a few thousand points. */
export function hash32(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  // final avalanche so nearby keys spread over the ring
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Ketama-style ring: each host gets ⌈ringSize ÷ hosts⌉ points; a key goes to the next point clockwise. */
export class RingHashLb<H extends LbHost> implements LoadBalancer<H> {
  private ringFor: readonly H[] | undefined
  private points = new Uint32Array(0)
  private owners: H[] = []

  constructor(private ringSize: number, private random: Random) {}

  private build(hosts: readonly H[]): void {
    const per = Math.max(1, Math.ceil(this.ringSize / Math.max(1, hosts.length)))
    const entries: {p: number; h: H}[] = []
    for (const h of hosts) for (let i = 0; i < per; i++) entries.push({p: hash32(`${h.key}_${i}`), h})
    entries.sort((a, b) => a.p - b.p)
    this.points = Uint32Array.from(entries.map((e) => e.p))
    this.owners = entries.map((e) => e.h)
    this.ringFor = hosts
  }

  pick(hosts: readonly H[], hash?: number): H | undefined {
    if (hosts.length === 0) return undefined
    if (hash === undefined) return hosts[Math.floor(this.random() * hosts.length)]
    if (this.ringFor !== hosts) this.build(hosts)
    const pts = this.points
    let lo = 0
    let hi = pts.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (pts[mid] < hash) lo = mid + 1
      else hi = mid
    }
    return this.owners[lo === pts.length ? 0 : lo]
  }
}

export function createLoadBalancer<H extends LbHost>(policy: LbPolicy, random: Random): LoadBalancer<H> {
  switch (policy.kind) {
    case 'ROUND_ROBIN': return new RoundRobinLb(random)
    case 'RANDOM': return new RandomLb(random)
    case 'RING_HASH': return new RingHashLb(policy.ringSize, random)
    default: return new LeastRequestLb(random)
  }
}

export interface HashInputs {
  headers: Record<string, string | string[] | undefined>
  sourceIp: string
  query: string | undefined
}

/** The request's hash key for a consistentHash policy, or undefined when the request has none. */
export function hashKeyOf(key: HashKeySource, req: HashInputs): string | undefined {
  switch (key.kind) {
    case 'header': {
      const v = req.headers[key.name]
      return v === undefined ? undefined : Array.isArray(v) ? v.join(',') : v
    }
    case 'sourceIp':
      return req.sourceIp
    case 'queryParam':
      return req.query === undefined ? undefined : (new URLSearchParams(req.query).get(key.name) ?? undefined)
    case 'cookie': {
      const c = req.headers.cookie
      if (c === undefined) return undefined
      for (const part of (Array.isArray(c) ? c.join('; ') : c).split(';')) {
        const i = part.indexOf('=')
        if (i > 0 && part.slice(0, i).trim() === key.name) return part.slice(i + 1).trim()
      }
      return undefined
    }
  }
}
