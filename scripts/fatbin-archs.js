#!/usr/bin/env node
// Lists the CUDA code in an ELF binary's .nv_fatbin section, e.g. "sm_80 sm_86 compute_90" (no cuobjdump
// needed): prebuild.sh checks it against the architectures it asked nvcc for.
// Usage: node scripts/fatbin-archs.js FILE (readelf must be on PATH).
'use strict';
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');

const file = process.argv[2];
const section = execFileSync('readelf', ['-S', '-W', file], { encoding: 'utf8' })
  .split('\n')
  .map((line) => /\]\s+\.nv_fatbin\s+\S+\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)/.exec(line))
  .find(Boolean);
if (!section) {
  console.log('');
  process.exit(0);
}
const bytes = fs.readFileSync(file);
const start = parseInt(section[1], 16);
const end = start + parseInt(section[2], 16);
const found = new Set();
// The section holds fat binaries (magic 0xBA55ED50, 16-byte header) back to back, 8-byte aligned; each holds
// entries with a header: kind (1 PTX, 2 ELF) at 0, header size at 4, payload size at 8, architecture at 28.
for (let off = start; off + 16 <= end;) {
  if (bytes.readUInt32LE(off) !== 0xba55ed50) {
    off += 8;
    continue;
  }
  const fatEnd = off + bytes.readUInt16LE(off + 6) + Number(bytes.readBigUInt64LE(off + 8));
  for (let p = off + bytes.readUInt16LE(off + 6); p < fatEnd;) {
    const kind = bytes.readUInt16LE(p);
    const arch = bytes.readUInt32LE(p + 28);
    found.add(`${kind === 1 ? 'compute' : 'sm'}_${arch}`);
    p += bytes.readUInt32LE(p + 4) + Number(bytes.readBigUInt64LE(p + 8));
  }
  off = fatEnd;
}
console.log([...found].sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).join(' '));
