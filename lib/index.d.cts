// Types for CommonJS consumers (the "require" condition of package.json's
// exports). The runtime is the same ES module either way: Node ≥ 20.19 / 22.12
// load it with require() (require(esm)). TypeScript with `module: node16` or
// `node18` refuses to type a require() of an ES module (TS1479); these
// CommonJS-flavoured declarations re-export the very same types.
export * from './index.js'
export { default } from './index.js'
