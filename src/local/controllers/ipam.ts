// Address allocation on loopback. A cluster owns 127.X.0.0/16: pods get addresses from
// 127.X.0.0–127.X.254.255 and Services get cluster IPs from 127.X.255.0/24 (ADR 0031).
import {randomInt} from 'node:crypto'
import {podNetworkOctet} from '../home.js'

export class PodIpAllocator {
  private readonly octet: number
  private readonly held = new Set<string>()

  constructor(podNetwork: string) {
    this.octet = podNetworkOctet(podNetwork)
  }

  get network(): string {
    return `127.${this.octet}.0.0/16`
  }

  contains(ip: string): boolean {
    const p = ip.split('.').map(Number)
    return p.length === 4 && p[0] === 127 && p[1] === this.octet && p[2] >= 0 && p[2] <= 254 && p[3] >= 2 && p[3] <= 254
  }

  /** Marks an address as in use (a pod found in the store at start). Returns false if taken. */
  reserve(ip: string): boolean {
    if (this.held.has(ip)) return false
    this.held.add(ip)
    return true
  }

  /**
   * A free address, picked at random across the /16 so that two labs that happened to pick
   * the same network rarely collide, and a released address is rarely handed out again soon.
   */
  allocate(): string {
    for (let i = 0; i < 10_000; i++) {
      const ip = `127.${this.octet}.${randomInt(0, 255)}.${randomInt(2, 255)}`
      if (!this.held.has(ip)) {
        this.held.add(ip)
        return ip
      }
    }
    throw new Error(`pod network ${this.network} has no free address (${this.held.size} held)`)
  }

  release(ip: string): void {
    this.held.delete(ip)
  }

  inUse(): number {
    return this.held.size
  }
}

export class ServiceIpAllocator {
  private readonly octet: number
  private readonly held = new Set<string>()
  private next = 1

  constructor(podNetwork: string) {
    this.octet = podNetworkOctet(podNetwork)
  }

  get range(): string {
    return `127.${this.octet}.255.0/24`
  }

  contains(ip: string): boolean {
    return ip.startsWith(`127.${this.octet}.255.`)
  }

  reserve(ip: string): void {
    this.held.add(ip)
  }

  allocate(): string {
    for (let i = 0; i < 254; i++) {
      const ip = `127.${this.octet}.255.${this.next}`
      this.next = (this.next % 254) + 1
      if (!this.held.has(ip)) {
        this.held.add(ip)
        return ip
      }
    }
    throw new Error(`the service range ${this.range} is full (254 services)`)
  }

  release(ip: string): void {
    this.held.delete(ip)
  }
}
