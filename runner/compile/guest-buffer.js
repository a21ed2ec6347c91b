// Konnectors written for Node name `Buffer` as a global (base64 of credentials,
// binary bodies). The build injects this wherever their code names it: the
// buffer package webpack 4 gave them, never a host object.
export { Buffer } from 'buffer';
