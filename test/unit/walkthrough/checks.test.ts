import {describe, expect, it} from 'vitest'
import {describeCheck, evaluateCheck, getPath, parsePath, type ProcessResult} from '../../../src/walkthrough/index.js'

const result = (over: Partial<ProcessResult> = {}): ProcessResult => ({
  command: 'cmd',
  exitCode: 0,
  stdout: '',
  stderr: '',
  durationMs: 5,
  timedOut: false,
  interrupted: false,
  ...over,
})

const verdicts = (check: Parameters<typeof evaluateCheck>[0], r: ProcessResult) => evaluateCheck(check, r).map((c) => c.ok)

describe('check evaluators', () => {
  it('exitCode compares the exit status and shows stderr when it differs', () => {
    expect(verdicts({exitCode: 0}, result())).toEqual([true])
    const [c] = evaluateCheck({exitCode: 0}, result({exitCode: 69, stderr: 'Error [MESH_LAB_DOWN]: not running\n'}))
    expect(c).toEqual({ok: false, expectation: 'exit code 0', actual: 'exit code 69; stderr: Error [MESH_LAB_DOWN]: not running'})
    expect(verdicts({exitCode: 1}, result({exitCode: 1}))).toEqual([true])
  })

  it('stdoutContains needs every string; stdoutNotContains none', () => {
    const r = result({stdout: '200 Hello version: v1, instance: hello-v1-abc\n'})
    expect(verdicts({stdoutContains: ['200', 'Hello version: v1']}, r)).toEqual([true, true])
    expect(verdicts({stdoutContains: ['Hello version: v2']}, r)).toEqual([false])
    expect(verdicts({stdoutNotContains: ['v2']}, r)).toEqual([true])
    const [bad] = evaluateCheck({stdoutNotContains: ['v1']}, r)
    expect(bad!.ok).toBe(false)
    expect(bad!.actual).toContain('Hello version: v1')
  })

  it('stdoutMatches is a multi-line regular expression; stderrContains looks at stderr only', () => {
    const r = result({stdout: 'a\n503 UO 12\n', stderr: 'warn: x'})
    expect(verdicts({stdoutMatches: '^503 UO \\d+$'}, r)).toEqual([true])
    expect(verdicts({stdoutMatches: '^UO'}, r)).toEqual([false])
    expect(verdicts({stderrContains: ['warn']}, r)).toEqual([true])
    expect(verdicts({stderrContains: ['503']}, r)).toEqual([false])
  })

  it('json: equals (deep), contains (string or array), exists, matches', () => {
    const doc = {ok: true, result: {verdict: 'pass', status: 200, peer: 'spiffe://cluster.local/ns/mesh-lab/sa/curl', items: [{a: 1}, 'b'], nothing: null}}
    const r = result({stdout: JSON.stringify(doc, null, 2)})
    expect(
      verdicts(
        {
          json: [
            {path: 'result.verdict', equals: 'pass'},
            {path: 'result.status', equals: 200},
            {path: 'result.items[0]', equals: {a: 1}},
            {path: 'result.items', contains: 'b'},
            {path: 'result.peer', contains: 'ns/mesh-lab/sa/curl'},
            {path: 'result.nothing', exists: true},
            {path: 'result.absent', exists: false},
            {path: 'result.peer', matches: '^spiffe://'},
          ],
        },
        r,
      ),
    ).toEqual([true, true, true, true, true, true, true, true])
    expect(verdicts({json: [{path: 'result.status', equals: '200'}]}, r)).toEqual([false])
    expect(verdicts({json: [{path: 'result.items', contains: 'c'}]}, r)).toEqual([false])
    expect(verdicts({json: [{path: 'result.absent', exists: true}]}, r)).toEqual([false])
    const [c] = evaluateCheck({json: [{path: 'result.verdict', equals: 'fail'}]}, r)
    expect(c).toEqual({ok: false, expectation: 'result.verdict equals "fail"', actual: 'result.verdict is "pass"'})
  })

  it('json fails clearly when the output is not JSON', () => {
    const [c] = evaluateCheck({json: [{path: 'ok', equals: true}]}, result({stdout: 'Error: boom'}))
    expect(c).toEqual({ok: false, expectation: 'output is JSON', actual: 'stdout: Error: boom'})
  })

  it('a timed-out or interrupted command fails whatever else holds', () => {
    expect(verdicts({exitCode: 0}, result({timedOut: true, exitCode: null}))).toEqual([false, false])
    expect(evaluateCheck({stdoutContains: ['x']}, result({interrupted: true, stdout: 'x'}))[0]).toMatchObject({ok: false, actual: 'interrupted'})
  })

  it('parses paths with dots and indexes', () => {
    expect(parsePath('result.checks[0].status')).toEqual(['result', 'checks', 0, 'status'])
    expect(parsePath('a.0.b[1][2]')).toEqual(['a', 0, 'b', 1, 2])
    expect(getPath({a: [{b: [0, [5, 6]]}]}, 'a[0].b[1][1]')).toBe(6)
    expect(getPath({a: 1}, 'a.b.c')).toBeUndefined()
  })

  it('describes a check in words', () => {
    expect(describeCheck({run: 'mesh verify split --expect 50/50', exitCode: 0})).toBe('`mesh verify split --expect 50/50` gives exit code 0')
    expect(describeCheck({stdoutContains: ['403'], json: [{path: 'ok', equals: false}]})).toBe('output contains "403", ok equals false')
  })
})
