#!/usr/bin/env node
// The `tabgrid` command. TypeScript sources run through tsx, so a fresh clone needs no compile step.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
