#!/usr/bin/env node
// `npm start` / `echohub`: the entry point. It tunes V8's garbage collector for a WebSocket server
// (heap.ts) before any other module is even parsed, then runs the CLI (main.ts).
import { tuneGarbageCollector } from './heap.js'

tuneGarbageCollector()
await import('./main.js')
