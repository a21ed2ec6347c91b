// The reference snapshot's konnector: the SDK loaded and nothing else. Every konnector's snapshot is stored as
// its difference from this one's (runner/compile/reference.ts), so what the SDK loads is not stored per konnector.
const { BaseKonnector } = require('cozy-konnector-libs')

module.exports = new BaseKonnector(async function start() {})
