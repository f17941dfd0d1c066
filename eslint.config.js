// ESLint with neostandard, the style the Fastify ecosystem uses, TypeScript included.
import neostandard from 'neostandard'
import globals from 'globals'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'dist-bench/**', 'coverage/**', '.tap/**', 'node_modules/**'] }),
  {
    // `void promise` marks a promise that is meant to run on its own (its errors handled inside).
    rules: { 'no-void': ['error', { allowAsStatement: true }] }
  },
  {
    // The pages run in the browser.
    files: ['public/**/*.js'],
    languageOptions: { globals: globals.browser }
  },
  {
    // The bench's loops end on flags that signal handlers and other tasks set.
    files: ['bench/**/*.ts'],
    rules: { 'no-unmodified-loop-condition': 'off' }
  }
]
