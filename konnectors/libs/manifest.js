/**
 * cozy-konnector-libs' `manifest` module: `manifest.data` is the konnector's
 * manifest (manifest.konnector), which the host hands to every job (WIT `job`
 * record), where cozy-stack konnectors get it embedded by webpack.
 * `getCozyMetadata(data)` makes the `cozyMetadata` of a document written by the
 * konnector; `setManifest(data)` replaces the manifest (upstream's tests use it).
 */
import { currentManifest, replaceManifest } from './context.js';
import { InvalidArgumentError } from './exceptions.js';

/**
 * @param {object} [data] attributes that override the defaults (`doctypeVersion`, `sourceAccount`...)
 * @returns {object} the cozyMetadata: versions, creation and update dates, this konnector as creator and updater
 */
function getCozyMetadata(data = {}) {
  const { slug, version } = currentManifest();
  const now = new Date(Date.now());
  const defaults = {
    doctypeVersion: 1,
    metadataVersion: 1,
    createdAt: now,
    createdByApp: slug,
    createdByAppVersion: version,
    updatedAt: now,
    updatedByApps: [{ slug, date: now, version }],
  };
  if (Array.isArray(data.updatedByApps)) {
    // This konnector's entry is brought up to date; the other apps' entries stay as they are.
    const index = data.updatedByApps.findIndex((app) => app.slug === slug);
    if (index !== -1) data.updatedByApps[index] = defaults.updatedByApps[0];
  }
  return { ...defaults, ...data };
}

/** @param {Record<string, unknown>} data the manifest to use from now on */
function setManifest(data) {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new InvalidArgumentError(`manifest.setManifest: the manifest must be an object, got ${JSON.stringify(data)}`);
  }
  replaceManifest(data);
}

export const manifest = Object.freeze({
  /** The konnector's manifest (`{}` while the module is evaluated at build time). */
  get data() {
    return currentManifest();
  },
  /** Upstream's `data` is a plain property: assigning it replaces the manifest, as setManifest. */
  set data(value) {
    setManifest(value);
  },
  getCozyMetadata,
  setManifest,
});
