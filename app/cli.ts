#!/usr/bin/env node
// `npm start` / `echohub`: the entry point. It sizes V8's young generation for a WebSocket server
// (heap.ts) before any other module is even parsed, then runs the CLI (main.ts).
import { keepYoungGenerationSmall } from './heap.js'

keepYoungGenerationSmall()
await import('./main.js')
