/** What the QuickJS bundle's `konnector.run` rejects with for a WIT `failure` (bundle.ts): this prefix, then its JSON. */
export const FAILURE_PREFIX = '\u0001konnector-failure:';
