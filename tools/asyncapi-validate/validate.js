#!/usr/bin/env node
// Validate AsyncAPI documents with the official parser (@asyncapi/parser).
//
// Usage: node validate.js DOCUMENT [DOCUMENT...]    ("-" reads standard input)
//
// Prints one JSON object: {"<path>": [{"severity": "error"|"warning"|"info"|"hint",
// "code", "message", "path"}...], ...} and exits 1 when any document has an error
// diagnostic, 2 on a usage problem, 0 otherwise. The parser is only a judge here: it is
// never given a network resolver, so a remote $ref shows up as an error, not a download.
'use strict';

const fs = require('fs');
const { Parser } = require('@asyncapi/parser');

const SEVERITY = ['error', 'warning', 'info', 'hint'];

async function main(paths) {
  if (paths.length === 0) {
    process.stderr.write('usage: node validate.js DOCUMENT [DOCUMENT...]\n');
    return 2;
  }
  const parser = new Parser();
  const report = {};
  let failed = false;
  for (const path of paths) {
    const text = fs.readFileSync(path === '-' ? 0 : path, 'utf8');
    const diagnostics = await parser.validate(text, { source: path === '-' ? undefined : path });
    report[path] = diagnostics.map((d) => ({
      severity: SEVERITY[d.severity] || String(d.severity),
      code: String(d.code),
      message: d.message,
      path: d.path,
    }));
    failed = failed || diagnostics.some((d) => d.severity === 0);
  }
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(String((err && err.stack) || err) + '\n');
    process.exit(2);
  },
);
