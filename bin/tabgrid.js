#!/usr/bin/env node
// The `tabgrid` command. It runs the JavaScript that `npm run build` compiles into dist/node/ (npm install and
// npm ci run the build). Where that build is missing, or a source file is newer than what was compiled from it
// (a checkout pulled or edited since its last build), it runs the TypeScript sources through tsx instead and says
// so on stderr: slower to start, but never older code than the checkout holds, and never a command that refuses
// to start until its user finds the build step.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const built = path.join(root, 'dist', 'node');
const main = path.join(built, 'cli', 'main.js');

/** Why the build cannot run as it is, or null when it can. */
function whyNotBuilt() {
  if (!fs.existsSync(main)) return 'dist/node/ is not built';
  // tsc rewrites every output on each build, so an output older than its source was compiled from an older one.
  // A package installed without its sources has nothing to compare and runs the build.
  for (const file of fs.readdirSync(built, { recursive: true })) {
    if (!file.endsWith('.js')) continue;
    const source = path.join(root, file.slice(0, -'.js'.length) + '.ts');
    const sourceTime = fs.statSync(source, { throwIfNoEntry: false })?.mtimeMs;
    if (sourceTime !== undefined && sourceTime > fs.statSync(path.join(built, file)).mtimeMs) {
      return `${path.relative(root, source)} changed since dist/node/ was built`;
    }
  }
  return null;
}

const why = whyNotBuilt();
if (why === null) {
  process.setSourceMapsEnabled(true);
  await import(pathToFileURL(main).href);
} else {
  const sources = path.join(root, 'cli', 'main.ts');
  if (!fs.existsSync(sources)) {
    process.stderr.write(`tabgrid: ${why}, and its sources are not here: reinstall the package.\n`);
    process.exit(1);
  }
  process.stderr.write(`tabgrid: ${why}: running the TypeScript sources through tsx (\`npm run build\` compiles them).\n`);
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(sources).href);
}
