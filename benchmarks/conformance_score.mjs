// Score a results file of the HTTP cache conformance suite, by section, as cache-tests.fyi does.
//
// Usage: node benchmarks/conformance_score.mjs SUITE_DIR RESULTS.json
//
// A "green tick" is a pass (kind "required" or "optimal"); required failures
// are counted apart; "check" tests (informational) are listed as yes/no.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const [suiteDir, resultsFile] = process.argv.slice(2)
if (!suiteDir || !resultsFile) {
  console.error('usage: node conformance_score.mjs SUITE_DIR RESULTS.json')
  process.exit(2)
}
const load = path => import(pathToFileURL(resolve(suiteDir, path)).href)
const testSuites = (await load('tests/index.mjs')).default
const { determineTestResult, resultTypes } = await load('test-engine/lib/results.mjs')
const results = JSON.parse(readFileSync(resultsFile, 'utf8'))

const names = new Map(Object.entries(resultTypes).map(([name, type]) => [type, name]))
const total = {}
const rows = []
for (const suite of testSuites) {
  const counts = {}
  for (const test of suite.tests) {
    const name = names.get(determineTestResult(testSuites, test.id, results))
    counts[name] = (counts[name] || 0) + 1
    total[name] = (total[name] || 0) + 1
  }
  rows.push([suite.name, counts])
}
const columns = ['pass', 'fail', 'optional_fail', 'yes', 'no', 'setup_fail', 'harness_fail', 'dependency_fail', 'untested']
const pad = (text, width) => String(text).padEnd(width)
const width = Math.max(...columns.map(c => c.length)) + 2
console.log(pad('section', 44) + columns.map(c => pad(c, width)).join(''))
for (const [name, counts] of [...rows, ['TOTAL', total]]) {
  console.log(pad(name.slice(0, 43), 44) + columns.map(c => pad(counts[c] || 0, width)).join(''))
}
console.log(`\ngreen ticks: ${total.pass || 0}   required failures: ${total.fail || 0}`)
