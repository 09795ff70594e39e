// jstat ships no types; declare only the functions mesh uses.
declare module 'jstat' {
  interface JStatDistribution {
    /** inverse CDF */
    inv(p: number, ...params: number[]): number
    cdf(x: number, ...params: number[]): number
  }
  interface JStat {
    /** ln B(a, b) */
    betaln(a: number, b: number): number
    gammaln(x: number): number
    beta: JStatDistribution
    normal: JStatDistribution
    binomial: {pdf(k: number, n: number, p: number): number; cdf(k: number, n: number, p: number): number}
  }
  const jStat: JStat & {jStat: JStat}
  export default jStat
}
