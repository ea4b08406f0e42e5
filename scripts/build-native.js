#!/usr/bin/env node
// Builds the addon offline into build/Release: cmake-js when CMake is on PATH, else node-gyp with binding.gyp
// (CPU only). A clone's `npm install` runs it (prepare); in an installed package it is `npx weightmix-build`.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');

const root = path.resolve(__dirname, '..');
const forceGyp = process.argv.includes('--gyp') || process.env.WEIGHTMIX_BUILD === 'gyp';
const extra = process.argv.slice(2).filter((a) => a !== '--gyp');

function run(cmd, args, env = process.env) {
  console.log(`weightmix: ${path.basename(cmd)} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  return r.status === 0;
}

function haveCmake() {
  const r = spawnSync('cmake', ['--version'], { stdio: 'ignore' });
  return r.status === 0;
}

function nodeGypScript() {
  if (process.env.npm_config_node_gyp && fs.existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    // npm ships node-gyp beside itself.
    const bundled = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (fs.existsSync(bundled)) return bundled;
  }
  return null;
}

function buildWithCmake() {
  const cli = require.resolve('cmake-js/bin/cmake-js');
  const defines = [];
  if (process.env.WEIGHTMIX_SANITIZE) defines.push(`--CDWEIGHTMIX_SANITIZE=${process.env.WEIGHTMIX_SANITIZE}`);
  if (process.env.WEIGHTMIX_NO_CUDA) defines.push('--CDWEIGHTMIX_NO_CUDA=ON');
  return run(process.execPath, [cli, 'compile', '--out', 'build', ...defines, ...extra]);
}

function buildWithGyp() {
  const gyp = nodeGypScript();
  if (!gyp) {
    console.error('weightmix: error: neither CMake nor node-gyp is available to build the native addon');
    return false;
  }
  // Offline: build against the headers that come with this Node (its install prefix), never a download.
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  const nodedir = process.env.npm_config_nodedir || (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : null);
  // node-gyp compiles one file at a time unless told (`make` without -j): every core, as CMake's Ninja does, unless the caller chose.
  const jobs = extra.some((a) => a === '-j' || a.startsWith('--jobs')) || process.env.JOBS ? [] : ['--jobs', 'max'];
  return run(process.execPath, [gyp, 'rebuild', ...jobs, ...(nodedir ? [`--nodedir=${nodedir}`] : []), ...extra]);
}

let ok;
if (!forceGyp && haveCmake()) {
  ok = buildWithCmake();
  if (!ok) {
    console.error('weightmix: cmake-js build failed; trying node-gyp with binding.gyp (CPU only)');
    ok = buildWithGyp();
  }
} else {
  ok = buildWithGyp();
}
if (ok)
  console.log(
    `weightmix: built ${path.join(root, 'build', 'Release', 'weightmix.node')}; weightmix loads it from now on (\`weightmix info\` says which binary)`,
  );
process.exit(ok ? 0 : 1);
