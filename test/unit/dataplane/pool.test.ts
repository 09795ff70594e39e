// DR-4/DR-5 circuit breakers on fake connections: which request gets a connection, which is
// queued, which overflows (UO) — decided synchronously, before any host is contacted.
import {describe, expect, it} from 'vitest'
import {DEFAULT_POOL, poolLimitsOf, type PoolLimits} from '../../../src/local/dataplane/destination-policy.js'
import {emptyPoolStats, HostPool, ResourceManager, type PoolConnection, type PoolFailure, type PoolWaiter} from '../../../src/local/dataplane/pool.js'

class FakeConn implements PoolConnection {
  served = 0
  destroyed = false
  constructor(readonly id: number) {}
  destroy() {
    this.destroyed = true
  }
}

class Req implements PoolWaiter<FakeConn> {
  conn: FakeConn | undefined
  failure: PoolFailure | undefined
  constructor(readonly name: string) {}
  onPoolReady(c: FakeConn) {
    this.conn = c
  }
  onPoolFailure(r: PoolFailure) {
    this.failure = r
  }
  get state() {
    return this.failure ?? (this.conn ? `on#${this.conn.id}` : 'pending')
  }
}

function setup(limits: Partial<PoolLimits>, hosts = 1) {
  const rm = new ResourceManager({...DEFAULT_POOL, ...limits})
  const stats = emptyPoolStats()
  const opened: FakeConn[] = []
  let n = 0
  const pools = Array.from({length: hosts}, () => new HostPool<FakeConn>(rm, stats, () => {
    const c = new FakeConn(++n)
    opened.push(c)
    return c
  }))
  return {rm, stats, opened, pool: pools[0], pools}
}

describe('connection pool and circuit breakers', () => {
  it('maps DestinationRule connectionPool fields (0 or unset = unlimited)', () => {
    expect(poolLimitsOf({tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1, http2MaxRequests: 0}})).toMatchObject({
      maxConnections: 1,
      maxPendingRequests: 1,
      maxRequestsPerConnection: 1,
      maxRequests: 4_294_967_295,
    })
  })

  it('a request waiting for its connection to be established is pending; the next one overflows (SC-6 shape)', () => {
    const {pool, stats, opened} = setup({maxConnections: 1, maxPendingRequests: 1, maxRequestsPerConnection: 1})
    const a = new Req('a')
    const b = new Req('b')
    pool.newStream(a)
    pool.newStream(b)
    expect(a.state).toBe('pending')
    expect(b.state).toBe('overflow') // immediate, before any connection exists
    expect(opened).toHaveLength(1)
    expect(stats.upstream_rq_pending_overflow).toBe(1)
    pool.onConnected(opened[0])
    expect(a.state).toBe('on#1')
  })

  it('with one busy connection at max_connections the next request queues, and the one after overflows', () => {
    const {pool, opened} = setup({maxConnections: 1, maxPendingRequests: 1, maxRequestsPerConnection: 1})
    const a = new Req('a')
    pool.newStream(a)
    pool.onConnected(opened[0])
    const b = new Req('b')
    const c = new Req('c')
    pool.newStream(b)
    pool.newStream(c)
    expect([a.state, b.state, c.state]).toEqual(['on#1', 'pending', 'overflow'])
    // a finishes; maxRequestsPerConnection 1 closes its connection and opens a new one for b
    pool.onStreamDone(a.conn!, true)
    expect(opened[0].destroyed).toBe(true)
    expect(opened).toHaveLength(2)
    expect(b.state).toBe('pending')
    pool.onConnected(opened[1])
    expect(b.state).toBe('on#2')
  })

  it('reuses kept-alive connections (LIFO) when there is no per-connection limit', () => {
    const {pool, opened} = setup({})
    const a = new Req('a')
    pool.newStream(a)
    pool.onConnected(opened[0])
    pool.onStreamDone(a.conn!, true)
    const b = new Req('b')
    pool.newStream(b)
    expect(b.state).toBe('on#1')
    expect(opened).toHaveLength(1)
  })

  it('maxRequestsPerConnection N closes a connection after its N-th request', () => {
    const {pool, opened} = setup({maxRequestsPerConnection: 2})
    for (let i = 0; i < 2; i++) {
      const r = new Req(`r${i}`)
      pool.newStream(r)
      if (i === 0) pool.onConnected(opened[0])
      expect(r.state).toBe('on#1')
      pool.onStreamDone(r.conn!, true)
    }
    expect(opened[0].destroyed).toBe(true)
  })

  it('max_requests (http2MaxRequests) rejects at attach time', () => {
    const {pool, opened, stats} = setup({maxRequests: 1})
    const a = new Req('a')
    pool.newStream(a)
    pool.onConnected(opened[0])
    const b = new Req('b')
    pool.newStream(b)
    pool.onConnected(opened[1])
    expect([a.state, b.state]).toEqual(['on#1', 'overflow'])
    expect(stats.upstream_rq_pending_overflow).toBe(1)
  })

  it('a failed connection attempt fails every pending request of that host', () => {
    const {pool, opened, rm} = setup({maxConnections: 1})
    const reqs = [new Req('a'), new Req('b'), new Req('c')]
    for (const r of reqs) pool.newStream(r)
    pool.onConnectFailed(opened[0], 'connection_failure', new Error('ECONNREFUSED'))
    expect(reqs.map((r) => r.state)).toEqual(['connection_failure', 'connection_failure', 'connection_failure'])
    expect(rm.pending).toBe(0)
    expect(rm.connections).toBe(0)
  })

  it('limits are shared by the cluster, but a host with no connection may always open one', () => {
    const {pools, opened, stats} = setup({maxConnections: 1}, 2)
    const a = new Req('a')
    const b = new Req('b')
    pools[0].newStream(a)
    pools[1].newStream(b)
    expect(opened).toHaveLength(2)
    expect(stats.upstream_cx_overflow).toBe(1)
  })

  it('a cancelled waiter leaves the queue and frees its pending slot', () => {
    const {pool, rm} = setup({maxPendingRequests: 1, maxConnections: 1})
    const a = new Req('a')
    pool.newStream(a)
    pool.cancel(a)
    expect(rm.pending).toBe(0)
    const b = new Req('b')
    pool.newStream(b)
    expect(b.state).toBe('pending')
  })

  it('does not reuse an idle connection that has expired', () => {
    const {pool, opened} = setup({})
    const a = new Req('a')
    pool.newStream(a)
    pool.onConnected(opened[0])
    pool.onStreamDone(a.conn!, true)
    ;(opened[0] as FakeConn & {expired?: () => boolean}).expired = () => true
    const b = new Req('b')
    pool.newStream(b)
    expect(opened[0].destroyed).toBe(true)
    expect(b.state).toBe('pending')
    expect(opened).toHaveLength(2)
  })
})
